"""Keys that arrive together (fast typing, a terminal delivering a burst) act in the order typed: a
priority key (ctrl+b, ctrl+x, ctrl+n, `]`) acts on the cursor and marks the keys before it left,
not on those before them."""

from __future__ import annotations

import pytest
from textual import events

from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from quanttui.tui.screens.ab import ABScreen
from quanttui.tui.screens.dialogs import AskScreen
from tests.tui.pilot_help import until
from tests.tui.test_library_items import _lib, notes
from tests.tui.test_library_screen import _loaded, row_keys

CHARS = {"space": " ", "right_square_bracket": "]"}


async def settled(pilot) -> None:
    """The Library after its background work (measured results, fits) has reached the table."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)


def burst(app, *keys: str) -> None:
    """Post the keys as the terminal driver does, all before any is handled."""
    for key in keys:
        app.post_message(events.Key(key, CHARS.get(key)))


@pytest.mark.slow
async def test_marks_typed_just_before_ctrl_b_open_those_two(tiny, tmp_path):
    d = _lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(100, 30)) as pilot:
        table = await _loaded(pilot)
        await settled(pilot)
        files = row_keys(table)[1:3]
        burst(app, "down", "space", "down", "space", "ctrl+b")
        refused = "mark two files with space, then press ctrl+b"
        await until(pilot, lambda: isinstance(app.screen, ABScreen) or refused in notes(app))
        assert "mark two files with space, then press ctrl+b" not in notes(app)
        assert isinstance(app.screen, ABScreen)
        assert (app.screen.sides["a"].path, app.screen.sides["b"].path) == tuple(files)


async def test_move_and_rename_act_on_the_file_the_cursor_just_reached(tiny, tmp_path):
    d = _lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(100, 30)) as pilot:
        table = await _loaded(pilot)
        await settled(pilot)
        third = row_keys(table)[3]
        burst(app, "down", "down", "down", "ctrl+x")
        await until(pilot, lambda: isinstance(app.screen, AskScreen))
        assert isinstance(app.screen, AskScreen) and app.screen.lines == [third]
        await pilot.press("escape")
        burst(app, "up", "ctrl+n")
        await until(pilot, lambda: isinstance(app.screen, AskScreen))
        assert isinstance(app.screen, AskScreen) and app.screen.lines == [row_keys(table)[2]]
