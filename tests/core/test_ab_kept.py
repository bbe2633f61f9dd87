"""Cross-scoring in a chat resumes from what both models decoded in earlier turns: it decodes only
the new tokens, its figures equal float64 numpy from full logits, a model against itself still
scores exactly 0, and a kept sequence that cannot be put back is decoded again instead."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from quanttui.core.ab import ABSession, GenConfig, Plan
from quanttui.core.ab.kept import KeptPrefixes, load_seq, save_seq
from quanttui.core.ab.logits import BLOCK, logit_rows
from tests.core.test_ab import TOGETHER, raw_llama
from tests.core.test_ab_scoring import direct, endless  # noqa: F401  (endless: the module's fixture)

pytestmark = pytest.mark.slow

QUESTIONS = ("Tell me about quantization.", "And what about the context?", "Say it shorter.")
ONE_BY_ONE = Plan(True, {"a": 0, "b": 0}, "one at a time")


def chat(a, b, plan=TOGETHER, isolate=False, max_tokens=40) -> ABSession:
    cfg = GenConfig(mode="chat", max_tokens=max_tokens, n_ctx=2048)
    return ABSession(str(a), str(b), cfg, plan, isolate=isolate)


def count_decoded(s: ABSession) -> list[int]:
    """Tokens each decode of either model is given from now on."""
    seen: list[int] = []
    for name in ("a", "b"):
        ctx = s.engine.side(name).llm._ctx
        decode = ctx.decode

        def counted(batch, decode=decode):
            seen.append(batch.batch.n_tokens)
            return decode(batch)

        ctx.decode = counted
    return seen


def decoded(result) -> list[int]:
    return [*result.prompt_ids, *result.token_ids][:-1]


def test_a_later_turn_decodes_only_what_is_new_and_equals_numpy_from_full_logits(endless):  # noqa: F811
    paths = {"a": endless["Q8_0"], "b": endless["Q4_K_M"]}  # no answer ends early: each side keeps its turn
    s = chat(paths["a"], paths["b"], max_tokens=120)  # answers of more than one chunk
    first = s.ask(QUESTIONS[0])
    second = s.ask(QUESTIONS[1], scoring=False)
    seen = count_decoded(s)
    s.score(second)
    decoded_then = sum(seen)
    resumed = (second.scores_a.kld, second.scores_b.kld, second.scores_a.top1, second.scores_b.top1)
    s.engine.kept = KeptPrefixes()  # the same turn scored from the start of the conversation
    s.score(second)
    assert (second.scores_a.kld, second.scores_b.kld, second.scores_a.top1, second.scores_b.top1) == resumed
    s.close()
    full = sum(len(decoded(getattr(second, n))) for n in "ab")
    # Both models resume each side from its previous turn (the first turn's prompt and answer at
    # least); what they decode is the rest, no more.
    kept = sum(len(getattr(first, n).prompt_ids) for n in "ab")
    assert decoded_then <= 2 * (full - kept + 2 * BLOCK)  # whole blocks: a chunk may start a little early
    assert decoded_then >= 2 * sum(len(getattr(second, n).token_ids) for n in "ab")
    assert sum(seen) - decoded_then >= 2 * full  # from the start: all of it again
    want = direct(paths, second)
    for side, scores in (("a", second.scores_a), ("b", second.scores_b)):
        kld, top1 = want[side]
        assert np.allclose(scores.kld, kld, atol=1e-5, rtol=0)
        assert scores.top1 == top1.tolist()
        assert scores.kld_mean > 0


def test_a_model_against_itself_scores_zero_in_every_turn_of_a_chat(endless):  # noqa: F811
    path = endless["Q4_K_M"]
    s = chat(path, path)
    for q in QUESTIONS:
        t = s.ask(q)
        for scores in (t.scores_a, t.scores_b):
            assert scores.kld == [0.0] * len(t.a.token_ids) and all(scores.top1)
    assert s.engine.kept.resume_at("a", decoded(t.a), len(t.a.prompt_ids), ("a", "b")) > 0
    s.close()


def test_models_taking_turns_score_every_turn_and_resume_as_models_together_do(tiny):
    """Every turn of a chat is scored when the models take turns (only the first one was, as the
    sides' prompts differ from the second turn on), in-process and in the worker, alike."""
    a, b = tiny.quants["Q8_0"], tiny.quants["Q4_K_M"]
    figures = []
    for plan, isolate in ((TOGETHER, False), (ONE_BY_ONE, False), (ONE_BY_ONE, True)):
        s = chat(a, b, plan, isolate)
        turns = [s.ask(q) for q in QUESTIONS[:2]]
        figures.append([(t.scores_a.kld, t.scores_b.kld) for t in turns])
        s.close()
    for other in figures[1:]:
        for (ka, kb), (ja, jb) in zip(figures[0], other, strict=True):
            assert np.allclose(ka, ja, atol=1e-6) and np.allclose(kb, jb, atol=1e-6)


def test_a_sequence_that_cannot_be_put_back_is_decoded_from_the_start(tiny):
    llm = raw_llama(tiny.quants["Q8_0"], logits_all=True)
    seq = llm.tokenize(b"Tell me about quantization and what it costs", add_bos=True)
    start = 4
    fresh = [r.copy() for r in logit_rows(llm, seq, start, 0, len(seq) - start)]
    junk = (ctypes.c_uint8 * 64)(*range(64))
    assert not load_seq(llm, junk, 3)
    again = [r.copy() for r in logit_rows(llm, seq, start, 0, len(seq) - start, resume=(3, junk))]
    assert all(np.array_equal(x, y) for x, y in zip(fresh, again, strict=True))
    saved: list = []
    list(logit_rows(llm, seq, start, 0, len(seq) - start, on_end=saved.append))
    again_from = (start - 1, saved[0])
    resumed = [r.copy() for r in logit_rows(llm, seq, start, 0, len(seq) - start, resume=again_from)]
    assert all(np.allclose(x, y, atol=1e-5) for x, y in zip(fresh, resumed, strict=True))
    assert save_seq(llm) is not None
    llm.close()


@pytest.mark.parametrize("budget", [0, 1])
def test_nothing_is_kept_past_the_budget_or_without_both_models(budget):
    kept = KeptPrefixes(budget=budget)
    kept.keep("a", [1, 2, 3], {"a": b"xx", "b": b"yy"})
    assert kept.resume_at("a", [1, 2, 3, 4], 10, ("a", "b")) == 0
    roomy = KeptPrefixes()
    roomy.keep("a", [1, 2, 3], {"a": b"xx", "b": None})
    assert roomy.resume_at("a", [1, 2, 3, 4], 10, ("a", "b")) == 0
    roomy.keep("a", [1, 2, 3], {"a": b"xx", "b": b"yy"})
    assert roomy.resume_at("a", [1, 2, 9], 10, ("a", "b")) == 2
    assert roomy.resume_at("a", [1, 2, 3, 4], 1, ("a", "b")) == 1


def test_every_position_comes_out_the_same_however_the_sequence_is_cut(tiny):
    """Q4_K_M's repacked kernels compute the last (n mod 4) rows of a batch, and batches under 8,
    differently; a row computed so changes the cache of every later position. Chunk sizes, a resume
    at an odd point and a short last chunk must not change a single logit."""
    llm = raw_llama(tiny.quants["Q4_K_M"])
    rng = np.random.default_rng(3)
    seq = [int(t) for t in rng.integers(10, llm.n_vocab() - 1, 157)]
    start = 23

    def rows(**kw) -> np.ndarray:
        return np.concatenate([r.copy() for r in logit_rows(llm, seq, start, 0, len(seq) - start, **kw)])

    whole = rows(rows=512)
    assert whole.shape[0] == len(seq) - start
    for cut in (16, 48, 64, 100):
        assert np.array_equal(rows(rows=cut), whole), cut
    saved: list = []
    list(logit_rows(llm, seq, 40, 0, 31, on_end=saved.append))  # an earlier, shorter turn
    for at in (5, 17, 22):
        assert np.array_equal(rows(resume=(at, saved[0])), whole), at
    short = [r.copy() for r in logit_rows(llm, seq[:9], 4, 0, 5)]  # shorter than a block
    assert sum(len(r) for r in short) == 5
    llm.close()
