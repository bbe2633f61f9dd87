"""The caller's side of the quality worker: start it, send requests, survive its death.

A crash in llama.cpp (segfault, abort, the OOM killer) ends the worker, not the caller: the request
in flight raises WorkerDied, and the next `load` starts a fresh worker. The worker dies with its
caller: closing its socket makes it exit, `close()` kills it if it does not, and the kernel kills it
when the caller's process ends (killed included), since it is started from a thread that lasts.
Starting, dying and the extra-buffer fallback are core/childproc.py's WorkerClient, as for A/B.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..childproc import WorkerClient, WorkerDied, WorkerError
from .protocol import Request

__all__ = ["ModelHost", "WorkerDied", "WorkerError", "watch_cancel", "worker_log"]


def worker_log() -> Path:
    return ModelHost.log()


class ModelHost(WorkerClient):
    """A worker process with at most one model loaded; started on the first request. A crash with
    llama.cpp's extra buffers on, in auto, turns them off for this machine and retries once: the
    worker starts again without them, loads the last model again and repeats the request."""

    MODULE = "quanttui.core.quality.worker"
    LOG_NAME = "quality-worker.log"
    APPEND = False
    CLOSE_GRACE = 10.0

    def __init__(self) -> None:
        super().__init__()
        self._loaded: tuple[Any, ...] | None = None  # the last load's arguments, to load again

    def _once(self, op: str, *args: Any) -> Any:
        if self._conn is None:
            self._start()
        value = self._call(Request(op, args))
        if op == "load":
            self._loaded = args
        elif op == "unload":
            self._loaded = None
        return value

    def call(self, op: str, *args: Any) -> Any:
        """One request and its reply; WorkerError for an error reply, WorkerDied if the process ends."""
        try:
            return self._once(op, *args)
        except WorkerDied:
            if not self.fall_back(f"in '{op}'"):
                raise
        if op != "load" and self._loaded is not None:
            self._once("load", *self._loaded)
        return self._once(op, *args)

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
