"""LibraryState on its own: what its signal publishes and when, that only the app's thread changes it,
and the marks, entries, verdicts, roots and scan status it owns (issue 18)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widget import Widget

from quanttui.core.fit import FitSettings, hardware
from quanttui.core.library import LibraryEntry, Root, scan
from quanttui.tui.state import Change, LibraryState, ScanStatus, Verdicts, library_state, runnable
from tests.tui.pilot_help import refused_off_thread, until

HW = hardware("0", "32GiB")


class Listener(Widget):
    """Subscribes to the state's signal and keeps what it was told, in order."""

    def __init__(self, state: LibraryState) -> None:
        super().__init__()
        self.state = state
        self.heard: list[Change] = []

    def on_mount(self) -> None:
        self.state.changed.subscribe(self, self.heard.append)


class StateApp(App[None]):
    """A bare app that owns a LibraryState the way QuantApp does, and nothing else."""

    def __init__(self, roots: list[Root] | None = None) -> None:
        super().__init__()
        self.library = LibraryState(self, roots, HW)
        self.listener = Listener(self.library)

    def compose(self) -> ComposeResult:
        yield self.listener


def _entry(path: str, facts: dict | None, error: str | None = None, group: str = "g") -> LibraryEntry:
    return LibraryEntry(path, [path], [], "/r", "folder", 1000, {}, facts, error, group, group)


@pytest.fixture
def entries(tiny, tmp_path: Path) -> list[LibraryEntry]:
    d = tmp_path / "lib"
    d.mkdir()
    for label in ("Q8_0", "Q2_K"):
        shutil.copyfile(tiny.quants[label], d / f"tiny-{label}.gguf")
    found = scan([Root(d, "folder", False)])
    assert [Path(e.path).name for e in found] == ["tiny-Q8_0.gguf", "tiny-Q2_K.gguf"]
    return found


async def _settled(pilot, app: StateApp, n: int) -> list[Change]:
    """What the listener heard once it heard `n` changes (published callbacks arrive as messages)."""
    await until(pilot, lambda: len(app.listener.heard) >= n)
    await pilot.pause(0.05)
    return list(app.listener.heard)


async def test_each_change_is_published_once_with_what_changed(entries):
    app = StateApp()
    async with app.run_test() as pilot:
        state = app.library
        assert library_state(app.listener) is state
        state.set_scanning(ScanStatus(True, 1, 2))
        assert state.scan == ScanStatus(running=True, done=1, total=2)
        state.set_entries(entries, HW, [])
        assert state.scan == ScanStatus()  # a finished scan leaves the status at rest
        state.toggle_mark(entries[0].path)
        state.clear_marks()
        state.clear_marks()  # nothing marked: nothing to publish
        assert state.set_fit(state.with_fit(n_ctx=8192)) is None
        heard = await _settled(pilot, app, 5)
        assert heard == ["scanning", "entries", "marks", "marks", "fit"]


async def test_refused_fit_settings_change_nothing_and_publish_nothing(entries):
    app = StateApp()
    async with app.run_test() as pilot:
        state = app.library
        state.set_entries(entries, HW, [])
        before, fits = state.fit_settings, state.fits
        reason = state.set_fit(state.with_fit(n_ctx=0))
        assert reason is not None and reason.startswith("context 0 is out of range")
        assert state.fit_settings is before and state.fits is fits
        state.toggle_mark(entries[0].path)  # a later change is heard, the refused one never was
        assert await _settled(pilot, app, 2) == ["entries", "marks"]


async def test_fit_settings_apply_save_and_renew_the_verdicts(entries):
    from quanttui.core import settings as settings_mod

    app = StateApp()
    async with app.run_test():
        state = app.library
        state.set_entries(entries, HW, [])
        old = state.fits
        assert FitSettings().n_ctx != 1024 and FitSettings().type_k != "q8_0"
        assert state.set_fit(state.with_fit(n_ctx=1024, type_k="q8_0")) is None
        assert (state.fit_settings.n_ctx, state.fit_settings.type_k) == (1024, "q8_0")
        assert settings_mod.load().fit["n_ctx"] == 1024 and settings_mod.load().fit["type_k"] == "q8_0"
        assert state.fits is not old  # verdicts at the new settings, not the old ones


async def test_only_the_ui_thread_changes_the_state(entries):
    app = StateApp()
    async with app.run_test() as pilot:
        state = app.library
        state.set_entries(entries, HW, [])
        path = entries[0].path
        calls: list[Callable[[], object]] = [
            lambda: state.toggle_mark(path),
            lambda: state.clear_marks(),
            lambda: state.set_scanning(ScanStatus(running=True)),
            lambda: state.set_entries([], HW, ["/x"]),
            lambda: state.set_fit(state.with_fit(n_ctx=1024)),
            lambda: state.add_root(str(entries[0].root)),
        ]
        errors = refused_off_thread(calls)
        assert errors == ["library state changed off the UI thread"] * len(calls)
        assert state.marks == [] and state.entries is entries and state.skipped == []
        assert state.scan == ScanStatus() and state.fit_settings.n_ctx != 1024
        await pilot.pause(0.1)
        assert app.listener.heard == ["entries"]  # nothing off the thread was published


async def test_marks_keep_their_order_and_drop_files_that_are_gone(entries):
    app = StateApp()
    async with app.run_test():
        state = app.library
        a, b = entries[0].path, entries[1].path
        extra = _entry("/r/other.gguf", None, "cannot read its header")
        state.set_entries([*entries, extra], HW, [])
        for p in (b, a, extra.path):
            state.toggle_mark(p)
        assert state.marks == [b, a, extra.path]  # A is the first marked, B the second
        state.toggle_mark(a)
        assert state.marks == [b, extra.path]
        state.toggle_mark(a)
        assert state.marks == [b, extra.path, a]  # marked again: last
        state.set_entries([entries[1], entries[0]], HW, ["/denied: permission denied"])
        assert state.marks == [b, a]  # the file that is gone loses its mark; order kept
        assert state.skipped == ["/denied: permission denied"]
        state.set_entries([], HW, [])
        assert state.marks == [] and state.entry(a) is None


async def test_entries_are_found_by_path_in_the_current_list(entries):
    app = StateApp()
    async with app.run_test():
        state = app.library
        state.set_entries(entries, HW, [])
        assert state.entry(entries[1].path) is entries[1]
        assert state.entry(None) is None and state.entry("/nowhere.gguf") is None
        twin = _entry(entries[0].path, entries[0].facts)
        state.set_entries([entries[0], twin, entries[1]], HW, [])
        assert state.entry(entries[0].path) is entries[0]  # the first of a path
        state.entries = [twin]  # another list: the index is made again
        assert state.entry(entries[0].path) is twin and state.entry(entries[1].path) is None


async def test_verdicts_cover_runnable_files_only_and_are_made_when_read(entries):
    app = StateApp()
    async with app.run_test():
        state = app.library
        vocab = _entry("/r/vocab.gguf", {"vocab_only": True, "architecture": "llama"})
        broken = _entry("/r/broken.gguf", None, "cannot read its header")
        state.set_entries([*entries, vocab, broken], HW, [])
        assert [runnable(e) for e in state.entries] == [True, True, False, False]
        fits = state.fits
        assert isinstance(fits, Verdicts)
        assert sorted(fits) == sorted(e.path for e in entries) and len(fits) == 2
        assert vocab.path not in fits and broken.path not in fits
        with pytest.raises(KeyError):
            fits[vocab.path]
        assert fits._known == {}  # nothing estimated before a row asks
        first = fits[entries[0].path]
        assert first is not None and first.verdict and first.verdict_code
        assert list(fits._known) == [entries[0].path]
        assert fits[entries[0].path] is first  # kept, not estimated again
        assert fits.get(entries[1].path) is not None


async def test_no_hardware_no_verdicts(entries):
    app = StateApp()
    async with app.run_test():
        state = app.library
        state.hardware = None
        state._compute_fits()
        assert len(state.fits) == 0 and list(state.fits) == []
        state.set_entries(entries, HW, [])  # a scan brings the hardware
        assert len(state.fits) == 2


async def test_fixed_roots_are_copied_known_and_extended(tmp_path: Path):
    tmp_path = tmp_path.resolve()
    here, gone = tmp_path / "here", tmp_path / "gone"
    here.mkdir()
    roots = [Root(here, "folder", False)]
    app = StateApp(roots + [Root(gone, "folder", False)])
    async with app.run_test():
        state = app.library
        listed = state.roots()
        listed.clear()  # a copy: the state's roots are its own
        assert [r.path for r in state.roots()] == [here, gone]
        assert [(r.path, s) for r, s in state.known_roots()] == [(here, "active"), (gone, "missing")]
        more = tmp_path / "more"
        more.mkdir()
        root = state.add_root(str(more))
        assert root.path == more and [r.path for r in state.roots()] == [here, gone, more]
        state.add_root(str(more))  # once only
        assert [r.path for r in state.roots()] == [here, gone, more]
        with pytest.raises((ValueError, OSError)):
            state.add_root(str(tmp_path / "does-not-exist"))
