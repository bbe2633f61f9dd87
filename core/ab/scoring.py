"""Teacher-forced cross-scoring: how far B's next-token distribution is from A's on the same tokens.

Both models evaluate both answers in batches, logits asked only for the answer's positions; the
rows are compared in float32 numpy one at a time (two exp passes, no log-softmax matrices). When
both models are loaded, each evaluates in its own thread with the thread count it generates with,
and whichever finishes a chunk second compares it. The logits a side produced while generating
are not reused: llama.cpp computes a one-token batch with other kernels than a longer one (any
longer batch gives the same rows), and on Gemma 3 270M (CPU, Q8_0 and Q2_K) the two differ by up
to 1.7 in a logit: a model against itself would show a mean KL of 5e-4 to 2e-3 and a different
top-1 at ~0.5% of positions, and scores would not match a teacher-forced computation within 1e-4.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..llama import lib
from .kept import KeptPrefixes, resumable
from .logits import compare_both, compare_logits, logit_rows
from .metrics import first_divergence

AHEAD = 2  # chunks one model's thread may run ahead of the other's (their rows wait as copies)

# rows evaluated so far and in all: each model at each scored position of both answers
OnProgress = Callable[[int, int], object]  # what it returns is ignored


@dataclass
class Scores:
    """Per generated token: KL(reference || other) in nats and whether both models' top-1 agree."""

    kld: list[float] = field(default_factory=list)
    top1: list[bool] = field(default_factory=list)

    @property
    def kld_mean(self) -> float | None:
        return float(np.mean(self.kld)) if self.kld else None

    @property
    def top1_agreement(self) -> float | None:
        return float(np.mean(self.top1)) if self.top1 else None

    def worst(self, k: int = 5) -> list[tuple[int, float]]:
        """The k positions with the largest KL divergence, largest first."""
        order = np.argsort(self.kld)[::-1][:k]
        return [(int(i), float(self.kld[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kld": self.kld,
            "top1": self.top1,
            "kld_mean": self.kld_mean,
            "top1_agreement": self.top1_agreement,
            "worst": self.worst(),
        }


class _Progress:
    """Counts rows evaluated, reports them, and says whether to go on (False once cancelled)."""

    def __init__(self, total: int, on_progress: OnProgress | None, cancel: threading.Event | None) -> None:
        self.done, self.total = 0, total
        self.on_progress, self.cancel = on_progress, cancel
        self._lock = threading.Lock()

    def __call__(self, n: int = 0) -> bool:
        with self._lock:
            self.done += n
            if self.on_progress:
                self.on_progress(self.done, self.total)
        return not self.stopped

    @property
    def stopped(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


@dataclass
class _Span:
    """A side's answer as scoring sees it: prompt and answer ids, where the answer starts, its
    length, how many leading tokens both models take from what was kept, and what they keep now.
    From `lo` on (answer positions) it is decoded; the positions before it are the giver's own."""

    side: str
    seq: list[int]
    start: int
    n: int
    resume: int = 0
    saved: dict[str, Any] = field(default_factory=dict)  # model name -> its sequence at the end
    lo: int = 0
    giver: _Span | None = None  # the side decoded first, whose rows the positions before lo share
    cache: bool = False  # and whose models' caches this side resumes from (else decoded to lo again)
    keeps: bool = False  # whether each model's cache is saved at the end, to be resumed from later

    @classmethod
    def of(cls, side: str, result: Any) -> _Span:
        seq, start = [*result.prompt_ids, *result.token_ids], len(result.prompt_ids)
        return cls(side, seq, start, len(result.token_ids) if start >= 1 else 0)  # nothing predicts token 0

    def share(self, giver: _Span) -> None:
        """Take the answer positions whose tokens so far are the giver's too (the same prompt and
        the same answer up to there) from the giver: each model's rows there are the same, and so
        is its cache, where the giver keeps it."""
        if not (self.n and giver.n and self.start == giver.start):
            return
        cut = first_divergence(giver.seq, self.seq)
        cut = len(self.seq) if cut is None else cut
        if cut >= self.start:  # position start-1+i sees tokens 0..start-1+i: shared while <= cut-1
            self.lo, self.giver = min(cut - self.start + 1, self.n, giver.n), giver
            self.cache = giver.keeps

    def rows(self, name: str, llm: Any, kept: KeptPrefixes | None) -> Iterator[np.ndarray]:
        resume = (self.resume, kept.state(self.side, name)) if kept and self.resume else None
        if self.cache and self.giver is not None:
            resume = (self.start - 1 + self.lo, self.giver.saved.get(name))
            if resume[1] is None:
                raise RuntimeError(f"model {name.upper()}'s cache for the other answer was not kept")

        def keep(state: Any) -> None:
            self.saved[name] = state

        strict = self.cache  # both models must resume alike: their chunks pair up
        on_end = keep if self.keeps else None
        return logit_rows(
            llm, self.seq, self.start, self.lo, self.n, resume=resume, on_end=on_end, strict=strict
        )

    @property
    def decoded(self) -> list[int]:
        """The tokens each model has in its cache once done: all but the last."""
        return self.seq[: self.start - 1 + self.n]


@contextlib.contextmanager
def _batch_threads(llm: Any, n: int) -> Iterator[None]:
    """Batches decode with `n` threads meanwhile (the logits do not depend on the thread count)."""
    llama_cpp = lib()

    ctx, before = llm._ctx.ctx, (llm.n_threads, llm.n_threads_batch)
    llama_cpp.llama_set_n_threads(ctx, before[0], n)
    try:
        yield
    finally:
        llama_cpp.llama_set_n_threads(ctx, *before)


class _Out:
    """Each side's figures, filled chunk by chunk in any order; a chunk of the giver's rows that the
    other side shares fills the other side's figures too, the other way round."""

    def __init__(self, spans: dict[str, _Span]) -> None:
        self.kld = {n: np.zeros(s.n) for n, s in spans.items()}
        self.top1 = {n: np.zeros(s.n, bool) for n, s in spans.items()}
        self.taker = {s.giver.side: s for s in spans.values() if s.giver is not None}

    def put(self, side: str, lo: int, ref: np.ndarray, other: np.ndarray) -> None:
        taker = self.taker.get(side)
        both = 0 if taker is None else max(0, min(len(ref), taker.lo - lo))
        if both and taker is not None:  # both > 0 only with a taker
            kld, back, top1 = compare_both(ref[:both], other[:both])
            self._fill(side, lo, kld, top1)
            self._fill(taker.side, lo, back, top1)
        if both < len(ref):
            self._fill(side, lo + both, *compare_logits(ref[both:], other[both:]))

    def _fill(self, side: str, lo: int, kld: np.ndarray, top1: np.ndarray) -> None:
        self.kld[side][lo : lo + len(kld)] = kld
        self.top1[side][lo : lo + len(top1)] = top1

    def scores(self) -> dict[str, Scores]:
        return {n: Scores(self.kld[n].tolist(), self.top1[n].tolist()) for n in self.kld}


def _together(
    llms: dict[str, Any], spans: dict[str, _Span], step: _Progress, out: _Out, kept: KeptPrefixes | None
) -> bool:
    """Both models at once, one thread each, on both answers; False when cancelled. The first model
    at a chunk leaves a copy of its rows; the second queues the pair, and a thread that is ahead
    (or has no decoding left) compares it, so the slower model is not slowed further."""
    board: dict[tuple[str, int], np.ndarray] = {}  # the first model's rows of a chunk, copied
    jobs: list[tuple[str, int, np.ndarray, np.ndarray]] = []  # (side, lo, reference rows, other rows)
    done = dict.fromkeys(llms, 0)
    turn = threading.Condition()
    stop = threading.Event()
    failed: list[BaseException] = []

    def compare() -> bool:
        """Compare one queued chunk; False when none is queued."""
        with turn:
            if not jobs:
                return False
            job = jobs.pop(0)
        out.put(*job)
        return True

    def work(me: str) -> None:
        llm = llms[me]
        other = next(n for n in llms if n != me)
        try:
            with _batch_threads(llm, llm.n_threads):
                for side, span in spans.items():
                    lo = span.lo
                    for rows in span.rows(me, llm, kept):
                        with turn:
                            theirs = board.pop((side, lo), None)
                            if theirs is None:  # first here: leave a copy, without running far ahead
                                board[(side, lo)] = rows.copy()
                            done[me] += len(rows)
                            turn.notify_all()
                        if theirs is not None:
                            pair = (rows, theirs) if side == me else (theirs, rows)
                            if len(jobs) < AHEAD:  # copied: the rows are gone at the next decode
                                with turn:
                                    first, second = (r.copy() if r is rows else r for r in pair)
                                    jobs.append((side, lo, first, second))
                                    turn.notify_all()
                            else:
                                out.put(side, lo, *pair)
                        while True:  # compare while ahead, and while too far ahead to decode on
                            while done[me] > done[other] and compare():
                                pass
                            with turn:  # only the side ahead waits: the one behind always decodes on
                                if len(board) <= AHEAD or done[me] <= done[other] or stop.is_set():
                                    break
                                turn.wait(0.1)
                        if stop.is_set() or not step(len(rows)):
                            stop.set()
                            return
                        lo += len(rows)
            while not stop.is_set() and compare():
                pass
        except BaseException as e:  # noqa: BLE001  handed to the caller's thread
            failed.append(e)
            stop.set()
        finally:
            with turn:
                turn.notify_all()

    threads = [threading.Thread(target=work, args=(n,), name=f"ab-score-{n}") for n in llms]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise failed[0]
    return not stop.is_set()


def _one_at_a_time(
    model: Callable[[str], Any],
    order: tuple[str, str],
    spans: dict[str, _Span],
    step: _Progress,
    out: _Out,
    kept: KeptPrefixes | None,
) -> bool:
    """The models take turns: the loaded one's rows on both answers are copied, then the other
    loads and is compared with them; False when cancelled."""
    now, later = order
    rows_of: dict[str, list[np.ndarray]] = {}
    for side, span in spans.items():
        rows_of[side] = []
        for rows in span.rows(now, model(now), kept):
            rows_of[side].append(rows.copy())
            if not step(len(rows)):
                return False
    for side, span in spans.items():
        lo = span.lo
        for rows, theirs in zip(span.rows(later, model(later), kept), rows_of[side], strict=True):
            ref, other = (theirs, rows) if side == now else (rows, theirs)
            out.put(side, lo, ref, other)
            lo += len(rows)
            if not step(len(rows)):
                return False
        rows_of[side] = []
    return True


def cross_score(
    llm_of: Callable[[str], Any],
    results: dict[str, Any],
    *,
    order: tuple[str, str] = ("a", "b"),
    together: bool = True,
    on_progress: OnProgress | None = None,
    cancel: threading.Event | None = None,
    kept: KeptPrefixes | None = None,
    share: bool = False,
    window: int = 0,
) -> dict[str, Scores] | None:
    """Per side, KL(side || other) and top-1 agreement on the side's own tokens (None when
    cancelled). `llm_of(name)` gives that side's model, loading it when the models take turns
    (`together` False; `order[0]` is the one loaded now, so it goes first). With `kept`, each
    side resumes from the prefix both models decoded in an earlier call, and keeps this one's. With
    `share` (models whose cache can be cut back), the second side takes what its answer has in
    common with the first's from the first: a pair that answers alike costs half. `window`: the
    smallest sliding attention window of the two models (0: none), which bounds what a kept
    cache can be cut back to."""
    spans = {name: _Span.of(name, r) for name, r in results.items()}
    if kept is not None:
        for side, span in spans.items():
            span.resume = kept.resume_at(side, span.seq, span.start - 1, order, window) if span.n else 0
    for span in spans.values():  # a cache that cannot be resumed from is not saved
        span.keeps = (kept is not None or share) and resumable(len(span.decoded), window)
    if share:
        giver, taker = spans.values()
        taker.share(giver)
    step = _Progress(2 * sum(s.n - s.lo for s in spans.values()), on_progress, cancel)
    out = _Out(spans)
    if not step():
        return None

    def model(name: str) -> Any:
        llm = llm_of(name)
        if llm is None:
            raise RuntimeError(f"model {name.upper()} is not loaded")
        return llm

    if together:
        done = _together({n: model(n) for n in order}, spans, step, out, kept)
    else:
        done = _one_at_a_time(model, order, spans, step, out, kept)
    if not done:
        return None
    if kept is not None:
        for side, span in spans.items():
            if span.n:
                kept.keep(side, span.decoded, span.saved)
    return out.scores()
