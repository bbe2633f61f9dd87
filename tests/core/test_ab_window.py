"""A/B scoring on a model with a sliding attention window (Gemma 3: 512 positions). llama.cpp saves
such a cache without the positions already out of the window, and a sequence longer than the window
put back scores differently from one decoded from the start: scoring then decodes again instead of
resuming, and its figures stay those of a decode from the start (they were up to 0.077 nats off in
a chat's fourth turn, 0.04 in a second turn after a long first prompt)."""

from __future__ import annotations

import dataclasses

from quanttui.core.ab.kept import KeptPrefixes, resumable, window
from tests.core.test_ab_scoring import session, shared
from tests.core.test_ab_share import scored_with_and_without_sharing
from tests.realmodel import real  # noqa: F401  (the session fixture)

TEXT = (
    "The printing press spread across Europe within a few decades. Printers set up shops in the "
    "trading cities, and books that had taken a scribe a year could be made by the hundred in weeks. "
)


def test_a_cache_is_put_back_only_when_the_window_held_all_of_it():
    assert resumable(600, 0)  # no window: anything
    assert resumable(512, 512)  # nothing was out of the window
    assert not resumable(513, 512)


def test_nothing_is_resumed_from_a_kept_sequence_longer_than_the_window():
    kept = KeptPrefixes()
    tokens = list(range(600))
    kept.keep("a", tokens, {"a": b"x", "b": b"y"})
    assert kept.resume_at("a", [*tokens[:400], 7], 590, ("a", "b")) == 400
    assert kept.resume_at("a", [*tokens[:400], 7], 590, ("a", "b"), window=512) == 0
    assert kept.resume_at("a", [*tokens[:400], 7], 590, ("a", "b"), window=1024) == 400


def test_gemma_shares_rows_past_the_window_and_scores_as_decoded_apart(real):  # noqa: F811
    s = session(real.quants["Q8_0"], real.quants["Q2_K"], max_tokens=4, n_ctx=1024)
    t = s.ask("The history of the printing press", scoring=False)
    llm = s.engine.side("a").llm
    assert window(llm) == 512
    text = llm.tokenize((TEXT * 12).encode(), add_bos=False)
    a = text[:560]  # with the prompt, longer than the window
    b = a[:300] + llm.tokenize(b" Then came the telegraph, and", add_bos=False)
    t = dataclasses.replace(
        t, a=dataclasses.replace(t.a, token_ids=a), b=dataclasses.replace(t.b, token_ids=b)
    )
    assert shared(t) == 301
    scored_with_and_without_sharing(s, t, 301)  # the shared rows are not decoded again with logits
    s.close()
    assert max(t.scores_b.kld[301:]) > 0


def test_a_gemma_chat_past_the_window_scores_as_from_the_start(real):  # noqa: F811
    s = session(real.quants["Q8_0"], real.quants["Q2_K"], max_tokens=8, n_ctx=2048, mode="chat")
    first = s.ask((TEXT * 14).strip(), scoring=False)  # a long first prompt: past the window at once
    assert len(first.a.prompt_ids) > 512
    s.score(first)
    second = s.ask(" And then?", scoring=False)
    s.score(second)  # resumes where it can
    resumed = (second.scores_a.kld, second.scores_b.kld)
    s.engine.kept = KeptPrefixes()
    s.score(second)
    s.close()
    assert (second.scores_a.kld, second.scores_b.kld) == resumed
