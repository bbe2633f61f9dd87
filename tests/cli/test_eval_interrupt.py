"""Ctrl+C in `quanttui eval` and `bench`: the rows finished so far are printed, then "cancelled", exit 130.

Each test runs the real command in a process of its own, sends it SIGINT once a first row is
finished (its result is in the cache) and waits with a timeout, so a hang fails instead of hanging.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from quanttui.core.paths import cache_dir

pytestmark = pytest.mark.slow

QUANTS = ("Q8_0", "Q4_K_M", "Q2_K")


def _copies(tiny, folder: Path, n: int) -> list[str]:
    """n distinct files (each its own cache entry), the tiny quants in turn."""
    folder.mkdir()
    return [
        str(shutil.copyfile(tiny.quants[QUANTS[i % 3]], folder / f"c{i:02d}-{QUANTS[i % 3]}.gguf"))
        for i in range(n)
    ]


def _interrupt(args: list[str], when: Callable[[psutil.Process], bool]) -> tuple[int, str, str]:
    """Run `quanttui ARGS`, send SIGINT once `when(its process)` holds; (code, out, err)."""
    app = subprocess.Popen(
        [sys.executable, "-m", "quanttui.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not when(psutil.Process(app.pid)):
            if app.poll() is not None or time.monotonic() > deadline:
                out, err = app.communicate(timeout=20)
                pytest.fail(f"the moment to interrupt never came (exit {app.returncode}): {out}{err}")
            time.sleep(0.02)
        app.send_signal(signal.SIGINT)
        out, err = app.communicate(timeout=30)
    finally:
        app.kill()
        app.wait(10)
    return app.returncode, out, err


def _first_row_done(kind: str) -> Callable[[psutil.Process], bool]:
    results = cache_dir() / "quality" / kind
    return lambda _app: results.is_dir() and any(results.glob("*.json"))


def _worker_started(app: psutil.Process) -> bool:
    return any("quanttui.core.quality.worker" in " ".join(c.cmdline()) for c in app.children())


def test_ctrl_c_in_eval_prints_the_finished_rows_and_exits_130(tiny, tmp_path):
    candidates = _copies(tiny, tmp_path / "c", 24)
    code, out, err = _interrupt(
        ["eval", str(tiny.f16), *candidates, "--ctx", "64", "--chunks", "2"], _first_row_done("eval")
    )
    assert code == 130, out + err
    assert "unexpected error" not in err and "Traceback" not in err
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  c")}
    assert len(rows) == len(candidates)
    first = rows[Path(candidates[0]).name]
    assert "error" not in first and first.split()[1].split("±")[0].replace(".", "").isdigit()  # its KLD mean
    assert rows[Path(candidates[-1]).name].endswith("error: cancelled")
    assert out.rstrip().splitlines()[-1].startswith("cancelled")


def test_ctrl_c_in_bench_prints_the_finished_rows_and_exits_130(tiny, tmp_path):
    models = _copies(tiny, tmp_path / "c", 24)
    code, out, err = _interrupt(["bench", *models], _first_row_done("bench"))
    assert code == 130, out + err
    assert "unexpected error" not in err and "Traceback" not in err
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  c")}
    assert len(rows) == len(models)
    first = rows[Path(models[0]).name]
    assert "error" not in first and float(first.split()[1].split("±")[0]) > 0  # its pp tokens/s
    assert rows[Path(models[-1]).name].endswith("error: cancelled")
    assert out.rstrip().splitlines()[-1].startswith("cancelled")


def test_ctrl_c_while_the_reference_loads_is_a_cancel_not_its_error(tiny, tmp_path):
    """The cancel kills the worker under the reference's load: that is not the reference failing."""
    candidates = _copies(tiny, tmp_path / "c", 2)
    code, out, err = _interrupt(["eval", str(tiny.f16), *candidates, "--ctx", "64"], _worker_started)
    assert code == 130, out + err
    assert "could not be loaded" not in err
    assert "ppl -" in out.splitlines()[0]  # no perplexity from a reference that did not run
    assert [line.split()[-1] for line in out.splitlines() if line.startswith("  c")] == ["cancelled"] * 2
    assert out.rstrip().splitlines()[-1].startswith("cancelled")
