"""A download job of the app's queue (tui.state.DownloadsState holds the queue) and the one function that
runs a job in a worker thread.

A job that fails for any reason ends as one line in `error` (already safe to show), never as an
exception in the worker: the queue goes on with the next job. `run_job` never changes its job: it
reports through `post`, and the UI thread applies what it reports to the state.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..core.errors import QuanttuiError
from ..core.hub import Variant, pull
from ..core.textsafe import clean_path

_ids = itertools.count(1)

Status = Literal["queued", "downloading", "done", "failed", "cancelled"]
Post = Callable[[int, int, int, Status, "str | None"], None]
"""How a running job reports: post(job_id, done, total, status, error)."""


@dataclass
class DownloadJob:
    repo: str
    variant: Variant
    revision: str = "main"
    to: str = "library"
    id: int = field(default_factory=lambda: next(_ids))
    status: Status = "queued"
    done: int = 0
    error: str | None = None
    started: float = 0.0

    @property
    def total(self) -> int:
        return self.variant.size

    @property
    def active(self) -> bool:
        return self.status in ("queued", "downloading")

    @property
    def speed(self) -> float:
        elapsed = time.monotonic() - self.started if self.started else 0
        return self.done / elapsed if elapsed > 0 else 0.0


def run_job(job: DownloadJob, post: Post, cancel: threading.Event | None = None) -> None:
    """Download one job, reporting through `post(job_id, done, total, status, error)`; `cancel` (the
    worker's cancelled_event) stops it, keeping its .partial files to resume from."""
    cancel = cancel or threading.Event()
    post(job.id, 0, job.total, "downloading", None)
    try:
        pull(
            job.repo,
            job.variant.files,
            job.revision,
            cancel=cancel,
            to=job.to,
            progress=lambda done, total, name: post(job.id, done, total, "downloading", None),
        )
    except Exception as e:  # every failure is this job's one line; the queue goes on
        status: Status = "cancelled" if cancel.is_set() else "failed"
        post(job.id, job.done, job.total, status, error_line(e))
        return
    post(job.id, job.total, job.total, "done", None)


def error_line(e: Exception) -> str:
    """One safe line for a failed job: quanttui's own message, or what failed where."""
    if isinstance(e, QuanttuiError):
        return str(e)
    if isinstance(e, OSError):
        where = f"{clean_path(e.filename)}: " if e.filename else ""
        return f"{where}{e.strerror or type(e).__name__}"
    return f"unexpected error ({type(e).__name__})"
