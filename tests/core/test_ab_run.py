"""ABRun, the A/B screen's state without Textual: phases, the prompt queue, cancels, streaming and
scoring, driven directly (no Pilot)."""

from __future__ import annotations

import threading

from quanttui.core.ab import Engine, GenConfig
from quanttui.core.ab.context import SideFacts, side_facts
from quanttui.core.ab.run import ABRun, Finished, Phase

PROMPT = "The capital of France is"
TURN = object()  # a turn that ended (what it holds does not matter to the run's state)


def _idle_run() -> ABRun:
    sides = {
        "a": SideFacts("a.gguf", 2048, True, "/x/a.gguf"),
        "b": SideFacts("b.gguf", 512, False, "/x/b.gguf"),
    }
    return ABRun(sides)


def test_defaults_come_from_both_sides_and_the_phase_is_an_enum_that_reads_as_text():
    run = _idle_run()
    assert run.cfg.n_ctx == 512 and run.cfg.mode == "completion"  # B was trained for less, has no template
    assert run.cfg.stream_every > 0  # a screen draws a few frames a second: the worker streams no faster
    assert run.phase is Phase.LOADING and run.phase == "loading" and str(Phase.READY) == "ready"
    assert run.paths == {"a": "/x/a.gguf", "b": "/x/b.gguf"}
    given = GenConfig(max_tokens=7, n_ctx=300)
    mine = ABRun(run.sides, given)
    assert mine.cfg.max_tokens == 7 and mine.cfg is not given  # the caller's settings are not changed


def test_prompts_wait_while_loading_checking_answering_or_scoring():
    run = _idle_run()
    assert run.send("one") == run.send("two") and run.queued == "two"  # the last one typed waits
    assert run.send("x").queued_while is Phase.LOADING
    run.phase = Phase.READY
    run.queued = None
    assert run.send("now").now
    run.begin_check()
    assert not run.send("later").now and run.context_refused() == "later" and run.phase is Phase.READY
    assert run.begin_answer("q") and run.last_prompt == "q" and run.running
    assert not run.send("next").now and run.send("next").queued_while is Phase.ANSWERING
    assert run.scoring() and run.phase is Phase.SCORING and run.scored is None
    assert run.progress(3, 10) and run.scored == (3, 10)
    then = run.finished(Finished(TURN, False))
    assert run.phase is Phase.READY and then.send == "next" and then.restore is None and run.queued is None
    assert not run.progress(4, 10)  # no longer scoring: nothing to show


def test_a_cancel_puts_the_waiting_prompt_back_and_each_answer_gets_fresh_events():
    run = _idle_run()
    run.phase = Phase.READY
    assert run.begin_answer("q")
    first_cancel = run.cancel
    run.send("waiting")
    assert run.stop() is Phase.ANSWERING and first_cancel.is_set()
    then = run.finished(Finished(None, True))
    assert then.cancelled and then.restore == "waiting" and then.send is None
    assert run.begin_answer("again") and run.cancel is not first_cancel and not run.cancel.is_set()
    run.scoring()
    run.send("after")
    assert run.stop() is Phase.SCORING  # Esc while scoring: the turn stays, what was to follow does not
    then = run.finished(Finished(TURN, False))
    assert not then.cancelled and then.restore == "after" and then.send is None
    assert run.stop() is None and run.abort.is_set()  # idle: the caller leaves, a load stops


def test_streaming_keeps_only_the_newest_text_per_side_and_says_who_loops():
    run = _idle_run()
    run.on_token("a", [1, 2], "ab")  # not answering: dropped
    assert run.take_live() == {} and run.latest("a") == ()
    run.phase = Phase.READY
    run.begin_answer("q")
    generation = run.generation
    run.on_token("a", [1], "a")
    run.on_token("a", [1, 2], "ab")
    run.on_token("b", [5] * 40, "x" * 40)
    live = run.take_live()
    assert live["a"].text == "ab" and live["a"].ids == (1, 2) and len(live["b"].ids) == 40
    assert run.take_live() == {}  # taken
    assert run.looping() == ["b"]
    assert run.stop_loops_now() == ["b"] and run.stop_loops.is_set()
    run.finished(Finished(None, False))
    assert run.generation > generation  # frames of the finished answer stop drawing


def test_stop_on_loop_toggles_when_idle():
    run = _idle_run()
    assert run.toggle_stop_on_loop() and run.cfg.stop_on_loop
    assert not run.toggle_stop_on_loop()


def test_a_real_pair_loads_answers_scores_and_takes_a_new_context(tiny):
    sides = {"a": side_facts(str(tiny.quants["Q8_0"])), "b": side_facts(str(tiny.quants["Q4_K_M"]))}
    run = ABRun(sides, GenConfig(max_tokens=6, n_ctx=512, mode="completion"), isolate=False)
    session = run.load()
    assert session is not None and run.loaded(session) is None and run.phase is Phase.READY
    assert isinstance(session.engine, Engine)
    assert run.begin_answer(PROMPT)
    heard: list[int] = []
    progress: list[tuple[int, int]] = []
    done = run.answer(PROMPT, on_scoring=heard.append, on_progress=lambda d, t: progress.append((d, t)))
    assert done is not None and not done.cancelled and done.turn is not None
    assert heard == [len(done.turn.a.token_ids) + len(done.turn.b.token_ids)] and progress
    assert done.turn.scores_a is not None and run.latest("a") == tuple(done.turn.a.token_ids)
    run.finished(done)
    assert run.can_regenerate()
    assert run.check("256") == 256
    assert run.context_set(256) and run.session is None and run.phase is Phase.LOADING
    assert run.cfg.n_ctx == 256 and run.cfg.max_tokens == 6
    again = run.load()
    assert again is not None
    run.loaded(again)
    assert again.engine.describe()["a"]["n_ctx"] == 256
    run.close()
    assert run.gone and run.cancel.is_set()


def test_closing_while_loading_frees_the_models_when_the_load_ends(tiny):
    sides = {"a": side_facts(str(tiny.quants["Q8_0"])), "b": side_facts(str(tiny.quants["Q4_K_M"]))}
    run = ABRun(sides, GenConfig(max_tokens=4, n_ctx=256), isolate=True)
    box: dict[str, object] = {}
    t = threading.Thread(target=lambda: box.update(s=run.load()))
    t.start()
    run.close()  # as the screen does when it is left mid-load
    t.join(60)
    assert box["s"] is None and run.pending is not None and run.pending.engine.pid is None
