"""The A/B screen's rough edges (issue 11, items 1, 3, 5 and 8), each attacked through the screen
with real tiny models: bounds on /ctx and /max, a load stopped by Esc, completion prompts that stand
alone, /clear, ctrl+e, marks of earlier turns, cancels, prompts sent while a turn is busy, ctrl+l,
and commands that say exactly what was wrong."""

from __future__ import annotations

import psutil
import pytest

from quanttui.tui.screens import ab_commands as cmd
from quanttui.tui.screens.ab_commands import CommandRefused, SideFacts
from quanttui.tui.screens.help import HelpScreen
from tests.core.test_ab_context import write_successor_model
from tests.core.test_ab_scoring import endless  # noqa: F401  (the module's fixture)
from tests.modelgen import write_model_with_template, write_tiny_model
from tests.tui.pilot_help import (
    ab_app,
    eventually,
    note_ids,
    notes,
    notes_since,
    open_ab,
    rendered,
    turn,
    until,
)

pytestmark = pytest.mark.slow


def _workers() -> list[psutil.Process]:
    """This process's A/B model workers still alive."""
    alive = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    return [p for p in alive if "quanttui.core.ab.worker" in " ".join(p.cmdline())]


async def test_ctx_is_bounded_by_training_and_by_type_and_a_refusal_reloads_nothing(tiny, tmp_path):
    app = ab_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_ab(pilot, tiny.quants["Q8_0"], tiny.quants["Q4_K_M"])
        pid = screen.session.engine.pid
        prompt = screen.query_one("#ab-prompt")
        for arg, why in (
            ("999999999", "out of range"),
            ("4096", "above the context A was trained for (2,048 tokens"),
            ("abc", "must be a whole number"),
            ("-5", "a context of -5 tokens is out of range"),
        ):
            before = note_ids(app)
            await pilot.press(*f"/ctx {arg}", "enter")
            await until(pilot, lambda before=before: notes_since(app, before) and screen.phase == "ready")
            said = notes(app)[-1]
            assert said.startswith("/ctx refused:") and why in said
            assert screen.cfg.n_ctx == 2048 and screen.session.engine.pid == pid
        screen.cfg.max_tokens = 6
        # Within training and memory: both load again. A prompt sent meanwhile waits for them.
        await pilot.press(*"/ctx 1024", "enter", *"Hi", "enter")
        await until(pilot, lambda: "queued: it is sent when both models have loaded" in notes(app))
        await until(pilot, lambda: screen.session is not None and screen.session.engine.pid != pid)
        await until(pilot, lambda: screen.phase == "ready" and len(screen.session.turns) == 1)
        assert screen.session.turns[0].prompt == "Hi" and screen.focused is prompt
        assert screen.session.engine.describe()["a"]["n_ctx"] == 1024
        said = "context set to 1,024: the next prompt starts afresh"
        for side in ("a", "b"):  # the conversation is gone with the old models, and the pane says so
            past = screen.query_one(f"#pane-{side} .past")
            await until(pilot, lambda past=past: said in " ".join(rendered(past).split()))  # lines joined


async def test_esc_while_loading_stops_the_load_and_leaves_no_worker(tiny, tmp_path):
    app = ab_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_ab(pilot, tiny.quants["Q8_0"], tiny.quants["Q4_K_M"], ready=False)
        assert screen.phase == "loading"
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is not screen)
        assert screen.ab.abort.is_set()
        await until(pilot, lambda: screen.ab.pending is not None and screen.ab.pending.engine.pid is None)
        await until(pilot, lambda: not _workers())


async def test_completion_prompts_stand_alone_chat_shows_what_each_side_carries_and_clear(tiny, tmp_path):
    app = ab_app(tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_ab(pilot, tiny.quants["Q8_0"], tiny.quants["Q4_K_M"])
        assert screen.cfg.mode == "chat"  # both tiny models have a chat template
        screen.cfg.max_tokens = 8
        notes_ = [screen.query_one(f"#pane-{s} .note") for s in ("a", "b")]
        await turn(pilot, screen, "One")
        carried = screen.session.carried()
        assert carried["a"] > 0 and carried["b"] > 0

        def carries() -> None:
            for side, note in zip("ab", notes_, strict=True):
                assert f"carries {carried[side]:,} of 2,048 tokens" in rendered(note)

        await eventually(pilot, carries)
        await turn(pilot, screen, "Two")
        assert screen.session.carried()["a"] > carried["a"]
        await pilot.press(*"/clear", "enter")
        await until(pilot, lambda: screen.session.carried()["a"] == 0)
        assert screen.session.carried() == {"a": 0, "b": 0}
        await until(pilot, lambda: all("carries 0 of 2,048 tokens" in rendered(n) for n in notes_))
        await until(pilot, lambda: "history cleared" in rendered(screen.query_one("#pane-a .past")))
        await turn(pilot, screen, "Three")  # asked without the conversation before the clear
        assert screen.session.carried()["a"] < carried["a"] + 1_000
        assert screen.session.messages("a", "x")[0]["content"] == "Three"
        # Completion mode: the same input on both sides, each prompt on its own.
        await pilot.press(*"/mode completion", "enter")
        await until(pilot, lambda: screen.cfg.mode == "completion")
        await until(pilot, lambda: all("each prompt stands alone" in rendered(n) for n in notes_))
        await turn(pilot, screen, "Four")
        await turn(pilot, screen, "Five")
        last = screen.session.turns[-1]
        assert last.a.prompt_ids == last.b.prompt_ids  # same tokenizer, same input
        assert screen.session.messages("a", "Six") == [{"role": "user", "content": "Six"}]


async def test_ctrl_e_reaches_edit_last_while_the_prompt_has_focus(tiny, tmp_path):
    app = ab_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_ab(pilot, tiny.quants["Q8_0"], tiny.quants["Q4_K_M"])
        screen.cfg.max_tokens = 4
        await turn(pilot, screen, "Hello there")
        prompt = screen.query_one("#ab-prompt")
        await until(pilot, lambda: prompt.has_focus)
        assert prompt.value == ""
        await pilot.press("ctrl+e")
        await until(pilot, lambda: prompt.value == "Hello there")
        assert prompt.has_focus


async def test_marks_of_earlier_turns_stay_and_a_stopped_turn_is_scored_when_asked(endless, tmp_path):  # noqa: F811
    app = ab_app(tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_ab(pilot, endless["Q8_0"], endless["Q4_K_M"])  # answers as long as asked
        screen.cfg.mode, screen.cfg.max_tokens = "completion", 16
        pane = screen.query_one("#pane-a")
        await turn(pilot, screen, "One")
        await until(pilot, lambda: pane.past)
        assert any("reverse" in str(s.style) for s in pane.past[0].spans)  # the worst tokens, marked
        await turn(pilot, screen, "Two")

        def two_turns() -> None:
            first = pane.past[0]
            assert "One" in first.plain and any("reverse" in str(s.style) for s in first.spans)
            assert len(pane.query_one("Sparkline").data) == 16

        await eventually(pilot, two_turns)
        screen.cfg.max_tokens = 100_000  # runs until its context is full: long enough to stop
        await pilot.press(*"Three", "enter")
        await until(pilot, lambda: len(screen.ab.latest("a")) > 20)
        assert screen.phase == "answering"
        await pilot.press("escape")
        await until(pilot, lambda: screen.phase == "ready")
        assert any(n.startswith("stopped: the answers so far are kept") for n in notes(app))
        stopped = screen.session.turns[-1]
        assert len(screen.session.turns) == 3 and stopped.stopped and stopped.scores_a is None
        n_a = len(stopped.a.token_ids)
        meters = pane.query_one(".meters")
        shown = f"{n_a} tokens"
        await until(pilot, lambda: shown in rendered(meters) and "stopped (Esc)" in rendered(meters))
        assert pane.query_one("Sparkline").data == []  # not scored yet
        await pilot.press(*"/score", "enter")  # scored when asked, in place
        await until(pilot, lambda: "KL(A||B) on A's tokens: mean" in rendered(meters), tries=1200)
        assert stopped.scores_a is not None and len(stopped.scores_a.kld) == n_a
        assert len(pane.query_one("Sparkline").data) == n_a
        assert sum("> Three" in p.plain for p in pane.past) == 1  # drawn again, not twice
        await pilot.press(*"/score", "enter")
        await until(pilot, lambda: any("scored already" in n for n in notes(app)))


async def test_a_prompt_sent_while_busy_is_queued_and_scoring_is_said(tiny, tmp_path):
    looper = write_tiny_model(tmp_path / "looper-F16.gguf", output_scale=0.0)  # never ends early (no EOS)
    app = ab_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_ab(pilot, looper, tiny.quants["Q4_K_M"])
        screen.cfg.mode, screen.cfg.max_tokens = "completion", 100_000  # until its context is full
        phases: list[str] = []
        set_phase = screen.ab.set_phase
        screen.ab.set_phase = lambda p: (phases.append(p), set_phase(p))[1]
        await pilot.press(*"One", "enter")
        await until(pilot, lambda: len(screen.ab.latest("a")) > 20)
        await pilot.press(*"Two", "enter")
        await until(pilot, lambda: screen.queued == "Two")
        assert notes(app)[-1] == "queued: it is sent when this turn is done"
        info = screen.query_one("#ab-info")
        await until(pilot, lambda: "queued, sent when this turn is done: Two" in rendered(info))
        screen.cfg.max_tokens = 8  # for "Two": the answer under way keeps the settings it began with
        await until(pilot, lambda: screen.phase == "ready" and len(screen.session.turns) == 2, tries=2400)
        assert [t.prompt for t in screen.session.turns] == ["One", "Two"]
        assert phases[:3] == ["answering", "scoring", "ready"]
        assert screen.session.turns[0].scores_a is not None and screen.queued is None
        # Cancelled with a prompt waiting: the waiting prompt goes back into the box, not lost.
        screen.cfg.max_tokens = 100_000
        stops = sum(n.startswith(("cancelled", "stopped")) for n in notes(app))
        await pilot.press(*"Three", "enter", *"Four", "enter", "escape")
        await until(pilot, lambda: sum(n.startswith(("cancelled", "stopped")) for n in notes(app)) > stops)
        await until(pilot, lambda: screen.phase == "ready")
        assert screen.query_one("#ab-prompt").value == "Four"
        assert [t.prompt for t in screen.session.turns] in (["One", "Two"], ["One", "Two", "Three"])


async def test_ctrl_l_stops_a_looping_side_now_and_says_so(tmp_path):
    looper = write_tiny_model(tmp_path / "looper-F16.gguf", output_scale=0.0)  # repeats one token
    steady = write_successor_model(tmp_path / "steady-F16.gguf", n_layer=4)  # never loops nor ends early
    app = ab_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_ab(pilot, looper, steady)
        await pilot.press("ctrl+l")  # idle: a setting for the next prompts, said as such
        await until(pilot, lambda: screen.cfg.stop_on_loop)
        assert "from the next prompt" in notes(app)[-1]
        await pilot.press("ctrl+l")
        await until(pilot, lambda: not screen.cfg.stop_on_loop)
        screen.cfg.mode, screen.cfg.max_tokens = "completion", 1500
        await pilot.press(*"One", "enter")
        await until(pilot, lambda: len(screen.ab.latest("a")) > 40)
        assert screen.looping() == ["a"]
        said = note_ids(app)
        await pilot.press("ctrl+l")  # answering: A stops now, B goes on, the turn is kept
        await until(pilot, lambda: notes_since(app, said))
        assert notes(app)[-1] == "stopping A now: it was looping"
        await until(pilot, lambda: screen.phase == "ready" and len(screen.session.turns) == 1)
        done = screen.session.turns[-1]
        assert done.a.stop_reason == "loop" and len(done.a.token_ids) < 1500
        assert done.b.stop_reason == "max_tokens" and len(done.b.token_ids) == 1500  # B ran its course
        assert not screen.cfg.stop_on_loop  # the next prompt is not changed behind the user's back


async def test_commands_say_what_was_wrong(tiny, tmp_path):
    plain = write_model_with_template(tmp_path / "plain.gguf", [])  # no chat template
    app = ab_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_ab(pilot, tiny.quants["Q8_0"], plain)
        assert screen.cfg.mode == "completion"  # B cannot chat
        for typed, said in (
            ("/max abc", "/max needs a whole number between 1 and 2,048 (the context) (got 'abc')"),
            ("/max 0", "/max needs a whole number between 1 and 2,048"),
            ("/max 5000", "/max needs a whole number between 1 and 2,048"),
            ("/foo", "unknown command /foo; commands: /system TEXT, /max N, /ctx N"),
            ("/mode banana", "/mode needs chat or completion"),
            ("/ctx", "/ctx needs a number of tokens"),
        ):
            before = note_ids(app)
            await pilot.press(*typed, "enter")
            await until(pilot, lambda before=before: notes_since(app, before))
            assert notes(app)[-1].startswith(said), notes(app)[-1]
        assert screen.cfg.max_tokens == 256 and screen.cfg.mode == "completion"
        await pilot.press(*"/mode chat", "enter")
        await until(pilot, lambda: screen.cfg.mode == "chat")
        warned = "mode: chat; B (plain.gguf) has no chat template: it gets each prompt as plain text"
        assert notes(app)[-1] == warned
        await pilot.press(*"/max 16", "enter")
        await until(pilot, lambda: screen.cfg.max_tokens == 16)
        assert notes(app)[-1] == "max tokens: 16"


def test_chat_mode_is_refused_when_neither_side_has_a_template():
    sides = {"a": SideFacts("a.gguf", 2048, False), "b": SideFacts("b.gguf", 4096, False)}
    with pytest.raises(CommandRefused, match="neither model has a chat template"):
        cmd.mode("chat", sides)
    assert cmd.mode("completion", sides) == ("completion", None)
    assert cmd.default_ctx(sides) == 2048 and cmd.default_mode(sides) == "completion"
    assert cmd.default_ctx({"a": SideFacts("a", 512, True), "b": SideFacts("b", None, None)}) == 512


async def test_help_lists_the_slash_commands_first(tiny, tmp_path):
    app = ab_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_ab(pilot, tiny.quants["Q8_0"], tiny.quants["Q4_K_M"])
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = app.screen.query_one("#help-keys")
        await until(pilot, lambda: "/ctx N" in rendered(keys))
        text = " ".join(rendered(keys).split())
        for name, what in cmd.DESCRIBED:
            assert name in text and " ".join(what.split()[:3]) in text
        assert text.index("/system TEXT") < text.index("Stop/back")  # before the keys
