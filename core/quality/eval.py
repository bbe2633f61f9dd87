"""`eval`: candidates against a reference on a text, with llama-perplexity's KL-divergence figures.

The reference runs once: its scored rows are kept per chunk in compact form (score.py) in memory,
never as a logits file. Then each candidate is loaded in turn (one model in the worker at a time)
and scored chunk by chunk against them. A candidate that cannot be read, loaded or run, or whose
tokenizer differs from the reference's, is an error row; the others go on. Each result is a
record (records.py): its figures with llama-perplexity's "±", when, and under what (build, threads,
extra buffers, load), found by the candidate's content identity and kept per settings (reference
content, text, ctx, chunks), so a rerun with the same content and settings loads nothing, a moved or
copied file keeps its figures, and `again` measures again, replacing the record.

DEFAULT_CTX x DEFAULT_CHUNKS is the one default for every eval quanttui runs by itself (the CLI's,
the Quality view's, the demo's), so figures from each land in one settings set.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..llama.extra import decide
from ..modelfile import GGUFError, inspect_file
from ..textsafe import clean, clean_path
from . import cache, records
from .cache import EVAL_NUMBERS
from .host import ModelHost, WorkerDied, WorkerError, watch_cancel
from .runtime import default_threads, gpu_layers
from .score import MAX_KEEP, RefRows, Stats, mean_se
from .text import EvalText, QualityError, check_chunks, check_ctx, chunk, default_ctx, scored

DEFAULT_CHUNKS: int | None = None  # all the text holds: 5 chunks of 512 for the shipped text on Gemma 3
MEMORY = 1 << 30  # bytes the reference's kept rows may take; a long text keeps fewer tokens a position
MIN_KEEP = 256


def keep_per_position(memory: int, positions: int) -> int:
    """How many tokens each scored position keeps (8 bytes each) so all positions fit in `memory`."""
    return max(MIN_KEEP, min(MAX_KEEP, memory // (8 * max(positions, 1))))


@dataclass
class Progress:
    """What eval is doing: `done` of `total` chunk passes, the model at work, seconds left (None early)."""

    done: int
    total: int
    model: str
    stage: str  # "loading", "reference" or "candidate"
    eta_seconds: float | None


@dataclass
class CandidateResult:
    model: str
    figures: dict[str, Any] = field(default_factory=dict)  # Stats.summary() plus "seconds"
    error: str | None = None
    cached: bool = False
    record: records.Measurement | None = None  # when, under what; None for an error row

    def get(self, name: str) -> Any:
        return self.figures.get(name)

    def to_dict(self) -> dict[str, Any]:
        names = (n for n in EVAL_NUMBERS if n != "ppl_ref")  # the reference's ppl is the report's
        out: dict[str, Any] = {"model": self.model, **{n: self.figures.get(n) for n in names}}
        out.update({se: self.figures.get(se) for se in UNCERTAIN_NAMES if se != "ppl_ref_se"})
        if self.record is not None:
            out["measured_at"] = self.record.measured_at
            out["conditions"] = self.record.conditions
            out["cached"] = self.cached
        if self.error:
            out["error"] = self.error
        return out


UNCERTAIN_NAMES = (
    "kld_mean_se",
    "top1_agreement_se",
    "ppl_se",
    "ppl_ref_se",
    "ppl_ratio_se",
    "ln_ppl_ratio",
    "ln_ppl_ratio_se",
    "p_diff_mean_se",
    "p_diff_rms_se",
)


@dataclass
class EvalReport:
    reference: str
    ref_ppl: float | None
    text: EvalText
    ctx: int
    chunks: int | None  # None when every row came from the cache of an "all chunks" run
    n_tokens: int | None
    candidates: list[CandidateResult]
    cancelled: bool = False
    ref_ppl_se: float | None = None
    settings: dict[str, Any] | None = None  # the records' settings (records.py), None when unknown

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": {"model": self.reference, "ppl": self.ref_ppl, "ppl_se": self.ref_ppl_se},
            "text": {
                "name": self.text.name,
                "sha256": self.text.sha256,
                "tokens": self.n_tokens,
                "ctx": self.ctx,
                "chunks": self.chunks,
            },
            "candidates": [c.to_dict() for c in self.candidates],
            **({"cancelled": True} if self.cancelled else {}),
        }


OnProgress = Callable[[Progress], None]


class _Clock:
    """Chunk passes done and an ETA from the time they took (loading excluded)."""

    def __init__(self, total: int, on_progress: OnProgress | None) -> None:
        self.total, self.done, self.busy = total, 0, 0.0
        self.on_progress = on_progress

    def tell(self, model: str, stage: str) -> None:
        if self.on_progress:
            eta = self.busy / self.done * (self.total - self.done) if self.done else None
            self.on_progress(Progress(self.done, self.total, model, stage, eta))

    def step(self, seconds: float) -> None:
        self.done += 1
        self.busy += seconds


def _facts(path: str) -> dict[str, Any]:
    try:
        return inspect_file(path).to_dict()
    except (GGUFError, OSError) as e:
        raise QualityError(f"{clean_path(path)}: {clean(str(e))}") from None


class _Run:
    """One eval: the worker, the text's tokens, the reference's compact rows per chunk."""

    def __init__(
        self, reference: str, text: EvalText, ctx: int, cancel: threading.Event, threads: int
    ) -> None:
        self.reference, self.text, self.ctx = reference, text, ctx
        self.keep = MAX_KEEP
        self.cancel, self.threads = cancel, threads
        self.host = ModelHost()
        self.first = scored(ctx)[0]
        self.tokens: list[int] = []
        self.bos: int | None = None
        self.n_vocab = 0
        self.ref_rows: list[RefRows] = []
        self.loaded: dict[str, Any] = {}

    def load(self, path: str) -> dict[str, Any]:
        facts = inspect_file(path).to_dict()
        layers = gpu_layers(facts, self.ctx)
        info: dict[str, Any] = self.host.call("load", path, self.ctx, layers, self.threads)
        self.loaded = {
            "gpu_layers": layers,
            "device": records.device_of(layers, (facts.get("block_count") or 0) + 1),
            "threads": info.get("threads", self.threads) if isinstance(info, dict) else self.threads,
        }
        return info

    def prepare(self, chunks: int | None, memory: int) -> int | None:
        """Load the reference and tokenize the text; the number of chunks to score (None when a
        cancel stopped it: the worker is killed under the request, which is not the reference's fault)."""
        name = clean_path(Path(self.reference).name)
        try:
            info = self.load(self.reference)
            self.tokens = self.host.call("tokenize", self.text.content)
        except (WorkerError, WorkerDied, GGUFError, OSError) as e:
            if self.cancel.is_set():
                return None
            raise QualityError(f"the reference {name} could not be loaded: {clean(str(e))}") from None
        self.bos, self.n_vocab = info["bos"], info["n_vocab"]
        return check_chunks(chunks, len(self.tokens), self.ctx, memory // (8 * MIN_KEEP))

    def reference_pass(self, n_chunks: int, clock: _Clock) -> np.ndarray:
        """The reference's compact rows for every chunk; its NLL per scored token."""
        name = Path(self.reference).name
        for i in range(n_chunks):
            if self.cancel.is_set():
                break
            start = time.perf_counter()
            try:
                rows = self.host.call(
                    "reference", chunk(self.tokens, i, self.ctx, self.bos), self.first, self.keep
                )
            except (WorkerError, WorkerDied) as e:
                if self.cancel.is_set():
                    break
                raise QualityError(f"the reference {clean_path(name)} failed: {clean(str(e))}") from None
            self.ref_rows.append(rows)
            clock.step(time.perf_counter() - start)
            clock.tell(name, "reference")
        return np.concatenate([r.nll for r in self.ref_rows]) if self.ref_rows else np.zeros(0)

    def candidate(self, path: str, clock: _Clock) -> CandidateResult:
        name = Path(path).name
        out = CandidateResult(path)
        clock.tell(name, "loading")
        start = time.perf_counter()
        try:
            info = self.load(path)
            if (
                info["n_vocab"] != self.n_vocab
                or self.host.call("tokenize", self.text.content) != self.tokens
            ):
                out.error = (
                    "its tokenizer differs from the reference's: KL divergence needs the same vocabulary"
                )
                return out
            stats = Stats()
            for i, ref in enumerate(self.ref_rows):
                if self.cancel.is_set():
                    break
                t = time.perf_counter()
                stats.extend(
                    self.host.call("compare", chunk(self.tokens, i, self.ctx, self.bos), self.first, ref)
                )
                clock.step(time.perf_counter() - t)
                clock.tell(name, "candidate")
        except (WorkerError, WorkerDied, GGUFError, OSError) as e:
            if not self.cancel.is_set():
                out.error = f"could not evaluate {clean_path(name)}: {clean(str(e))}"
                return out
        if self.cancel.is_set():
            out.error = "cancelled"
            return out
        out.figures = {**stats.summary(), "seconds": time.perf_counter() - start}
        return out


def evaluate(
    reference: str,
    candidates: list[str],
    *,
    text: EvalText | None = None,
    ctx: int | None = None,
    chunks: int | None = DEFAULT_CHUNKS,
    memory: int = MEMORY,
    on_progress: OnProgress | None = None,
    cancel: threading.Event | None = None,
    use_cache: bool = True,
    again: bool = False,
    threads: int | None = None,
) -> EvalReport:
    """Score every candidate against the reference; QualityError when the reference or a bound fails.
    A candidate whose content has a record under these settings, build and extra buffers is read
    from it; `again` (or use_cache=False) measures every candidate again and replaces its record."""
    cancel = cancel or threading.Event()
    text = text or EvalText.load()
    n_ctx_train = _facts(reference).get("context_length")
    ctx = default_ctx(n_ctx_train) if ctx is None else ctx
    check_ctx(ctx, n_ctx_train)
    if chunks is not None and chunks < 1:
        raise QualityError(f"--chunks {chunks}: at least 1")
    try:
        ref_id = cache.identity(reference)
        ref_content = records.content_id(reference)
    except OSError as e:
        raise QualityError(f"cannot read the reference {clean_path(reference)}: {e.strerror or e}") from None
    measure = again or not use_cache
    build = records.build_conditions()
    extra_on = decide().use  # other kernels: a figure with them is not mixed with one without
    wanted = {"reference": ref_content, "text_sha256": text.sha256, "ctx": ctx, "chunks": chunks or "all"}

    rows: dict[int, CandidateResult] = {}
    keys: dict[int, str] = {}
    contents: dict[int, str] = {}
    ref_ppl = ref_ppl_se = n_tokens = n_chunks = None
    settings: dict[str, Any] | None = None
    for i, path in enumerate(candidates):
        try:
            contents[i] = records.content_id(path)
        except OSError as e:
            rows[i] = CandidateResult(path, error=f"cannot read {clean_path(path)}: {e.strerror or e}")
            continue
        keys[i] = cache.key("eval", contents[i], wanted, build["build"], extra_on)
        record = None if measure else records.load("eval", keys[i])
        if record is not None:
            rows[i] = CandidateResult(path, dict(record.values), cached=True, record=record)
            ref_ppl, ref_ppl_se = record.values.get("ppl_ref"), record.values.get("ppl_ref_se")
            n_tokens, n_chunks = record.conditions.get("tokens"), record.settings.get("chunks")
            settings = record.settings
    pending = [i for i in range(len(candidates)) if i not in rows]
    if not pending:
        return EvalReport(
            reference,
            ref_ppl,
            text,
            ctx,
            n_chunks,
            n_tokens,
            [rows[i] for i in range(len(candidates))],
            ref_ppl_se=ref_ppl_se,
            settings=settings,
        )

    run = _Run(reference, text, ctx, cancel, threads or default_threads())
    stop = threading.Event()
    watcher = threading.Thread(target=watch_cancel, args=(cancel, stop, run.host), daemon=True)
    watcher.start()
    try:
        if on_progress:
            on_progress(Progress(0, 0, Path(reference).name, "loading", None))
        prepared = run.prepare(chunks, memory)
        n_chunks = prepared if prepared is not None else n_chunks
        clock = _Clock((1 + len(pending)) * (prepared or 0), on_progress)
        if prepared is not None:
            run.keep = keep_per_position(memory, prepared * (ctx - 1 - run.first))
            nll_ref = run.reference_pass(prepared, clock)
            if len(run.ref_rows) == prepared:  # a reference cut short by a cancel has no perplexity
                ref_ppl = float(np.exp(nll_ref.mean()))
                ref_ppl_se = ref_ppl * mean_se(nll_ref)
        settings = {**wanted, "chunks": n_chunks}
        for i in pending:
            before = records.load_sample()
            rows[i] = (
                run.candidate(candidates[i], clock)
                if not cancel.is_set()
                else CandidateResult(candidates[i], error="cancelled")
            )
            if rows[i].error is None:
                load = records.busy_verdict(before, records.load_sample(), None, run.threads)
                conditions = {
                    **build,
                    **run.loaded,
                    "extra_buffers": bool(run.host.extra.decision and run.host.extra.decision.use),
                    "tokens": len(run.tokens),
                    "text": text.name,
                    **{k: load[k] for k in ("load_before", "load_after", "cpu_percent")},
                }
                real = os.path.realpath(candidates[i])
                m = records.Measurement(
                    "eval", contents[i], real, settings, rows[i].figures, time.time(), conditions
                )
                rows[i].record = records.store(
                    "eval",
                    keys[i],
                    m,
                    legacy={
                        "candidate": cache.identity(candidates[i]),
                        "reference": ref_id,
                        "text": text.name,
                        "text_sha256": text.sha256,
                        "ctx": ctx,
                        "chunks": n_chunks,
                        "tokens": len(run.tokens),
                    },
                )
    finally:
        stop.set()
        watcher.join()
        run.host.close()
    return EvalReport(
        reference,
        ref_ppl,
        text,
        ctx,
        n_chunks,
        len(run.tokens) or n_tokens,
        [rows[i] for i in range(len(candidates))],
        cancelled=cancel.is_set(),
        ref_ppl_se=ref_ppl_se,
        settings=settings,
    )


def compare(paths: list[str], settings: dict[str, Any] | str | None = None) -> records.EvalView:
    """The eval records of `paths` under one settings set only (the set covering most of them, newest
    on a tie, or the one given): what a column or a table of KLDs may show side by side."""
    return records.eval_view(paths, settings)
