"""llama.cpp's extra buffers on this machine: what the probe costs, and what they are worth.

Prints the probe's wall time (median of 3, each in a fresh cache), the verdict, and prompt (pp512)
and generation (tg64) tokens/s of Gemma 3 270M quants loaded with and without extra buffers,
measured in turns within one run (these machines are noisy), with the ratio on/off.

    .venv/bin/python bench/extra_buffers.py [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quanttui.core.llama import extra, ggml, load  # noqa: E402,I001  (llama_cpp before numpy)
from quanttui.core.quality.runtime import default_threads  # noqa: E402
from tests.realmodel import build  # noqa: E402

QUANTS = ("Q4_0", "Q4_K_M", "Q8_0")


def probe_seconds(reps: int) -> tuple[float, str, str]:
    times, verdict, reason = [], "", ""
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as d:
            os.environ["QUANTTUI_CACHE_DIR"] = d
            start = time.perf_counter()
            decision = extra.decide()
            times.append(time.perf_counter() - start)
            verdict, reason = decision.verdict, decision.reason
    return statistics.median(times), verdict, reason


def speed(path: Path, on: bool, threads: int) -> tuple[float, float]:
    llm = load(path, extra_buffers=on, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=threads, seed=1)
    try:
        prompt = [2] + list(range(100, 611))
        llm.eval(prompt[:16])  # warm up
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        pp = len(prompt) / (time.perf_counter() - start)
        start = time.perf_counter()
        for tok in range(1000, 1064):
            llm.eval([tok])
        tg = 64 / (time.perf_counter() - start)
        return pp, tg
    finally:
        llm.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    seconds, verdict, reason = probe_seconds(args.reps)
    print(f"extra buffer types here: {', '.join(ggml.extra_buffer_types()) or 'none'}")
    print(f"probe: {seconds:.2f} s (median of {args.reps}), verdict {verdict}: {reason}")
    threads = default_threads()
    models = build(Path(tempfile.gettempdir()) / "quanttui-bench-gemma", ("Q4_0", "Q8_0"))
    head = f"{'quant':<8}{'pp on':>9}{'pp off':>9}{'ratio':>7}{'tg on':>9}{'tg off':>9}{'ratio':>7}"
    print(f"{head}   ({threads} threads)")
    for label in QUANTS:
        path = models.q4_k_m if label == "Q4_K_M" else models.quants[label]
        runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for _ in range(args.reps):
            for on in (True, False):
                runs[on].append(speed(path, on, threads))
        pp = {on: statistics.median(r[0] for r in runs[on]) for on in runs}
        tg = {on: statistics.median(r[1] for r in runs[on]) for on in runs}
        print(
            f"{label:<8}{pp[True]:>9.1f}{pp[False]:>9.1f}{pp[True] / pp[False]:>7.2f}"
            f"{tg[True]:>9.1f}{tg[False]:>9.1f}{tg[True] / tg[False]:>7.2f}"
        )


if __name__ == "__main__":
    main()
