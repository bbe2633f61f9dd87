"""`bench`: prompt processing and generation speed per file, measured the way llama-bench does.

pp: a prompt of random tokens (BOS first) decoded in batches of 512; tg: single tokens decoded one
after another from an empty cache; a warmup of each first, then the mean tokens/s of `reps` runs.
Defaults are llama-bench's pp512 / tg128, smaller for a model trained on a shorter context. Each
model loads in the worker process in turn; one that fails is an error row.

Each result is a record (records.py): the mean tokens/s with llama-bench's "±" (the runs' standard
deviation), when, and under what: build, threads, GPU layers (the device), extra buffers, and the
machine's load before and during, from which a record is marked busy (records.py's rule). Records are
found by content identity and settings; an idle record is reused, a busy one never is (the next bench
measures again), and `again` measures again in any case. A new idle record replaces the file's busy
one; a new busy record never replaces an idle one (it is kept beside it and shown only where no idle
one exists).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..llama.extra import decide
from ..modelfile import GGUFError, inspect_file
from ..textsafe import clean, clean_path
from . import cache, records
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
    record: records.Measurement | None = None  # when, under what, busy; None for an error row
    kept: records.Measurement | None = None  # a busy run's idle record, kept and still the one shown

    @property
    def busy(self) -> bool:
        return self.record is not None and self.record.busy

    def to_dict(self) -> dict[str, Any]:
        names = (
            "pp_tokens_per_second",
            "pp_stdev",
            "tg_tokens_per_second",
            "tg_stdev",
            "load_seconds",
            "threads",
            "extra_buffers",
        )
        out: dict[str, Any] = {"model": self.model, **{n: self.figures.get(n) for n in names}}
        if self.record is not None:
            out["measured_at"] = self.record.measured_at
            out["cached"] = self.cached
            out["busy"] = self.record.busy
            out["conditions"] = self.record.conditions
        if self.kept is not None:
            out["kept"] = {"measured_at": self.kept.measured_at, **self.kept.values}
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
    again: bool = False,
    n_prompt: int = N_PROMPT,
    n_gen: int = N_GEN,
    on_progress: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[BenchResult]:
    """Speed of each model (those with an idle record under these settings are not loaded; `again`,
    or use_cache=False, measures every one again and replaces its record)."""
    cancel = cancel or threading.Event()
    threads = threads or default_threads()
    stop = threading.Event()
    with ModelHost() as host:
        watcher = threading.Thread(target=watch_cancel, args=(cancel, stop, host), daemon=True)
        watcher.start()
        try:
            out = _bench_each(
                host, models, reps, threads, again or not use_cache, on_progress, cancel, (n_prompt, n_gen)
            )
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
    again: bool,
    on_progress: Callable[[int, int, str], None] | None,
    cancel: threading.Event,
    lengths: tuple[int, int] = (N_PROMPT, N_GEN),
) -> list[BenchResult]:
    """Each model in turn; a cancel (which interrupts the worker) ends the rest as cancelled rows."""
    out: list[BenchResult] = []
    build = records.build_conditions()
    for i, path in enumerate(models):
        name = Path(path).name
        if on_progress:
            on_progress(i, len(models), name)
        if cancel.is_set():
            out.append(BenchResult(path, error="cancelled"))
            continue
        try:
            facts = inspect_file(path).to_dict()
            pp, tg = sizes(facts.get("context_length"), *lengths)
            layers = gpu_layers(facts, max(pp, tg))
            extra_on = decide().use  # llama.cpp's repacked kernels change the speed: part of the key
            content = records.content_id(path)
        except (GGUFError, OSError) as e:
            out.append(BenchResult(path, error=f"cannot read {clean_path(name)}: {clean(str(e))}"))
            continue
        settings = {"pp": pp, "tg": tg, "reps": reps, "threads": threads, "gpu_layers": layers}
        idle_key, busy_key = (
            cache.key("bench", content, settings, extra_on, build["build"], busy) for busy in (False, True)
        )
        kept = records.load("bench", idle_key)
        if kept is not None and not again:
            out.append(BenchResult(path, dict(kept.values), cached=True, record=kept))
            continue
        try:
            host.call("load", path, max(pp, tg), layers, threads)
            before = records.load_sample()
            figures = host.call("bench", pp, tg, reps)
            after = records.load_sample()
            figures["gpu_layers"] = layers
            figures["extra_buffers"] = bool(host.extra.decision and host.extra.decision.use)
            host.call("unload")
        except (WorkerError, WorkerDied) as e:
            why = "cancelled" if cancel.is_set() else f"could not run {clean_path(name)}: {clean(str(e))}"
            out.append(BenchResult(path, error=why))
            continue
        load = records.busy_verdict(before, after, figures.get("cpu_seconds"), threads)
        conditions = {
            **build,
            **load,
            "threads": figures.get("threads", threads),
            "gpu_layers": layers,
            "device": records.device_of(layers, (facts.get("block_count") or 0) + 1),
            "extra_buffers": figures["extra_buffers"],
        }
        m = records.Measurement(
            "bench", content, os.path.realpath(path), settings, figures, time.time(), conditions
        )
        legacy = {"model": cache.identity(path)}
        if m.busy:
            rec = records.store("bench", busy_key, m, legacy)
            out.append(BenchResult(path, figures, record=rec, kept=kept))
        else:
            rec = records.store("bench", idle_key, m, legacy)
            records.forget("bench", busy_key)  # an idle measurement supersedes a busy one
            out.append(BenchResult(path, figures, record=rec))
    return out
