"""The extra-buffer probe, run as `python -m quanttui.core.llama.probe DIR` by extra.run_probe.

It writes a tiny model, quantizes it to the types AMX and CPU_REPACK take (Q4_0, Q4_K, Q8_0),
and decodes the batch shapes the app uses (a prompt, one token, a scoring block of 16) without
extra buffers, then with them, printing a JSON line before each stage so that the parent knows
which one a crash ended. The last line carries the largest logit difference and the verdict.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import preload

preload()  # llama_cpp before numpy

import numpy as np  # noqa: E402

from .load import load, quantize  # noqa: E402
from .tinymodel import write_tiny_model  # noqa: E402

QUANTS = ("Q4_0", "Q4_K_M", "Q8_0")
PROMPT = list(range(3, 67))  # 64 byte tokens: one batch
STEPS = ([70], list(range(80, 96)))  # then one token, then a block of 16
TOLERANCE = 0.05  # of the logits' spread: kernels differ by far less; a broken path by far more


def _say(**kw: object) -> None:
    print(json.dumps(kw), flush=True)


def _logits(path: Path, extra: bool) -> np.ndarray:
    llm = load(path, extra_buffers=extra, n_ctx=256, n_batch=256, n_ubatch=256, logits_all=True, seed=1)
    try:
        llm.eval(PROMPT)
        for step in STEPS:
            llm.eval(step)
        return np.array(llm.scores[: llm.n_tokens], dtype=np.float32)
    finally:
        llm.close()


def main(folder: str) -> int:
    out = Path(folder)
    _say(stage="build")
    f16 = write_tiny_model(out / "probe-F16.gguf", n_layer=2, n_embd=256, n_ff=768)
    files = [out / f"probe-{q}.gguf" for q in QUANTS]
    for q, path in zip(QUANTS, files, strict=True):
        quantize(f16, path, q)
    _say(stage="off")
    plain = [_logits(p, False) for p in files]
    _say(stage="on")
    extra = [_logits(p, True) for p in files]
    worst = 0.0
    ok = True
    for a, b in zip(plain, extra, strict=True):
        spread = float(a.max() - a.min()) or 1.0
        diff = float(np.abs(a - b).max()) if np.isfinite(b).all() else float("inf")
        worst = max(worst, diff)
        ok &= diff <= TOLERANCE * spread
    _say(stage="done", max_diff=worst, match=bool(ok))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
