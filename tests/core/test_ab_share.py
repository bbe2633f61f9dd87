"""A/B scoring, the second answer's stretch in common with the first: taken from the first answer's
rows and caches instead of decoded again, with the same figures position by position as when it is
decoded apart, equal to float64 numpy from full logits, and half the work for a pair that answers
alike."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from quanttui.core.ab.logits import BLOCK, compare_both, compare_logits
from tests.core.test_ab import PROMPT, TOGETHER
from tests.core.test_ab_context import write_successor_model
from tests.core.test_ab_kept import QUESTIONS, chat, count_decoded, decoded
from tests.core.test_ab_scoring import ONE_BY_ONE, direct, session, shared
from tests.modelgen import quantize


@pytest.fixture(scope="module")
def steps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Q4_K_M whose answers are the same on any CPU's kernels (write_successor_model): each runs to
    its max_tokens, and comes back from text as the same tokens."""
    d = tmp_path_factory.mktemp("steps")
    return quantize(write_successor_model(d / "steps-F16.gguf"), d / "steps-Q4_K_M.gguf", "Q4_K_M")


def test_compare_both_is_compare_logits_each_way_bit_for_bit():
    rng = np.random.default_rng(3)
    ref = (rng.standard_normal((6, 30_000)) * 6).astype(np.float32)
    other = (ref + rng.standard_normal((6, 30_000)) * 0.7).astype(np.float32)
    ref[2] = other[2]  # one row alike
    other[4, 9] = 80.0  # one row where B is sure of a token A is not
    kld, back, top1 = compare_both(ref, other)
    want_kld, want_top1 = compare_logits(ref, other)
    want_back, back_top1 = compare_logits(other, ref)
    assert kld.tolist() == want_kld.tolist() and back.tolist() == want_back.tolist()
    assert top1.tolist() == want_top1.tolist() == back_top1.tolist()
    assert back[2] == kld[2] == 0.0 and back[4] > 1.0 and back[4] != kld[4]


def scored_with_and_without_sharing(s, t, n: int) -> None:
    """Score turn `t` with B taking its first `n` positions from A, then with B decoded whole: the
    same floats position by position, and the first decodes only what follows the shared stretch."""
    figures = {}
    for share in (True, False):
        s.engine.share = share
        heard: list[tuple[int, int]] = []
        s.score(t, on_progress=lambda done, total, heard=heard: heard.append((done, total)))
        figures[share] = (t.scores_a.kld, t.scores_a.top1, t.scores_b.kld, t.scores_b.top1)
        rows = 2 * (len(t.a.token_ids) + len(t.b.token_ids) - (n if share else 0))
        assert heard[-1] == (rows, rows)
    assert figures[True] == figures[False]


def _forged(turn, common: int):
    """The turn with answers of 100 tokens given here, whatever the models answered (scoring is
    teacher-forced: any tokens can be scored), B's the same as A's for the first `common` only."""
    a = [int(t) for t in np.random.default_rng(5).integers(3, 259, 100)]  # byte tokens
    b = a[:common] + [3 + (t - 3 + 1) % 256 for t in a[common:]]  # then a different token each time
    return dataclasses.replace(
        turn, a=dataclasses.replace(turn.a, token_ids=a), b=dataclasses.replace(turn.b, token_ids=b)
    )


@pytest.mark.parametrize("plan", [TOGETHER, ONE_BY_ONE], ids=["together", "one-at-a-time"])
def test_a_shared_stretch_scores_as_decoded_apart_and_as_numpy(tiny, plan):
    paths = {"a": tiny.quants["Q8_0"], "b": tiny.quants["Q4_K_M"]}
    s = session(paths["a"], paths["b"], plan, max_tokens=4)
    t = _forged(s.ask(PROMPT, scoring=False), 70)  # 70 shared tokens: more than a chunk, not whole blocks
    n = shared(t)
    assert n == 71  # and the position that predicts the first token they differ on
    scored_with_and_without_sharing(s, t, n)
    s.close()
    want = direct(paths, t)
    for side, scores in (("a", t.scores_a), ("b", t.scores_b)):
        kld, top1 = want[side]
        assert np.allclose(scores.kld, kld, atol=1e-4, rtol=0)
        assert scores.top1 == top1.tolist()
    assert t.scores_b.kld[:n] != t.scores_a.kld[:n]  # the other direction, not a copy of A's
    assert max(t.scores_b.kld[:n]) > 0


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "worker"])
def test_a_model_against_itself_decodes_the_second_answer_not_at_all(steps, isolate):
    s = session(steps, steps, isolate=isolate, max_tokens=90)
    t = s.ask(PROMPT, scoring=False)
    assert t.a.token_ids == t.b.token_ids
    heard: list[tuple[int, int]] = []
    s.score(t, on_progress=lambda done, total: heard.append((done, total)))
    s.close()
    assert heard[-1] == (2 * 90, 2 * 90)  # each model on A's answer only
    assert t.scores_a.kld == t.scores_b.kld == [0.0] * 90
    assert t.scores_b.top1_agreement == 1.0


def test_a_chat_of_a_model_against_itself_decodes_only_the_first_sides_new_tokens(steps):
    s = chat(steps, steps, max_tokens=40)
    first = s.ask(QUESTIONS[0])
    second = s.ask(QUESTIONS[1], scoring=False)
    seen = count_decoded(s)
    s.score(second)
    s.close()
    kept = decoded(first.a)
    assert decoded(second.a)[: len(kept)] == kept  # the first turn came back from text token for token
    new = len(decoded(second.a)) - len(kept)  # A's second question and answer
    assert 2 * len(second.a.token_ids) <= sum(seen) <= 2 * (new + 2 * BLOCK)  # B's side: nothing
    assert second.scores_a.kld == second.scores_b.kld == [0.0] * len(second.b.token_ids)
