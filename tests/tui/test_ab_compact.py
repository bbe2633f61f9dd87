"""The A/B panes on a small terminal (issue 20 item 3): at 80x24 each side's figures take two lines
and no sparkline, the answer the rest; after a resize the current turn is what each pane shows."""

from __future__ import annotations

import pytest

from tests.tui.pilot_help import ab_app, eventually, open_ab, rendered, screen_text, turn

pytestmark = pytest.mark.slow  # Pilot sessions with two models loaded


def _lines(widget) -> int:
    return len([line for line in rendered(widget).split("\n") if line.strip()])


async def test_at_80x24_the_figures_take_two_lines_and_the_answer_the_rest(tiny, tmp_path):
    app = ab_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_ab(pilot, tiny.quants["Q8_0"], tiny.quants["Q4_K_M"])
        screen.cfg.mode, screen.cfg.max_tokens = "completion", 16
        await turn(pilot, screen, "Hi")

        def compact() -> None:
            text = screen_text(app)
            for side in ("a", "b"):
                pane = screen.query_one(f"#pane-{side}")
                meters = pane.query_one(".meters")
                shown = rendered(meters)
                assert "16 tokens" in shown and "KL(" in shown and _lines(meters) <= 2, shown
                assert meters.region.height <= 2 and not pane.query_one("Sparkline").display
                assert pane.query_one("VerticalScroll").region.height >= 7  # of the pane's 14 lines
                assert "> Hi" in rendered(pane.query_one(".body"))
            assert "> Hi" in text and "16 tokens · " in text and "KL(A||B)" in text and "KL(B||A)" in text

        await eventually(pilot, compact)
        await pilot.resize_terminal(160, 48)  # room again: the full figures and the sparkline

        def full() -> None:
            pane = screen.query_one("#pane-a")
            shown = rendered(pane.query_one(".meters"))
            assert "KL(A||B) on A's tokens: mean" in shown and "distinct-2" in shown
            assert pane.query_one("Sparkline").display

        await eventually(pilot, full)


async def test_a_resize_shows_the_current_turn(tiny, tmp_path):
    app = ab_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_ab(pilot, tiny.quants["Q8_0"], tiny.quants["Q4_K_M"])
        screen.cfg.mode, screen.cfg.max_tokens = "completion", 40
        for text in ("First", "Second", "Third", "Fourth"):
            await turn(pilot, screen, text)
        await pilot.resize_terminal(80, 24)

        def current() -> None:
            for side in ("a", "b"):
                scroll = screen.query_one(f"#pane-{side} VerticalScroll")
                assert scroll.scroll_y == scroll.max_scroll_y and scroll.max_scroll_y > 0
                body = rendered(screen.query_one(f"#pane-{side} .body"))
                assert "> Fourth" in body
            text = screen_text(app)
            assert text.count("> Fourth") == 2 and "40 tokens · " in text

        await eventually(pilot, current)
        await pilot.resize_terminal(100, 30)
        await eventually(pilot, current)
