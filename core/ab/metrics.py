"""Signs of quantization damage in a generated token sequence: divergence, loops, low variety."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_PERIOD = 64


@dataclass(frozen=True)
class Loop:
    """Tokens [start, end) repeat with this period, at least three times (or six tokens for period 1)."""

    start: int
    end: int
    period: int

    @property
    def length(self) -> int:
        return self.end - self.start


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first position where the sequences differ; None when they are identical."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _min_length(period: int) -> int:
    return max(3 * period, 6)


def loops(ids: Sequence[int], max_period: int = MAX_PERIOD) -> list[Loop]:
    """Maximal repeated spans, longest first; overlapping spans keep the longest (then shortest period)."""
    n = len(ids)
    found: list[Loop] = []
    for p in range(1, min(max_period, n // 3) + 1):
        run = 0
        for i in range(p, n + 1):
            if i < n and ids[i] == ids[i - p]:
                run += 1
                continue
            if run + p >= _min_length(p):
                found.append(Loop(i - run - p, i, p))
            run = 0
    found.sort(key=lambda lp: (-lp.length, lp.period, lp.start))
    kept: list[Loop] = []
    for lp in found:
        if all(lp.end <= k.start or lp.start >= k.end for k in kept):
            kept.append(lp)
    return kept


def longest_loop(ids: Sequence[int]) -> int:
    """Tokens in the longest repeated span (0 when there is none)."""
    found = loops(ids)
    return found[0].length if found else 0


def loop_at_end(ids: Sequence[int], min_tokens: int = 32, max_period: int = MAX_PERIOD) -> bool:
    """Whether the sequence ends in a loop of at least `min_tokens` tokens and four repeats."""
    n = len(ids)
    for p in range(1, min(max_period, n // 4) + 1):
        need = max(min_tokens, 4 * p)
        if n >= need and all(ids[i] == ids[i - p] for i in range(n - need + p, n)):
            return True
    return False


def distinct_n(ids: Sequence[int], n: int) -> float:
    """Unique n-grams over all n-grams (1.0 for an empty or too-short sequence)."""
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0
