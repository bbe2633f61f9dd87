"""Pilot tests: pick two files in the Library, send a prompt, both panes fill, the divergence shows."""

from __future__ import annotations

import os
import shutil
import signal

import pytest

from quanttui.core.ab import SideResult
from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from quanttui.tui.screens.ab import ABScreen
from quanttui.tui.widgets.chat_pane import DIVERGENCE_MARK, answer_text, printable
from tests.core.test_ab_context import PRINTABLE, write_successor_model
from tests.core.test_ab_scoring import endless  # noqa: F401  (the module's fixture)
from tests.modelgen import quantize
from tests.tui.pilot_help import eventually, until
from tests.tui.test_library_screen import _loaded, rendered

pytestmark = pytest.mark.slow


async def _until(pilot, check, tries: int = 200) -> None:
    """Wait (up to tries × 50 ms) until `check()` is true."""
    await until(pilot, check, tries)


async def test_mark_two_files_send_a_prompt_see_both_and_the_divergence(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    # Models whose answers no CPU's kernels change: A counts up through PRINTABLE, B down.
    for label, chars in (("Q8_0", PRINTABLE), ("Q2_K", PRINTABLE[::-1])):
        src = write_successor_model(tmp_path / f"steps-{label}-F16.gguf", chars)
        quantize(src, lib / f"tiny-{label}.gguf", label)
    app = create_app([Root(lib, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        await pilot.press("down", "space", "down", "space")
        await _until(pilot, lambda: len(app.screen.marked) == 2)
        assert [p.rsplit("/", 1)[-1] for p in app.screen.marked] == ["tiny-Q8_0.gguf", "tiny-Q2_K.gguf"]

        def read_again(*a, **kw):
            raise AssertionError("a header the Library had read was read again")

        # The screen gets the Library's entries: their facts serve the defaults, the plan and /ctx.
        monkeypatch.setattr("quanttui.core.ab.context.inspect_file", read_again)
        monkeypatch.setattr("quanttui.core.ab.plan.inspect_file", read_again)
        await pilot.press("ctrl+b")
        await _until(pilot, lambda: isinstance(app.screen, ABScreen) and app.screen.is_mounted)
        screen = app.screen
        assert all(s.facts is not None for s in screen.sides.values())
        prompt = screen.query_one("#ab-prompt")
        await _until(pilot, lambda: not prompt.disabled)
        await pilot.press(*"/max 16", "enter")
        await _until(pilot, lambda: screen.cfg.max_tokens == 16)
        await pilot.press(*"/ctx 1024", "enter")
        await _until(pilot, lambda: screen.session is not None and not prompt.disabled)
        assert screen.session.engine.describe()["a"]["n_ctx"] == 1024
        await pilot.press(*"Hello", "enter")
        await _until(pilot, lambda: not screen.running and screen.session.turns)
        meters = [screen.query_one(f"#pane-{side} .meters") for side in ("a", "b")]
        await _until(pilot, lambda: all("diverges" in rendered(m) for m in meters))  # laid out again
        turn = screen.session.turns[-1]
        assert turn.first_divergence == 0  # A goes up from the prompt's last character, B down

        def both_panes() -> None:
            for side in ("a", "b"):
                pane = screen.query_one(f"#pane-{side}")
                body = rendered(pane.query_one(".body"))
                answer = printable(getattr(turn, side).text)
                assert "> Hello" in body and DIVERGENCE_MARK in body
                assert answer[:10].strip()[:5] in body.replace(DIVERGENCE_MARK, "")
                meters = rendered(pane.query_one(".meters"))
                assert (
                    "16 tokens" in meters
                    and f"KL({side.upper()}||{'AB'[side == 'a']}) on {side.upper()}'s tokens: mean" in meters
                    and "diverges from the other side at token 0" in meters
                )
                assert len(pane.query_one("Sparkline").data) == 16

        await eventually(pilot, both_panes)
        saved = list((tmp_path / "data" / "sessions").glob("ab-*.json"))
        assert len(saved) == 1 and '"prompt": "Hello"' in saved[0].read_text()
        await pilot.press("escape")  # idle: back to the Library
        await _until(pilot, lambda: not isinstance(app.screen, ABScreen))


async def test_a_side_that_fails_to_load_shows_its_error_in_place(endless, tmp_path):  # noqa: F811
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 100)
    app = create_app([Root(tmp_path, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        screen = ABScreen(str(endless["Q8_0"]), str(bad))
        await app.push_screen(screen)
        prompt = screen.query_one("#ab-prompt")
        await _until(pilot, lambda: not prompt.disabled)
        body_b = screen.query_one("#pane-b").query_one(".body")
        await _until(pilot, lambda: "could not load broken.gguf" in rendered(body_b))
        screen.cfg.max_tokens = 8
        await pilot.press(*"Hi", "enter")
        await _until(pilot, lambda: not screen.running and screen.session.turns)
        assert len(screen.session.turns[-1].a.token_ids) == 8
        meters_a = screen.query_one("#pane-a").query_one(".meters")
        await _until(pilot, lambda: "not scored: B failed" in rendered(meters_a))
        meters = rendered(meters_a)
        assert "8 tokens" in meters and "not scored: B failed" in meters
        assert "diverges" not in meters and "identical" not in meters


def _library_app(tiny, folder):
    shutil.copyfile(tiny.quants["Q8_0"], folder / "tiny-Q8_0.gguf")
    return create_app([Root(folder, "folder", False)], hardware("0", "32GiB"))


async def _open_ab(pilot, models, *, ready: bool = True) -> ABScreen:
    """The A/B screen on Q8_0 and Q4_K_M, with both models loaded unless `ready` is False."""
    await _loaded(pilot)
    screen = ABScreen(str(models["Q8_0"]), str(models["Q4_K_M"]))
    await pilot.app.push_screen(screen)
    if ready:
        prompt = screen.query_one("#ab-prompt")
        await _until(pilot, lambda: not prompt.disabled)
    return screen


async def test_a_crashed_model_process_is_reported_and_the_app_goes_on(tiny, endless, tmp_path):  # noqa: F811
    app = _library_app(tiny, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await _open_ab(pilot, endless)
        screen.cfg.max_tokens = 8
        await pilot.press(*"Hi", "enter")
        await _until(pilot, lambda: not screen.running and screen.session.turns)
        os.kill(screen.session.engine.pid, signal.SIGABRT)  # between turns, as a driver's abort would
        await pilot.press(*"Again", "enter")
        await _until(pilot, lambda: not screen.running and len(screen.session.turns) == 2)

        def crash_said() -> None:
            info = rendered(screen.query_one("#ab-info"))
            assert "the model process crashed (killed by SIGABRT)" in info
            for side in ("a", "b"):
                pane = screen.query_one(f"#pane-{side}")
                past, body = rendered(pane.query_one(".past")), rendered(pane.query_one(".body"))
                assert "> Hi" in past and "> Again" in body and "killed by SIGABRT" in body

        await eventually(pilot, crash_said)
        await pilot.press(*"Third", "enter")
        await _until(pilot, lambda: not screen.running and len(screen.session.turns) == 3)
        turn = screen.session.turns[-1]
        assert len(turn.a.token_ids) == 8 and len(turn.b.token_ids) == 8
        assert "crashed" not in rendered(screen.query_one("#ab-info"))
        assert isinstance(app.screen, ABScreen)


async def test_leaving_while_the_models_load_frees_them(tiny, endless, tmp_path):  # noqa: F811
    app = _library_app(tiny, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await _open_ab(pilot, endless, ready=False)
        await pilot.press("escape")  # idle (nothing asked yet): back to the Library at once
        await _until(pilot, lambda: not isinstance(app.screen, ABScreen))
        await _until(pilot, lambda: screen.ab.pending is not None and screen.ab.pending.engine.pid is None)


async def test_earlier_turns_stay_above_and_esc_keeps_what_was_said(tiny, endless, tmp_path):  # noqa: F811
    app = _library_app(tiny, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await _open_ab(pilot, endless)
        screen.cfg.mode, screen.cfg.max_tokens = "completion", 8
        for n, text in enumerate(("One", "Two"), 1):
            await pilot.press(*text, "enter")
            await _until(pilot, lambda n=n: not screen.running and len(screen.session.turns) == n)
        pane = screen.query_one("#pane-a")
        await _until(pilot, lambda: "> One" in rendered(pane.query_one(".past")))  # laid out again
        past, body = rendered(pane.query_one(".past")), rendered(pane.query_one(".body"))
        assert "> One" in past and "> Two" not in past and "> Two" in body
        screen.cfg.max_tokens = 100_000  # runs until its context is full: long enough to stop
        await pilot.press(*"Three", "enter")
        await _until(pilot, lambda: len(screen.ab.latest("a")) > 10)
        await pilot.press("escape")
        await _until(pilot, lambda: not screen.running)

        def kept() -> None:  # the partial answers stay, marked stopped, with their figures
            past, body = rendered(pane.query_one(".past")), rendered(pane.query_one(".body"))
            assert past.count("> One") == 1 and past.count("> Two") == 1 and "> Three" in body
            meters = rendered(pane.query_one(".meters"))
            assert "stop: stopped (Esc)" in meters and "not scored: the answers were stopped" in meters

        await eventually(pilot, kept)
        assert len(screen.session.turns) == 3 and screen.session.turns[-1].stopped
        assert isinstance(app.screen, ABScreen)


def test_the_tokens_the_other_model_disagreed_with_most_are_marked_in_the_text():
    r = SideResult("a", "m.gguf", text="The cat sat", token_ids=[1, 2, 3], char_ends=[3, 7, 11])
    colours = {"loop": "yellow", "tint": "grey23", "mark": "red"}
    text = answer_text(r, None, None, colours, worst=[1, 2])
    marked = sorted(
        text.plain[s.start : s.end] for s in text.spans if "reverse" in str(s.style) and "red" in str(s.style)
    )
    assert marked == [" cat", " sat"]
    assert not [s for s in answer_text(r, None, None, colours).spans if "reverse" in str(s.style)]
