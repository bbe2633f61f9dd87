"""The in-use guard: a file an A/B session has loaded is never deleted or moved, whatever its name,
however many times it is loaded, until the session lets go of it; a dead (or reused) pid holds
nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from quanttui.cli.main import main
from quanttui.core.library import Root
from quanttui.core.organize import OrganizeError, in_use, mark_in_use, move, plan_delete, unmark_in_use
from quanttui.core.paths import data_dir

NAME = "x" * 194 + ".gguf"  # 199 characters: more than the 180 the markers were once named by


def markers() -> list[Path]:
    folder = data_dir() / "in-use"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def trash_files() -> Path:
    return Path(os.environ["HOME"]) / ".local" / "share" / "Trash" / "files"


@pytest.fixture
def same_name(tiny, tmp_path) -> tuple[Path, Path, list[Root]]:
    """Two different models under one long name, in a/ and b/ of one root."""
    lib = tmp_path / "lib"
    for folder, quant in (("a", "Q8_0"), ("b", "Q2_K")):
        (lib / folder).mkdir(parents=True)
        shutil.copyfile(tiny.quants[quant], lib / folder / NAME)
    return lib / "a" / NAME, lib / "b" / NAME, [Root(lib, "folder", False)]


def refused(path: Path, roots: list[Root]) -> bool:
    try:
        plan_delete([path], roots)
    except OrganizeError as e:
        assert "open in a running A/B session" in str(e)
        return True
    return False


def test_two_loaded_files_with_one_long_name_each_keep_their_guard(same_name):
    a, b, roots = same_name
    mark_in_use(str(a))
    mark_in_use(str(b))
    assert len(markers()) == 2 and all(len(m.name) < 100 for m in markers())
    assert refused(a, roots) and refused(b, roots)
    unmark_in_use(str(b))  # B's model is closed; A's is still loaded
    assert refused(a, roots) and not refused(b, roots)
    with pytest.raises(OrganizeError, match="open in a running A/B session"):
        move([a], a.parent.parent / "elsewhere", roots)
    unmark_in_use(str(a))
    assert not refused(a, roots) and markers() == []


def test_cli_rm_refuses_a_loaded_file_whose_long_name_another_loaded_file_shares(same_name, capsys):
    a, b, _ = same_name
    assert main(["roots", "add", str(a.parent.parent)]) == 0
    mark_in_use(str(a))
    mark_in_use(str(b))
    capsys.readouterr()
    assert main(["rm", "--yes", str(a)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"open in a running A/B session (process {os.getpid()})" in err
    assert a.exists() and not trash_files().exists()


def test_an_ab_session_that_loads_both_guards_both_until_it_closes(same_name, capsys):
    from quanttui.core.ab import ABSession, GenConfig, Plan

    a, b, roots = same_name
    assert main(["roots", "add", str(a.parent.parent)]) == 0
    s = ABSession(str(a), str(b), GenConfig(max_tokens=4, n_ctx=256), Plan(False, {"a": 0, "b": 0}, ""))
    try:
        assert not s.engine.errors()
        capsys.readouterr()
        assert main(["rm", "--yes", str(a)]) == 1 and main(["rm", "--yes", str(b)]) == 1
        assert capsys.readouterr().err.count("open in a running A/B session") == 2
        assert a.exists() and b.exists() and not trash_files().exists()
    finally:
        s.close()
    assert main(["rm", "--yes", str(a)]) == 0 and not a.exists() and b.exists()


def test_the_same_file_loaded_twice_stays_guarded_until_both_let_go(same_name):
    a, _, roots = same_name
    mark_in_use(str(a))  # A and B may be one model with two settings
    mark_in_use(str(a))
    unmark_in_use(str(a))
    assert refused(a, roots)
    unmark_in_use(str(a))
    assert not refused(a, roots)
    unmark_in_use(str(a))  # one more than was marked: nothing to undo, nothing breaks
    assert markers() == []


def test_a_dead_process_marker_is_stale_and_removed(same_name):
    a, _, roots = same_name
    code = "import sys; from quanttui.core.organize import mark_in_use; mark_in_use(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(a)], check=True, timeout=120)
    (marker,) = markers()
    assert json.loads(marker.read_text())["path"] == os.path.realpath(a)
    assert in_use(a) is None and markers() == []
    assert not refused(a, roots)


def test_a_live_process_marker_holds_until_the_process_ends(same_name):
    a, _, roots = same_name
    code = (
        "import sys; from quanttui.core.organize import mark_in_use; mark_in_use(sys.argv[1]);"
        " print('ready', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(a)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        assert in_use(a) == holder.pid and refused(a, roots)
    finally:
        holder.communicate("", timeout=120)
    assert in_use(a) is None and markers() == []


def _write_marker(name: str, info: dict[str, object]) -> Path:
    folder = data_dir() / "in-use"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(info))
    return folder / name


def test_a_marker_whose_pid_now_belongs_to_a_later_process_is_stale(same_name):
    a, _, roots = same_name
    started = psutil.Process().create_time() - 3600  # the marking process started an hour earlier
    marker = _write_marker(f"{os.getpid()}-old", {"pid": os.getpid(), "started": started, "path": str(a)})
    assert in_use(a) is None and not marker.exists()
    assert not refused(a, roots)


def test_a_marker_written_by_an_earlier_version_still_guards(same_name):
    a, _, roots = same_name
    key = os.path.realpath(a).replace(os.sep, "_")[-180:]
    _write_marker(f"{os.getpid()}-{key}", {"pid": os.getpid(), "path": os.path.realpath(a)})
    assert in_use(a) == os.getpid() and refused(a, roots)


def test_damaged_markers_are_skipped(same_name):
    a, _, roots = same_name
    _write_marker("1-junk", {"pid": "not a number", "path": str(a)})
    _write_marker("2-junk", {"pid": os.getpid(), "path": ["not", "a", "path"]})
    (data_dir() / "in-use" / "3-junk").write_bytes(b"\xff")
    assert in_use(a) is None and not refused(a, roots)
