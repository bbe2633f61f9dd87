"""The app's end of the A/B worker process: start it, send it requests, read its replies and
events, say how it died (its signal and last log line) and close it."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..childproc import death_note, reap, spawn_worker
from ..llama.extra import WorkerChoice
from ..paths import cache_dir

LOG_LIMIT = 4 << 20
CLOSE_GRACE = 5.0  # seconds a closing worker has to unload before it is killed


class WorkerDied(RuntimeError):
    """The worker process ended in the middle of a request; the text says how (signal, last log line),
    `head` and `detail` split it where a pane puts what the sides were doing."""

    def __init__(self, head: str, detail: str = "") -> None:
        super().__init__(head + detail)
        self.head, self.detail = head, detail


def worker_log() -> Path:
    """Where the worker's stdout and stderr go: llama.cpp's log goes to a callback, but its aborts
    (GGML_ASSERT, CUDA errors) print there, and the last line names the cause of a crash."""
    return cache_dir() / "ab-worker.log"


class WorkerClient:
    """One worker process at a time and the connection to it; `crashed` says how the last one died.
    A base class, so an engine keeps the process next to what it asks of it."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.crashed: str | None = None  # how the worker last died, until a new one has loaded
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._log_start = 0  # where this worker's output begins in the shared log
        self.extra = WorkerChoice()  # llama.cpp's extra buffers for the next worker
        self.last_exit: int | None = None  # the last worker's exit status, once it has died
        super().__init__(*args, **kw)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _start(self) -> None:
        log = worker_log()
        # Appended to, so two apps at once do not erase each other's crash; kept under LOG_LIMIT.
        big = log.is_file() and log.stat().st_size > LOG_LIMIT
        self._proc, self._conn, self._log_start = spawn_worker(
            "quanttui.core.ab.worker", log, append=not big, env=self.extra.env()
        )

    def _died(self) -> WorkerDied:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        code = reap(proc) if proc is not None else None  # reaped: its in-use markers read as stale
        self.last_exit = code
        head, detail = death_note(code, worker_log(), self._log_start, self.extra.cause())
        self.crashed = head + detail
        return WorkerDied(head, detail)

    def fall_back(self, during: str) -> bool:
        """After the worker died: True when extra buffers were on in auto and are now off for this
        machine, so the caller tries again (once) with a fresh worker."""
        return self.extra.fall_back(self.last_exit, during)

    def _send(self, *msg: Any) -> None:
        if self._conn is None:
            raise self._died()
        with self._send_lock:
            try:
                self._conn.send(msg)
            except OSError:
                raise self._died() from None

    def _call(
        self,
        msg: tuple[Any, ...],
        on_event: Callable[..., None] | None = None,
        sent: Callable[[], None] | None = None,
    ) -> Any:
        """Send a request (then call `sent`) and read events until its reply; WorkerDied if the
        process ends first."""
        self._send(*msg)
        if sent is not None:
            sent()
        while True:
            try:
                reply = self._conn.recv() if self._conn else None
            except (EOFError, OSError):
                reply = None
            if reply is None:
                raise self._died()
            kind = reply[0]
            if kind == "ok":
                return reply[1]
            if kind == "err":
                raise RuntimeError(reply[1])
            if on_event is not None:
                on_event(*reply)

    def close(self) -> None:
        """Stop any run, let the worker unload for a few seconds, then kill it if it has not ended."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is None:
            return
        deadline = time.monotonic() + CLOSE_GRACE
        if conn is not None:
            try:
                with self._send_lock:
                    conn.send(("cancel",))  # a run still going (Ctrl+C in the CLI) stops now
                    conn.send(("close",))
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
