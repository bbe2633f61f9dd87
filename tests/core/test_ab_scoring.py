"""A/B cross-scoring: the float32 batched computation against float64 numpy from full logits
(tiny models and the real 262k-vocabulary Gemma), both ways and in both placements; progress that
reaches the end; a cancel that stops between batches, in-process and through the worker."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from quanttui.core.ab import ABSession, GenConfig, Plan
from quanttui.core.ab.logits import compare_logits
from quanttui.core.ab.metrics import first_divergence
from quanttui.core.childproc import WorkerDied
from tests.core.test_ab import PROMPT, TOGETHER, log_softmax, raw_llama
from tests.core.test_ab_context import write_endless_model
from tests.modelgen import quantize
from tests.realmodel import real  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.slow

ONE_BY_ONE = Plan(True, {"a": 0, "b": 0}, "one at a time")


@pytest.fixture(scope="module")
def endless(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Q8_0 and Q4_K_M of a tiny model that never answers EOS (write_endless_model): answers as long
    as asked for on any CPU's kernels."""
    d = tmp_path_factory.mktemp("endless")
    f16 = write_endless_model(d / "endless-F16.gguf")
    return {q: quantize(f16, d / f"endless-{q}.gguf", q) for q in ("Q8_0", "Q4_K_M")}


def session(a, b, plan=TOGETHER, isolate=False, **cfg) -> ABSession:
    cfg = GenConfig(**{"mode": "completion", "max_tokens": 24, "n_ctx": 512, **cfg})
    return ABSession(str(a), str(b), cfg, plan, isolate=isolate)


def shared(turn) -> int:
    """B's answer positions whose tokens so far are A's too: each model's rows there are A's."""
    a, b = turn.a.token_ids, turn.b.token_ids
    same = first_divergence(a, b)
    return min(len(a) if same is None else same + 1, len(a), len(b))


def direct(paths: dict[str, object], turn) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per side: KL(side || other) and top-1 agreement on its tokens, in float64 from the full
    logits of llama-cpp-python's own eval (logits_all), one model at a time."""
    out = {}
    for side, other in (("a", "b"), ("b", "a")):
        r = getattr(turn, side)
        seq, start = r.prompt_ids + r.token_ids, len(r.prompt_ids)
        rows = {}
        for name in (side, other):
            llm = raw_llama(paths[name], logits_all=True)
            llm.eval(seq)
            rows[name] = log_softmax(llm.scores[start - 1 : len(seq) - 1])
            llm.close()
        p, q = rows[side], rows[other]
        out[side] = ((np.exp(p) * (p - q)).sum(axis=1), p.argmax(axis=1) == q.argmax(axis=1))
    return out


@pytest.mark.parametrize(
    ("plan", "isolate"),
    [(TOGETHER, False), (ONE_BY_ONE, False), (TOGETHER, True)],
    ids=["together", "one-at-a-time", "worker"],
)
def test_both_directions_equal_float64_numpy_from_full_logits(endless, plan, isolate):
    paths = {"a": endless["Q8_0"], "b": endless["Q4_K_M"]}
    s = session(paths["a"], paths["b"], plan, isolate, max_tokens=80)
    t = s.ask(PROMPT)
    s.close()
    want = direct(paths, t)
    for side, scores in (("a", t.scores_a), ("b", t.scores_b)):
        kld, top1 = want[side]
        assert len(scores.kld) == len(getattr(t, side).token_ids) == len(kld) == 80  # more than a batch
        assert np.allclose(scores.kld, kld, atol=1e-4, rtol=0)
        assert scores.top1 == top1.tolist()
        assert scores.kld_mean > 0  # a real difference is measured


def test_compare_logits_equals_float64_log_softmax_on_hard_rows():
    rng = np.random.default_rng(7)
    n, v = 5, 50_000
    ref = (rng.standard_normal((n, v)) * 8).astype(np.float32)
    other = (ref + rng.standard_normal((n, v)) * 0.5).astype(np.float32)
    ref[1, 123] = other[1, 77] = 60.0  # one sharply peaked row, the models disagreeing on it
    ref[2] = other[2]  # one row alike: exactly 0
    ref[3] += 1000.0  # a shift changes no probability
    other[3] -= 1000.0
    kld, top1 = compare_logits(ref, other)
    p, q = log_softmax(ref), log_softmax(other)
    want = (np.exp(p) * (p - q)).sum(axis=1)
    assert np.allclose(kld, want, atol=1e-4, rtol=1e-5)
    assert kld[2] == 0.0 and kld[1] > 10
    assert top1.tolist() == (p.argmax(axis=1) == q.argmax(axis=1)).tolist()
    assert not top1[1] and top1[2]
    same, agree = compare_logits(ref, ref.copy())
    assert same.tolist() == [0.0] * n and agree.all()


@pytest.mark.parametrize(
    ("plan", "isolate"),
    [(TOGETHER, False), (ONE_BY_ONE, False), (TOGETHER, True)],
    ids=["together", "one-at-a-time", "worker"],
)
def test_progress_reaches_every_row_and_scores_are_the_same_as_without_it(endless, plan, isolate):
    s = session(endless["Q8_0"], endless["Q4_K_M"], plan, isolate, max_tokens=150)
    t = s.ask(PROMPT, scoring=False)
    assert t.scores_a is None and t.scores_b is None
    heard: list[tuple[int, int]] = []
    s.score(t, on_progress=lambda done, total: heard.append((done, total)))
    total = 2 * (len(t.a.token_ids) + len(t.b.token_ids) - shared(t))  # each model at each position of both
    assert heard[0] == (0, total) and heard[-1] == (total, total)
    assert all(b[0] >= a[0] and b[1] == total for a, b in zip(heard, heard[1:], strict=False))
    assert len(heard) >= 1 + 2 * 2 * 3  # 150 positions are three batches per model and answer
    first = (t.scores_a.kld, t.scores_b.top1)
    s.score(t)
    assert (t.scores_a.kld, t.scores_b.top1) == first
    s.close()


@pytest.mark.parametrize(
    ("plan", "isolate"),
    [(TOGETHER, False), (ONE_BY_ONE, False), (TOGETHER, True)],
    ids=["together", "one-at-a-time", "worker"],
)
def test_a_cancel_stops_scoring_between_batches_and_the_turn_stays_without_scores(endless, plan, isolate):
    s = session(endless["Q8_0"], endless["Q4_K_M"], plan, isolate, max_tokens=150)
    t = s.ask(PROMPT, scoring=False)
    cancel = threading.Event()
    heard: list[int] = []

    def stop_after_first_batch(done: int, total: int) -> None:
        heard.append(done)
        if done:
            cancel.set()

    s.score(t, on_progress=stop_after_first_batch, cancel=cancel)
    assert t.scores_a is None and t.scores_b is None
    assert t.unscored == "scoring was cancelled: /score scores the turn"
    total = 2 * (len(t.a.token_ids) + len(t.b.token_ids))
    # In-process it stops at the next batch; the worker hears the cancel over a socket, and the
    # tiny models make a batch in milliseconds, so it may have done a few more by then.
    assert max(heard) <= (total - 1 if isolate else 64 * 3)
    again = s.ask(PROMPT)  # the models stay usable, and a new turn is scored in full
    assert again.a.token_ids == t.a.token_ids and len(again.scores_a.kld) == len(t.a.token_ids)
    assert again.unscored == ""
    assert s.turns == [t, again]
    s.close()


def test_regenerate_can_leave_scoring_to_the_caller(tiny):
    s = session(tiny.quants["Q8_0"], tiny.quants["Q4_K_M"])
    first = s.ask(PROMPT)
    again = s.regenerate(scoring=False)
    assert again.scores_a is None and again.a.token_ids == first.a.token_ids
    s.score(again)
    assert again.scores_a.kld == pytest.approx(first.scores_a.kld, abs=1e-6)
    assert s.turns == [again]
    s.close()


def test_a_turn_that_cannot_be_scored_gets_no_scores(tiny, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(tiny.quants["Q8_0"].read_bytes()[:4000])
    s = session(tiny.quants["Q8_0"], bad)
    t = s.ask(PROMPT, scoring=False)
    assert not s.scorable(t)
    heard: list[tuple[int, int]] = []
    s.score(t, on_progress=lambda done, total: heard.append((done, total)))
    assert t.scores_a is None and t.scores_b is None and heard == []
    s.close()


def test_real_gemma_scores_equal_float64_numpy_on_262k_columns(real):  # noqa: F811
    paths = {"a": real.quants["Q8_0"], "b": real.quants["Q2_K"]}
    s = session(paths["a"], paths["b"], max_tokens=40)
    t = s.ask("The history of the printing press begins in the fifteenth century, when")
    s.close()
    want = direct(paths, t)
    for side, scores in (("a", t.scores_a), ("b", t.scores_b)):
        kld, top1 = want[side]
        assert len(scores.kld) == 40
        assert np.allclose(scores.kld, kld, atol=1e-4, rtol=0)
        assert scores.top1 == top1.tolist()
    same = session(paths["a"], paths["a"], max_tokens=40)
    t = same.ask("The history of the printing press begins in the fifteenth century, when")
    assert t.scores_a.kld_mean == 0.0 and t.scores_b.top1_agreement == 1.0
    same.close()


def test_a_worker_that_dies_while_scoring_leaves_the_answers_and_the_next_turn_is_scored(endless):
    s = session(endless["Q8_0"], endless["Q4_K_M"], isolate=True, max_tokens=400)
    t = s.ask(PROMPT, scoring=False)  # long answers: the worker is far from done at its first batch
    pid = s.engine.pid

    def kill_at_first_batch(done: int, total: int) -> None:
        if done and s.engine.pid == pid:
            os.kill(pid, signal.SIGKILL)

    s.score(t, on_progress=kill_at_first_batch)
    assert t.scores_a is None and t.scores_b is None and t.a.token_ids
    assert "the model process crashed (killed by SIGKILL)" in s.engine.crashed
    again = s.ask(PROMPT)
    assert s.engine.pid not in (None, pid) and again.a.token_ids == t.a.token_ids
    assert len(again.scores_b.kld) == len(t.b.token_ids)
    s.close()


def test_a_pair_of_very_different_speeds_scores_to_the_end(tmp_path):
    """A 1-layer model against a 6-layer one: the faster side runs ahead and waits for the slower,
    which never waits itself (both used to wait on each other for good)."""
    fast = write_endless_model(tmp_path / "fast.gguf", n_layer=1)
    slow = write_endless_model(tmp_path / "slow.gguf", n_layer=6, n_ff=1536)
    s = session(fast, slow, max_tokens=160)
    done: list[object] = []
    t = threading.Thread(target=lambda: done.append(s.ask(PROMPT)), daemon=True)
    t.start()
    t.join(120)
    assert done, "scoring did not finish"
    turn = done[0]
    assert turn.scores_a is not None and turn.scores_b is not None
    assert len(turn.a.token_ids) == len(turn.b.token_ids) == 160


def test_a_turn_is_scored_by_number_and_a_fresh_worker_is_handed_it_once(tiny):
    """The worker scores the answers it holds (nothing is sent back but the turn's number); one
    started after a crash did not run the turn, so it is handed that turn's answers first."""
    s = session(tiny.quants["Q8_0"], tiny.quants["Q4_K_M"], isolate=True)
    first = s.ask(PROMPT, scoring=False)
    second = s.ask(PROMPT, scoring=False)
    assert (first.number, second.number) == (1, 2)
    s.score(first)  # an older turn: still held
    assert first.scores_a is not None and first.unscored == ""
    pid = s.engine.pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerDied):
        s.engine.loaded()  # the crash is seen: the next request starts a fresh worker
    s.score(second)
    assert s.engine.pid not in (None, pid)
    assert second.unscored == "" and len(second.scores_a.kld) == len(second.a.token_ids)
    assert second.scores_a.kld == pytest.approx(first.scores_a.kld, abs=1e-6)  # the same answers
    s.close()
