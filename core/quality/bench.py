"""`bench`: prompt processing and generation speed per file, measured the way llama-bench does.

pp: a prompt of random tokens (BOS first) decoded in batches of 512; tg: single tokens decoded one
after another from an empty cache; a warmup of each first, then the mean tokens/s of `reps` runs.
Defaults are llama-bench's pp512 / tg128, smaller for a model trained on a shorter context. Each
model loads in the worker process in turn; one that fails is an error row. Results are cached per
file identity and settings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..llama.extra import decide
from ..modelfile import GGUFError, inspect_file
from ..textsafe import clean, clean_path
from . import cache
from .host import ModelHost, WorkerDied, WorkerError, watch_cancel
from .runtime import default_threads, gpu_layers

N_PROMPT = 512
N_GEN = 128
REPS = 3


@dataclass
class BenchResult:
    model: str
    figures: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        names = ("pp_tokens_per_second", "tg_tokens_per_second", "load_seconds", "threads", "extra_buffers")
        out: dict[str, Any] = {"model": self.model, **{n: self.figures.get(n) for n in names}}
        if self.error:
            out["error"] = self.error
        return out


def sizes(n_ctx_train: int | None, n_prompt: int = N_PROMPT, n_gen: int = N_GEN) -> tuple[int, int]:
    """pp and tg lengths that fit the model's trained context."""
    if n_ctx_train:
        return max(1, min(n_prompt, n_ctx_train)), max(1, min(n_gen, n_ctx_train))
    return n_prompt, n_gen


def bench(
    models: list[str],
    *,
    reps: int = REPS,
    threads: int | None = None,
    use_cache: bool = True,
    on_progress: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[BenchResult]:
    """Speed of each model (cached ones are not loaded)."""
    cancel = cancel or threading.Event()
    threads = threads or default_threads()
    stop = threading.Event()
    with ModelHost() as host:
        watcher = threading.Thread(target=watch_cancel, args=(cancel, stop, host), daemon=True)
        watcher.start()
        try:
            out = _bench_each(host, models, reps, threads, use_cache, on_progress, cancel)
        finally:
            stop.set()
    if on_progress:
        on_progress(len(models), len(models), "")
    return out


def _bench_each(
    host: ModelHost,
    models: list[str],
    reps: int,
    threads: int,
    use_cache: bool,
    on_progress: Callable[[int, int, str], None] | None,
    cancel: threading.Event,
) -> list[BenchResult]:
    """Each model in turn; a cancel (which interrupts the worker) ends the rest as cancelled rows."""
    out: list[BenchResult] = []
    for i, path in enumerate(models):
        name = Path(path).name
        if on_progress:
            on_progress(i, len(models), name)
        if cancel.is_set():
            out.append(BenchResult(path, error="cancelled"))
            continue
        try:
            facts = inspect_file(path).to_dict()
            pp, tg = sizes(facts.get("context_length"))
            layers = gpu_layers(facts, max(pp, tg))
            extra_on = decide().use  # llama.cpp's repacked kernels change the speed: part of the key
            k = cache.key("bench", cache.identity(path), pp, tg, reps, threads, layers, extra_on)
        except (GGUFError, OSError) as e:
            out.append(BenchResult(path, error=f"cannot read {clean_path(name)}: {clean(str(e))}"))
            continue
        record = cache.load("bench", k) if use_cache else None
        if record is not None:
            out.append(BenchResult(path, dict(record["result"]), cached=True))
            continue
        try:
            host.call("load", path, max(pp, tg), layers, threads)
            figures = {**host.call("bench", pp, tg, reps), "gpu_layers": layers}
            figures["extra_buffers"] = bool(host.extra.decision and host.extra.decision.use)
            host.call("unload")
        except (WorkerError, WorkerDied) as e:
            why = "cancelled" if cancel.is_set() else f"could not run {clean_path(name)}: {clean(str(e))}"
            out.append(BenchResult(path, error=why))
            continue
        out.append(BenchResult(path, figures))
        cache.store("bench", k, {"model": cache.identity(path), "result": figures, "time": time.time()})
    return out
