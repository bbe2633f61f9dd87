"""The app's download queue: jobs run one after another in a worker, each cancellable, all resumable.

A job that fails for any reason ends as one line in `error` (already safe to show), never as an
exception in the worker: the queue goes on with the next job.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from ..core.errors import QuanttuiError
from ..core.hub import Variant, pull
from ..core.textsafe import clean_path

_ids = itertools.count(1)


@dataclass
class DownloadJob:
    repo: str
    variant: Variant
    revision: str = "main"
    to: str = "library"
    id: int = field(default_factory=lambda: next(_ids))
    status: str = "queued"  # queued, downloading, done, failed, cancelled
    done: int = 0
    error: str | None = None
    started: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def total(self) -> int:
        return self.variant.size

    @property
    def speed(self) -> float:
        elapsed = time.monotonic() - self.started if self.started else 0
        return self.done / elapsed if elapsed > 0 else 0.0


def run_job(job: DownloadJob, post: object) -> None:
    """Download one job, reporting through `post(job_id, done, total, status, error)`."""
    job.status, job.started = "downloading", time.monotonic()
    post(job.id, 0, job.total, "downloading", None)  # type: ignore[operator]
    try:
        pull(
            job.repo,
            job.variant.files,
            job.revision,
            cancel=job.cancel,
            to=job.to,
            progress=lambda done, total, name: post(job.id, done, total, "downloading", None),
        )  # type: ignore[operator]
    except Exception as e:  # every failure is this job's one line; the queue goes on
        status = "cancelled" if job.cancel.is_set() else "failed"
        post(job.id, job.done, job.total, status, error_line(e))  # type: ignore[operator]
        return
    post(job.id, job.total, job.total, "done", None)  # type: ignore[operator]


def error_line(e: Exception) -> str:
    """One safe line for a failed job: quanttui's own message, or what failed where."""
    if isinstance(e, QuanttuiError):
        return str(e)
    if isinstance(e, OSError):
        where = f"{clean_path(e.filename)}: " if e.filename else ""
        return f"{where}{e.strerror or type(e).__name__}"
    return f"unexpected error ({type(e).__name__})"
