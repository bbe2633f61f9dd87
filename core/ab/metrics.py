"""Signs of quantization damage in a generated token sequence: divergence, loops, low variety."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_PERIOD = 64  # the longest period `loop_at_end` looks for: stopping wants a short, tight cycle
LONG_PERIOD = 16  # periods above this count as a loop from two whole repeats, shorter ones from three


@dataclass(frozen=True)
class Loop:
    """Tokens [start, end) repeat with this period: at least three whole repeats (six tokens for
    period 1) for a period up to LONG_PERIOD, two for a longer one."""

    start: int
    end: int
    period: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def repeats(self) -> int:
        """Whole repeats of the period in the span (a part repeat at its end is not counted)."""
        return self.length // self.period

    def describe(self) -> str:
        """The span, its period and whole repeats: "48 tokens (12 × 4)"."""
        return f"{self.length} tokens ({self.period} × {self.repeats})"


def first_divergence(a: Sequence[object], b: Sequence[object]) -> int | None:
    """Index of the first position where the sequences differ; None when they are identical."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _ranks(a: np.ndarray) -> list[np.ndarray]:
    """Prefix doubling: level j ranks each whole block a[i : i + 2**j] (equal blocks, equal ranks),
    up to the level where every block differs (no longer match exists)."""
    n = len(a)
    ranks = [np.unique(a, return_inverse=True)[1].astype(np.int64)]
    k = 1
    while k < n and int(ranks[-1].max()) < n - 1:
        r = ranks[-1]
        nxt = np.full(n, -1, np.int64)
        nxt[: n - k] = r[k:]
        ranks.append(np.unique(r * (n + 1) + nxt + 1, return_inverse=True)[1].astype(np.int64))
        k *= 2
    return ranks


def _lce(ranks: list[np.ndarray], n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Longest common extension of the suffixes at `i` and `j` (element-wise), O(log n) vector steps."""
    got = np.zeros(len(i), np.int64)
    for level in range(len(ranks) - 1, -1, -1):
        step = 1 << level
        x, y = i + got, j + got
        whole = (x + step <= n) & (y + step <= n)
        r = ranks[level]
        same = r[np.minimum(x, n - 1)] == r[np.minimum(y, n - 1)]
        got += (whole & same) * step
    return got


def runs(ids: Sequence[int]) -> list[Loop]:
    """Every maximal repetition of two whole periods or more, any period up to half the sequence.

    O(n log n): a run of period p and length >= 2p holds two positions q, q + p with q a multiple
    of p; the run is how far the text at q and at q + p agrees forwards and backwards (longest
    common extensions, read off prefix-doubling ranks for all (p, q) at once in numpy). Each run is
    reported once per period, from its first such q."""
    n = len(ids)
    if n < 2:
        return []
    a = np.asarray(ids, dtype=np.int64)
    periods = np.arange(1, n // 2 + 1, dtype=np.int64)
    counts = (n - 1) // periods  # q = 0, p, 2p, ... with q + p < n
    p = np.repeat(periods, counts)
    first = np.cumsum(counts) - counts
    q = (np.arange(len(p), dtype=np.int64) - np.repeat(first, counts)) * p
    fwd = _lce(_ranks(a), n, q, q + p)
    keep = fwd >= 1  # (cheap filter: without it no run passes q at all)
    p, q, fwd = p[keep], q[keep], fwd[keep]
    rev = n - q  # the text before q read backwards starts at rev in the reversed sequence
    back = _lce(_ranks(a[::-1].copy()), n, rev - p, rev)
    back = np.where(q > 0, back, 0)
    found = (back < p) & (back + fwd >= p)
    start, end, p = (q - back)[found], (q + p + fwd)[found], p[found]
    length = end - start
    long = (p > LONG_PERIOD) & (length >= 2 * p)
    short = (p <= LONG_PERIOD) & (length >= np.maximum(3 * p, 6))
    ok = long | short
    return [Loop(int(s), int(e), int(k)) for s, e, k in zip(start[ok], end[ok], p[ok], strict=True)]


def loops(ids: Sequence[int]) -> list[Loop]:
    """Maximal repeated spans of any period up to half the sequence (see `runs`), longest first;
    overlapping spans keep the longest (then the shortest period)."""
    found = runs(ids)
    found.sort(key=lambda lp: (-lp.length, lp.period, lp.start))
    kept: list[Loop] = []
    for lp in found:
        if all(lp.end <= k.start or lp.start >= k.end for k in kept):
            kept.append(lp)
    return kept


def longest(ids: Sequence[int]) -> Loop | None:
    """The longest repeated span (`loops`), or None when there is none."""
    found = loops(ids)
    return found[0] if found else None


def longest_loop(ids: Sequence[int]) -> int:
    """Tokens in the longest repeated span (0 when there is none)."""
    found = longest(ids)
    return found.length if found else 0


def loop_at_end(ids: Sequence[int], min_tokens: int = 32, max_period: int = MAX_PERIOD) -> bool:
    """Whether the sequence ends in a loop of at least `min_tokens` tokens and four repeats of a period
    up to `max_period`: what stops a side stuck in a loop (a long passage said twice is reported,
    not stopped). Compared from the end, so a period that does not repeat costs one comparison."""
    n = len(ids)
    for p in range(1, min(max_period, n // 4) + 1):
        need = max(min_tokens, 4 * p)
        if n >= need and all(ids[i] == ids[i - p] for i in range(n - 1, n - need + p - 1, -1)):
            return True
    return False


def distinct_n(ids: Sequence[int], n: int) -> float:
    """Unique n-grams over all n-grams (1.0 for an empty or too-short sequence)."""
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0
