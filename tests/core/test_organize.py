"""Organize on real files in temporary roots: nothing outside the roots, nothing half-done."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quanttui.cli.main import main
from quanttui.core import format as fmt
from quanttui.core.library import Root
from quanttui.core.organize import (
    OrganizeError,
    disk_usage,
    execute_delete,
    find_duplicates,
    link_extras,
    log_path,
    mark_in_use,
    move,
    plan_delete,
    recover_interrupted,
    rename,
    unmark_in_use,
)
from tests.core.test_library import _hf_cache_repo


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trash_files() -> Path:
    return Path(os.environ["HOME"]) / ".local" / "share" / "Trash" / "files"


@pytest.fixture
def lib(tiny, tmp_path) -> tuple[Path, list[Root]]:
    d = tmp_path / "lib"
    d.mkdir()
    for label in ("Q8_0", "Q2_K"):
        shutil.copyfile(tiny.quants[label], d / f"tiny-{label}.gguf")
    for p in tiny.split_parts:
        shutil.copyfile(p, d / p.name)
    return d, [Root(d, "folder", False)]


def test_delete_to_trash_and_permanently(lib):
    d, roots = lib
    plan = plan_delete([d / "tiny-Q8_0.gguf"], roots)
    assert plan.bytes_freed == (d / "tiny-Q8_0.gguf").stat().st_size and not plan.permanent
    execute_delete(plan, roots)
    assert not (d / "tiny-Q8_0.gguf").exists()
    assert (trash_files() / "tiny-Q8_0.gguf").is_file()
    execute_delete(plan_delete([d / "tiny-Q2_K.gguf"], roots, permanent=True), roots)
    assert not (d / "tiny-Q2_K.gguf").exists() and not (trash_files() / "tiny-Q2_K.gguf").exists()
    assert not list(d.glob(".quanttui-deleting-*"))
    log = [json.loads(line) for line in log_path().read_text().splitlines()]
    assert [e["op"] for e in log] == ["delete", "delete"] and log[1]["permanent"] is True


def test_split_set_is_deleted_whole(lib, tiny):
    d, roots = lib
    plan = plan_delete([d / tiny.split_parts[1].name], roots, permanent=True)
    assert sorted(p.name for p in plan.files) == sorted(p.name for p in tiny.split_parts)
    execute_delete(plan, roots)
    assert not list(d.glob("tiny-split-*"))
    assert (d / "tiny-Q8_0.gguf").exists()


def test_refuses_outside_roots_and_through_symlinks(lib, tmp_path):
    d, roots = lib
    outside = tmp_path / "elsewhere.gguf"
    outside.write_bytes(b"GGUF")
    with pytest.raises(OrganizeError, match="outside the library roots"):
        plan_delete([outside], roots)
    (d / "escape.gguf").symlink_to(outside)
    escape = plan_delete([d / "escape.gguf"], roots)  # a link out of a root goes as a link only
    assert escape.files == [] and escape.links == [d / "escape.gguf"]
    with pytest.raises(OrganizeError, match="leads outside the library roots"):
        move([d / "escape.gguf"], d / "sub", roots)
    with pytest.raises(OrganizeError, match="outside the library roots"):
        move([d / "tiny-Q8_0.gguf"], tmp_path / "not-a-root", roots)
    assert outside.exists() and (d / "tiny-Q8_0.gguf").exists()
    (d / "inner.gguf").symlink_to(d / "tiny-Q8_0.gguf")
    execute_delete(plan_delete([d / "inner.gguf"], roots, permanent=True), roots)
    assert not (d / "inner.gguf").is_symlink() and (d / "tiny-Q8_0.gguf").exists()  # the link only


def test_a_file_open_in_an_ab_session_is_not_deleted(lib, tiny):
    from quanttui.core.ab import ABSession, GenConfig, Plan

    d, roots = lib
    target = d / "tiny-Q8_0.gguf"
    s = ABSession(
        str(target),
        str(d / "tiny-Q2_K.gguf"),
        GenConfig(max_tokens=4, n_ctx=256),
        Plan(False, {"a": 0, "b": 0}, ""),
    )
    with pytest.raises(OrganizeError, match="open in a running A/B session"):
        plan_delete([target], roots)
    with pytest.raises(OrganizeError, match="open in a running A/B session"):
        move([target], d / "sub", roots)
    s.close()
    assert plan_delete([target], roots).files == [target]
    mark_in_use(str(target))
    with pytest.raises(OrganizeError):
        plan_delete([target], roots)
    unmark_in_use(str(target))


def test_hf_cache_stays_consistent(tiny, tmp_path):
    from huggingface_hub import scan_cache_dir

    hub = tmp_path / "hub"
    files = {"tiny-Q8_0.gguf": tiny.quants["Q8_0"], "tiny-Q2_K.gguf": tiny.quants["Q2_K"]}
    _hf_cache_repo(hub, "someone/Tiny-GGUF", files, ["a" * 40, "b" * 40])
    roots = [Root(hub, "huggingface", True)]
    snap = hub / "models--someone--Tiny-GGUF" / "snapshots" / ("b" * 40)
    plan = plan_delete([snap / "tiny-Q8_0.gguf"], roots)
    assert len(plan.links) == 2 and len(plan.files) == 1  # the link in both revisions, one blob
    execute_delete(plan, roots)
    info = scan_cache_dir(hub)
    assert not info.warnings
    (repo,) = info.repos
    assert {f.file_name for rev in repo.revisions for f in rev.files} == {"tiny-Q2_K.gguf"}
    assert repo.size_on_disk == tiny.quants["Q2_K"].stat().st_size
    execute_delete(plan_delete([snap / "tiny-Q2_K.gguf"], roots), roots)
    assert not scan_cache_dir(hub).repos and not scan_cache_dir(hub).warnings
    assert not (hub / "models--someone--Tiny-GGUF").exists()


def test_hf_revision_left_empty_goes_with_its_ref(tiny, tmp_path):
    from huggingface_hub import scan_cache_dir

    hub = tmp_path / "hub"
    _hf_cache_repo(hub, "o/R", {"tiny-Q8_0.gguf": tiny.quants["Q8_0"]}, ["a" * 40])
    _hf_cache_repo(hub, "o/R", {"tiny-Q2_K.gguf": tiny.quants["Q2_K"]}, ["b" * 40])
    repo = hub / "models--o--R"
    (repo / "refs" / "old").write_text("a" * 40)
    (repo / "refs" / "main").write_text("b" * 40)
    roots = [Root(hub, "huggingface", True)]
    execute_delete(plan_delete([repo / "snapshots" / ("a" * 40) / "tiny-Q8_0.gguf"], roots), roots)
    assert not (repo / "snapshots" / ("a" * 40)).exists() and not (repo / "refs" / "old").exists()
    (r,) = scan_cache_dir(hub).repos
    assert [rev.commit_hash for rev in r.revisions] == ["b" * 40] and not scan_cache_dir(hub).warnings


def test_ollama_blobs_go_only_when_no_manifest_uses_them(tiny, tmp_path):
    models = tmp_path / "ollama"
    blobs = models / "blobs"
    blobs.mkdir(parents=True)
    model_a, model_b, shared = "aa" * 32, "bb" * 32, "cc" * 32
    shutil.copyfile(tiny.quants["Q8_0"], blobs / f"sha256-{model_a}")
    shutil.copyfile(tiny.quants["Q2_K"], blobs / f"sha256-{model_b}")
    (blobs / f"sha256-{shared}").write_text("{}")

    def manifest(name: str, tag: str, digest: str) -> None:
        m = models / "manifests" / "registry.ollama.ai" / "library" / name / tag
        m.parent.mkdir(parents=True, exist_ok=True)
        m.write_text(
            json.dumps(
                {
                    "config": {"digest": f"sha256:{shared}"},
                    "layers": [
                        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"}
                    ],
                }
            )
        )

    manifest("tiny", "latest", model_a)
    manifest("tiny", "q8", model_a)
    manifest("other", "latest", model_b)
    roots = [Root(models, "ollama", True)]
    plan = plan_delete([blobs / f"sha256-{model_a}"], roots, permanent=True)
    assert len(plan.manifests) == 2 and plan.files == [blobs / f"sha256-{model_a}"]
    execute_delete(plan, roots)
    assert not (blobs / f"sha256-{model_a}").exists()
    assert (blobs / f"sha256-{shared}").exists() and (blobs / f"sha256-{model_b}").exists()
    assert (models / "manifests" / "registry.ollama.ai" / "library" / "other" / "latest").exists()


def test_move_and_rename_keep_split_sets_together(lib, tiny):
    d, roots = lib
    moved = move([d / tiny.split_parts[0].name], d / "Tiny" / "split", roots)
    assert sorted(p.name for p in moved) == sorted(p.name for p in tiny.split_parts)
    assert not list(d.glob("tiny-split-*"))
    renamed = rename(moved[0], "tiny-renamed", roots)
    assert [p.name for p in renamed] == [f"tiny-renamed-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    from quanttui.core.modelfile import inspect_file

    assert inspect_file(renamed[0]).split["missing"] == []
    copied = move([d / "tiny-Q8_0.gguf"], d / "other", roots, force_copy=True)
    assert sha(copied[0]) == sha(tiny.quants["Q8_0"]) and not (d / "tiny-Q8_0.gguf").exists()
    with pytest.raises(OrganizeError, match="already exists"):
        shutil.copyfile(tiny.quants["Q2_K"], d / "other" / "tiny-Q2_K.gguf")
        move([d / "tiny-Q2_K.gguf"], d / "other", roots)


def test_a_copy_killed_halfway_loses_nothing(tmp_path):
    d = tmp_path / "lib"
    d.mkdir()
    big = d / "big.gguf"
    with open(big, "wb") as fh:
        for i in range(24):
            fh.write(bytes([i]) * (4 << 20))
    before = sha(big)
    script = (
        "import sys, time; from pathlib import Path; from quanttui.core.library import Root;"
        "from quanttui.core.organize import move;"
        f"move([Path({str(big)!r})], Path({str(d / 'dest')!r}), [Root(Path({str(d)!r}), 'folder', False)],"
        " force_copy=True, progress=lambda done, total: time.sleep(0.2))"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    partial = d / "dest" / ".big.gguf.partial"
    for _ in range(200):
        if partial.exists() and partial.stat().st_size > 0:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial.exists()  # the copy was cut off mid-way
    assert big.exists() and sha(big) == before  # the old file is complete
    assert not (d / "dest" / "big.gguf").exists()
    lines = recover_interrupted()  # the next start
    assert lines == ["rolled back the interrupted move of 1 file(s): each is where it was before"]
    assert not (d / "dest").exists() and sha(big) == before  # no partial left, not even the folder


def no_room_after(limit: int):
    """For a subprocess: the OS refuses to grow a file past `limit` bytes (EFBIG), as a full disk or
    a quota would (ENOSPC, EDQUOT), without filling this machine's disk."""

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_files


def test_no_room_during_a_copy_moves_nothing_and_leaves_nothing(lib, tiny):
    d, roots = lib
    parts = [d / p.name for p in tiny.split_parts]
    before = [sha(p) for p in parts]
    script = (
        "from pathlib import Path\nfrom quanttui.core.library import Root\n"
        "from quanttui.core.organize import OrganizeError, move\n"
        f"try:\n    move([Path({str(parts[0])!r})], Path({str(d / 'dest')!r}),"
        f" [Root(Path({str(d)!r}), 'folder', False)], force_copy=True)\n"
        "except OrganizeError as e:\n    print(e)\n"
    )
    limit = parts[0].stat().st_size + 4096  # the first part fits, the second does not
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, preexec_fn=no_room_after(limit)
    )
    assert out.stdout.strip() == "move failed (File too large); nothing moved" and out.stderr == ""
    assert [sha(p) for p in parts] == before  # every source is where it was
    assert not (d / "dest").exists()  # no copied part, no partial file, not even the folder it made


def test_dedupe_finds_exactly_the_duplicates_and_reclaims(tiny, tmp_path):
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    r1.mkdir()
    r2.mkdir()
    src = tiny.quants["Q8_0"]
    a, b, c = r1 / "a.gguf", r2 / "b.gguf", r2 / "c.gguf"
    for p in (a, b, c):
        shutil.copyfile(src, p)
    os.link(a, r1 / "a-link.gguf")
    near = r1 / "near.gguf"  # same size, one byte different: not a duplicate
    data = bytearray(src.read_bytes())
    data[-1] ^= 0xFF
    near.write_bytes(bytes(data))
    roots = [Root(r1, "folder", False), Root(r2, "folder", False)]
    files = [a, b, c, r1 / "a-link.gguf", near, tiny.quants["Q2_K"]]
    (group,) = find_duplicates(files)
    # a and a-link are one file already: one of them is kept, the other counts as linked.
    assert {group.keep, *group.linked} == {a, r1 / "a-link.gguf"} and sorted(group.extras) == [b, c]
    assert group.reclaimable == 2 * src.stat().st_size
    assert json.loads((tmp_path / "cache" / "hashes.json").read_text())  # hashed once, cached
    usage_before = disk_usage_of([a, b, c, r1 / "a-link.gguf"])
    link_extras(group, roots)
    assert os.stat(b).st_ino == os.stat(a).st_ino == os.stat(c).st_ino and sha(c) == sha(src)
    assert disk_usage_of([a, b, c, r1 / "a-link.gguf"]) == usage_before // 3
    (again,) = find_duplicates(files)
    assert again.extras == [] and len(again.linked) == 3


def disk_usage_of(paths: list[Path]) -> int:
    from quanttui.core.library.scan import LibraryEntry

    entries = [
        LibraryEntry(str(p), [str(p)], [], str(p.parent), "folder", 0, {}, None, None, "g", "g")
        for p in paths
    ]
    return disk_usage(entries).total


def test_cli_rm_mv_du(lib, tiny, capsys, monkeypatch):
    d, _ = lib
    assert main(["roots", "add", str(d)]) == 0
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["rm", str(d / "tiny-Q2_K.gguf")]) == 2
    assert "refusing without --yes" in capsys.readouterr().err and (d / "tiny-Q2_K.gguf").exists()
    size = (d / "tiny-Q2_K.gguf").stat().st_size
    assert main(["rm", str(d / "tiny-Q2_K.gguf"), "--yes"]) == 0
    assert not (d / "tiny-Q2_K.gguf").exists()
    assert capsys.readouterr().out.splitlines()[-1] == f"moved to the trash 1 file, freed {fmt.size(size)}"
    assert main(["mv", str(d / "tiny-Q8_0.gguf"), str(d / "sub")]) == 0
    assert (d / "sub" / "tiny-Q8_0.gguf").exists()
    capsys.readouterr()
    assert main(["du", "--json"]) == 0
    u = json.loads(capsys.readouterr().out)
    assert u["total"] == sum(p.stat().st_size for p in d.rglob("*.gguf"))
    assert set(u["quants"]) == {"Q8_0", "F16"}
    assert main(["rm", "/etc/hostname", "--yes"]) == 1
    assert "outside the library roots" in capsys.readouterr().err


def test_cli_dedupe_says_what_it_did(tiny, tmp_path, capsys):
    d = tmp_path / "dups"
    d.mkdir()
    for name in ("a.gguf", "b.gguf", "c.gguf"):
        shutil.copy(tiny.quants["Q2_K"], d / name)
    size = (d / "a.gguf").stat().st_size
    assert main(["roots", "add", str(d)]) == 0
    assert main(["dedupe", "--apply", "link", "--yes"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"linked 2 extras to their kept copy, freed {fmt.size(2 * size)}"
    assert (d / "a.gguf").stat().st_nlink == 3
    shutil.copy(tiny.quants["Q8_0"], d / "x.gguf")
    shutil.copy(tiny.quants["Q8_0"], d / "y.gguf")
    assert main(["dedupe", "--apply", "delete", "--yes"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("moved to the trash 1 file, freed ")
    assert len(list(d.glob("[xy].gguf"))) == 1
