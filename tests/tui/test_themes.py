"""Each theme, on the Library and Disk usage screens: every piece of text readable against its
background, and the screen as stored in an SVG snapshot (compared under the Textual version that
made it; `QUANTTUI_UPDATE_SNAPSHOTS=1` writes them again)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import textual
from rich.color import Color

from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.themes import THEMES
from quanttui.tui.app import create_app
from quanttui.tui.screens.usage import UsageScreen
from tests.tui.pilot_help import at_row, eventually, rendered, until
from tests.tui.test_library_items import _lib
from tests.tui.test_library_screen import _loaded

SNAPSHOTS = Path(__file__).parent / "snapshots"
MIN_CONTRAST = 3.0  # WCAG's floor for large text and UI parts; body text in these themes is far above


def _luminance(c: Color) -> float:
    def channel(v: int) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = c.get_truecolor()
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(fg: Color, bg: Color) -> float:
    hi, lo = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def unreadable(app) -> list[tuple[int, str, float]]:
    """(row, text, contrast) of every visible run of text whose colour is too close to its background."""
    low = []
    for y, strip in enumerate(app.screen._compositor.render_strips()):
        for seg in strip:
            text, style = seg.text.strip(), seg.style
            if not text or style is None or style.color is None or style.bgcolor is None:
                continue
            if set(text) <= set("▁▔▏▎▊█▀▄─│╭╮╰╯"):  # borders and bars are drawn, not read
                continue
            ratio = contrast(style.color, style.bgcolor)
            if ratio < MIN_CONTRAST:
                low.append((y, text, round(ratio, 2)))
    return low


def _normalized(svg: str) -> str:
    return re.sub(r"terminal-\d+", "terminal", svg)


def check_snapshot(app, name: str) -> None:
    path = SNAPSHOTS / f"{name}.svg"
    svg = _normalized(app.export_screenshot(title="quanttui"))
    stamp = f"<!-- textual {textual.__version__} -->\n"
    if os.environ.get("QUANTTUI_UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(stamp + svg, encoding="utf-8")
        return
    stored = path.read_text(encoding="utf-8")
    if not stored.startswith(stamp):
        pytest.skip(f"{path.name} was made under another Textual version; update it to compare")
    assert stored == stamp + svg, f"{path.name} differs (QUANTTUI_UPDATE_SNAPSHOTS=1 rewrites it)"


@pytest.mark.parametrize("theme", [t.name for t in THEMES])
async def test_library_and_disk_usage_are_readable_in_each_theme(tiny, tmp_path, theme):
    d = _lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(100, 30)) as pilot:
        app.theme = theme
        table = await _loaded(pilot)
        table.move_cursor(row=0)  # the model's row: the side pane shows the ladder, no machine paths
        await at_row(pilot, 0)

        def library_drawn() -> None:
            assert unreadable(app) == []
            check_snapshot(app, f"library-{theme}")

        await eventually(pilot, library_drawn)  # the same once the footer and panes are laid out
        app.push_screen(UsageScreen())
        await until(pilot, lambda: isinstance(app.screen, UsageScreen))
        await until(pilot, lambda: "by root" in rendered(app.screen.query_one("#usage")))

        def usage_readable() -> None:
            assert unreadable(app) == []

        await eventually(pilot, usage_readable)
