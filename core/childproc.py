"""Model worker processes that die with the app: the app starts them from a thread that lasts
(Linux's parent-death signal follows the starting thread) and talks to them over a socket pair; the
child asks the kernel for that signal. Shared by the A/B worker and the eval/bench worker: one
client base (WorkerClient), one WorkerDied, one death note and one extra-buffer fallback."""

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
import time
from collections.abc import Callable
from dataclasses import dataclass
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


# OpenMP's threads spin between parallel regions by default: with two models decoding at once on few
# cores, one side's spinning threads take the cores the other side needs (the A/B tests took 97 s
# with spinning, 45 s with passive waits). The user's own setting wins.
PASSIVE_OMP = {"OMP_WAIT_POLICY": "passive"}


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A model worker's environment: this process's, OpenMP waiting passively unless the user set
    OMP_WAIT_POLICY, and `extra` on top."""
    return {**PASSIVE_OMP, **os.environ, **(extra or {})}


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
                env=worker_env(env),
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


# The app's end ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ok:
    """A worker's reply to a request: its value."""

    value: Any = None


@dataclass(frozen=True)
class Err:
    """A worker's reply to a request that failed: one line."""

    text: str


@dataclass(frozen=True)
class Close:
    """Unload and end: the last request a worker is sent."""


class WorkerDied(RuntimeError):
    """The worker process ended in the middle of a request; the text says how (signal, last log line),
    `head` and `detail` split it where a pane puts what the sides were doing."""

    def __init__(self, head: str = "the model process is not running", detail: str = "") -> None:
        super().__init__(head + detail)
        self.head, self.detail = head, detail


class WorkerError(RuntimeError):
    """The worker answered a request with an error (one line)."""


LOG_LIMIT = 4 << 20  # a log appended to is written anew past this size


class WorkerClient:
    """The app's end of one model worker process at a time: start it (`MODULE`, its output in
    `LOG_NAME` under the cache dir), send requests, read events until the reply, say how it died
    (its signal and last log line) and, once after a crash with llama.cpp's extra buffers on in auto,
    whether to try again without them (`fall_back`). `crashed` says how the last one died."""

    MODULE = ""
    LOG_NAME = ""
    APPEND = True  # keep earlier workers' output (under LOG_LIMIT), so two apps keep their crashes
    CLOSE_GRACE = 5.0  # seconds a closing worker has to unload before it is killed

    def __init__(self, *args: Any, **kw: Any) -> None:
        from .llama.extra import WorkerChoice

        self.crashed: str | None = None  # how the worker last died, until a new one has loaded
        self.last_exit: int | None = None  # the last worker's exit status, once it has died
        self.extra = WorkerChoice()  # llama.cpp's extra buffers for the next worker
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._log_start = 0  # where this worker's output begins in its log
        self._interrupted = False  # killed on purpose (interrupt): not a crash to fall back from
        super().__init__(*args, **kw)

    @classmethod
    def log(cls) -> Path:
        """Where the worker's stdout and stderr go: llama.cpp's log goes to a callback, but its aborts
        (GGML_ASSERT, CUDA errors) print there, and the last line names the cause of a crash."""
        from .paths import cache_dir

        return cache_dir() / cls.LOG_NAME

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs."""
        return self._proc.pid if self._proc else None

    def _start(self) -> None:
        log = self.log()
        big = log.is_file() and log.stat().st_size > LOG_LIMIT
        self._interrupted = False
        self._proc, self._conn, self._log_start = spawn_worker(
            self.MODULE, log, append=self.APPEND and not big, env=self.extra.env()
        )

    def _died(self) -> WorkerDied:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        code = reap(proc) if proc is not None else None  # reaped: its in-use markers read as stale
        self.last_exit = code
        head, detail = death_note(code, self.log(), self._log_start, self.extra.cause())
        self.crashed = head + detail
        return WorkerDied(head, detail)

    def fall_back(self, during: str) -> bool:
        """After the worker died: True when extra buffers were on in auto and are now off for this
        machine, so the caller tries again (once) with a fresh worker. A worker killed on purpose
        (`interrupt`) is not a crash."""
        return not self._interrupted and self.extra.fall_back(self.last_exit, during)

    def _send(self, msg: Any) -> None:
        if self._conn is None:
            raise self._died()
        with self._send_lock:
            try:
                self._conn.send(msg)
            except OSError:
                raise self._died() from None

    def _call(
        self,
        msg: Any,
        on_event: Callable[[Any], None] | None = None,
        sent: Callable[[], None] | None = None,
    ) -> Any:
        """Send a request (then call `sent`) and hand each event to `on_event` until its reply:
        the reply's value, WorkerError for an error reply, WorkerDied if the process ends first."""
        self._send(msg)
        if sent is not None:
            sent()
        while True:
            try:
                reply = self._conn.recv() if self._conn else None
            except (EOFError, OSError):
                reply = None
            if reply is None:
                raise self._died()
            if isinstance(reply, Ok):
                return reply.value
            if isinstance(reply, Err):
                raise WorkerError(reply.text)
            if on_event is not None:
                on_event(reply)

    def _goodbye(self) -> list[Any]:
        """What a closing worker is sent."""
        return [Close()]

    def close(self) -> None:
        """Let the worker unload for CLOSE_GRACE seconds, then kill it if it has not ended."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is None:
            return
        deadline = time.monotonic() + self.CLOSE_GRACE
        if conn is not None:
            try:
                with self._send_lock:
                    for msg in self._goodbye():
                        conn.send(msg)
                while conn.poll(max(0.0, deadline - time.monotonic())):
                    conn.recv()  # events and replies, until the worker closes its end
            except (EOFError, OSError):
                pass
            conn.close()
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def interrupt(self) -> None:
        """Kill the worker at once (from another thread: a cancel in the middle of a long request);
        the request in flight raises WorkerDied, and no fallback follows."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._interrupted = True
            proc.kill()
