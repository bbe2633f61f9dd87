"""Dedupe's hard link across kill -9: each extra is replaced through a temporary link beside it and a
rename; a kill at any step leaves, after the next start's recovery, the kept copy and every extra's
content where they were and no temporary link behind. Recovery removes only the link it made."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from quanttui.core.library import Root
from quanttui.core.organize import find_duplicates, link_extras, recover_interrupted
from quanttui.core.organize.journal import journal_dir
from tests.core.test_organize_recover import run_killed, sha


def _dups(tiny, tmp_path: Path) -> tuple[Root, Path, list[Path], str]:
    lib = tmp_path / "lib"
    lib.mkdir()
    names = ("a.gguf", "b.gguf", "c.gguf")
    paths = [Path(shutil.copyfile(tiny.quants["Q2_K"], lib / name)) for name in names]
    os.utime(paths[0], ns=(1, 1))  # the oldest is the one kept
    return Root(lib, "folder", False), paths[0], paths[1:], sha(paths[0])


def _temp_links(top: Path) -> list[Path]:
    return [p for p in top.rglob("*") if ".link-" in p.name]


def _journal_empty() -> bool:
    return not journal_dir().exists() or list(journal_dir().iterdir()) == []


STEPS = {
    "dedupe:journaled": (0, "left nothing behind"),
    "dedupe:linked": (0, "rolled back the interrupted dedupe"),
    "dedupe:replaced": (1, "left nothing behind"),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_dedupe_killed_at_each_step_leaves_no_temporary_link(tiny, tmp_path, step):
    root, keep, extras, content = _dups(tiny, tmp_path)
    code = (
        "from pathlib import Path\nfrom quanttui.core.library import Root\n"
        "from quanttui.core.organize import find_duplicates, link_extras\n"
        f"roots = [Root(Path({str(root.path)!r}), 'folder', False)]\n"
        f"(group,) = find_duplicates([Path(p) for p in {[str(p) for p in [keep, *extras]]!r}], roots=roots)\n"
        "link_extras(group, roots)\n"
    )
    run_killed(code, step)
    if step == "dedupe:linked":
        assert len(_temp_links(root.path)) == 1  # the kill left one, for recovery to find
    lines = recover_interrupted()
    linked, said = STEPS[step]
    assert len(lines) == 1 and said in lines[0], lines
    assert _temp_links(root.path) == [] and _journal_empty()
    assert [sha(p) for p in [keep, *extras]] == [content] * 3  # every name still has the content
    keep_ino = keep.stat().st_ino
    assert [p.stat().st_ino == keep_ino for p in extras] == [True] * linked + [False] * (2 - linked)
    assert keep.stat().st_nlink == 1 + linked
    assert recover_interrupted() == []
    # The next dedupe finishes the work from there.
    (group,) = find_duplicates([keep, *extras], roots=[root])
    link_extras(group, [root])
    assert all(p.stat().st_ino == keep_ino for p in extras) and _temp_links(root.path) == []


def test_a_failure_between_link_and_rename_removes_the_temporary_link(tiny, tmp_path, monkeypatch):
    root, keep, extras, content = _dups(tiny, tmp_path)
    (group,) = find_duplicates([keep, *extras], roots=[root])
    monkeypatch.setenv("QUANTTUI_FAILPOINT", "dedupe:linked=error")
    with pytest.raises(OSError, match="failpoint dedupe:linked"):
        link_extras(group, [root])
    assert _temp_links(root.path) == [] and _journal_empty()
    assert [sha(p) for p in [keep, *extras]] == [content] * 3 and keep.stat().st_nlink == 1


def _journal(data: dict) -> Path:
    journal_dir().mkdir(parents=True, exist_ok=True)
    path = journal_dir() / "dedupe-1-x.json"
    path.write_text(json.dumps({"op": "dedupe", "pid": 2**22 + 7, **data}))
    return path


def test_recovery_removes_only_the_link_it_made(tiny, tmp_path):
    """A journal naming a file that is not a link to the kept copy, or one outside the extra's folder
    (a crafted or stale journal), never costs that file."""
    root, keep, extras, content = _dups(tiny, tmp_path)
    st = keep.stat()
    keep_id = [st.st_dev, st.st_ino]
    extra = extras[0]
    # A file of the temporary name that is a copy, not the kept copy's inode.
    planted = extra.with_name(f".{extra.name}.link-123")
    shutil.copyfile(extra, planted)
    _journal({"keep": str(keep), "keep_id": keep_id, "extra": str(extra), "tmp": str(planted)})
    lines = recover_interrupted()
    assert len(lines) == 1 and "not the link an interrupted dedupe made" in lines[0] and planted.exists()
    planted.unlink()
    # A link to the kept copy, but outside the extra's folder.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    far = elsewhere / f".{extra.name}.link-123"
    os.link(keep, far)
    _journal({"keep": str(keep), "keep_id": keep_id, "extra": str(extra), "tmp": str(far)})
    lines = recover_interrupted()
    assert len(lines) == 1 and "not the link an interrupted dedupe made" in lines[0] and far.exists()
    # A symlink of the temporary name to the kept copy: judged as the link, never followed.
    sym = extra.with_name(f".{extra.name}.link-124")
    sym.symlink_to(keep)
    _journal({"keep": str(keep), "keep_id": keep_id, "extra": str(extra), "tmp": str(sym)})
    lines = recover_interrupted()
    assert len(lines) == 1 and "not the link an interrupted dedupe made" in lines[0] and sym.is_symlink()
    assert [sha(p) for p in [keep, *extras]] == [content] * 3 and _journal_empty()
