"""A running organize operation belongs to its process: another quanttui starting meanwhile (here a real
`quanttui du`, whose start runs recovery) never touches its journal or its journal's temp files, and a
second operation is refused with one line until the first has finished. The owner's lock dies with it,
so after a kill -9 the next start still finishes or undoes the operation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quanttui.cli.main import main
from quanttui.core.organize import recover_interrupted
from quanttui.core.organize.journal import journal_dir
from tests.core.test_organize_attack import trash_files
from tests.core.test_organize_recover import run_killed

pytestmark = pytest.mark.slow


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`quanttui ARGS` as a process of its own (the test's isolated dirs come with the environment)."""
    return subprocess.Popen(
        [sys.executable, "-m", "quanttui.cli.main", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    """Wait for `proc`; its exit status and its stderr."""
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def library(tmp_path: Path, n: int) -> tuple[Path, list[Path]]:
    """A library root holding `n` small model files (not split sets: one trash item each)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    files = []
    for i in range(n):
        files.append(lib / f"m{i:03d}.gguf")
        files[-1].write_bytes(b"GGUF" + i.to_bytes(4, "little") * 64)
    assert main(["roots", "add", str(lib)]) == 0
    return lib, files


def held_at(step: str, flag: Path, *args: str) -> subprocess.Popen[str]:
    """Start `quanttui ARGS` and wait until it is held at failpoint `step`."""
    proc = cli(*args, env={"QUANTTUI_FAILPOINT": f"{step}=pause:{flag}"})
    deadline = time.monotonic() + 60
    while not flag.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the operation never reached its failpoint"
        time.sleep(0.02)
    return proc


def journal_files() -> list[str]:
    return sorted(p.name for p in journal_dir().iterdir()) if journal_dir().exists() else []


def trashed() -> list[str]:
    return sorted(p.name for p in trash_files().iterdir()) if trash_files().exists() else []


def test_a_second_quanttui_leaves_a_running_delete_alone_and_a_second_operation_is_refused(tmp_path):
    lib, files = library(tmp_path, 6)
    other = files.pop()
    flag = tmp_path / "held"
    # Held after two files went to the trash, its journal's next version written but not yet renamed in.
    rm = held_at("journal:written:3", flag, "rm", "--yes", *map(str, files))
    during = journal_files()
    assert any(n.startswith(".tmp-") for n in during) and any(n.startswith("delete-") for n in during)

    rc, err = finish(cli("du"))  # its start runs recovery
    assert rc == 0 and "interrupted" not in err, err
    assert journal_files() == during  # the journal, its lock and its temp file, untouched

    rc, err = finish(cli("rm", "--yes", str(other)))
    assert rc == 1 and other.exists()
    assert err.count("\n") == 1 and "another quanttui delete (process" in err and "nothing was changed" in err

    flag.unlink()
    rc, err = finish(rm)
    assert rc == 0, err
    assert trashed() == [f.name for f in files] and not any(f.exists() for f in files)
    assert journal_files() == []
    rc, err = finish(cli("rm", "--yes", str(other)))  # once the first is done, the next one runs
    assert rc == 0 and not other.exists(), err


def test_a_killed_holder_is_recovered_by_the_next_start(tmp_path):
    lib, files = library(tmp_path, 5)
    flag = tmp_path / "held"
    rm = held_at("journal:written:3", flag, "rm", "--yes", *map(str, files))
    during = journal_files()
    rc, err = finish(cli("du"))
    assert rc == 0 and journal_files() == during, err
    rm.send_signal(signal.SIGKILL)
    assert finish(rm)[0] == -signal.SIGKILL

    rc, err = finish(cli("du"))  # the next start: the lock died with its process
    assert rc == 0
    assert err.count("completed the interrupted delete") == 2, err
    assert trashed() == [f.name for f in files[:2]]  # whole items: trashed, or where they were
    assert all(f.exists() for f in files[2:])
    assert journal_files() == []
    assert finish(cli("du")) == (0, "")


def test_a_dead_operation_whose_pid_was_reused_is_still_recovered(tmp_path):
    """The owner is known by its lock, not its pid: a journal whose pid now belongs to another live
    process is recovered all the same."""
    lib, files = library(tmp_path, 1)
    code = (
        "from pathlib import Path\nfrom quanttui.core.library import Root\n"
        "from quanttui.core.organize import execute_delete, plan_delete\n"
        f"roots = [Root(Path({str(lib)!r}), 'folder', False)]\n"
        f"execute_delete(plan_delete([Path({str(files[0])!r})], roots, permanent=True), roots)\n"
    )
    run_killed(code, "delete:staged:1")
    (journal,) = [p for p in journal_dir().iterdir() if p.suffix == ".json"]
    data = json.loads(journal.read_text())
    journal.write_text(json.dumps({**data, "pid": os.getppid()}))  # a live process now has that pid
    lines = recover_interrupted()
    assert len(lines) == 1 and "rolled back" in lines[0]
    assert files[0].exists() and journal_files() == []


def test_a_kill_before_the_first_journal_write_leaves_nothing_behind(tmp_path):
    lib, files = library(tmp_path, 2)
    code = (
        "from pathlib import Path\nfrom quanttui.core.library import Root\n"
        "from quanttui.core.organize import move\n"
        f"roots = [Root(Path({str(lib)!r}), 'folder', False)]\n"
        f"move([Path({str(files[0])!r})], Path({str(lib / 'sub')!r}), roots)\n"
    )
    run_killed(code, "journal:written:1")  # its lock file and a temp file, and no journal yet
    assert journal_files() != []
    assert recover_interrupted() == []
    assert journal_files() == [] and all(f.exists() for f in files)


def test_rm_of_300_files_with_du_running_alongside_trashes_all_300(tmp_path):
    lib, files = library(tmp_path, 300)
    rm = cli("rm", "--yes", *map(str, files))
    runs = 0
    while rm.poll() is None:
        rc, err = finish(cli("du"))
        assert rc == 0 and "interrupted" not in err, err
        runs += 1
    rc, err = finish(rm)
    assert rc == 0, err
    assert runs >= 1
    assert trashed() == [f.name for f in files] and not any(f.exists() for f in files)
    assert journal_files() == []
