"""Organize attacked with hostile layouts: companions, digests, links and names that lead outside the
roots. Every refusal happens before the first change, and nothing outside the roots is touched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from quanttui.cli.main import main
from quanttui.core.library import Root
from quanttui.core.library.discover import discover
from quanttui.core.organize import (
    OrganizeError,
    execute_delete,
    find_duplicates,
    link_extras,
    move,
    plan_delete,
    rename,
)
from quanttui.core.organize.move import canonical_folder

MODEL = "application/vnd.ollama.image.model"


def snapshot(top: Path) -> dict[str, tuple[str, str]]:
    """Every entry under `top` (links as their target, files by content hash): a change shows."""
    out: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if p.is_symlink():
                out[str(p)] = ("link", os.readlink(p))
            elif p.is_file():
                out[str(p)] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[str(p)] = ("dir", "")
    return out


def trash_files() -> Path:
    return Path(os.environ["HOME"]) / ".local" / "share" / "Trash" / "files"


@pytest.fixture
def victim(tmp_path) -> Path:
    """A file outside every root that an attack tries to reach."""
    v = tmp_path / "outside" / "victim.gguf"
    v.parent.mkdir()
    v.write_bytes(b"GGUF precious")
    return v


# Ollama: layer digests from a manifest are data, never paths ------------------------------------


def _ollama(tmp_path: Path, tiny, extra_layers: list[object]) -> tuple[Path, Path]:
    models = tmp_path / "ollama"
    (models / "blobs").mkdir(parents=True)
    good = "ab" * 32
    blob = models / "blobs" / f"sha256-{good}"
    shutil.copyfile(tiny.quants["Q8_0"], blob)
    m = models / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest"
    m.parent.mkdir(parents=True)
    layers = [{"mediaType": MODEL, "digest": f"sha256:{good}"}, *extra_layers]
    m.write_text(json.dumps({"config": {"digest": extra_layers[0]["digest"]}, "layers": layers}))
    evil = m.parent.parent / "evil" / "latest"
    evil.parent.mkdir()
    evil.write_text(json.dumps({"layers": extra_layers}))
    return models, blob


def _hostile_digests(victim: Path) -> list[str]:
    return [
        "../../outside/victim.gguf",
        str(victim),
        f"sha256:{victim}",
        "sha256:../../outside/victim.gguf",
        "sha256-" + "0" * 40 + "/../../../outside/victim.gguf",
        "sha256:" + "AB" * 32,  # upper case: not what Ollama writes
        "sha256:" + "ab" * 31,  # 62 hex digits
        "sha512:" + "ab" * 32,
    ]


@pytest.mark.parametrize("n", range(8))
@pytest.mark.parametrize("permanent", [True, False])
def test_ollama_hostile_digest_never_lists_or_deletes_outside(tiny, tmp_path, victim, n, permanent):
    digest = _hostile_digests(victim)[n]
    models, blob = _ollama(tmp_path, tiny, [{"mediaType": MODEL, "digest": digest}])
    root = Root(models, "ollama", True)
    listed = [c.path for c in discover(root)]
    assert listed == [blob]  # the evil manifest names no model
    plan = plan_delete([blob], [root], permanent=permanent)
    assert plan.files == [blob] and len(plan.manifests) == 1
    execute_delete(plan, [root])
    assert victim.read_bytes() == b"GGUF precious" and not blob.exists()
    assert not (trash_files() / "victim.gguf").exists()
    with pytest.raises(OrganizeError, match="outside the library roots"):
        plan_delete([victim], [root])


def test_ollama_damaged_manifests_are_not_listed_but_block_a_blob_delete(tiny, tmp_path):
    """A manifest that cannot be read might use the blob: listing skips it, a delete refuses."""
    models, blob = _ollama(tmp_path, tiny, [{"mediaType": MODEL, "digest": 123}])
    bad = models / "manifests" / "registry.ollama.ai" / "library" / "bad"
    bad.mkdir()
    (bad / "a").write_text("[1, 2]")
    (bad / "b").write_text(json.dumps({"layers": {"digest": "x"}, "config": [1]}))
    (bad / "c").write_bytes(b"\xff\xfe not json")
    os.mkfifo(bad / "fifo")  # never opened: reading it would block forever
    root = Root(models, "ollama", True)
    assert [c.path for c in discover(root)] == [blob]
    with pytest.raises(OrganizeError, match="bad/a: cannot read this Ollama manifest"):
        plan_delete([blob], [root])
    assert blob.exists()


def test_ollama_blob_linked_outside_is_neither_listed_nor_deleted(tmp_path, victim):
    models = tmp_path / "ollama"
    (models / "blobs").mkdir(parents=True)
    digest = "cd" * 32
    link = models / "blobs" / f"sha256-{digest}"
    link.symlink_to(victim)
    m = models / "manifests" / "registry.ollama.ai" / "library" / "x" / "latest"
    m.parent.mkdir(parents=True)
    m.write_text(json.dumps({"layers": [{"mediaType": MODEL, "digest": f"sha256:{digest}"}]}))
    root = Root(models, "ollama", True)
    assert list(discover(root)) == []
    with pytest.raises(OrganizeError, match="leads outside"):
        plan_delete([link], [root], permanent=True)
    assert victim.exists() and link.is_symlink()


# HF cache: a link in another revision that leads outside is never part of a delete: see
# test_organize_revisions.py (rm takes the file's own content, not the name in every revision).


# Folders: symlinked folders and `..` that lead out ------------------------------------------------


@pytest.fixture
def lib(tiny, tmp_path, victim) -> tuple[Path, list[Root]]:
    d = tmp_path / "lib"
    d.mkdir()
    shutil.copyfile(tiny.quants["Q8_0"], d / "a.gguf")
    for p in tiny.split_parts:
        shutil.copyfile(p, d / p.name)
    (d / "out").symlink_to(victim.parent, target_is_directory=True)
    return d, [Root(d, "folder", False)]


def test_a_symlinked_folder_pointing_out_is_not_listed_deleted_or_moved_into(lib, victim):
    d, roots = lib
    assert all("outside" not in str(os.path.realpath(c.path)) for c in discover(roots[0]))
    with pytest.raises(OrganizeError, match="leads outside"):
        plan_delete([d / "out" / "victim.gguf"], roots, permanent=True)
    with pytest.raises(OrganizeError, match="leads outside"):
        move([d / "a.gguf"], d / "out" / "new" / "deeper", roots)
    assert not (victim.parent / "new").exists() and (d / "a.gguf").exists()
    with pytest.raises(OrganizeError, match="leads outside"):
        move([d / "out" / "victim.gguf"], d / "sub", roots)
    assert victim.exists() and not (d / "sub").exists()


@pytest.mark.parametrize(
    "dest",
    [
        lambda d, t: t / "elsewhere" / "new",
        lambda d, t: d / ".." / "elsewhere" / "new",
        lambda d, t: d / "out" / "x",
        lambda d, t: (d / "up").symlink_to(t, target_is_directory=True) or d / "up" / "elsewhere" / "new",
    ],
)
def test_mv_to_outside_refuses_before_making_any_folder(lib, tmp_path, capsys, dest):
    d, _ = lib
    assert main(["roots", "add", str(d)]) == 0
    target = dest(d, tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(["mv", str(d / "a.gguf"), str(target)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outside the library roots" in err
    assert snapshot(tmp_path) == before  # not one folder made, not one file moved
    assert not (tmp_path / "elsewhere").exists()


def test_mv_with_dotdot_that_stays_inside_is_allowed(lib):
    d, roots = lib
    (d / "x").mkdir()
    moved = move([d / "a.gguf"], d / "x" / ".." / "y", roots)
    assert moved[0].resolve() == (d / "y" / "a.gguf") and (d / "y" / "a.gguf").is_file()


@pytest.mark.parametrize(
    "name", ["a/b", "..", ".", "../up", "x\x1b]0;pwn\x07", "x\ny", "", "  ", "a\\b", "x\u202e"]
)
def test_rename_refuses_names_that_are_not_one_plain_name(lib, tiny, name):
    d, roots = lib
    before = snapshot(d)
    with pytest.raises(OrganizeError) as err:
        rename(d / "a.gguf", name, roots)
    assert "\x1b" not in str(err.value) and "\n" not in str(err.value)
    assert snapshot(d) == before


def test_canonical_folder_never_leads_out_of_its_top(tmp_path):
    top = tmp_path / "models"
    assert canonical_folder({"hf_repo": "../.."}, "g", top) == top / "g"
    assert canonical_folder({"hf_repo": "/etc/x"}, "g", top) == top / "g"
    assert canonical_folder({"hf_repo": "o/R"}, "g", top) == top / "o" / "R"
    assert canonical_folder({}, "..", top) == top / "unsorted"


# Dedupe and hard links ----------------------------------------------------------------------------


def test_dedupe_link_refuses_an_extra_or_keep_that_leads_outside(lib, tmp_path, victim, tiny):
    d, roots = lib
    shutil.copyfile(tiny.quants["Q8_0"], victim)
    content = victim.read_bytes()
    shutil.copyfile(tiny.quants["Q8_0"], d / "b.gguf")
    (d / "c.gguf").symlink_to(victim)
    orders = [[d / "a.gguf", d / "b.gguf", victim], [victim, d / "a.gguf"], [d / "a.gguf", d / "c.gguf"]]
    for order in orders:
        for i, p in enumerate(order):
            os.utime(p, ns=(i + 1, i + 1))  # the oldest is kept
        (group,) = find_duplicates(order)
        with pytest.raises(OrganizeError, match="outside the library roots"):
            link_extras(group, roots)
    assert victim.read_bytes() == content and os.stat(victim).st_nlink == 1
    assert os.stat(d / "b.gguf").st_ino != os.stat(d / "a.gguf").st_ino  # refused before the first link


def test_a_hard_link_to_an_outside_file_deletes_only_the_name_inside(lib, victim, tiny):
    d, roots = lib
    os.link(victim, d / "hard.gguf")
    plan = plan_delete([d / "hard.gguf"], roots, permanent=True)
    assert plan.bytes_freed == 0  # the data stays, held by the outside name
    execute_delete(plan, roots)
    assert not (d / "hard.gguf").exists() and victim.read_bytes() == b"GGUF precious"


def test_cli_output_and_errors_show_hostile_names_escaped(lib, tiny, capsys, tmp_path):
    d, _ = lib
    evil = d / "evil\x1b]0;pwned\x07\u202e.gguf"
    shutil.copyfile(tiny.quants["Q2_K"], evil)
    shutil.copyfile(tiny.quants["Q2_K"], d / "twin.gguf")
    assert main(["roots", "add", str(d)]) == 0
    capsys.readouterr()
    assert main(["dedupe"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "evil\\x1b]0;pwned\\x07\\u202e.gguf" in out
    assert main(["rm", str(evil), "--yes", "--permanent"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b" in out and not evil.exists()
    assert main(["rm", str(tmp_path / "x\x1b[2J.gguf"), "--yes"]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and err.count("\n") == 1


# A link planted in a plain folder root that points out: listed, but only the link itself may go -------


@pytest.mark.parametrize("permanent", [False, True], ids=["trash", "permanent"])
def test_a_link_out_of_a_root_is_removed_as_a_link_never_its_target(tiny, tmp_path, permanent):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = shutil.copyfile(tiny.quants["Q2_K"], outside / "victim.gguf")
    lib = tmp_path / "lib"
    lib.mkdir()
    link = lib / "link.gguf"
    link.symlink_to(target)
    roots = [Root(lib, "folder", False)]
    before = snapshot(outside)
    plan = plan_delete([link], roots, permanent=permanent)
    assert plan.files == [] and plan.links == [link]
    execute_delete(plan, roots)
    assert not os.path.lexists(link) and snapshot(outside) == before


def test_dedupe_leaves_out_a_link_out_of_the_roots_and_links_the_rest(tiny, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = shutil.copyfile(tiny.quants["Q2_K"], outside / "victim.gguf")
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "link.gguf").symlink_to(target)
    for name in ("a.gguf", "b.gguf"):
        shutil.copyfile(tiny.quants["Q2_K"], lib / name)
    roots = [Root(lib, "folder", False)]
    (group,) = find_duplicates([lib / "link.gguf", lib / "a.gguf", lib / "b.gguf"], roots=roots)
    assert {group.keep, *group.extras} == {lib / "a.gguf", lib / "b.gguf"}
    before = snapshot(outside)
    assert main(["roots", "add", str(lib)]) == 0
    assert main(["dedupe", "--apply", "link", "--yes"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("linked 1 extra to their kept copy")
    assert (lib / "a.gguf").stat().st_nlink == 2 and snapshot(outside) == before
