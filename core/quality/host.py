"""The caller's side of the quality worker: start it, send requests, survive its death.

A crash in llama.cpp (segfault, abort, the OOM killer) ends the worker, not the caller: the request
in flight raises WorkerDied, and the next `load` starts a fresh worker. The worker dies with its
caller: closing its socket makes it exit, `close()` kills it if it does not, and the kernel kills it
when the caller's process ends (killed included), since it is started from a thread that lasts.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..childproc import death_note, reap, spawn_worker
from ..llama.extra import WorkerChoice
from ..paths import cache_dir


class WorkerDied(RuntimeError):
    """The worker process ended in the middle of a request."""


class _FellBack(WorkerDied):
    """The worker died with extra buffers on and they are now off: the request is tried again."""


class WorkerError(RuntimeError):
    """The worker answered a request with an error (one line)."""


def worker_log() -> Path:
    return cache_dir() / "quality-worker.log"


class ModelHost:
    """A worker process with at most one model loaded; started on the first request. A crash with
    llama.cpp's extra buffers on, in auto, turns them off for this machine and retries once: the
    worker starts again without them, loads the last model again and repeats the request."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._log_start = 0
        self._loaded: tuple[Any, ...] | None = None  # the last load's arguments, to load again
        self._interrupted = False
        self.extra = WorkerChoice()

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs."""
        return self._proc.pid if self._proc else None

    def _start(self) -> None:
        env = self.extra.env()
        self._interrupted = False
        self._proc, self._conn, self._log_start = spawn_worker(
            "quanttui.core.quality.worker", worker_log(), append=False, env=env
        )

    def _died(self, op: str) -> WorkerDied:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        code = reap(proc) if proc is not None else None
        if not self._interrupted and self.extra.fall_back(code, f"in '{op}'"):
            return _FellBack()
        return WorkerDied("".join(death_note(code, worker_log(), self._log_start, self.extra.cause())))

    def _once(self, op: str, *args: Any) -> Any:
        if self._conn is None:
            self._start()
        assert self._conn is not None
        try:
            self._conn.send((op, *args))
            reply = self._conn.recv()
        except (EOFError, OSError):
            raise self._died(op) from None
        if reply[0] == "err":
            raise WorkerError(reply[1])
        if op == "load":
            self._loaded = args
        elif op == "unload":
            self._loaded = None
        return reply[1]

    def call(self, op: str, *args: Any) -> Any:
        """One request and its reply; WorkerError for an error reply, WorkerDied if the process ends."""
        try:
            return self._once(op, *args)
        except _FellBack:
            if op != "load" and self._loaded is not None:
                self._once("load", *self._loaded)
            return self._once(op, *args)

    def close(self) -> None:
        """Unload and end the worker (killed if it does not end within 10 s)."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(("close",))
            conn.close()
        if proc is not None:
            reap(proc)

    def interrupt(self) -> None:
        """Kill the worker at once (from another thread: a cancel in the middle of a long request);
        the request in flight raises WorkerDied."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._interrupted = True
            proc.kill()

    def __enter__(self) -> ModelHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def watch_cancel(cancel: threading.Event, stop: threading.Event, host: ModelHost) -> None:
    """Ends the request in flight when `cancel` is set (until `stop` is), so one long call (a chunk, a
    model's bench) does not delay the cancel."""
    while not stop.is_set():
        if cancel.wait(0.1):
            host.interrupt()
            return
