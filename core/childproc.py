"""Model worker processes that die with the app: the app starts them from a thread that lasts
(Linux's parent-death signal follows the starting thread) and talks to them over a socket pair; the
child asks the kernel for that signal. Shared by the A/B worker and the eval/bench worker."""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1

_spawns: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]]] = queue.Queue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _spawn_forever() -> None:
    while True:
        make, reply = _spawns.get()
        try:
            reply.put((True, make()))
        except BaseException as e:  # noqa: BLE001  handed back to the caller
            reply.put((False, e))


def start_on_lasting_thread(make: Callable[[], Any]) -> Any:
    """Run `make` on a thread that lives as long as the app. Linux's parent-death signal fires
    when the thread that started a child ends, and the app starts workers from short-lived ones."""
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawn_forever, name="child-spawner", daemon=True)
            _spawner.start()
    reply: queue.Queue[Any] = queue.Queue()
    _spawns.put((make, reply))
    ok, value = reply.get()
    if not ok:
        raise value
    return value


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent ends (Linux), then make sure the
    parent had not already gone before the request was made."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def spawn_worker(
    module: str, log: Path, *, append: bool = True, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Connection, int]:
    """Start `python -m module FD PARENT_PID` with its output in `log` (appended, or written anew)
    and `env` added to this process's environment; returns the process, the app's end of the
    socket pair and where this worker's output begins."""
    log.parent.mkdir(parents=True, exist_ok=True)
    ours, theirs = socket.socketpair()
    with ours, theirs, log.open("ab" if append else "wb") as out:
        start = out.tell()
        args = [sys.executable, "-m", module, str(theirs.fileno()), str(os.getpid())]
        proc = start_on_lasting_thread(
            lambda: subprocess.Popen(
                args,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env={**os.environ, **(env or {})},
            )
        )
        return proc, Connection(ours.detach()), start


def reap(proc: subprocess.Popen[bytes], timeout: float = 10) -> int:
    """The worker's exit status, killing it if it has not ended within `timeout` seconds."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def how_it_ended(code: int | None) -> str:
    """An exit status in words: "killed by SIGSEGV", "exit status 1", "it is gone"."""
    if code is None:
        return "it is gone"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def last_words(log: Path, start: int) -> str:
    """The last line a worker wrote to its log after `start` that is not llama.cpp's routine
    reporting: an abort's message, a warning or error of llama.cpp's (before any Python fault dump)."""
    try:
        with log.open("rb") as f:
            f.seek(0, 2)
            at = max(start, f.tell() - 16384)
            f.seek(at)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    if at > start:
        text = text.partition("\n")[2]  # the first line read may be a part of one
    from .llama.log import INFO_MARK, WARN_MARK

    text = text.split("Fatal Python error", 1)[0]
    lines = [ln.removeprefix(WARN_MARK).strip() for ln in text.splitlines() if not ln.startswith(INFO_MARK)]
    lines = [line for line in lines if line]
    return lines[-1][:200] if lines else ""


def death_note(code: int | None, log: Path, start: int, cause: str = "") -> tuple[str, str]:
    """How a model process ended: a head ("the model process crashed (killed by SIGSEGV: its last
    log line)") and a detail to follow it: the likely cause (`cause`, or the OOM killer for a
    SIGKILL) and the log file to read."""
    how = how_it_ended(code)
    words = last_words(log, start)
    head = f"the model process crashed ({how}{': ' + words if words else ''})"
    if not cause and code == -signal.SIGKILL:
        cause = "likely out of memory (the kernel's OOM killer)"
    return head, (f"; {cause}" if cause else "") + f"; log: {log}"


def worker_main(serve: Callable[[Connection], None], argv: list[str]) -> int:
    """A worker's entry point: Ctrl+C is the app's to handle (it closes us), die with the app,
    llama.cpp's log and a crash's Python stack to the log file (stderr), serve."""
    import faulthandler

    from .llama.log import LlamaLogCapture

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if len(argv) > 2:
        die_with_parent(int(argv[2]))
    faulthandler.enable()
    with contextlib.suppress(Exception):
        LlamaLogCapture.echo_to(2)
    serve(Connection(int(argv[1])))
    return 0
