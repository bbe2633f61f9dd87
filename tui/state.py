"""The one owner of library state in the app: entries, marks, fit settings, hardware, verdicts and the
folders a scan skipped. Screens read it and subscribe to its signal; only the UI thread changes it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from textual.signal import Signal

from ..core import settings as settings_mod
from ..core.fit import FitError, FitResult, FitSettings, Hardware, estimate
from ..core.library import LibraryEntry, Root, active_roots, add_root, all_roots
from ..core.paths import models_dir

if TYPE_CHECKING:
    from textual.app import App
    from textual.dom import DOMNode

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


@dataclass(frozen=True)
class ScanStatus:
    """Where the library scan stands: running with progress, or the summary of the last one."""

    running: bool = False
    done: int = 0
    total: int | None = None
    error: str | None = None


class LibraryState:
    """Library state shared by every screen; `changed` publishes what changed ("entries", "marks",
    "fit" or "scanning"). Every mutator checks it runs on the app's thread."""

    def __init__(self, app: App, roots: list[Root] | None = None, hw: Hardware | None = None) -> None:
        self._app = app
        self._fixed_roots = roots
        self.entries: list[LibraryEntry] = []
        self.skipped: list[str] = []
        self.marks: list[str] = []  # the first two are A and B; all of them for organize operations
        self.fit_settings = load_fit_settings()
        self.hardware = hw
        self.fits: dict[str, FitResult | None] = {}
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
        return next((e for e in self.entries if e.path == path), None)

    def models_home(self) -> Path | None:
        """quanttui's models folder when a move may go there, else None."""
        home = models_dir()
        return home if any(r.path == home for r in self.move_roots()) else None

    # changing (UI thread only) --------------------------------------------------------------------

    def _ui_thread(self) -> None:
        if threading.get_ident() != self._app._thread_id:
            raise RuntimeError("library state changed off the UI thread")

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
        """Verdicts for every runnable file at the current settings (the table's Fit column); run when
        the entries, hardware or settings change, not on every redraw."""
        self.fits = {}
        if self.hardware is None:
            return
        for e in self.entries:
            if runnable(e):
                try:
                    self.fits[e.path] = estimate(
                        e.facts or {}, self.fit_settings, self.hardware, search=False
                    )
                except FitError:
                    self.fits[e.path] = None


def library_state(node: DOMNode) -> LibraryState:
    """The app's library state, for any screen or widget of the app."""
    state = getattr(node.app, "library", None)
    if not isinstance(state, LibraryState):
        raise RuntimeError("the app holds no library state")
    return state
