"""The app's state, one owner per kind, each with its own Signal: LibraryState (entries, marks, fit
settings, hardware, verdicts and the folders a scan skipped) and DownloadsState (the download queue).
The app creates and changes them; screens read them and subscribe to their signals, and ask the app
(through `quanttui_app`) for what changes them. Only the UI thread changes either."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from textual.signal import Signal

from ..core import settings as settings_mod
from ..core.fit import FitError, FitResult, FitSettings, Hardware, estimate
from ..core.library import LibraryEntry, Root, active_roots, add_root, all_roots
from ..core.paths import models_dir
from .downloads import DownloadJob, Status

if TYPE_CHECKING:
    from textual.app import App
    from textual.dom import DOMNode

    from ..core.hub import Variant

Change = Literal["entries", "marks", "fit", "scanning"]
SAVED_FIT = ("n_ctx", "type_k", "type_v", "flash_attn", "gpu_layers")


def load_fit_settings() -> FitSettings:
    """The saved fit settings, or the defaults when the saved ones are of the wrong shape."""
    saved = settings_mod.load().fit
    try:
        s = FitSettings(**saved)
        s.validate()
        return s
    except (TypeError, FitError):
        return FitSettings()


def runnable(e: LibraryEntry) -> bool:
    """A file llama.cpp could load as a model: readable and not a vocabulary-only (tokenizer) file."""
    return bool(e.facts) and not e.fact("vocab_only")


class Verdicts(Mapping[str, FitResult | None]):
    """The fit of each runnable file at one set of settings and hardware, estimated when first asked
    for and kept: the Library's Fit column asks for the rows it draws, and estimating all of 40,000
    files up front held the UI thread for most of a minute (issue 17). None: the estimate was refused;
    a file that is not runnable, or any file while the hardware is unknown, has no key. Read it on the
    UI thread, like the rest of the state: a read fills its cache."""

    def __init__(self, by_path: Mapping[str, LibraryEntry], settings: FitSettings, hw: Hardware | None):
        self._by_path, self._settings, self._hw = by_path, settings, hw
        self._known: dict[str, FitResult | None] = {}

    def __getitem__(self, path: str) -> FitResult | None:
        if path in self._known:
            return self._known[path]
        e = self._by_path.get(path)
        if e is None or self._hw is None or not runnable(e):
            raise KeyError(path)
        try:
            result: FitResult | None = estimate(e.facts or {}, self._settings, self._hw, search=False)
        except FitError:
            result = None
        self._known[path] = result
        return result

    def __iter__(self) -> Iterator[str]:
        if self._hw is None:
            return iter(())
        return (p for p, e in self._by_path.items() if runnable(e))

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class ScanStatus:
    """Where the library scan stands: running with progress, or the summary of the last one."""

    running: bool = False
    done: int = 0
    total: int | None = None
    error: str | None = None


class _UiOwned:
    """State that only the app's thread changes: every mutator calls `_ui_thread` first."""

    def __init__(self, app: App[Any], what: str) -> None:
        self._app, self._what = app, what

    def _ui_thread(self) -> None:
        if threading.get_ident() != self._app._thread_id:
            raise RuntimeError(f"{self._what} state changed off the UI thread")


class LibraryState(_UiOwned):
    """Library state shared by every screen; `changed` publishes what changed ("entries", "marks",
    "fit" or "scanning"). Every mutator checks it runs on the app's thread."""

    def __init__(self, app: App[Any], roots: list[Root] | None = None, hw: Hardware | None = None) -> None:
        super().__init__(app, "library")
        self._fixed_roots = roots
        self.entries: list[LibraryEntry] = []
        self.skipped: list[str] = []
        self.marks: list[str] = []  # the first two are A and B; all of them for organize operations
        self.fit_settings = load_fit_settings()
        self.hardware = hw
        self._by_path: dict[str, LibraryEntry] = {}
        self._indexed: list[LibraryEntry] | None = None  # the entries list _by_path was made from
        self.fits: Mapping[str, FitResult | None] = {}
        self.scan = ScanStatus()
        self.changed: Signal[Change] = Signal(app, "library")

    # reading --------------------------------------------------------------------------------------

    def roots(self) -> list[Root]:
        """The roots scanned and allowed for organize operations."""
        if self._fixed_roots is not None:
            return list(self._fixed_roots)
        return active_roots(settings_mod.load())

    def move_roots(self) -> list[Root]:
        """The roots a move may target: the scanned ones plus quanttui's own models folder, which is
        a root by default even before it exists (a move into it creates it)."""
        roots = self.roots()
        if self._fixed_roots is None and not any(r.kind == "quanttui" for r in roots):
            own = [
                r for r, state in all_roots(settings_mod.load()) if r.kind == "quanttui" and state != "hidden"
            ]
            roots += own
        return roots

    def known_roots(self) -> list[tuple[Root, str]]:
        """Every root with its state ("active", "missing", "hidden"), for the empty-library text."""
        if self._fixed_roots is None:
            return all_roots(settings_mod.load())
        return [(r, "active" if r.exists else "missing") for r in self._fixed_roots]

    def entry(self, path: str | None) -> LibraryEntry | None:
        return self._paths().get(path) if path is not None else None

    def _paths(self) -> dict[str, LibraryEntry]:
        """The entries by path (the first of a path), made again when `entries` is another list."""
        if self._indexed is not self.entries:
            self._by_path = {}
            for e in self.entries:
                self._by_path.setdefault(e.path, e)
            self._indexed = self.entries
        return self._by_path

    def models_home(self) -> Path | None:
        """quanttui's models folder when a move may go there, else None."""
        home = models_dir()
        return home if any(r.path == home for r in self.move_roots()) else None

    # changing (UI thread only) --------------------------------------------------------------------

    def _publish(self, what: Change) -> None:
        self.changed.publish(what)

    def set_scanning(self, status: ScanStatus) -> None:
        self._ui_thread()
        self.scan = status
        self._publish("scanning")

    def set_entries(self, entries: list[LibraryEntry], hw: Hardware, skipped: list[str]) -> None:
        """A finished scan: entries, the detected hardware, folders it could not read; marks of files
        that are gone are dropped."""
        self._ui_thread()
        self.entries, self.hardware, self.skipped = entries, hw, skipped
        present = {e.path for e in entries}
        self.marks = [p for p in self.marks if p in present]
        self.scan = ScanStatus()
        self._compute_fits()
        self._publish("entries")

    def add_root(self, path: str) -> Root:
        """Add a folder to the saved roots (and to fixed roots); raises ValueError or OSError."""
        self._ui_thread()
        with settings_mod.update() as s:
            root = add_root(s, Path(path))
        if self._fixed_roots is not None and root not in self._fixed_roots:
            self._fixed_roots.append(root)
        return root

    def toggle_mark(self, path: str) -> None:
        self._ui_thread()
        if path in self.marks:
            self.marks.remove(path)
        else:
            self.marks.append(path)
        self._publish("marks")

    def clear_marks(self) -> None:
        self._ui_thread()
        if self.marks:
            self.marks = []
            self._publish("marks")

    def set_fit(self, s: FitSettings) -> str | None:
        """Apply and save fit settings; returns the reason when they are refused (nothing changes)."""
        self._ui_thread()
        try:
            s.validate()
        except FitError as err:
            return str(err)
        self.fit_settings = s
        try:
            with settings_mod.update() as saved:
                saved.fit = {k: getattr(s, k) for k in SAVED_FIT}
        except OSError as err:
            return f"fit settings apply now but could not be saved: {err}"
        finally:
            self._compute_fits()
            self._publish("fit")
        return None

    def with_fit(self, **changes: object) -> FitSettings:
        return replace(self.fit_settings, **changes)  # type: ignore[arg-type]

    def _compute_fits(self) -> None:
        """Verdicts for the runnable files at the current settings (the table's Fit column), each made
        when first read; renewed when the entries, hardware or settings change, not on every redraw."""
        self.fits = Verdicts(self._paths(), self.fit_settings, self.hardware)


class DownloadsState(_UiOwned):
    """The download queue, in the order jobs were queued; `changed` publishes the job that changed. The
    app changes it (queueing, starting, each report of the running job, cancel, resume); the Downloads
    screen reads it and follows `changed`. Every mutator checks it runs on the app's thread."""

    def __init__(self, app: App[Any]) -> None:
        super().__init__(app, "downloads")
        self.jobs: list[DownloadJob] = []
        self.changed: Signal[DownloadJob] = Signal(app, "downloads")

    def job(self, job_id: int) -> DownloadJob | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    def next_queued(self) -> DownloadJob | None:
        return next((j for j in self.jobs if j.status == "queued"), None)

    def running(self) -> DownloadJob | None:
        return next((j for j in self.jobs if j.status == "downloading"), None)

    def add(self, job: DownloadJob) -> None:
        self._ui_thread()
        self.jobs.append(job)
        self.changed.publish(job)

    def start(self, job: DownloadJob) -> None:
        """`job` leaves the queue and starts downloading now."""
        self._ui_thread()
        job.status, job.started, job.error = "downloading", time.monotonic(), None
        self.changed.publish(job)

    def report(self, job_id: int, done: int, status: Status, error: str | None) -> DownloadJob | None:
        """A running job's progress or end, as its worker reported it; None for a job not queued here."""
        self._ui_thread()
        job = self.job(job_id)
        if job is not None:
            job.done, job.status, job.error = done, status, error
            self.changed.publish(job)
        return job

    def cancel_queued(self, job: DownloadJob) -> None:
        """A job that has not started leaves the queue as cancelled."""
        self._ui_thread()
        if job.status == "queued":
            job.status = "cancelled"
            self.changed.publish(job)

    def requeue(self, job: DownloadJob) -> None:
        """A failed or cancelled job goes back in the queue (its .partial files are resumed)."""
        self._ui_thread()
        if job.status in ("failed", "cancelled"):
            job.status, job.error = "queued", None
            self.changed.publish(job)


@runtime_checkable
class QuanttuiApp(Protocol):
    """What screens and widgets use of quanttui's app (tui.app.QuantApp); see `quanttui_app`."""

    library: LibraryState
    downloads: DownloadsState

    def rescan(self) -> None: ...
    def say_extra_buffers(self) -> None: ...
    def enqueue_download(self, repo: str, variant: Variant, revision: str = "main") -> DownloadJob: ...
    def cancel_download(self, job: DownloadJob) -> None: ...
    def resume_download(self, job: DownloadJob) -> None: ...


def quanttui_app(node: DOMNode) -> QuanttuiApp:
    """The app of `node`, typed: its state and the actions that change it."""
    app = node.app
    if not isinstance(app, QuanttuiApp):
        raise RuntimeError("not quanttui's app")
    return app


def library_state(node: DOMNode) -> LibraryState:
    """The app's library state, for any screen or widget of the app."""
    state = getattr(node.app, "library", None)
    if not isinstance(state, LibraryState):
        raise RuntimeError("the app holds no library state")
    return state
