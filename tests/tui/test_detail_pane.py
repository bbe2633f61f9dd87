"""The side pane's quant ladder in a narrow pane: every figure stays whole (rich would cut each
column to fit), and the file name gives way."""

from __future__ import annotations

import pytest

from quanttui.core import format as fmt
from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from tests.tui.pilot_help import at_row, eventually
from tests.tui.test_hostile_text import screen_text
from tests.tui.test_library_layout import lib  # noqa: F401  (the fixture)
from tests.tui.test_library_screen import _loaded


@pytest.mark.parametrize("size", [(100, 30), (160, 48)])
async def test_the_ladder_keeps_quant_bpw_and_size_whole_in_a_narrow_pane(lib, size):  # noqa: F811
    app = create_app([Root(lib, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=size) as pilot:
        table = await _loaded(pilot)
        table.move_cursor(row=0)  # the model's row: its ladder in the side pane
        await at_row(pilot, 0)
        entries = {e.quant: e for e in app.library.entries}

        def whole() -> None:
            text = screen_text(app)
            assert "quant ladder" in text
            pane = "\n".join(ln.split("▏", 1)[1] for ln in text.splitlines() if "▏" in ln)
            ladder = pane[pane.index("quant ladder") :]
            for quant in ("Q8_0", "Q4_K_M", "Q2_K"):
                size_text = fmt.size(entries[quant].size_bytes)
                lines = [ln for ln in ladder.splitlines() if f" {quant} " in ln]
                assert lines, ladder
                assert size_text in lines[0], lines[0]  # the size on one line, whole
                assert f"{entries[quant].fact('bpw'):.2f}" in lines[0]

        await eventually(pilot, whole)  # drawn once the pane is laid out for the ladder
