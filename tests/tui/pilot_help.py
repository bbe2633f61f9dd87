"""Helpers for Pilot tests of the A/B, Hub and Downloads screens: waiting, reading what is drawn,
the notifications shown, and an A/B screen opened on two tiny models."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from rich.console import Console

from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from quanttui.tui.screens.ab import ABScreen

SIZES = [(80, 24), (100, 30), (160, 48)]


async def until(pilot, check, tries: int = 400) -> None:
    """Wait (up to tries × 50 ms) until `check()` is true."""
    for _ in range(tries):
        await pilot.pause(0.05)
        if check():
            return
    raise AssertionError("timed out waiting for the screen")


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
