"""All or nothing across kill -9: a delete or a move is killed (SIGKILL via the QUANTTUI_FAILPOINT hook)
at each of its steps, then `recover_interrupted` runs as the next start would; the files on disk are
either exactly as before or exactly as after, never a set split, stranded or half-staged."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir

from quanttui.core.library import Root
from quanttui.core.organize import OrganizeError, execute_delete, move, plan_delete, recover_interrupted
from quanttui.core.organize.journal import journal_dir
from tests.core.test_library import _hf_cache_repo
from tests.core.test_organize_attack import snapshot, trash_files


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_killed(code: str, failpoint: str) -> None:
    """Run `code` in a fresh process that SIGKILLs itself at `failpoint`; it must die there."""
    env = {**os.environ, "QUANTTUI_FAILPOINT": failpoint}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr  # the step exists and was reached


def no_leftovers(top: Path) -> None:
    assert not [p for p in top.rglob("*") if ".quanttui-deleting-" in p.name or p.name.endswith(".partial")]
    assert not journal_dir().exists() or list(journal_dir().iterdir()) == []


# Delete -----------------------------------------------------------------------------------------


def _folder_layout(tmp_path: Path, tiny) -> tuple[Root, Path, list[Path]]:
    d = tmp_path / "lib"
    d.mkdir()
    for p in tiny.split_parts:
        shutil.copyfile(p, d / p.name)
    shutil.copyfile(tiny.quants["Q2_K"], d / "other.gguf")
    parts = [d / p.name for p in tiny.split_parts]
    return Root(d, "folder", False), parts[1], parts


def _hf_layout(tmp_path: Path, tiny) -> tuple[Root, Path, list[Path]]:
    hub = tmp_path / "hub"
    files = {f"split/{p.name}": p for p in tiny.split_parts} | {"other.gguf": tiny.quants["Q2_K"]}
    _hf_cache_repo(hub, "o/R", files, ["a" * 40, "b" * 40])
    snap = hub / "models--o--R" / "snapshots" / ("b" * 40) / "split"
    parts = [snap / p.name for p in tiny.split_parts]
    return Root(hub, "huggingface", True), parts[0], parts


DELETE_STEPS = {
    True: {
        "delete:staged:1": "back",
        "delete:staged:2": "back",
        "delete:staged:3": "back",
        "delete:committed": "gone",
        "delete:finished:1": "gone",
    },
    False: {
        "delete:staged:1": "back",
        "delete:staged:3": "back",
        "delete:trash:1": "back",
        "delete:trashed:1": "gone",
    },
}


@pytest.mark.parametrize("layout", [_folder_layout, _hf_layout])
@pytest.mark.parametrize(("permanent", "step"), [(p, s) for p, steps in DELETE_STEPS.items() for s in steps])
def test_delete_killed_at_each_step_is_rolled_back_or_completed(tiny, tmp_path, layout, permanent, step):
    root, target, parts = layout(tmp_path, tiny)
    before = snapshot(root.path)
    contents = sorted(sha(p) for p in parts)
    code = (
        "from pathlib import Path\nfrom quanttui.core.library import Root\n"
        "from quanttui.core.organize import execute_delete, plan_delete\n"
        f"roots = [Root(Path({str(root.path)!r}), {root.kind!r}, False)]\n"
        f"execute_delete(plan_delete([Path({str(target)!r})], roots, permanent={permanent}), roots)\n"
    )
    run_killed(code, step)
    lines = recover_interrupted()
    no_leftovers(root.path)
    if DELETE_STEPS[permanent][step] == "back":
        assert snapshot(root.path) == before  # every part, link and ref exactly where it was
        assert any("rolled back" in line for line in lines)
    else:
        assert not any(os.path.lexists(p) for p in parts)
        assert any("completed" in line for line in lines)
        other = [p for p in before if p.endswith("other.gguf")]
        assert other and all(os.path.exists(p) for p in other)
        if root.kind == "huggingface":
            info = scan_cache_dir(root.path)
            assert not info.warnings
            assert {f.file_name for r in info.repos for rev in r.revisions for f in rev.files} == {
                "other.gguf"
            }
        trashed = sorted(sha(p) for p in trash_files().rglob("*") if p.is_file()) if not permanent else []
        assert trashed == ([] if permanent else contents)  # the whole set is in the trash, or none of it
    assert recover_interrupted() == []  # nothing left to recover


def test_trash_refusing_the_first_set_changes_nothing(tiny, tmp_path):
    root, target, parts = _folder_layout(tmp_path, tiny)
    trash = trash_files().parent
    trash.parent.mkdir(parents=True)
    trash.write_text("not a folder")  # the trash cannot be created: send2trash fails for real
    before = snapshot(root.path)
    plan = plan_delete([target, root.path / "other.gguf"], [root])
    with pytest.raises(OrganizeError, match="nothing was deleted"):
        execute_delete(plan, [root])
    assert snapshot(root.path) == before
    no_leftovers(root.path)


@pytest.mark.parametrize("set_first", [True, False])
def test_trash_failing_on_a_later_set_leaves_each_set_whole(tiny, tmp_path, monkeypatch, set_first):
    root, target, parts = _folder_layout(tmp_path, tiny)
    other = root.path / "other.gguf"
    targets = [target, other] if set_first else [other, target]
    monkeypatch.setenv("QUANTTUI_FAILPOINT", "delete:trash:2=error")
    with pytest.raises(OrganizeError, match="1 set\\(s\\) went to the trash, the rest are unchanged"):
        execute_delete(plan_delete(targets, [root]), [root])
    in_trash = sorted(p.name for p in trash_files().rglob("*") if p.is_file())
    if set_first:
        assert in_trash == sorted(p.name for p in parts) and other.exists()
        assert not any(p.exists() for p in parts)
    else:
        assert in_trash == ["other.gguf"] and all(p.exists() for p in parts)
    no_leftovers(root.path)


def test_staging_failing_midway_puts_every_part_back(tiny, tmp_path, monkeypatch):
    root, target, parts = _folder_layout(tmp_path, tiny)
    before = snapshot(root.path)
    monkeypatch.setenv("QUANTTUI_FAILPOINT", "delete:staged:2=error")
    with pytest.raises(OrganizeError, match="nothing was deleted"):
        execute_delete(plan_delete([target], [root], permanent=True), [root])
    assert snapshot(root.path) == before
    no_leftovers(root.path)


# Move -------------------------------------------------------------------------------------------

MOVE_STEPS = [
    (False, "move:renamed:1", "back"),
    (False, "move:renamed:2", "back"),
    (False, "move:renamed:3", "back"),
    (True, "move:copied:1", "back"),
    (True, "move:copied:2", "back"),
    (True, "move:copied:3", "back"),
    (True, "move:committed", "moved"),
    (True, "move:removed:1", "moved"),
    (True, "move:removed:2", "moved"),
]


@pytest.mark.parametrize(("copy", "step", "outcome"), MOVE_STEPS)
def test_move_killed_at_each_step_is_rolled_back_or_completed(tiny, tmp_path, copy, step, outcome):
    root, target, parts = _folder_layout(tmp_path, tiny)
    dest = root.path / "new" / "deeper"
    before = snapshot(root.path)
    contents = [sha(p) for p in parts]
    code = (
        "from pathlib import Path\nfrom quanttui.core.library import Root\n"
        "from quanttui.core.organize import move\n"
        f"roots = [Root(Path({str(root.path)!r}), 'folder', False)]\n"
        f"move([Path({str(target)!r})], Path({str(dest)!r}), roots, force_copy={copy})\n"
    )
    run_killed(code, step)
    lines = recover_interrupted()
    no_leftovers(root.path)
    if outcome == "back":
        assert snapshot(root.path) == before and not (root.path / "new").exists()
        assert any("rolled back" in line for line in lines)
    else:
        assert not any(p.exists() for p in parts)
        assert [sha(dest / p.name) for p in parts] == contents
        assert any("completed" in line for line in lines)
    assert recover_interrupted() == []


def test_a_journal_of_a_live_process_or_an_unreadable_one_is_left_alone(tiny, tmp_path):
    root, target, parts = _folder_layout(tmp_path, tiny)
    journal_dir().mkdir(parents=True)
    (journal_dir() / "move-1-x.json").write_text("{not json")
    live = journal_dir() / "move-2-y.json"
    pairs = [[str(tmp_path / "x.gguf"), str(parts[0])]]  # rolling it back would move parts[0]
    data = {
        "op": "move",
        "pid": os.getppid(),
        "mode": "rename",
        "state": "moving",
        "pairs": pairs,
        "made": [],
    }
    live.write_text(json.dumps(data))
    lines = recover_interrupted()
    assert len(lines) == 1 and "unreadable organize journal" in lines[0]
    assert live.exists() and all(p.exists() for p in parts)


def test_without_a_failpoint_nothing_is_left_to_recover(tiny, tmp_path):
    root, target, parts = _folder_layout(tmp_path, tiny)
    moved = move([target], root.path / "x", [root], force_copy=True)
    execute_delete(plan_delete([moved[0]], [root], permanent=True), [root])
    assert not any(p.exists() for p in moved)
    no_leftovers(root.path)
    assert recover_interrupted() == []
