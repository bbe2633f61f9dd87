"""Helpers for Pilot tests: waiting for what a message, worker, timer or screen change brings (a
fixed pause is too short on a busy machine), reading what is drawn, the notifications shown, the
Library's panes following its cursor, and an A/B screen opened on two tiny models."""

from __future__ import annotations

import asyncio
import inspect
import io
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from textual.css.query import NoMatches

from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from quanttui.tui.screens.ab import ABScreen
from quanttui.tui.widgets.fit_panel import FitPanel
from quanttui.tui.widgets.model_table import GROUP_PREFIX, ModelTable

SIZES = [(80, 24), (100, 30), (160, 48)]


def refused_off_thread(calls: list[Callable[[], object]]) -> list[str]:
    """Run each call on another thread; the RuntimeError text each one raised (state that the UI
    thread alone may change refuses the rest)."""
    errors: list[str] = []

    def off_thread() -> None:
        for call in calls:
            try:
                call()
            except RuntimeError as e:
                errors.append(str(e))

    t = threading.Thread(target=off_thread)
    t.start()
    t.join()
    return errors


async def until(pilot, check: Callable[[], object], tries: int = 400) -> None:
    """Wait (up to tries × 50 ms) until `check()` is true; a check that raises (a widget not mounted
    yet) is not true yet, and the timeout names the check and its last error."""
    error: Exception | None = None
    for _ in range(tries):
        await pilot.pause(0.05)
        try:
            if check():
                return
        except Exception as e:  # noqa: BLE001 (reported with the timeout)
            error = e
    try:
        what = inspect.getsource(check).strip()
    except (OSError, TypeError):
        what = repr(check)
    last = f" (last: {error!r})" if error else ""
    raise AssertionError(f"timed out waiting for the screen: {what}{last}")


async def eventually(pilot, check: Callable[[], None], tries: int = 400) -> None:
    """Run `check` (assertions on what the screen shows) until it passes, up to tries × 50 ms; the
    last try's own failure is raised, so the assertion says what was wrong."""
    for _ in range(tries - 1):
        try:
            check()
            return
        except (AssertionError, NoMatches):
            await pilot.pause(0.05)
    check()


async def drained(pilot) -> None:
    """Wait until the keys already sent have been handled, bindings included: a callback follows them
    from the app's queue to the focused widget and back up through each of its ancestors, one queue
    at a time, as a key that nothing stops travels."""
    app = pilot.app
    focused = app.screen.focused
    chain = [app, *(focused.ancestors_with_self if focused is not None else (app.screen, app))]
    done = asyncio.Event()

    def hop(at: int) -> None:
        if at == len(chain) or not chain[at].call_later(hop, at + 1):
            done.set()

    hop(0)
    await asyncio.wait_for(done.wait(), 30)


def follows_cursor(screen) -> bool:
    """True once the Library's panes show the row under its table's cursor: the highlight (a message
    from the table to the screen) has arrived."""
    table, panel = screen.query_one(ModelTable), screen.query_one(FitPanel)
    key = table.cursor_key()
    if key is None:
        return False
    if key.startswith(GROUP_PREFIX):
        return panel.entry is None and panel.note.startswith("highlight one of this model's files")
    return panel.entry is not None and panel.entry.path == key


async def at_row(pilot, row: int) -> None:
    """Wait until the Library's cursor is on `row` and its panes show that row."""
    table = pilot.app.screen.query_one(ModelTable)
    await until(pilot, lambda: table.cursor_row == row and follows_cursor(pilot.app.screen))


def rendered(widget) -> str:
    """The text a widget shows right now."""
    return "\n".join(strip.text for strip in widget.render_lines(widget.region.reset_offset))


def screen_text(app) -> str:
    """Everything the app draws now (screen, toasts, header, footer), as plain text."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)


def notes(app) -> list[str]:
    """The notifications shown so far, oldest first."""
    return [n.message for n in app._notifications]


def note_ids(app) -> set[str]:
    """The identities of the notifications shown now, to tell a later one apart (one that expires
    leaves the list, so counting them would not do)."""
    return {n.identity for n in app._notifications}


def notes_since(app, ids: set[str]) -> list[str]:
    """The notifications shown since `ids` was taken, oldest first."""
    return [n.message for n in app._notifications if n.identity not in ids]


def ab_app(folder: Path, *models: Path):
    """An app whose library is `folder`, holding copies of `models`."""
    for m in models:
        shutil.copyfile(m, folder / m.name)
    return create_app([Root(folder, "folder", False)], hardware("0", "32GiB"))


async def open_ab(pilot, a: Path, b: Path, *, ready: bool = True) -> ABScreen:
    """The A/B screen on `a` and `b`, with both models loaded unless `ready` is False."""
    await pilot.pause(0.2)
    screen = ABScreen(str(a), str(b))
    await pilot.app.push_screen(screen)
    if ready:
        prompt = screen.query_one("#ab-prompt")
        await until(pilot, lambda: not prompt.disabled and screen.session is not None)
    return screen


async def turn(pilot, screen: ABScreen, text: str) -> None:
    """Type `text`, send it, and wait until the turn is done."""
    n = len(screen.session.turns)
    await pilot.press(*text, "enter")
    await until(pilot, lambda: screen.phase == "ready" and len(screen.session.turns) == n + 1)
