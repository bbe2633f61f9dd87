"""The logits scoring compares, and the comparison: a model's rows decoded teacher-forced in whole
blocks, so a position's cache and logits are the same however the sequence was cut, and KL
divergence with top-1 agreement per row in float32 numpy (two exp passes, no log-softmax matrices).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .kept import load_seq, save_seq

CHUNK = 64  # positions per decode while scoring: the grain of progress and of a cancel
# Every decode while scoring is a multiple of this many positions. llama.cpp computes a row with
# other kernels when it is one of the last (n mod 4) rows of an n-row batch or in a batch of fewer
# than 8 rows (CPU, repacked types; CUDA: 8 rows or fewer), and such a row changes the cache every
# later position reads: on Gemma 3 270M Q4_K_M, logits then differ by up to 11.
BLOCK = 16
SUB = 1  # rows per numpy step: a row's temporaries stay in cache (fastest, measured on 262k columns)


def logit_rows(
    llm: Any,
    tokens: Sequence[int],
    start: int,
    lo: int,
    hi: int,
    rows: int = CHUNK,
    *,
    resume: tuple[int, Any] | None = None,
    on_end: Callable[[Any], None] | None = None,
    strict: bool = False,
) -> Iterator[np.ndarray]:
    """The logits of the positions that predict tokens[start+lo : start+hi] (start >= 1), about
    `rows` positions per decode, as float32 views valid until this model decodes again. The
    positions before them are decoded in large batches with no logits asked for; `resume` = (n,
    saved sequence) takes the first n of them from a sequence kept earlier (kept.save_seq), and
    `on_end` is handed this model's sequence once the last rows have been taken. `strict`: a
    sequence that cannot be put back is an error, not a reason to decode from the start.

    Every decode is a whole number of BLOCK positions, all with logits once any are wanted: the
    last chunk starts early enough to be whole (its first positions decoded again), so each
    position's cache and logits come out the same however the sequence was cut."""
    if hi <= lo:
        return
    ctx, batch = llm._ctx, llm._batch.batch
    n_vocab = llm.n_vocab()
    first, end = start - 1 + lo, start - 1 + hi  # the positions whose logits are wanted
    most = max(BLOCK, llm.n_batch - llm.n_batch % BLOCK)
    rows = min(max(BLOCK, rows - rows % BLOCK), most)

    def decode(at: int, size: int, logits: bool) -> None:
        for j in range(size):
            k = min(at + j, len(tokens) - 1)  # past the sequence (a short one): its last token again
            batch.token[j], batch.pos[j] = tokens[k], at + j
            batch.n_seq_id[j], batch.seq_id[j][0] = 1, 0
            batch.logits[j] = logits
        batch.n_tokens = size
        ctx.decode(llm._batch)

    llm.reset()
    pos = 0
    if resume and 0 < resume[0] <= first and load_seq(llm, resume[1], resume[0]):
        pos = resume[0]
    elif strict and resume:
        raise RuntimeError("a model's cache could not be put back")
    else:
        ctx.kv_cache_clear()
    try:
        while first - pos >= BLOCK:
            size = min(most, first - pos - (first - pos) % BLOCK)
            decode(pos, size, logits=False)
            pos += size
        given = first  # the positions before this one have been handed out (or are not wanted)
        while given < end:
            size = min(rows, -(-(end - pos) // BLOCK) * BLOCK)
            if pos + size > end:  # the last chunk: start it earlier so that it is whole
                back = max(0, end - size)
                if back < pos:
                    ctx.kv_cache_seq_rm(0, back, -1)
                    pos = back
                if pos + size > llm.n_ctx():
                    size = end - pos
            decode(pos, size, logits=True)
            out = np.ctypeslib.as_array(ctx.get_logits(), shape=(size, n_vocab))
            yield out[given - pos : min(size, end - pos)]
            pos += size
            given = min(pos, end)
        ctx.kv_cache_seq_rm(0, end, -1)  # a short sequence's repeated last tokens
        if on_end is not None:
            on_end(save_seq(llm))
    finally:
        llm.reset()


def compare_logits(ref: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KL(softmax(ref) || softmax(other)) per row (float64, at least 0) and whether the rows'
    argmax agree, from two float32 logit matrices, SUB rows at a time.

    KL = sum p (zp - zq) + lse(zq) - lse(zp), p = softmax(zp): two exp passes, no log-softmax;
    equal models give exactly 0."""
    kld, _, top1 = _compare(ref, other, both=False)
    return kld, top1


def compare_both(ref: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """compare_logits both ways at once: KL(ref || other), KL(other || ref) and top-1 agreement,
    each bit for bit what compare_logits gives with the rows in that order."""
    return _compare(ref, other, both=True)


def _compare(ref: np.ndarray, other: np.ndarray, *, both: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = min(len(ref), len(other))
    kld, back, top1 = np.empty(n, np.float64), np.empty(n if both else 0, np.float64), np.empty(n, bool)
    width = ref.shape[1]
    buf_p = np.empty((min(SUB, n), width), np.float32)
    buf_q, buf_d = np.empty_like(buf_p), np.empty_like(buf_p)
    for lo in range(0, n, SUB):
        zp, zq = ref[lo : lo + SUB], other[lo : lo + SUB]
        m = len(zp)
        ep, eq, diff = buf_p[:m], buf_q[:m], buf_d[:m]
        mp, mq = zp.max(axis=1, keepdims=True), zq.max(axis=1, keepdims=True)
        np.exp(np.subtract(zp, mp, out=ep), out=ep)
        np.exp(np.subtract(zq, mq, out=eq), out=eq)
        sp, sq = ep.sum(axis=1, dtype=np.float64), eq.sum(axis=1, dtype=np.float64)
        lse_gap = (mq[:, 0].astype(np.float64) + np.log(sq)) - (mp[:, 0].astype(np.float64) + np.log(sp))
        np.subtract(zp, zq, out=diff)
        if both:  # q (zq - zp) is exactly -(q (zp - zq)), and its sum exactly the negated sum
            dot_q = np.multiply(eq, diff, out=eq).sum(axis=1, dtype=np.float64)
            back[lo : lo + m] = np.maximum(-dot_q / sq + -lse_gap, 0.0)
        dot = np.multiply(ep, diff, out=diff).sum(axis=1, dtype=np.float64)
        kld[lo : lo + m] = np.maximum(dot / sp + lse_gap, 0.0)
        top1[lo : lo + m] = zp.argmax(axis=1) == zq.argmax(axis=1)
    return kld, back, top1
