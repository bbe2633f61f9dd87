"""An A/B run as a screen drives it, without the screen: the phase it is in, the prompt waiting its
turn, cancels, the answers streaming in and the load, answer and context checks that run off the UI
thread. The A/B screen (tui/screens/ab.py) draws it; tests drive it directly.

Methods fall in two kinds. `load`, `check` and `answer` block (models load, answer, score): call them
from a worker thread. Everything else changes the state from one thread (the UI's) and says what the
caller has to show; `on_token` may be called from any thread and keeps only each side's newest text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from .config import FRAME, GenConfig, starting_config
from .context import SideFacts
from .metrics import loop_at_end
from .plan import check_context
from .scoring import OnProgress
from .session import ABSession, Turn
from .side import OnStatus

SIDES = ("a", "b")


class Phase(str, Enum):
    """What the pair is doing; a prompt sent in any phase but READY waits its turn."""

    LOADING = "loading"  # both models load (at the start, or again after /ctx)
    CHECKING = "checking"  # a /ctx value is checked against training and memory
    READY = "ready"
    ANSWERING = "answering"
    SCORING = "scoring"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Live:
    """A side's answer so far: its token ids and text."""

    ids: tuple[int, ...]
    text: str


@dataclass(frozen=True)
class Sent:
    """What became of a prompt typed: sent now, or queued (while busy or while loading)."""

    now: bool
    queued_while: Phase | None = None


@dataclass(frozen=True)
class Finished:
    """What a turn's end leaves to do: the turn (None or `cancelled`: not kept), and the prompt that
    waited, either to send now or to put back in the box unsent."""

    turn: Turn | None
    cancelled: bool
    send: str | None = None
    restore: str | None = None
    rescored: bool = False  # the turn was scored again when asked (/score), not answered now

    @property
    def stopped(self) -> bool:
        """Cancelled while answering, with what was said kept as the turn (unscored until /score)."""
        return self.cancelled and self.turn is not None and self.turn.stopped


class ABRun:
    """One A/B pair in a screen: the phase (an Enum), the session once loaded, the prompt queued,
    cancel and stop-loop events per answer, and scoring's progress."""

    def __init__(
        self,
        sides: Mapping[str, SideFacts],
        cfg: GenConfig | None = None,
        *,
        isolate: bool = True,
        stream_every: float = FRAME,
    ) -> None:
        self.sides = dict(sides)
        # A screen draws no more often than `stream_every` anyway: the worker sends no more often.
        self.cfg = replace(cfg or starting_config(self.sides), stream_every=stream_every)
        self.isolate = isolate
        self.phase = Phase.LOADING
        self.session: ABSession | None = None
        self.pending: ABSession | None = None  # loaded off the UI thread, not yet handed over
        self.cancel = threading.Event()  # set to stop this answer (or its scoring)
        self.stop_loops = threading.Event()  # set while answering: a side stuck in a loop stops now
        self.abort = threading.Event()  # set when the run is left: a load under way stops
        self.last_prompt = ""
        self.queued: str | None = None  # typed while busy; sent when the turn (or load) is done
        self.scored: tuple[int, int] | None = None  # scoring's progress in this turn, once heard
        self.generation = 0  # one more each time an answer starts or the run goes idle
        self.gone = False  # closed: a session that finishes loading or answering is closed too
        self._scoring_since = 0.0
        self._live: dict[str, Live] = {}  # each side's newest answer, not yet taken
        self._latest: dict[str, tuple[int, ...]] = {}  # each side's token ids so far in this answer
        self._lock = threading.Lock()

    # what the run is --------------------------------------------------------------------------------

    @property
    def paths(self) -> dict[str, str]:
        return {n: s.path for n, s in self.sides.items()}

    @property
    def facts(self) -> dict[str, dict[str, Any] | None]:
        """Each side's header facts as the Library read them (None: unreadable)."""
        return {n: s.facts for n, s in self.sides.items()}

    @property
    def running(self) -> bool:
        return self.phase in (Phase.ANSWERING, Phase.SCORING)

    def scoring_for(self) -> float:
        """Seconds scoring has run in this turn."""
        return time.monotonic() - self._scoring_since

    # off the UI thread ------------------------------------------------------------------------------

    def load(self, on_status: OnStatus | None = None) -> ABSession | None:
        """Load both models (blocking); None when the run was closed meanwhile (the models are freed)."""
        paths = self.paths
        session = ABSession(
            paths["a"],
            paths["b"],
            self.cfg,
            isolate=self.isolate,
            on_status=on_status,
            abort=self.abort,
            facts=self.facts,
        )
        with self._lock:
            self.pending = session
            if self.gone:  # left while loading: free the models now, not at exit
                session.close()
                return None
        return session

    def check(self, arg: str) -> int:
        """A /ctx value bounded by both models' trained context and what fits in memory;
        plan.ContextRefused says why not."""
        paths = self.paths
        return check_context(paths["a"], paths["b"], arg, facts=self.facts)

    def answer(
        self,
        prompt: str,
        regenerate: bool = False,
        on_scoring: Callable[[int], object] | None = None,
        on_progress: OnProgress | None = None,
    ) -> Finished | None:
        """Both sides answer (streaming into `on_token`), then the turn is scored, `on_scoring`
        hearing the answers' tokens as it starts. None when the run was closed meanwhile."""
        session = self.session
        assert session is not None
        cancel, stop_loops = self.cancel, self.stop_loops
        if regenerate:
            turn = session.regenerate(self.on_token, cancel, stop_loops, scoring=False, keep_stopped=True)
        else:
            turn = session.ask(
                prompt, self.on_token, cancel, scoring=False, stop_loops=stop_loops, keep_stopped=True
            )
        cancelled = cancel.is_set()  # while answering; a cancel while scoring keeps the turn
        if turn is not None and not cancelled:
            if session.scorable(turn) and on_scoring is not None:
                on_scoring(len(turn.a.token_ids) + len(turn.b.token_ids))
            session.score(turn, on_progress, cancel)  # one that cannot be scored is told why
        with self._lock:
            if self.gone:
                session.close()
                return None
        return Finished(turn, cancelled)

    def rescore(self, on_progress: OnProgress | None = None) -> Finished | None:
        """The last turn scored when asked (/score; blocking): one stopped with Esc, or whose
        scoring was stopped. None when the run was closed meanwhile."""
        session = self.session
        assert session is not None and session.turns
        turn = session.turns[-1]
        session.score(turn, on_progress, self.cancel)
        with self._lock:
            if self.gone:
                session.close()
                return None
        return Finished(turn, False, rescored=True)

    def can_score(self) -> str:
        """Why /score cannot run now, or "" when it can (ready, with a last turn that can be scored)."""
        session = self.session
        if self.phase is not Phase.READY or session is None:
            return "wait until this turn is done"
        if not session.turns:
            return "nothing to score yet: no finished turn"
        last = session.turns[-1]
        if last.scores_a is not None:
            return "the last turn is scored already"
        return session.unscorable(last)

    def begin_rescore(self) -> None:
        """/score starts: scoring, with a fresh cancel (Esc stops it as it stops any scoring)."""
        self.cancel = threading.Event()
        self.set_phase(Phase.SCORING)

    def on_token(self, side: str, ids: list[int], text: str) -> None:
        """A side's answer so far (any thread): kept until `take_live`, newest only."""
        live = Live(tuple(ids), text)
        with self._lock:
            if self.phase is Phase.ANSWERING:
                self._live[side] = live
                self._latest[side] = live.ids

    # on the UI thread -------------------------------------------------------------------------------

    def take_live(self) -> dict[str, Live]:
        """The newest answer of each side that streamed since the last call."""
        with self._lock:
            live, self._live = self._live, {}
        return live

    def latest(self, side: str) -> tuple[int, ...]:
        """A side's token ids so far in the answer under way (or the last one)."""
        return self._latest.get(side, ())

    def looping(self) -> list[str]:
        """The sides whose answer, as it streams now, ends in a loop."""
        return [s for s in SIDES if loop_at_end(self.latest(s))]

    def set_phase(self, phase: Phase) -> bool:
        """Move to `phase`; True when an answer starts (fresh cancel and stop-loop events)."""
        was_running = self.running
        self.phase = phase
        if phase is Phase.SCORING:
            self._scoring_since = time.monotonic()
            self.scored = None
        if phase is Phase.ANSWERING and not was_running:
            with self._lock:
                self._live.clear()
                self._latest.clear()
            self.generation += 1
            self.cancel = threading.Event()
            self.stop_loops = threading.Event()
            return True
        if not self.running:
            with self._lock:
                self._live.clear()
            self.generation += 1
        return False

    def loaded(self, session: ABSession) -> str | None:
        """The models are in: ready, and the prompt that waited for them (to send now), if any."""
        self.session = session
        self.set_phase(Phase.READY)
        return self.take_queued()

    def take_queued(self) -> str | None:
        queued, self.queued = self.queued, None
        return queued

    def send(self, text: str) -> Sent:
        """A prompt typed: sent now when ready, else queued (the last one typed waits)."""
        if self.running or self.phase in (Phase.CHECKING, Phase.LOADING):
            self.queued = text
            return Sent(False, self.phase)
        return Sent(True)

    def begin_answer(self, prompt: str) -> bool:
        """An answer starts; True when it starts a new run (the caller starts drawing frames)."""
        self.last_prompt = prompt
        return self.set_phase(Phase.ANSWERING)

    def begin_check(self) -> None:
        self.phase = Phase.CHECKING

    def context_refused(self) -> str | None:
        """A /ctx refused: ready as before; the prompt that waited goes back unsent."""
        self.phase = Phase.READY
        return self.take_queued()

    def context_set(self, n_ctx: int) -> bool:
        """A /ctx accepted: the models load again with it (the context is fixed at load); True
        when there were models loaded, whose conversation is gone."""
        self.cfg.n_ctx = n_ctx
        self.cfg.max_tokens = min(self.cfg.max_tokens, n_ctx)
        had = self.session is not None
        if self.session is not None:
            self.session.close()
        self.session = None
        self.phase = Phase.LOADING  # what is sent meanwhile waits for the models
        return had

    def scoring(self) -> bool:
        """Both answers are in and scoring starts; False when the answer was no longer awaited."""
        if self.phase is not Phase.ANSWERING:
            return False
        self.set_phase(Phase.SCORING)
        return True

    def progress(self, done: int, total: int) -> bool:
        """Scoring's progress; False when not scoring (nothing to show)."""
        if self.phase is not Phase.SCORING:
            return False
        self.scored = (done, total)
        return True

    def finished(self, done: Finished) -> Finished:
        """A turn ended: ready, and what to do with the prompt that waited. A cancel (while
        answering, or while scoring: Esc stops what was to follow too) puts it back unsent."""
        self.set_phase(Phase.READY)
        queued = self.take_queued()
        if done.cancelled or done.turn is None or self.cancel.is_set():
            return replace(done, restore=queued)
        return replace(done, send=queued)

    def failed(self) -> None:
        """A worker failed: ready when the models are in, else loading (the prompt stays closed)."""
        self.set_phase(Phase.READY if self.session is not None else Phase.LOADING)

    def stop(self) -> Phase | None:
        """Esc: stop the answer or its scoring (the phase it stopped), or None: nothing under way
        (the caller leaves, and a load under way stops)."""
        if self.running:
            self.cancel.set()  # scoring stops after its current batch; the turn keeps its answers
            return self.phase
        self.abort.set()
        return None

    def can_regenerate(self) -> bool:
        return bool(self.session and self.session.turns and self.phase is Phase.READY)

    def toggle_stop_on_loop(self) -> bool:
        """Idle: stopping loops on or off for later prompts; returns the new setting."""
        self.cfg.stop_on_loop = not self.cfg.stop_on_loop
        return self.cfg.stop_on_loop

    def stop_loops_now(self) -> list[str]:
        """While answering: a side stuck in a loop stops now; returns the sides looping now."""
        self.stop_loops.set()
        return self.looping()

    def close(self) -> None:
        """The run is left: stop what runs, and free the models (now, or when the load or answer
        under way ends)."""
        self.cancel.set()
        self.abort.set()
        with self._lock:
            self.gone = True
            session = self.session or self.pending
            if session is not None and not self.running:
                session.close()
