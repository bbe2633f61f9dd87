"""Two models, one process, two threads: the same prompt, greedy, streamed side by side.

One `Llama` per side, each used by one thread at a time (ctypes calls release the GIL, so both
decode at once). Two threads in one process gave 1.5-1.6x the throughput of two processes on an
H100 and share the CUDA runtime, so both models of a pair live here. llama.cpp's log goes to a
callback, never the terminal. The app runs this engine inside a worker process (worker.py), so a
crash in llama.cpp cannot take the app down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from .config import GenConfig
from .kept import KeptPrefixes, keeps_prefixes, window
from .protocol import Placement
from .scoring import OnProgress, Scores, cross_score
from .side import OnRender, OnStatus, OnToken, Prompt, Side, SideResult

__all__ = ["ABEngine", "Engine", "Placement", "placement"]

PROBE = "The quick brown fox: 123 ünïcödé ✓".encode()
SIDES = ("a", "b")
HELD = 16  # turns an engine keeps the answers of, to score when asked


@runtime_checkable
class Engine(Protocol):
    """What an A/B session asks of its two models, wherever they run: in this process (ABEngine) or
    in a worker process (process.ProcessEngine). Answers stay with the engine: `run` keeps them as
    turn `turn` and `score(turn)` scores that copy."""

    paths: dict[str, str]
    cfg: GenConfig
    sequential: bool
    crashed: str | None  # how the models' process last died, until a new one has loaded

    def errors(self) -> dict[str, str]:
        """Per side, why it cannot answer (it failed to load); empty when both can."""
        ...

    def same_tokenizer(self) -> bool:
        """Whether both models (each loaded at least once) give the same vocabulary and ids."""
        ...

    def loaded(self) -> list[str]:
        """The sides loaded now."""
        ...

    def describe(self) -> dict[str, dict[str, int]]:
        """What each loaded model was given: its context length and vocabulary size."""
        ...

    def run(
        self,
        messages: dict[str, list[dict[str, str]]],
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
        on_render: OnRender | None = None,
        stop_loops: threading.Event | None = None,
        *,
        turn: int | None = None,
    ) -> dict[str, SideResult]:
        """Both sides answer (each with its own conversation); the answers are kept as `turn`."""
        ...

    def score(
        self,
        turn: int,
        on_progress: OnProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[Scores | None, Scores | None]:
        """Teacher-forced KL(A||B) on A's tokens and KL(B||A) on B's of the answers kept as `turn`,
        with top-1 agreement; both None when `cancel` stopped it. RuntimeError when it cannot."""
        ...

    def holds(self, turn: int, results: dict[str, SideResult]) -> bool:
        """Whether `results` are the answers this engine keeps as `turn` (the very objects `run`
        returned): then `score(turn)` needs nothing sent."""
        ...

    def hold(self, turn: int, results: dict[str, SideResult]) -> None:
        """Keep answers the engine did not give as `turn` (scoring is teacher-forced: any tokens)."""
        ...

    def close(self) -> None: ...


def placement(kw: dict[str, Any]) -> Placement:
    """A Placement from the keywords an engine is given (`placement=`, or its fields one by one)."""
    given: Placement | None = kw.pop("placement", None)
    if given is not None:
        return given
    return Placement(
        sequential=bool(kw.pop("sequential", False)),
        gpu_layers=dict(kw.pop("gpu_layers", None) or {"a": 0, "b": 0}),
        main_gpu=kw.pop("main_gpu", None),
        failed=dict(kw.pop("failed", None) or {}),
    )


class Held:
    """The answers of the last HELD turns, by turn number, for `score`."""

    def __init__(self) -> None:
        self.turns: dict[int, dict[str, SideResult]] = {}
        self.last = 0

    def keep(self, turn: int | None, results: dict[str, SideResult]) -> int:
        n = self.last + 1 if turn is None else turn
        self.last = max(self.last, n)
        self.turns[n] = results
        for old in sorted(self.turns)[:-HELD]:
            del self.turns[old]
        return n

    def same(self, turn: int, results: dict[str, SideResult]) -> bool:
        held = self.turns.get(turn)
        return held is not None and all(held.get(n) is results.get(n) for n in SIDES)

    def get(self, turn: int) -> dict[str, SideResult]:
        if turn not in self.turns:
            raise RuntimeError(f"turn {turn}'s answers are no longer held by the models")
        return self.turns[turn]


class ABEngine:
    """Loads A and B (or one at a time when they do not fit together) and runs both on each prompt."""

    def __init__(
        self, path_a: str, path_b: str, cfg: GenConfig, *, on_status: OnStatus | None = None, **kw: Any
    ) -> None:
        where = placement(kw)
        self.paths = {"a": path_a, "b": path_b}
        self.cfg = cfg
        self.sequential = where.sequential  # one model at a time, when they do not fit together
        self.gpu_layers = where.gpu_layers
        self.main_gpu = where.main_gpu  # a GPU of its own per side, when there are two or more
        self.failed = dict(where.failed)  # sides known to break (a crash at load): never loaded
        self.on_status = on_status
        self.crashed: str | None = None  # nothing to crash: the models are in this process
        self.sides: dict[str, Side] = {}
        self.held = Held()
        self.kept = KeptPrefixes()  # what scoring decoded, for the next turn
        self.share = True  # the second answer takes what it has in common with the first from it
        self._tokenizers: dict[str, tuple[int, list[int]]] = {}  # vocabulary size, PROBE's ids
        self._cuts: dict[str, bool] = {}  # whether the model's cache can be cut back to a prefix
        self._windows: dict[str, int] = {}  # its sliding attention window (0: none)
        if not self.sequential:
            for n in ("a", "b"):
                self.sides[n] = self._load(n)

    def _load(self, name: str) -> Side:
        if self.on_status and name not in self.failed:
            self.on_status("loading", name)
        gpu = self.main_gpu.get(name) if self.main_gpu else None
        side = Side(name, self.paths[name], self.cfg, self.gpu_layers[name], self.failed.get(name), gpu)
        if side.llm is not None:  # kept past unloading, so models taking turns can be compared
            self._tokenizers[name] = (side.llm.n_vocab(), side.llm.tokenize(PROBE, special=True))
            self._cuts[name] = keeps_prefixes(side.llm)
            self._windows[name] = window(side.llm)
        return side

    def side(self, name: str) -> Side:
        """The loaded side (in sequential mode, loading it and unloading the other)."""
        if name not in self.sides:
            for other in list(self.sides):
                self.sides.pop(other).close()
            self.sides[name] = self._load(name)
        return self.sides[name]

    def loaded(self) -> list[str]:
        return list(self.sides)

    def describe(self) -> dict[str, dict[str, int]]:
        """What each loaded model was given: its context length and vocabulary size."""
        loaded = {n: s.llm for n, s in self.sides.items() if s.llm}
        return {n: {"n_ctx": llm.n_ctx(), "n_vocab": llm.n_vocab()} for n, llm in loaded.items()}

    def errors(self) -> dict[str, str]:
        out = {n: s.error for n, s in self.sides.items() if s.error}
        return {**self.failed, **out}

    def run(
        self,
        messages: dict[str, list[dict[str, str]]],
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
        on_render: OnRender | None = None,
        stop_loops: threading.Event | None = None,
        *,
        turn: int | None = None,
        on_done: Callable[[SideResult], None] | None = None,
    ) -> dict[str, SideResult]:
        """Generate for both sides (each with its own conversation) and return both results, kept
        as `turn` (the next number when None) for `score`;
        `on_done` hears each side's result as soon as that side stops. Setting `stop_loops` stops
        now a side whose answer ends in a loop; the other side goes on and the turn is kept."""
        cancel = cancel or threading.Event()
        results: dict[str, SideResult] = {}
        # Both templates render before either side generates, one at a time: a template that
        # hangs is then the only thing running, and no answer is under way when it is stopped.
        prepared: dict[str, Prompt | SideResult] = {}
        if not self.sequential:
            prepared = {n: self.side(n).prepare(messages[n], self.cfg, cancel, on_render) for n in SIDES}

        def work(name: str) -> None:
            side = self.side(name)
            results[name] = side.generate(
                messages[name], self.cfg, on_token, cancel, on_render, prepared.get(name), stop_loops
            )
            if on_done:
                on_done(results[name])

        if self.sequential:
            for n in ("a", "b"):
                work(n)
        else:
            threads = [threading.Thread(target=work, args=(n,), name=f"ab-{n}") for n in ("a", "b")]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        self.held.keep(turn, results)
        return results

    def holds(self, turn: int, results: dict[str, SideResult]) -> bool:
        return self.held.same(turn, results)

    def hold(self, turn: int, results: dict[str, SideResult]) -> None:
        """Keep answers this engine did not run (a fresh worker after a crash) as `turn`."""
        self.held.keep(turn, results)

    def score(
        self,
        turn: int,
        on_progress: OnProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[Scores | None, Scores | None]:
        """Teacher-forced KL(A||B) on A's tokens and KL(B||A) on B's tokens of turn `turn`, with
        top-1 agreement. `on_progress(done, total)` hears the rows evaluated (scoring.OnProgress);
        setting `cancel` stops it between batches, and both scores are then None."""
        answers = self.held.get(turn)
        a, b = answers["a"], answers["b"]
        loaded = self.loaded()
        first = loaded[0] if self.sequential and loaded else "b"  # one at a time: the loaded one first
        order = (first, "a" if first == "b" else "b")
        cut = self._cuts.get("a", False) and self._cuts.get("b", False)  # both resume alike, or neither
        out = cross_score(
            lambda n: self.side(n).llm,
            {"a": a, "b": b},
            order=order,
            together=not self.sequential,
            on_progress=on_progress,
            cancel=cancel,
            kept=self.kept if cut else None,
            share=cut and self.share,
            window=min((w for w in self._windows.values() if w), default=0),
        )
        return (out["a"], out["b"]) if out else (None, None)

    def same_tokenizer(self) -> bool:
        """Whether both models (each loaded at least once) give the same vocabulary and ids."""
        a, b = self._tokenizers.get("a"), self._tokenizers.get("b")
        return a is not None and a == b

    def close(self) -> None:
        for s in self.sides.values():
            s.close()
        self.sides = {}
