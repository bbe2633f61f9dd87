"""Eval figures (issue 12), side by side on the same models, text and settings:

- `quanttui eval` of 3 candidates against a reference, against llama-perplexity's procedure done
  with raw llama-cpp-python: a base run that writes every scored position's full-vocabulary
  log-probs to a file (16 bits each, as llama-perplexity's --kl-divergence-base does), then one KLD
  run per candidate that reads it back (as --kl-divergence does). Goal: total time ratio <= 1.0,
  and disk use nothing like the logits file.
- The mean KLD each gives (the figures against exact KL are in core/quality/score.py).
Run: python bench/eval.py [--ctx 512] [--chunks N] [--repeat 2] [--dir /tmp/quanttui-real]
Models: Gemma 3 270M (tests/realmodel.py) as F16, with Q8_0, Q3_K_M and Q2_K made from it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quanttui.core.llama import lib  # noqa: E402,I001  (llama_cpp before numpy, as a CUDA build needs)
import numpy as np  # noqa: E402

from quanttui.core.quality import cache  # noqa: E402
from quanttui.core.quality.eval import evaluate  # noqa: E402
from quanttui.core.quality.runtime import default_threads  # noqa: E402
from quanttui.core.quality.text import EvalText  # noqa: E402
from tests.realmodel import build  # noqa: E402

ROWS = 16


llama_cpp = lib()  # raw llama-cpp-python: llama-perplexity's procedure by hand


def _load(path: Path, ctx: int, threads: int) -> Any:
    with contextlib.redirect_stderr(io.StringIO()):
        return llama_cpp.Llama(
            str(path),
            n_ctx=ctx,
            n_batch=min(ctx, 512),
            n_ubatch=min(ctx, 512),
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
            seed=1,
        )


def _chunk_logits(llm: Any, part: list[int], first: int):
    """Decode a chunk as llama-perplexity does, logits only for positions >= first (until ctx-2)."""
    batch, n_vocab = llm._batch.batch, llm.n_vocab()
    llm._ctx.kv_cache_clear()
    feed = part[:-1]
    for i in range(0, len(feed), llm.n_batch):
        sub = feed[i : i + llm.n_batch]
        n_out = 0
        for j, tok in enumerate(sub):
            batch.token[j], batch.pos[j], batch.n_seq_id[j], batch.seq_id[j][0] = tok, i + j, 1, 0
            batch.logits[j] = i + j >= first
            n_out += i + j >= first
        batch.n_tokens = len(sub)
        llm._ctx.decode(llm._batch)
        if n_out:
            yield np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_out, n_vocab))


def _chunks(llm: Any, text: str, ctx: int, n_chunks: int | None) -> list[list[int]]:
    tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
    n = min(n_chunks or len(tokens) // ctx, len(tokens) // ctx)
    out = []
    for i in range(n):
        part = tokens[i * ctx : (i + 1) * ctx]
        part[0] = llm.token_bos()
        out.append(part)
    return out


def base_run(path: Path, text: str, ctx: int, n_chunks: int | None, out: Path, threads: int) -> int:
    """llama-perplexity --kl-divergence-base: uint16 log-probs of every scored position to `out`."""
    llm = _load(path, ctx, threads)
    chunks = _chunks(llm, text, ctx, n_chunks)
    first = ctx // 2
    with out.open("wb") as f:
        f.write(b"_logits_" + struct.pack("<Iii", ctx, llm.n_vocab(), len(chunks)))
        for part in chunks:
            for logits in _chunk_logits(llm, part, first):
                for lo in range(0, len(logits), ROWS):
                    x = logits[lo : lo + ROWS]
                    mx = x.max(axis=1, keepdims=True)
                    mn = np.maximum(x.min(axis=1, keepdims=True), mx - 16)
                    lse = np.log(np.exp(x - mx).sum(axis=1, keepdims=True, dtype=np.float64)).astype(
                        np.float32
                    )
                    scale = (mx - mn) / 65535.0
                    q = np.where(x > mn, np.rint((x - mn) / scale), 0).astype(np.uint16)
                    head = np.concatenate([scale, mn - mx - lse], axis=1).astype(np.float32)
                    for h, row in zip(head, q, strict=True):
                        f.write(h.tobytes() + row.tobytes())
    llm.close()
    return len(chunks)


def kld_run(path: Path, text: str, ctx: int, n_chunks: int, base: Path, threads: int) -> float:
    """llama-perplexity --kl-divergence: the mean KLD against the base file, read back chunk by chunk."""
    llm = _load(path, ctx, threads)
    chunks = _chunks(llm, text, ctx, n_chunks)
    n_vocab, first = llm.n_vocab(), ctx // 2
    row_bytes = 8 + 2 * n_vocab
    klds = []
    with base.open("rb") as f:
        f.seek(20)
        for part in chunks:
            for logits in _chunk_logits(llm, part, first):
                raw = np.frombuffer(f.read(row_bytes * len(logits)), dtype=np.uint8).reshape(
                    len(logits), row_bytes
                )
                head = raw[:, :8].copy().view(np.float32)
                q = raw[:, 8:].copy().view(np.uint16)
                for lo in range(0, len(logits), ROWS):
                    x = logits[lo : lo + ROWS].astype(np.float64)
                    lq = x - x.max(axis=1, keepdims=True)
                    lq -= np.log(np.exp(lq).sum(axis=1, keepdims=True))
                    lp = head[lo : lo + ROWS, :1] * q[lo : lo + ROWS] + head[lo : lo + ROWS, 1:]
                    keep = lp > -16
                    klds.extend(np.where(keep, np.exp(lp) * (lp - lq), 0).sum(axis=1))
    llm.close()
    return float(np.mean(klds))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "quanttui-real")
    args = ap.parse_args()
    models = build(args.dir)
    ref, cands = models.f16, [models.quants[q] for q in ("Q8_0", "Q3_K_M", "Q2_K")]
    text = EvalText.load()
    threads = default_threads()
    os.environ["QUANTTUI_CACHE_DIR"] = tempfile.mkdtemp(prefix="quanttui-bench-cache-")

    ours_times, theirs_times = [], []
    for _ in range(args.repeat):  # alternated, the fastest of each kept: the cores are shared
        start = time.perf_counter()
        report = evaluate(
            str(ref),
            [str(c) for c in cands],
            text=text,
            ctx=args.ctx,
            chunks=args.chunks,
            use_cache=False,
            threads=threads,
        )
        ours_times.append(time.perf_counter() - start)
        ours_disk = sum(f.stat().st_size for f in cache.folder("eval").glob("*.json"))
        with tempfile.TemporaryDirectory(prefix="quanttui-bench-") as tmp:
            base = Path(tmp) / "base.kld"
            start = time.perf_counter()
            n = base_run(ref, text.content, args.ctx, args.chunks, base, threads)
            theirs_disk = base.stat().st_size
            theirs_kld = [kld_run(c, text.content, args.ctx, n, base, threads) for c in cands]
            theirs_times.append(time.perf_counter() - start)
    ours, theirs = min(ours_times), min(theirs_times)

    print(f"Gemma 3 270M F16 reference, 3 candidates, default text, ctx {args.ctx}, {n} chunks")
    print(f"{threads} threads, fastest of {args.repeat} alternated runs each")
    print(f"{'':34}{'quanttui eval':>16}{'llama-perplexity way':>22}")
    print(f"{'total seconds':34}{ours:>16.1f}{theirs:>22.1f}   ratio {ours / theirs:.2f} (goal <= 1.0)")
    print(f"{'peak disk written':34}{ours_disk:>14,} B{theirs_disk:>20,} B")
    for c, row, k in zip(cands, report.candidates, theirs_kld, strict=True):
        print(f"{'KLD mean ' + c.name:34}{row.get('kld_mean'):>16.6f}{k:>22.6f}")


if __name__ == "__main__":
    main()
