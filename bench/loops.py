"""Loop detection (issue 19 item 4): time per call of `metrics.loops` (any period up to half the
answer, O(n log n)) against the function it replaced (periods up to 64, O(64 n) in Python), side by
side, at 256, 1024 and 4096 tokens, on three kinds of answer: varied text (few repeats), one with a
long passage said four times (what the old function missed), and one stuck on a short cycle.
Run: python bench/loops.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quanttui.core.ab.metrics import loops  # noqa: E402

OLD_MAX_PERIOD = 64


def old_loops(ids: Sequence[int], max_period: int = OLD_MAX_PERIOD) -> list[tuple[int, int, int]]:
    """The function replaced, as it was: periods up to 64, three repeats (six tokens for period 1)."""
    n = len(ids)
    found: list[tuple[int, int, int]] = []
    for p in range(1, min(max_period, n // 3) + 1):
        run = 0
        for i in range(p, n + 1):
            if i < n and ids[i] == ids[i - p]:
                run += 1
                continue
            if run + p >= max(3 * p, 6):
                found.append((i - run - p, i, p))
            run = 0
    found.sort(key=lambda lp: (-(lp[1] - lp[0]), lp[2], lp[0]))
    kept: list[tuple[int, int, int]] = []
    for lp in found:
        if all(lp[1] <= k[0] or lp[0] >= k[1] for k in kept):
            kept.append(lp)
    return kept


def answers(n: int, rng: random.Random) -> dict[str, list[int]]:
    varied = [rng.randrange(32000) for _ in range(n)]
    for i in range(0, n - 8, 97):  # a few short repeats, as text has
        varied[i + 4 : i + 8] = varied[i : i + 4]
    passage = [rng.randrange(32000) for _ in range(max(8, n // 5))]
    para = (varied[: n - 4 * len(passage)] + passage * 4)[:n]
    cycle = (varied[: n // 2] + [11, 12, 13] * n)[:n]
    return {"varied": varied, "passage x4": para, "short cycle": cycle}


def per_call(fn: Callable[[list[int]], object], ids: list[int], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(ids)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20, help="calls per figure (the fastest is shown)")
    args = ap.parse_args()
    rng = random.Random(0)
    print(f"{'tokens':>6}  {'answer':<12} {'new ms':>8} {'old ms':>8}  new longest      old longest")
    for n in (256, 1024, 4096):
        for kind, ids in answers(n, rng).items():
            new, old = per_call(loops, ids, args.repeat), per_call(old_loops, ids, max(3, args.repeat // 4))
            lp, op = loops(ids), old_loops(ids)
            got = f"{lp[0].length} (p {lp[0].period} x{lp[0].repeats})" if lp else "0"
            had = f"{op[0][1] - op[0][0]} (p {op[0][2]})" if op else "0"
            print(f"{n:>6}  {kind:<12} {new * 1e3:>8.2f} {old * 1e3:>8.2f}  {got:<16} {had}")


if __name__ == "__main__":
    main()
