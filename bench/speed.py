"""Bench figures (issue 12): `quanttui bench` tokens/s against raw llama-cpp-python timing of the
same pp / tg (random tokens, BOS first, a warmup, mean of the runs), side by side. Goal: >= 95%.
Run: python bench/speed.py [--reps 3] [--repeat 2] [--dir /tmp/quanttui-real]
Models: Gemma 3 270M Q8_0 and Q2_K (tests/realmodel.py). `quanttui bench` runs in its worker process.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quanttui.core.llama import lib  # noqa: E402,I001  (llama_cpp before numpy, as a CUDA build needs)

llama_cpp = lib()  # raw llama-cpp-python, llama.cpp's defaults: the baseline

from quanttui.core.quality.bench import N_GEN, N_PROMPT, bench  # noqa: E402
from quanttui.core.quality.runtime import default_threads  # noqa: E402
from tests.realmodel import build  # noqa: E402


def raw(path: Path, reps: int, threads: int) -> tuple[float, float]:
    """pp and tg tokens/s with llama-cpp-python's own Llama.eval, llama-bench's procedure."""
    with contextlib.redirect_stderr(io.StringIO()):
        llm = llama_cpp.Llama(
            str(path),
            n_ctx=N_PROMPT,
            n_batch=512,
            n_ubatch=512,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
            seed=1,
        )
    rng = random.Random(0)
    n_vocab = llm.n_vocab()

    def pp() -> float:
        toks = [llm.token_bos()] + [rng.randrange(n_vocab) for _ in range(N_PROMPT - 1)]
        llm.reset()
        start = time.perf_counter()
        llm.eval(toks)
        return N_PROMPT / (time.perf_counter() - start)

    def tg(n: int) -> float:
        llm.reset()
        tok = llm.token_bos()
        start = time.perf_counter()
        for _ in range(n):
            llm.eval([tok])
            tok = rng.randrange(n_vocab)
        return n / (time.perf_counter() - start)

    pp(), tg(1)
    out = sum(pp() for _ in range(reps)) / reps, sum(tg(N_GEN) for _ in range(reps)) / reps
    llm.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "quanttui-real")
    args = ap.parse_args()
    models = build(args.dir)
    os.environ["QUANTTUI_CACHE_DIR"] = tempfile.mkdtemp(prefix="quanttui-bench-cache-")
    threads = default_threads()
    print(f"pp{N_PROMPT} / tg{N_GEN}, {threads} threads, mean of {args.reps} runs")
    print(f"best of {args.repeat} alternated tries each")
    print(f"{'model':28}{'bench pp':>10}{'raw pp':>10}{'ratio':>7}{'bench tg':>10}{'raw tg':>10}{'ratio':>7}")
    for label in ("Q8_0", "Q2_K"):
        path = models.quants[label]
        ours, theirs = [], []
        for _ in range(args.repeat):  # alternated, the fastest of each kept: the cores are shared
            (r,) = bench([str(path)], reps=args.reps, threads=threads, use_cache=False)
            ours.append((r.figures["pp_tokens_per_second"], r.figures["tg_tokens_per_second"]))
            theirs.append(raw(path, args.reps, threads))
        opp, otg = max(o[0] for o in ours), max(o[1] for o in ours)
        tpp, ttg = max(t[0] for t in theirs), max(t[1] for t in theirs)
        print(f"{path.name:28}{opp:>10.1f}{tpp:>10.1f}{opp / tpp:>7.2f}", end="")
        print(f"{otg:>10.1f}{ttg:>10.1f}{otg / ttg:>7.2f}")


if __name__ == "__main__":
    main()
