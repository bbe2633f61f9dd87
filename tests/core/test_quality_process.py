"""The quality worker dies with the app: an app killed with SIGKILL while the worker is busy in a
request (a long bench, an eval's chunk) leaves no worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import psutil
import pytest

from quanttui.core.quality.host import ModelHost
from tests.core.test_ab_hostile import _gone

pytestmark = pytest.mark.slow

BUSY_SCRIPT = """
import sys
from quanttui.core.quality.host import ModelHost

host = ModelHost()
host.call("load", sys.argv[1], 256, 0, 1)
print(host.pid, flush=True)
host.call("bench", 128, 128, 10**6)  # busy for far longer than the test waits
"""

EVAL_SCRIPT = """
import sys
from quanttui.core.quality.eval import evaluate
from quanttui.core.quality.text import EvalText

def told(p):
    print(p.stage, flush=True)

text = EvalText.load(sys.argv[3])
evaluate(sys.argv[1], [sys.argv[2]] * 50, text=text, ctx=64, on_progress=told, use_cache=False)
"""


def _quality_workers(parent: psutil.Process) -> list[psutil.Process]:
    return [
        c for c in parent.children(recursive=True) if "quanttui.core.quality.worker" in " ".join(c.cmdline())
    ]


def _busy(proc: psutil.Process, seconds: float) -> bool:
    """Wait until the process has used `seconds` of CPU (it is inside a request, not waiting)."""
    for _ in range(600):
        if sum(proc.cpu_times()[:2]) > seconds:
            return True
        psutil.wait_procs([proc], timeout=0.1)
    return False


def test_the_worker_dies_when_the_app_is_killed_mid_request(tiny, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(BUSY_SCRIPT))
    app = subprocess.Popen(
        [sys.executable, str(script), str(tiny.quants["Q8_0"])], stdout=subprocess.PIPE, text=True
    )
    try:
        worker = psutil.Process(int(app.stdout.readline()))
        assert _busy(worker, 1.0)  # inside the bench request, not waiting on its socket
        app.send_signal(signal.SIGKILL)
        app.wait(30)
        assert _gone(worker.pid)
    finally:
        app.kill()


def test_the_worker_dies_when_the_app_is_killed_mid_eval(tiny, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(EVAL_SCRIPT))
    text = tmp_path / "long.txt"
    text.write_text("The river ran quietly past the mill, and the lamps were lit along the bank. " * 400)
    app = subprocess.Popen(
        [sys.executable, str(script), str(tiny.f16), str(tiny.quants["Q2_K"]), str(text)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        while app.stdout.readline().strip() != "candidate":  # chunks of candidates are being scored
            assert app.poll() is None
        workers = _quality_workers(psutil.Process(app.pid))
        assert len(workers) == 1
        app.send_signal(signal.SIGKILL)
        app.wait(30)
        assert _gone(workers[0].pid)
    finally:
        app.kill()


def test_a_worker_started_from_a_short_lived_thread_lives_on(tiny):
    """The parent-death signal follows the thread that started the child: it must not be this one."""
    host = ModelHost()
    box: dict[str, object] = {}
    t = threading.Thread(target=lambda: box.update(info=host.call("load", str(tiny.f16), 128, 0, 1)))
    t.start()
    t.join()
    try:
        assert isinstance(box["info"], dict)
        assert host.call("tokenize", "hello there")  # the same worker answers after the thread ended
        assert psutil.Process(host.pid).ppid() == os.getpid()
    finally:
        host.close()
