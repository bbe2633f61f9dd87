"""Which data a delete may take: one Hugging Face file is its own content only (another revision's
other content is never part of it; dedupe takes one revision's link), and an Ollama blob goes only
when every manifest could be read and none still uses it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quanttui.cli.main import main
from quanttui.core.library import Root
from quanttui.core.library.roots import hf_hub_cache, ollama_models
from quanttui.core.organize import OrganizeError, execute_delete, plan_delete
from tests.core.test_organize_attack import snapshot

OLD, NEW = "a" * 40, "b" * 40
MODEL = "application/vnd.ollama.image.model"


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def trash_files() -> Path:
    return Path(os.environ["HOME"]) / ".local" / "share" / "Trash" / "files"


def hf_repo(hub: Path, revisions: dict[str, dict[str, Path]], main_rev: str = NEW) -> Path:
    """models--o--R with each revision's files as links into blobs named by their SHA-256 (a file of
    the same name may have other content in another revision); refs/main names `main_rev`."""
    repo = hub / "models--o--R"
    for rev, files in revisions.items():
        for name, src in files.items():
            blob = repo / "blobs" / sha(src)
            if not blob.exists():
                blob.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, blob)
            link = repo / "snapshots" / rev / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(main_rev)
    return repo


@pytest.fixture
def two_versions(tiny, tmp_path) -> tuple[Path, Path, list[Root]]:
    """m.gguf is Q2_K in the old revision and Q8_0 in the new one; k.gguf is one blob in both."""
    hub = tmp_path / "hub"
    old = {"m.gguf": tiny.quants["Q2_K"], "k.gguf": tiny.quants["Q4_K_M"]}
    new = {"m.gguf": tiny.quants["Q8_0"], "k.gguf": tiny.quants["Q4_K_M"]}
    repo = hf_repo(hub, {OLD: old, NEW: new})
    return hub, repo, [Root(hub, "huggingface", True)]


def cache_is_sound(hub: Path) -> dict[str, set[str]]:
    """huggingface_hub reads the cache without a warning; each revision's file names."""
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(hub)
    assert not info.warnings
    return {r.commit_hash: {f.file_name for f in r.files} for repo in info.repos for r in repo.revisions}


# Hugging Face: one file is its content, never another revision's ------------------------------


@pytest.mark.parametrize("permanent", [False, True])
def test_rm_of_a_file_leaves_the_other_content_of_its_name_in_another_revision(two_versions, tiny, permanent):
    hub, repo, roots = two_versions
    target, older = repo / "snapshots" / NEW / "m.gguf", repo / "snapshots" / OLD / "m.gguf"
    plan = plan_delete([target], roots, permanent=permanent)
    assert plan.files == [repo / "blobs" / sha(tiny.quants["Q8_0"])] and plan.links == [target]
    assert plan.bytes_freed == tiny.quants["Q8_0"].stat().st_size
    execute_delete(plan, roots)
    assert not os.path.lexists(target)
    assert sha(older) == sha(tiny.quants["Q2_K"])  # the old revision's only copy is where it was
    assert cache_is_sound(hub) == {OLD: {"m.gguf", "k.gguf"}, NEW: {"k.gguf"}}


def test_rm_of_a_blob_two_revisions_share_removes_it_from_both(two_versions, tiny):
    hub, repo, roots = two_versions
    plan = plan_delete([repo / "snapshots" / NEW / "k.gguf"], roots)
    assert sorted(plan.links) == [repo / "snapshots" / r / "k.gguf" for r in (OLD, NEW)]
    assert plan.files == [repo / "blobs" / sha(tiny.quants["Q4_K_M"])]
    execute_delete(plan, roots)
    assert cache_is_sound(hub) == {OLD: {"m.gguf"}, NEW: {"m.gguf"}}


def test_only_revision_keeps_a_blob_another_revision_links(two_versions, tiny):
    hub, repo, roots = two_versions
    target = repo / "snapshots" / NEW / "k.gguf"
    plan = plan_delete([target], roots, only_revision=True)
    assert plan.links == [target] and plan.files == [] and plan.bytes_freed == 0
    assert plan.summary() == "remove 1 link (the data stays), freeing 0 bytes"
    execute_delete(plan, roots)
    assert plan.done_text() == "removed 1 link; the data stays"
    assert sha(repo / "snapshots" / OLD / "k.gguf") == sha(tiny.quants["Q4_K_M"])
    assert cache_is_sound(hub) == {OLD: {"m.gguf", "k.gguf"}, NEW: {"m.gguf"}}
    assert not trash_files().exists()


def test_only_revision_trashes_the_blob_no_other_link_uses(two_versions, tiny):
    hub, repo, roots = two_versions
    target = repo / "snapshots" / NEW / "m.gguf"
    plan = plan_delete([target], roots, only_revision=True)
    assert plan.links == [target] and plan.files == [repo / "blobs" / sha(tiny.quants["Q8_0"])]
    execute_delete(plan, roots)
    assert sha(repo / "snapshots" / OLD / "m.gguf") == sha(tiny.quants["Q2_K"])
    assert cache_is_sound(hub) == {OLD: {"m.gguf", "k.gguf"}, NEW: {"k.gguf"}}
    assert [p.name for p in trash_files().iterdir()] == [sha(tiny.quants["Q8_0"])]


def test_only_revision_drops_a_revision_it_empties_with_its_ref_and_keeps_the_shared_blob(tiny, tmp_path):
    hub = tmp_path / "hub"
    old = {"m.gguf": tiny.quants["Q2_K"], "k.gguf": tiny.quants["Q4_K_M"]}
    repo = hf_repo(hub, {OLD: old, NEW: {"k.gguf": tiny.quants["Q4_K_M"]}})
    roots = [Root(hub, "huggingface", True)]
    plan = plan_delete([repo / "snapshots" / NEW / "k.gguf"], roots, only_revision=True)
    assert (
        plan.files == [] and plan.dirs == [repo / "snapshots" / NEW] and plan.refs == [repo / "refs" / "main"]
    )
    execute_delete(plan, roots)
    assert cache_is_sound(hub) == {OLD: {"m.gguf", "k.gguf"}}
    assert sha(repo / "snapshots" / OLD / "k.gguf") == sha(tiny.quants["Q4_K_M"])


def _plant_absolute(old: Path, victim: Path) -> None:
    (old / "m.gguf").unlink()
    (old / "m.gguf").symlink_to(victim)


def _plant_relative(old: Path, victim: Path) -> None:
    (old / "m.gguf").unlink()
    (old / "m.gguf").symlink_to(os.path.relpath(victim, old))


def _plant_revision_dir(old: Path, victim: Path) -> None:
    shutil.rmtree(old)
    old.symlink_to(victim.parent, target_is_directory=True)
    (victim.parent / "m.gguf").symlink_to(victim)


@pytest.mark.parametrize("plant", [_plant_absolute, _plant_relative, _plant_revision_dir])
@pytest.mark.parametrize("permanent", [False, True])
def test_another_revisions_link_out_of_the_cache_is_not_part_of_the_delete(
    two_versions, tiny, tmp_path, plant, permanent
):
    """The old revision's m.gguf (or the whole revision) planted to lead outside: rm of the new
    revision's m.gguf, other content, takes its own link and blob and never looks past the plant."""
    hub, repo, roots = two_versions
    victim = tmp_path / "outside" / "victim.gguf"
    victim.parent.mkdir()
    victim.write_bytes(b"GGUF precious")
    plant(repo / "snapshots" / OLD, victim)
    outside, planted = snapshot(victim.parent), os.readlink(repo / "snapshots" / OLD / "m.gguf")
    target = repo / "snapshots" / NEW / "m.gguf"
    plan = plan_delete([target], roots, permanent=permanent)
    assert plan.links == [target] and plan.files == [repo / "blobs" / sha(tiny.quants["Q8_0"])]
    execute_delete(plan, roots)
    assert not os.path.lexists(target) and os.readlink(repo / "snapshots" / OLD / "m.gguf") == planted
    assert snapshot(victim.parent) == outside and victim.read_bytes() == b"GGUF precious"
    trashed = [p.name for p in trash_files().iterdir()] if trash_files().exists() else []
    assert trashed == ([] if permanent else [plan.files[0].name])


def test_a_revision_folder_out_of_the_cache_linking_the_blob_still_refuses_the_delete(two_versions, tmp_path):
    hub, repo, roots = two_versions
    outside = tmp_path / "outside"
    outside.mkdir()
    blob = os.path.realpath(repo / "snapshots" / NEW / "m.gguf")
    shutil.rmtree(repo / "snapshots" / OLD)
    (repo / "snapshots" / OLD).symlink_to(outside, target_is_directory=True)
    (outside / "m.gguf").symlink_to(blob)  # a link to the same content, sitting outside the roots
    before = snapshot(hub)
    with pytest.raises(OrganizeError, match="outside the library roots"):
        plan_delete([repo / "snapshots" / NEW / "m.gguf"], roots)
    assert snapshot(hub) == before and os.path.exists(blob)


def test_cli_dedupe_delete_trashes_only_the_duplicate_never_the_old_revision(tiny, tmp_path, capsys):
    hub = hf_hub_cache()
    old, new = {"m.gguf": tiny.quants["Q2_K"]}, {"m.gguf": tiny.quants["Q8_0"]}
    repo = hf_repo(hub, {OLD: old, NEW: new})
    lib = tmp_path / "lib"
    lib.mkdir()
    keep = shutil.copyfile(tiny.quants["Q8_0"], lib / "tiny-Q8_0.gguf")
    hour_ago = time.time() - 3600
    os.utime(keep, (hour_ago, hour_ago))  # the older copy is the one dedupe keeps
    assert main(["roots", "add", str(lib)]) == 0
    capsys.readouterr()
    assert main(["dedupe", "--apply", "delete", "--yes"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"  extra  {repo / 'snapshots' / NEW / 'm.gguf'}" in out
    assert out[-1].startswith("moved to the trash 1 file, freed ")
    assert [p.name for p in trash_files().iterdir()] == [sha(tiny.quants["Q8_0"])]
    assert sha(repo / "snapshots" / OLD / "m.gguf") == sha(tiny.quants["Q2_K"]) and sha(keep) == sha(
        tiny.quants["Q8_0"]
    )
    assert cache_is_sound(hub) == {OLD: {"m.gguf"}}


# Ollama: a manifest that cannot be read may use any blob ----------------------------------------


def ollama(tiny) -> tuple[Path, Path, Path]:
    """Model `tiny` (its own model layer and a config) and the folder of a second model `other`, whose
    manifest (written by each test) uses its own model layer and the same config; the blob of
    `tiny`'s model layer and `other`'s folder are returned."""
    models = ollama_models()
    blob = models / "blobs" / f"sha256-{'ab' * 32}"
    blob.parent.mkdir(parents=True)
    shutil.copyfile(tiny.quants["Q8_0"], blob)
    shutil.copyfile(tiny.quants["Q2_K"], models / "blobs" / f"sha256-{'ef' * 32}")
    (models / "blobs" / f"sha256-{'cd' * 32}").write_text("{}")
    manifest = {
        "config": {"digest": f"sha256:{'cd' * 32}"},
        "layers": [{"mediaType": MODEL, "digest": f"sha256:{'ab' * 32}"}],
    }
    lib = models / "manifests" / "registry.ollama.ai" / "library"
    for name in ("tiny", "other"):
        (lib / name).mkdir(parents=True)
    (lib / "tiny" / "latest").write_text(json.dumps(manifest))
    return models, blob, lib / "other"


def other_manifest() -> dict[str, object]:
    """`other`: its own model layer and the config `tiny` uses too."""
    return {
        "config": {"digest": f"sha256:{'cd' * 32}"},
        "layers": [{"mediaType": MODEL, "digest": f"sha256:{'ef' * 32}"}],
    }


def _over_limit_by_one(where: Path) -> None:
    text = json.dumps(other_manifest())
    where.write_text(text + " " * ((1 << 20) + 1 - len(text)))


def _valid_but_huge(where: Path) -> None:
    license = {"mediaType": "application/vnd.ollama.image.license", "digest": f"sha256:{'0' * 64}"}
    where.write_text(json.dumps({**other_manifest(), "layers": [license] * 40_000}))


def _fifo(where: Path) -> None:
    os.mkfifo(where)  # opened blocking, the plan would wait for a writer forever


def _link_to_a_folder(where: Path) -> None:
    (where.parent / "real").mkdir()
    where.symlink_to(where.parent / "real", target_is_directory=True)


def _dangling_link(where: Path) -> None:
    where.symlink_to(where.parent / "gone")


def _link_loop(where: Path) -> None:
    where.symlink_to(where)


def _not_json(where: Path) -> None:
    where.write_bytes(b"\xff\xfe" + json.dumps(other_manifest()).encode())


def _truncated(where: Path) -> None:
    where.write_text(json.dumps(other_manifest())[:-3])


def _not_an_object(where: Path) -> None:
    where.write_text(json.dumps([other_manifest()]))


def _layers_not_a_list(where: Path) -> None:
    where.write_text(json.dumps({**other_manifest(), "layers": {"0": other_manifest()["layers"]}}))


UNREADABLE = {
    _over_limit_by_one: "1,048,577 bytes, more than the 1,048,576 allowed",
    _valid_but_huge: "more than the 1,048,576 allowed",
    _fifo: "not a regular file (a FIFO)",
    _link_to_a_folder: "not a regular file (a directory)",
    _dangling_link: "No such file",
    _link_loop: "Too many levels of symbolic links",
    _not_json: "not JSON",
    _truncated: "not JSON",
    _not_an_object: "not a JSON object",
    _layers_not_a_list: "its layers are not a list",
}


@contextlib.contextmanager
def at_most(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a FIFO opened for reading blocks until a writer comes)."""

    def hang(*_: object) -> None:
        raise TimeoutError(f"still planning after {seconds}s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("make", list(UNREADABLE), ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("permanent", [False, True])
def test_a_manifest_that_cannot_be_read_refuses_the_delete_of_any_blob(tiny, make, permanent):
    models, blob, other = ollama(tiny)
    make(other / "latest")
    roots = [Root(models, "ollama", True)]
    before = snapshot(models)
    with at_most(20), pytest.raises(OrganizeError) as refused:
        plan_delete([blob], roots, permanent=permanent)
    why = str(refused.value)
    assert why.startswith(f"{other / 'latest'}: cannot read this Ollama manifest (") and "\n" not in why
    assert UNREADABLE[make] in why and why.endswith("so nothing was deleted")
    assert snapshot(models) == before and blob.read_bytes() == tiny.quants["Q8_0"].read_bytes()


def test_a_linked_folder_of_manifests_refuses_the_delete(tiny, tmp_path):
    models, blob, other = ollama(tiny)
    shutil.rmtree(other)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "latest").write_text(json.dumps(other_manifest()))
    other.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OrganizeError, match="other: cannot read this Ollama manifest"):
        plan_delete([blob], [Root(models, "ollama", True)])
    assert blob.exists()


def test_cli_rm_names_the_manifest_it_cannot_read_in_one_line(tiny, capsys):
    models, blob, other = ollama(tiny)
    _over_limit_by_one(other / "latest")
    assert main(["rm", "--yes", str(blob)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(other / "latest") in err and "Traceback" not in err
    assert blob.exists() and not trash_files().exists()


def test_readable_manifests_and_stray_files_elsewhere_do_not_block(tiny):
    """Ollama's manifests sit at REGISTRY/NAMESPACE/MODEL/TAG: a hidden file there (.DS_Store) or junk
    above that depth is no manifest, and a readable manifest of another model keeps its blobs."""
    models, blob, other = ollama(tiny)
    (other / "latest").write_text(json.dumps(other_manifest()))
    (other / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (models / "manifests" / "README").write_bytes(b"\xff not json")
    os.mkfifo(models / "manifests" / "registry.ollama.ai" / "junk-fifo")
    roots = [Root(models, "ollama", True)]
    with at_most(20):
        plan = plan_delete([blob], roots)
    assert plan.files == [blob] and plan.manifests == [other.parent / "tiny" / "latest"]
    execute_delete(plan, roots)
    assert (models / "blobs" / f"sha256-{'cd' * 32}").exists() and (other / "latest").exists()
