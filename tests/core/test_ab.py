"""A/B engine on the tiny real models, checked against llama-cpp-python used directly."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import threading

import numpy as np
import pytest

from quanttui.cli.ab import print_turn
from quanttui.cli.main import main
from quanttui.core import llama
from quanttui.core.ab import ABSession, GenConfig, Plan, plan_pair
from quanttui.core.ab.metrics import distinct_n, first_divergence, longest_loop, loop_at_end, loops
from quanttui.core.ab.process import ProcessEngine, worker_log
from quanttui.core.modelfile import inspect_file
from tests.realmodel import real  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.slow

TOGETHER = Plan(False, {"a": 0, "b": 0}, "")
PROMPT = "Tell me about quantization."


def session(a, b, plan=TOGETHER, isolate=True, **cfg) -> ABSession:
    cfg = GenConfig(**{"max_tokens": 24, "n_ctx": 512, **cfg})
    return ABSession(str(a), str(b), cfg, plan, isolate=isolate)


def raw_llama(path, logits_all=False):
    return llama.load(path, n_ctx=512, logits_all=logits_all)


def greedy_reference(path, prompt: str, n: int) -> list[int]:
    """Greedy decoding by argmax over llama.cpp's logits, one token at a time."""
    llm = raw_llama(path, logits_all=True)
    tokens = llm.tokenize(prompt.encode(), add_bos=True)
    llm.eval(tokens)
    out: list[int] = []
    while len(out) < n:
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if nxt == llm.token_eos():
            break
        out.append(nxt)
        llm.eval([nxt])
    llm.close()
    return out


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def test_rerun_is_token_for_token_identical(tiny):
    s = session(tiny.quants["Q8_0"], tiny.quants["Q4_K_M"])
    first = s.ask(PROMPT)
    again = s.regenerate()
    assert first.a.token_ids and first.b.token_ids
    assert (again.a.token_ids, again.b.token_ids) == (first.a.token_ids, first.b.token_ids)
    assert len(s.turns) == 1 and len(s.history["a"]) == 2
    s.close()


def test_a_against_itself_shows_no_damage(tiny):
    s = session(tiny.quants["Q8_0"], tiny.quants["Q8_0"])
    t = s.ask(PROMPT)
    assert t.first_divergence is None and t.divergence_basis == "tokens"
    assert t.scores_a.kld_mean == 0.0 and t.scores_a.top1_agreement == 1.0
    assert t.scores_b.kld_mean == 0.0
    s.close()


def test_divergence_matches_independent_greedy_decoding(tiny):
    s = session(tiny.quants["Q8_0"], tiny.quants["Q2_K"], mode="completion", max_tokens=20)
    t = s.ask(PROMPT)
    ref_a = greedy_reference(tiny.quants["Q8_0"], PROMPT, 20)
    ref_b = greedy_reference(tiny.quants["Q2_K"], PROMPT, 20)
    assert t.a.token_ids == ref_a and t.b.token_ids == ref_b
    assert t.first_divergence == first_divergence(ref_a, ref_b)
    s.close()


def test_kld_and_top1_equal_a_direct_numpy_computation(tiny):
    s = session(tiny.quants["Q8_0"], tiny.quants["Q4_K_M"], mode="completion", max_tokens=24)
    t = s.ask(PROMPT)
    s.close()
    seq, start = t.a.prompt_ids + t.a.token_ids, len(t.a.prompt_ids)
    rows = {}
    for name, path in (("a", tiny.quants["Q8_0"]), ("b", tiny.quants["Q4_K_M"])):
        llm = raw_llama(path, logits_all=True)
        llm.eval(seq)
        rows[name] = log_softmax(llm.scores[start - 1 : len(seq) - 1])
        llm.close()
    kl = (np.exp(rows["a"]) * (rows["a"] - rows["b"])).sum(axis=1)
    top1 = (rows["a"].argmax(axis=1) == rows["b"].argmax(axis=1)).mean()
    assert len(t.scores_a.kld) == len(t.a.token_ids)
    assert t.scores_a.kld_mean == pytest.approx(kl.mean(), abs=1e-4)
    assert np.allclose(t.scores_a.kld, kl, atol=1e-4)
    assert t.scores_a.top1_agreement == pytest.approx(top1, abs=1e-4)
    assert t.scores_a.kld_mean > 0


def test_sequential_mode_gives_the_same_answers_and_scores(tiny):
    together = session(tiny.quants["Q8_0"], tiny.quants["Q4_K_M"])
    one_by_one = session(tiny.quants["Q8_0"], tiny.quants["Q4_K_M"], plan=Plan(True, {"a": 0, "b": 0}, "x"))
    t1, t2 = together.ask(PROMPT), one_by_one.ask(PROMPT)
    assert (t1.a.token_ids, t1.b.token_ids) == (t2.a.token_ids, t2.b.token_ids)
    assert t2.scores_a.kld_mean == pytest.approx(t1.scores_a.kld_mean, abs=1e-4)
    assert t2.scores_b.top1_agreement == pytest.approx(t1.scores_b.top1_agreement, abs=1e-4)
    assert one_by_one.engine.loaded() == ["a"]  # B was unloaded once A's turn came for scoring
    together.close()
    one_by_one.close()


def test_a_model_that_fails_to_load_leaves_the_other_answering(tiny, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(tiny.quants["Q8_0"].read_bytes()[:4000])
    s = session(tiny.quants["Q8_0"], bad)
    t = s.ask(PROMPT)
    assert t.b.stop_reason == "error" and "could not load broken.gguf" in t.b.error
    assert t.a.token_ids and t.a.stop_reason in ("max_tokens", "eos")
    assert t.scores_a is None and t.unscored == "B failed"
    assert t.first_divergence is None and t.divergence_basis is None  # not "diverges at 0", not "identical"
    assert "(not compared); mean KLD n/a; top-1 agreement n/a; not scored: B failed" in s.to_markdown()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_turn(t)
    assert "--- not compared: B failed" in out.getvalue() and "identical" not in out.getvalue()
    s.close()


def test_models_with_different_tokenizers_are_compared_as_text_and_say_why_unscored(tiny, real):  # noqa: F811
    s = session(tiny.quants["Q8_0"], real.quants["Q8_0"], max_tokens=6, mode="completion")
    t = s.ask(PROMPT)
    s.close()
    assert t.divergence_basis == "text" and t.scores_a is None and t.scores_b is None
    assert t.unscored == "the models' tokenizers differ (KL divergence needs the same tokens)"
    assert t.to_dict()["unscored"] == t.unscored


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "worker"])
def test_cancel_stops_both_and_models_stay_usable(tiny, isolate):
    """In-process the cancel lands within a token. Through the worker it crosses a socket, and the
    tiny models make a token every ~0.7 ms, so a few more may come; both must still stop."""
    s = session(
        tiny.quants["Q8_0"], tiny.quants["Q4_K_M"], max_tokens=200, mode="completion", isolate=isolate
    )
    cancel = threading.Event()

    def on_token(side, ids, text):
        if len(ids) >= 3:
            cancel.set()

    t = s.ask(PROMPT, on_token, cancel)
    assert (t.a.stop_reason, t.b.stop_reason) == ("cancelled", "cancelled")
    limit = 4 if not isolate else 40
    assert len(t.a.token_ids) <= limit and len(t.b.token_ids) <= limit
    assert s.turns == [] and s.history == {"a": [], "b": []}  # a cancelled turn is not kept
    fresh = session(tiny.quants["Q8_0"], tiny.quants["Q4_K_M"], max_tokens=24, mode="completion")
    s.cfg.max_tokens = 24
    assert s.ask(PROMPT).a.token_ids == fresh.ask(PROMPT).a.token_ids
    s.close()
    fresh.close()


def test_multi_turn_keeps_each_sides_own_history(tiny):
    s = session(tiny.quants["Q8_0"], tiny.quants["Q2_K"], system="Be brief.")
    s.ask("First question")
    s.ask("Second question")
    for side in ("a", "b"):
        roles = [m["role"] for m in s.messages(side, "third")]
        assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert s.history["a"][1]["content"] == s.turns[0].a.text
    assert s.history["b"][1]["content"] == s.turns[0].b.text
    js, md = s.save()
    saved = json.loads(js.read_text())
    assert len(saved["turns"]) == 2 and saved["turns"][1]["prompt"] == "Second question"
    assert "## Turn 2" in md.read_text()
    s.close()


def test_loop_and_variety_metrics():
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 9, 3]) == 1
    assert first_divergence([1, 2], [1, 2, 3]) == 2
    seq = [5, 6] + [1, 2, 3] * 4 + [9]
    (lp,) = loops(seq)
    assert (lp.start, lp.end, lp.period) == (2, 14, 3)
    assert longest_loop(seq) == 12
    assert longest_loop([7] * 6) == 6 and longest_loop([7] * 5) == 0
    assert longest_loop([1, 2, 1, 2]) == 0  # two repeats are not yet a loop
    assert loop_at_end([4] * 40) and not loop_at_end(list(range(40)))
    assert distinct_n([1, 1, 2, 2], 1) == 0.5 and distinct_n([1, 2, 1, 2], 2) == pytest.approx(2 / 3)


def test_ab_cli_json_and_suite(tiny, tmp_path, capsys):
    a, b = str(tiny.quants["Q8_0"]), str(tiny.quants["Q2_K"])
    assert main(["ab", a, b, "--prompt", PROMPT, "--max-tokens", "12", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for side in ("a", "b"):
        assert {
            "model",
            "text",
            "token_ids",
            "tokens_per_second",
            "stop_reason",
            "longest_loop",
            "distinct_1",
            "distinct_2",
        } <= set(d[side])
    assert d["a"]["model"] == a and len(d["a"]["token_ids"]) <= 12
    assert "first_divergence" in d and d["kld_mean"] > 0 and 0 <= d["top1_agreement"] <= 1
    suite = tmp_path / "suite.jsonl"
    suite.write_text('{"prompt": "one"}\n{"prompt": "two"}\n')
    assert main(["ab", a, b, "--suite", str(suite), "--max-tokens", "8", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [r["prompt"] for r in d["table"]] == ["one", "two"] and len(d["prompts"]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert main(["ab", a, b, "--suite", str(bad)]) == 1
    assert "bad.jsonl:1: not a JSON object" in capsys.readouterr().err


def test_a_crash_mid_answer_is_reported_and_the_next_prompt_gets_a_fresh_worker(tiny, capfd):
    """The OOM killer or a llama.cpp fault ends the model process: the app's process goes on."""
    s = session(tiny.quants["Q8_0"], tiny.quants["Q4_K_M"], max_tokens=200, mode="completion")
    first_pid = s.engine.pid

    def on_token(side, ids, text):
        if len(ids) == 2 and s.engine.pid == first_pid:
            os.kill(first_pid, signal.SIGKILL)

    t = s.ask(PROMPT, on_token)
    for r in (t.a, t.b):
        assert r.stop_reason == "error"
        assert "the model process crashed (killed by SIGKILL)" in r.error
        assert "loads again for the next prompt" in r.error
    assert s.turns == [t] and s.history == {"a": [], "b": []}  # failed answers are not history
    s.cfg.max_tokens = 24
    again = s.ask(PROMPT)
    assert s.engine.pid not in (None, first_pid)
    fresh = session(tiny.quants["Q8_0"], tiny.quants["Q4_K_M"], max_tokens=24, mode="completion")
    ref = fresh.ask(PROMPT)
    assert (again.a.token_ids, again.b.token_ids) == (ref.a.token_ids, ref.b.token_ids)
    assert again.scores_a is not None and not (again.a.error or again.b.error)
    s.close()
    fresh.close()
    assert capfd.readouterr() == ("", "")  # llama.cpp's log went to the worker's log file


def test_a_model_whose_loading_crashes_is_reported_in_its_pane_and_not_loaded_again(tiny):
    statuses: list[tuple[str, str]] = []
    holder: dict[str, ProcessEngine] = {}

    def on_status(what, side):
        statuses.append((what, side))
        if side == "b" and len(statuses) == 2:  # the first worker is about to load B: it dies there
            os.kill(holder["engine"].pid, signal.SIGABRT)  # a GGML_ASSERT

    class Probe(ProcessEngine):
        def _start(self):
            super()._start()
            holder["engine"] = self

    cfg = GenConfig(max_tokens=12, n_ctx=512, mode="completion")
    engine = Probe(str(tiny.quants["Q8_0"]), str(tiny.quants["Q2_K"]), cfg, on_status=on_status)
    assert (
        "could not load tiny-Q2_K.gguf: the model process crashed (killed by SIGABRT)"
        in (engine.errors()["b"])
    )
    assert "a" not in engine.errors()
    assert statuses == [("loading", "a"), ("loading", "b"), ("loading", "a")]  # B was not tried again
    results = engine.run({n: [{"role": "user", "content": PROMPT}] for n in ("a", "b")})
    assert results["a"].token_ids and results["a"].error is None
    assert results["b"].stop_reason == "error" and "tiny-Q2_K.gguf" in results["b"].error
    engine.close()


def test_a_crash_after_one_side_finished_keeps_that_answer_and_blames_the_other(tiny):
    """One after the other, A has answered when B's generation dies: A's answer stands."""
    cfg = GenConfig(max_tokens=40, n_ctx=512, mode="completion")
    engine = ProcessEngine(str(tiny.quants["Q8_0"]), str(tiny.quants["Q4_K_M"]), cfg, sequential=True)

    def on_token(side, ids, text):
        if side == "b" and len(ids) == 5:
            os.kill(engine.pid, signal.SIGKILL)

    results = engine.run({n: [{"role": "user", "content": PROMPT}] for n in ("a", "b")}, on_token)
    a, b = results["a"], results["b"]
    assert a.error is None and len(a.token_ids) == 40
    assert b.stop_reason == "error" and "killed by SIGKILL) while this side was generating" in b.error
    assert len(b.token_ids) >= 5  # what B had streamed before the crash is kept
    assert engine.errors() == {}  # it had loaded fine, so both load again next time
    again = engine.run({n: [{"role": "user", "content": PROMPT}] for n in ("a", "b")})
    assert again["a"].token_ids == a.token_ids and again["b"].token_ids[:5] == b.token_ids[:5]
    engine.close()


def test_a_crash_is_explained_by_the_workers_last_words_not_an_older_crashs(tiny):
    log = worker_log()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("GGML_ASSERT(an older crash) failed\n")
    cfg = GenConfig(max_tokens=8, n_ctx=512, mode="completion")
    engine = ProcessEngine(str(tiny.quants["Q8_0"]), str(tiny.quants["Q4_K_M"]), cfg)
    with log.open("a") as f:  # what a CUDA build prints to stderr before it aborts
        f.write("CUDA error: out of memory\n  current device: 0\n")
    os.kill(engine.pid, signal.SIGABRT)
    results = engine.run({n: [{"role": "user", "content": PROMPT}] for n in ("a", "b")})
    for r in results.values():
        assert "(killed by SIGABRT: current device: 0)" in r.error and "older" not in r.error
    assert engine.pid is None and engine.loaded() == ["a", "b"]  # a fresh worker, on demand
    os.kill(engine.pid, signal.SIGKILL)  # and it says nothing before it dies
    results = engine.run({n: [{"role": "user", "content": PROMPT}] for n in ("a", "b")})
    assert "(killed by SIGKILL)" in results["a"].error
    engine.close()


def test_with_two_gpus_each_model_gets_one_of_its_own_where_it_fits(tiny):
    from quanttui.core.fit import FitSettings, estimate
    from quanttui.core.fit.devices import Device, Hardware

    big, small = str(tiny.f16), str(tiny.quants["Q2_K"])
    ram = Device("RAM", "ram", "cpu", 64 << 30, 64 << 30)
    roomy = Device("GPU", "gpu", "cuda", 80 << 30, 80 << 30)

    def need(path: str, kind: str = "gpu") -> int:  # what the model takes with a GPU of its own
        r = estimate(
            inspect_file(path).to_dict(),
            FitSettings(n_ctx=2048, gpu_layers="all"),
            Hardware((roomy,), ram, "t"),
        )
        return next(d.total for d in r.devices if d.kind == kind)

    assert need(big) > need(small)
    middle = (need(big) + need(small)) // 2  # the small model fits here, the big one does not
    gpus = (
        Device("GPU 0: little", "gpu", "cuda", middle, middle),
        Device("GPU 1: large", "gpu", "cuda", 2 * need(big), 2 * need(big)),
    )
    plan = plan_pair(big, small, 2048, Hardware(gpus, ram, "t"))
    assert plan.main_gpu == {"a": 1, "b": 0} and not plan.sequential
    assert plan.note == "A on GPU 1: large, B on GPU 0: little: neither waits for the other"
    plan = plan_pair(small, big, 2048, Hardware(gpus, ram, "t"))
    assert plan.main_gpu == {"a": 0, "b": 1}
    assert need(small, "ram") > 0
    room = need(big, "ram") + need(small, "ram") - 1  # each fits in RAM alone, not both at once
    tight = Device("RAM", "ram", "cpu", room, room)
    assert plan_pair(big, small, 2048, Hardware(gpus, tight, "t")).main_gpu is None
    one = plan_pair(big, small, 2048, Hardware(gpus[1:], ram, "t"))  # one GPU: both on it, as before
    assert one.main_gpu is None and one.gpu_layers == {"a": -1, "b": -1}
