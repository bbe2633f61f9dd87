"""The quality worker process: loads one model at a time and answers eval and bench requests.

Run as `python -m quanttui.core.quality.worker FD PARENT_PID`, FD being one end of a socket pair; it
dies with the process PARENT_PID (core/childproc.py), even one killed in the middle of a request. Requests are
protocol.Request (or childproc.Close); replies are childproc.Ok or Err. Full-vocabulary logits never
leave this process: a chunk's rows are reduced here (score.py) and only per-position figures or the
reference's compact rows go back. Importing quanttui.core first imports llama_cpp before numpy,
which a CUDA build needs. Its stdout and stderr go to a log file, never the terminal.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from ..childproc import Close, Err, Ok, worker_main
from ..llama import lib, load
from .protocol import Request
from .score import MAX_KEEP, RefRows, Stats, compare_rows, reference_rows

BATCH = 512  # tokens per decode, as llama-perplexity and llama-bench use by default


class Model:
    """One loaded model: scored logits rows of a chunk, and llama-bench's pp/tg timings."""

    def __init__(self, path: str, n_ctx: int, n_gpu_layers: int = 0, threads: int | None = None) -> None:
        if not Path(path).is_file():
            raise ValueError(f"no such file: {path}")
        start = time.perf_counter()
        self.llm = load(
            path,
            n_ctx=n_ctx,
            n_batch=min(n_ctx, BATCH),
            n_ubatch=min(n_ctx, BATCH),
            n_gpu_layers=n_gpu_layers,
            n_threads=threads,
            n_threads_batch=threads,
            seed=1,
        )
        self.load_seconds = time.perf_counter() - start
        self.threads = self.llm.n_threads

    def info(self) -> dict[str, Any]:
        model = self.llm._model
        add_bos = bool(lib().llama_vocab_get_add_bos(model.vocab))
        return {
            "n_vocab": self.llm.n_vocab(),
            "n_ctx_train": self.llm._model.n_ctx_train(),
            "bos": self.llm.token_bos() if add_bos else None,
            "load_seconds": self.load_seconds,
            "threads": self.threads,
        }

    def tokenize(self, text: str) -> list[int]:
        """The whole text with BOS (when the model adds one), special tokens read as plain text."""
        tokens: list[int] = self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        return tokens

    def _decode(self, tokens: list[int], outputs: range) -> Any:
        """Decode `tokens` from position 0, yielding the logits of the positions in `outputs`
        (float32, rows x n_vocab, valid until the next decode)."""
        llm, ctx = self.llm, self.llm._ctx
        batch = llm._batch.batch
        n_vocab = llm.n_vocab()
        ctx.kv_cache_clear()
        for i in range(0, len(tokens), llm.n_batch):
            part = tokens[i : i + llm.n_batch]
            n_out = 0
            for j, tok in enumerate(part):
                want = (i + j) in outputs
                batch.token[j], batch.pos[j] = tok, i + j
                batch.n_seq_id[j], batch.seq_id[j][0] = 1, 0
                batch.logits[j] = want
                n_out += want
            batch.n_tokens = len(part)
            ctx.decode(llm._batch)
            if n_out:
                yield np.ctypeslib.as_array(ctx.get_logits(), shape=(n_out, n_vocab))

    def _rows(self, tokens: list[int], first: int) -> tuple[Any, np.ndarray]:
        last = len(tokens) - 1  # the last token is only predicted, never fed
        nexts = np.asarray(tokens[first + 1 :], dtype=np.int64)
        return self._decode(tokens[:last], range(first, last)), nexts

    def reference(self, tokens: list[int], first: int, keep: int = MAX_KEEP) -> RefRows:
        blocks, nexts = self._rows(tokens, first)
        parts, done = [], 0
        for logits in blocks:
            parts.append(reference_rows(logits, nexts[done : done + len(logits)], keep))
            done += len(logits)
        return RefRows.concat(parts)

    def compare(self, tokens: list[int], first: int, ref: RefRows) -> Stats:
        blocks, nexts = self._rows(tokens, first)
        out, done = Stats(), 0
        for logits in blocks:
            n = len(logits)
            out.extend(compare_rows(ref.rows(done, done + n), logits, nexts[done : done + n]))
            done += n
        return out

    def logits(self, tokens: list[int], first: int) -> np.ndarray:
        """Full rows of the scored positions (for measuring the compact form; never used by eval)."""
        blocks, _ = self._rows(tokens, first)
        return np.concatenate([b.copy() for b in blocks])

    def bench(self, n_prompt: int, n_gen: int, reps: int) -> dict[str, Any]:
        """llama-bench's pp and tg: random tokens (BOS first), a warmup, then the mean of `reps` runs."""
        llm, ctx = self.llm, self.llm._ctx
        rng = random.Random(0)
        n_vocab = llm.n_vocab()
        bos = self.info()["bos"]

        def prompt() -> float:
            toks = [rng.randrange(n_vocab) for _ in range(n_prompt)]
            if bos is not None:
                toks[0] = bos
            start = time.perf_counter()
            for _ in self._decode(toks, range(n_prompt - 1, n_prompt)):
                pass
            return time.perf_counter() - start

        def gen(n: int) -> float:
            ctx.kv_cache_clear()
            tok = bos if bos is not None else rng.randrange(n_vocab)
            start = time.perf_counter()
            for pos in range(n):
                llm._batch.set_batch([tok], n_past=pos, logits_all=True)
                ctx.decode(llm._batch)
                tok = rng.randrange(n_vocab)
            return time.perf_counter() - start

        cpu = time.process_time()  # this process's CPU time: the machine's other load is the rest
        prompt()
        gen(1)
        pp = [n_prompt / prompt() for _ in range(reps)]
        tg = [n_gen / gen(n_gen) for _ in range(reps)]
        return {
            "pp_tokens_per_second": float(np.mean(pp)),
            "tg_tokens_per_second": float(np.mean(tg)),
            "pp_stdev": _stdev(pp),  # llama-bench's "±": the sample standard deviation of the runs
            "tg_stdev": _stdev(tg),
            "reps": reps,
            "cpu_seconds": time.process_time() - cpu,
            "pp_tokens": n_prompt,
            "tg_tokens": n_gen,
            "load_seconds": self.load_seconds,
            "threads": self.threads,
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.llm.close()


def _stdev(v: list[float]) -> float:
    """llama-bench's stdev: sample standard deviation, 0 for fewer than two runs."""
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def _handle(model: Model | None, op: str, args: tuple[Any, ...]) -> tuple[Model | None, Any]:
    if op == "load":
        if model is not None:
            model.close()
        model = None  # a failed load leaves nothing loaded
        model = Model(*args)
        return model, model.info()
    if op == "unload":
        if model is not None:
            model.close()
        return None, None
    if model is None:
        raise RuntimeError("no model loaded")
    if op in ("tokenize", "reference", "compare", "logits", "bench"):
        return model, getattr(model, op)(*args)
    raise ValueError(f"unknown request {op!r}")


def serve(conn: Connection) -> None:
    model: Model | None = None
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            msg = Close()  # the app is gone
        if not isinstance(msg, Request):
            if model is not None:
                model.close()
            with contextlib.suppress(OSError):
                conn.send(Ok())
            return
        try:
            model, value = _handle(model, msg.op, msg.args)
        except Exception as e:  # noqa: BLE001  every failure goes back to the app as one line
            conn.send(Err(f"{type(e).__name__}: {e}"))
        else:
            conn.send(Ok(value))


def main(argv: list[str]) -> int:
    return worker_main(serve, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
