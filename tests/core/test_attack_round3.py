"""Round 3 attacks on organize (reproductions under /tmp/attack_scripts/): a blob another HF repo links
to, recovery of a journal naming paths outside the roots, a target that appears during a move, a
link planted at a copy's `.partial` name, and a folder swapped for a symlink between check and delete.
Each failed (data inside or outside the roots lost) before its fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from quanttui.core.library import Root
from quanttui.core.library.roots import hf_hub_cache
from quanttui.core.organize import OrganizeError, execute_delete, move, plan_delete, recover_interrupted
from quanttui.core.organize import journal as journal_mod
from quanttui.core.organize.journal import journal_dir


@pytest.fixture(autouse=True)
def _iso(isolated):
    return isolated


def test_rm_of_a_repo_linking_another_repos_blob_keeps_that_blob():
    hub = hf_hub_cache()
    blob = hub / "models--o--B" / "blobs" / "bbbb"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"GGUF repo B's data")
    for repo, rel in (("B", "../../blobs/bbbb"), ("A", "../../../models--o--B/blobs/bbbb")):
        snap = hub / f"models--o--{repo}" / "snapshots" / f"rev{repo}"
        snap.mkdir(parents=True)
        (snap / "m.gguf").symlink_to(rel)
    roots = [Root(hub, "huggingface", True)]
    plan = plan_delete([hub / "models--o--A" / "snapshots" / "revA" / "m.gguf"], roots, permanent=True)
    assert plan.files == []
    execute_delete(plan, roots)
    assert (hub / "models--o--B" / "snapshots" / "revB" / "m.gguf").read_bytes() == b"GGUF repo B's data"


@pytest.mark.parametrize("with_roots", [True, False])
def test_recovery_never_acts_on_a_journal_naming_paths_outside_the_roots(tmp_path, with_roots):
    outside = tmp_path / "outside"
    (outside / "precious" / "sub").mkdir(parents=True)
    (outside / "precious" / "sub" / "file.txt").write_text("keep")
    (outside / "victim.gguf").write_text("keep")
    (outside / "m2.txt").write_text("src")
    (outside / "victim2.txt").write_text("tgt")
    roots = {"roots": [str(tmp_path / "lib")]} if with_roots else {}
    unit = {"label": "x", "stage": str(outside / "precious"), "moves": [[str(outside / "victim.gguf"), None]]}
    unit |= {"links": [str(outside / "victim.gguf")], "refs": [], "manifests": []}
    unit |= {"dirs": [str(outside / "precious")]}
    journal_dir().mkdir(parents=True)
    delete = {"op": "delete", "pid": 2**22 + 1, "owner_lock": True, "permanent": True, "state": "committed"}
    body = {**delete, "done": [], "units": [unit], **roots}
    (journal_dir() / "delete-1-x.json").write_text(json.dumps(body))
    mv = {"op": "move", "pid": 2**22 + 2, "owner_lock": True, "what": "move", "mode": "copy"}
    mv |= {"state": "copied", "pairs": [[str(outside / "m2.txt"), str(outside / "victim2.txt")]], "made": []}
    (journal_dir() / "move-2-y.json").write_text(json.dumps({**mv, **roots}))
    lines = recover_interrupted()
    assert len(lines) == 2 and all("left in place" in line for line in lines)
    assert (outside / "precious" / "sub" / "file.txt").read_text() == "keep"
    assert (outside / "victim.gguf").read_text() == "keep" and (outside / "m2.txt").read_text() == "src"


def test_a_file_appearing_at_the_target_during_a_move_is_never_replaced(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    (lib / "dst").mkdir(parents=True)
    (lib / "m.gguf").write_bytes(b"GGUF model")
    save = journal_mod.Journal.save

    def save_then_appear(self, **changes):
        save(self, **changes)
        if not (lib / "dst" / "m.gguf").exists():
            (lib / "dst" / "m.gguf").write_bytes(b"user data that appeared")

    monkeypatch.setattr(journal_mod.Journal, "save", save_then_appear)
    with pytest.raises(OrganizeError, match="appeared"):
        move([lib / "m.gguf"], lib / "dst", [Root(lib, "folder", False)])
    assert (lib / "dst" / "m.gguf").read_bytes() == b"user data that appeared"
    assert (lib / "m.gguf").read_bytes() == b"GGUF model"


def test_a_link_planted_at_a_copys_partial_name_is_never_written_through(tmp_path):
    lib, outside = tmp_path / "lib", tmp_path / "outside"
    (lib / "dst").mkdir(parents=True)
    outside.mkdir()
    (lib / "m.gguf").write_bytes(b"GGUF model")
    (outside / "precious.txt").write_text("precious")
    (lib / "dst" / ".m.gguf.partial").symlink_to(outside / "precious.txt")
    with pytest.raises(OrganizeError):
        move([lib / "m.gguf"], lib / "dst", [Root(lib, "folder", False)], force_copy=True)
    assert (outside / "precious.txt").read_text() == "precious"
    assert (lib / "m.gguf").read_bytes() == b"GGUF model" and not (lib / "dst" / "m.gguf").exists()


def test_a_folder_swapped_for_a_link_outside_after_the_check_is_not_followed(tmp_path, monkeypatch):
    lib, evil = tmp_path / "lib", tmp_path / "outside" / "evil"
    (lib / "sub").mkdir(parents=True)
    evil.mkdir(parents=True)
    (lib / "sub" / "m.gguf").write_bytes(b"GGUF model")
    (evil / "m.gguf").write_text("outside, precious")
    save = journal_mod.Journal.save

    def save_then_swap(self, **changes):
        save(self, **changes)
        if not (lib / "sub").is_symlink():
            os.rename(lib / "sub", lib / "sub.real")
            (lib / "sub").symlink_to(evil)

    roots = [Root(lib, "folder", False)]
    plan = plan_delete([lib / "sub" / "m.gguf"], roots, permanent=True)
    monkeypatch.setattr(journal_mod.Journal, "save", save_then_swap)
    with pytest.raises(OrganizeError, match="outside the library roots"):
        execute_delete(plan, roots)
    assert (evil / "m.gguf").read_text() == "outside, precious"
    assert sorted(p.name for p in evil.iterdir()) == ["m.gguf"]
    assert (lib / "sub.real" / "m.gguf").read_bytes() == b"GGUF model"
    assert not list(Path(journal_dir()).glob("*.json"))
