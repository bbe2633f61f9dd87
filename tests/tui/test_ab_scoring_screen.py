"""The A/B screen while it scores a turn: its progress is on the info line, and Esc stops it, the
turn keeping both answers without scores (real tiny models, scoring held at a batch by a gate)."""

from __future__ import annotations

import threading

import pytest

from tests.core.test_ab_scoring import endless  # noqa: F401  (the module's fixture)
from tests.tui.pilot_help import ab_app, note_ids, notes, notes_since, open_ab, rendered, turn, until

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_scoring_shows_its_progress_and_esc_stops_it(endless, tmp_path, size):  # noqa: F811
    app = ab_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        screen = await open_ab(pilot, endless["Q8_0"], endless["Q4_K_M"])  # 150 tokens: several batches
        screen.cfg.mode, screen.cfg.max_tokens = "completion", 150
        session = screen.session
        real_score = session.score
        gate = threading.Event()
        held: list[tuple[int, int]] = []

        def score(turn, on_progress=None, cancel=None):
            def hold(done: int, total: int) -> None:
                on_progress(done, total)
                if 0 < done < total and not held:  # stays at its first batch until Esc was pressed
                    held.append((done, total))
                    gate.wait(20)

            real_score(turn, hold, cancel)

        session.score = score
        await pilot.press(*"One", "enter")
        await until(pilot, lambda: screen.phase == "scoring" and held)
        done, total = held[0]
        info = screen.query_one("#ab-info")
        said = f"scoring both answers… {done / total:.0%} · "
        await until(pilot, lambda: said in rendered(info))
        line = next(x.strip() for x in rendered(info).splitlines() if "scoring both answers" in x)
        assert line.endswith(" · Esc stops it · Enter queues a prompt")  # one line, also at 80 columns
        await pilot.press(*"Two", "enter")  # queued behind the turn
        await until(pilot, lambda: screen.queued == "Two")
        said = note_ids(app)
        await pilot.press("escape")
        await until(pilot, lambda: notes_since(app, said))
        assert notes(app)[-1] == "scoring stopped: this turn keeps both answers, without scores"
        said = note_ids(app)
        gate.set()
        await until(pilot, lambda: screen.phase == "ready" and notes_since(app, said))
        (t,) = session.turns  # the queued prompt is not sent: Esc stops what was to follow too
        assert t.scores_a is None and t.scores_b is None and t.a.token_ids and t.b.token_ids
        assert screen.query_one("#ab-prompt").value == "Two" and screen.queued is None
        assert notes(app)[-1] == "your queued prompt is back in the box: Enter sends it"
        assert screen.app.screen is screen  # Esc while scoring stops it; it does not leave the screen
        meters = screen.query_one("#pane-a").query_one(".meters")
        why = "not scored (/score)" if size[1] < 30 else "not scored: scoring was cancelled"  # compact
        await until(pilot, lambda: why in rendered(meters))
        assert ": mean" not in rendered(screen.query_one("#pane-a"))
        # The next turn is scored in full, its progress heard to the end.
        session.score = real_score
        await pilot.press("enter")
        await until(pilot, lambda: screen.phase == "ready" and len(session.turns) == 2, tries=1200)
        assert session.turns[1].scores_a is not None and screen.ab.scored is not None
        assert screen.ab.scored[0] == screen.ab.scored[1] > 0


async def test_a_model_against_itself_scores_zero_and_names_no_worst_tokens(tiny, tmp_path):
    twin = tmp_path / "twin-Q8_0.gguf"
    twin.write_bytes(tiny.quants["Q8_0"].read_bytes())
    app = ab_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_ab(pilot, tiny.quants["Q8_0"], twin)
        screen.cfg.mode, screen.cfg.max_tokens = "completion", 24
        await turn(pilot, screen, "Hello")
        for side in ("a", "b"):
            meters = screen.query_one(f"#pane-{side} .meters")
            await until(pilot, lambda meters=meters: ": mean" in rendered(meters))
            text = " ".join(rendered(meters).split())  # the meters wrap to the pane's width
            me, other = side.upper(), "B" if side == "a" else "A"
            assert f"KL({me}||{other}) on {me}'s tokens: mean 0.0000 · top-1 agreement 100.0%" in text
            assert "worst" not in text
