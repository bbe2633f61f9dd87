"""The footer at 80x24, 100x30 and 160x48: every key it shows is whole and inside the screen, Quit and
Help come first, and keys left out for width are the least important ones, on every screen and after
a Delete has changed the Library."""

from __future__ import annotations

import pytest
from textual.widgets._footer import FooterKey

from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from quanttui.tui.screens.downloads import DownloadsScreen
from quanttui.tui.screens.hub import HubScreen
from quanttui.tui.screens.usage import UsageScreen
from quanttui.tui.widgets.key_footer import KeyFooter, keep_fitting
from tests.tui.pilot_help import SIZES, screen_text, until
from tests.tui.test_library_items import _lib
from tests.tui.test_library_screen import _loaded, row_keys


def footer_line(app) -> str:
    return screen_text(app).rstrip("\n").splitlines()[-1]


def check_footer(app) -> list[str]:
    """Assert the footer shows whole keys, ranked, within the screen; return the shown keys' labels."""
    footer = app.screen.query_one(KeyFooter)
    width = app.size.width
    items = list(footer.children)
    shown = [w for w in items if w.display]
    assert shown == items[: len(shown)]  # only the least important keys are left out
    assert footer.virtual_size.width <= footer.size.width  # nothing to scroll to
    line = footer_line(app)
    labels = []
    for key in shown:
        assert key.region.x >= 0 and key.region.right <= width, f"{key.description} runs past the screen"
        if isinstance(key, FooterKey):
            label = f"{key.key_display} {key.description}".strip()
            assert label in line, f"{label!r} is not whole in {line!r}"
            labels.append(label)
    assert line.lstrip().startswith("^q Quit  f1 Help")
    return labels


async def settled_footer(pilot) -> list[str]:
    """check_footer once the footer has been fitted to the screen shown now (a new screen or size
    is fitted a few frames later, later still on a busy machine)."""
    for _ in range(100):
        try:
            return check_footer(pilot.app)
        except AssertionError:
            await pilot.pause(0.05)
    return check_footer(pilot.app)


def test_keys_are_kept_in_rank_order_while_they_fit():
    assert keep_fitting([9, 9, 10, 12], 40) == 4
    assert keep_fitting([9, 9, 10, 12], 39) == 3
    assert keep_fitting([9, 9, 30, 5], 30) == 2  # a short key never shows in place of a longer, earlier one
    assert keep_fitting([9, 9, 10], 5) == 2  # Quit and Help stay at any width


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.slow
async def test_library_footer_after_a_delete_shows_whole_keys(tiny, tmp_path, size):
    d = _lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=size) as pilot:
        table = await _loaded(pilot)
        before = await settled_footer(pilot)
        table.move_cursor(row=row_keys(table).index(str(d / "tiny-Q8_0.gguf")))
        await pilot.press("space", "delete")
        await until(pilot, lambda: "Yes" in screen_text(app))
        await pilot.press("y")
        await until(pilot, lambda: not (d / "tiny-Q8_0.gguf").exists())
        await until(pilot, lambda: table.row_count == 3)
        assert await settled_footer(pilot) == before
        assert "del Delete" in before
        if size[0] >= 160:
            assert "^f Hub" in before and "^p palette" in footer_line(app)


@pytest.mark.slow
async def test_every_screen_footer_fits_80_columns(tiny, tmp_path):
    d = _lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot)
        await pilot.press("ctrl+k")  # the Quality view of the highlighted model
        await until(pilot, lambda: "Eval" in footer_line(app))
        await settled_footer(pilot)
        await pilot.press("escape")
        for screen in (UsageScreen(), DownloadsScreen()):
            await app.push_screen(screen)
            await until(pilot, lambda: "esc Back" in footer_line(app))
            await settled_footer(pilot)
            app.pop_screen()
            await pilot.pause(0.1)
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, HubScreen))
        await settled_footer(pilot)
        await pilot.resize_terminal(160, 48)
        await until(pilot, lambda: app.size.width == 160)
        wide = await settled_footer(pilot)
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: app.size.width == 80)
        narrow = await settled_footer(pilot)
        assert narrow == wide[: len(narrow)]  # a narrower screen drops keys from the end
