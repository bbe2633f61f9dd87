"""The app's side of the A/B worker process: the Engine protocol, with llama.cpp out of the app.

Both models live in one worker process (two threads, as the engine does): on an H100, two
threads in one process gave 1.5-1.6x the throughput of two processes and ~590 MiB less GPU memory.
When that process dies (a llama.cpp segfault or abort, the kernel's OOM killer), the app keeps
running: the side that was loading or still generating reports it in its own pane, a side that
crashes while loading is not loaded again, and the next request starts a fresh worker. A run that
does not stop soon after a cancel, or a chat template that renders past its time limit, gets the
worker killed: the sides report it and the next request starts a fresh one.
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
import threading
import time
from typing import Any

from ..childproc import WorkerClient, WorkerDied, WorkerError
from ..textsafe import clean
from .config import GenConfig
from .engine import SIDES, placement
from .loader import load_error
from .protocol import (
    Cancel,
    Describe,
    Hold,
    Load,
    Loaded,
    Progress,
    Render,
    Run,
    SameTokenizer,
    Score,
    SideDone,
    Status,
    StopLoops,
    Tokens,
)
from .scoring import OnProgress, Scores
from .side import OnRender, OnStatus, OnToken, SideResult

__all__ = ["CANCEL_GRACE", "RENDER_GRACE", "ProcessEngine", "WorkerDied", "worker_log"]

CANCEL_GRACE = 3.0  # seconds a run has to stop after a cancel before its worker is killed
RENDER_GRACE = 5.0  # beyond the template's own time limit, before its worker is killed


def worker_log() -> Any:
    """Where the A/B worker's stdout and stderr go (childproc.WorkerClient.log)."""
    return ProcessEngine.log()


class ProcessEngine(WorkerClient):
    """Loads A and B in a worker process and runs both on each prompt: the Engine protocol, like
    ABEngine in-process. The worker keeps each turn's answers; `score(turn)` sends only the number."""

    MODULE = "quanttui.core.ab.worker"
    LOG_NAME = "ab-worker.log"

    def __init__(
        self,
        path_a: str,
        path_b: str,
        cfg: GenConfig,
        *,
        on_status: OnStatus | None = None,
        abort: threading.Event | None = None,
        **kw: Any,
    ) -> None:
        super().__init__()
        where = placement(kw)
        self.paths = {"a": path_a, "b": path_b}
        self.cfg = cfg
        self.sequential = where.sequential
        self.placement = where  # `failed` grows when loading kills the worker
        self.failed = where.failed
        self.on_status = on_status
        # Set from any thread (the screen is left while loading): the load stops, its worker killed.
        self.abort = abort or threading.Event()
        self._errors: dict[str, str] = {}
        self._same = False
        self._worker = 0  # which worker this is (one more at each start)
        self._turns = 0  # the last turn number given out
        self._answers: dict[int, tuple[int, dict[str, SideResult]]] = {}  # turn: worker, answers
        self._load()

    # the process ------------------------------------------------------------------------------------

    def _start(self) -> None:
        super()._start()
        self._worker += 1

    def _goodbye(self) -> list[Any]:
        return [Cancel(), *super()._goodbye()]  # a run still going (Ctrl+C in the CLI) stops now

    def _status(self, loading: dict[str, str | None], event: Any) -> None:
        if isinstance(event, Status):
            loading["side"] = event.side
            if self.on_status:
                self.on_status(event.what, event.side)

    def _load(self) -> None:
        """A fresh worker with both models; a side whose loading kills the worker is marked failed."""
        for _ in range(len(SIDES) + 2):  # each side may crash once, and extra buffers go off once
            if self.abort.is_set():
                self._errors = {n: "loading was cancelled" for n in SIDES}
                return
            self._start()
            loading: dict[str, str | None] = {"side": None}
            load = Load(dict(self.paths), self.cfg, self.placement)
            done = threading.Event()
            threading.Thread(target=self._kill_on_abort, args=(self._proc, done), daemon=True).start()
            try:
                self._errors, self._same = self._call(load, functools.partial(self._status, loading))
            except WorkerError as e:  # the worker answered with an error: no models there
                self.close()
                self._errors = {n: f"could not load the models: {clean(str(e))}" for n in SIDES}
                return
            except WorkerDied as e:
                if self.abort.is_set():
                    self._errors = {n: "loading was cancelled" for n in SIDES}
                    return
                side = loading["side"]  # failed sides are never loaded, so this is a new one
                if side is None:
                    self._errors = {n: f"could not start the model process: {e}" for n in SIDES}
                    return
                if self.fall_back(f"while loading {side.upper()}"):
                    continue
                self.failed[side] = load_error(self.paths[side], e)
                continue
            finally:
                done.set()
            if self.abort.is_set():  # it finished loading just as the user left
                self.close()
                self._errors = {n: "loading was cancelled" for n in SIDES}
                return
            self.crashed = None
            return

    def _kill_on_abort(self, proc: subprocess.Popen[bytes] | None, done: threading.Event) -> None:
        while not done.wait(0.05):
            if self.abort.is_set() and proc is not None:
                with contextlib.suppress(OSError):
                    proc.kill()
                return

    def _ready(self) -> bool:
        """A worker to talk to, starting a fresh one after a crash; False when none could start."""
        if self._conn is None:
            self._load()
        return self._conn is not None

    # the Engine protocol ---------------------------------------------------------------------------

    def errors(self) -> dict[str, str]:
        return {**self._errors, **self.failed}

    def same_tokenizer(self) -> bool:
        if self.sequential and not self._same and self._ready():  # known once both have loaded
            self._same = bool(self._call(SameTokenizer()))
        return self._same

    def loaded(self) -> list[str]:
        return self._call(Loaded()) if self._ready() else []

    def describe(self) -> dict[str, dict[str, int]]:
        return self._call(Describe()) if self._ready() else {}

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
        """Both sides' answers, which the worker keeps as `turn` (the next number when None); when
        the worker dies, the sides it had not finished carry the error. `on_render` hears when a
        side's chat template starts and stops rendering; setting `stop_loops` stops now a side whose
        answer ends in a loop (ABEngine.run)."""
        cancel = cancel or threading.Event()
        turn = self._turns + 1 if turn is None else turn
        self._turns = max(self._turns, turn)
        partial = {n: SideResult(n, self.paths[n]) for n in SIDES}
        if not self._ready():
            for n, r in partial.items():
                r.stop_reason, r.error = "error", self.errors().get(n)
            return partial
        finished: dict[str, SideResult] = {}
        loading: dict[str, str | None] = {"side": None}
        rendering: dict[str, float] = {}  # sides whose chat template is rendering, since when
        killed: dict[str, str] = {}  # why the watch killed this run's worker
        sent = threading.Event()
        ended = threading.Event()
        proc = self._proc

        def send_cancel() -> None:
            if not sent.is_set():
                sent.set()
                with contextlib.suppress(WorkerDied):
                    self._send(Cancel())

        def on_event(event: Any) -> None:
            if isinstance(event, Tokens):
                r = partial[event.side]
                r.token_ids += event.ids
                r.text = event.text if event.replace else r.text + event.text
                if on_token:
                    on_token(event.side, r.token_ids, r.text)
                if cancel.is_set():  # a callback that cancels takes effect before the next token
                    send_cancel()
            elif isinstance(event, SideDone):
                finished[event.result.side] = event.result
            elif isinstance(event, Render):
                if event.started:
                    rendering[event.side] = time.monotonic()
                else:
                    rendering.pop(event.side, None)
                if on_render:
                    on_render(event.side, event.started)
            else:
                self._status(loading, event)

        def kill(why: dict[str, str]) -> None:
            killed.update(why)
            if proc is not None:
                with contextlib.suppress(OSError):
                    proc.kill()

        def watch() -> None:
            """Cancels reach the worker at once; a worker that does not stop is killed."""
            cancelled_at: float | None = None
            loops_sent = False
            limit = self.cfg.template_seconds + RENDER_GRACE
            while not ended.wait(0.05):
                now = time.monotonic()
                if stop_loops is not None and stop_loops.is_set() and not loops_sent:
                    loops_sent = True
                    with contextlib.suppress(WorkerDied):
                        self._send(StopLoops())
                if cancel.is_set():
                    if cancelled_at is None:
                        cancelled_at = now
                        send_cancel()
                    elif now - cancelled_at > CANCEL_GRACE:
                        return kill({"why": "cancel"})
                for side, since in list(rendering.items()):
                    if now - since > limit:
                        return kill({"why": "render", "side": side})

        watcher = threading.Thread(target=watch, name="ab-cancel", daemon=True)
        watcher.start()
        try:
            results: dict[str, SideResult] = self._call(Run(turn, messages, self.cfg), on_event)
        except WorkerDied as e:
            if killed:
                return self._after_kill(killed.get("side"), partial, finished)
            if self.fall_back("while answering") and self._ready():
                ended.set()
                return self.run(messages, on_token, cancel, on_render, stop_loops, turn=turn)
            return self._after_crash(e, partial, finished, loading["side"])
        finally:
            ended.set()
        self._answers[turn] = (self._worker, results)  # for a fresh worker, should this one die
        for old in sorted(self._answers)[:-16]:
            del self._answers[old]
        return results

    def _after_kill(
        self, stuck: str | None, partial: dict[str, SideResult], finished: dict[str, SideResult]
    ) -> dict[str, SideResult]:
        """The watch killed the worker: a cancel it did not heed, or a template that would not stop."""
        self.crashed = None  # not a crash: the next request starts a fresh worker all the same
        limit = self.cfg.template_seconds + RENDER_GRACE
        for n in SIDES:
            r = partial[n]
            if n in finished:
                continue
            if n == stuck:
                r.stop_reason = "error"
                r.error = (
                    f"chat template: still rendering after {limit:g} s; "
                    "the model process was restarted (completion mode does not use the template)"
                )
            elif stuck:
                r.stop_reason = "error"
                r.error = (
                    f"stopped: the model process was restarted because {stuck.upper()}'s "
                    "chat template would not stop rendering"
                )
            else:
                r.stop_reason = "cancelled"
        return {n: finished.get(n, partial[n]) for n in SIDES}

    def _after_crash(
        self,
        e: WorkerDied,
        partial: dict[str, SideResult],
        finished: dict[str, SideResult],
        loading: str | None,
    ) -> dict[str, SideResult]:
        one_by_one = self.sequential and loading is not None and loading not in finished
        if one_by_one and loading is not None and not partial[loading].token_ids:  # it died loading this side
            self.failed[loading] = load_error(self.paths[loading], e)
        unfinished = [n for n in SIDES if n not in finished]
        if len(unfinished) == 1:
            who = "while this side was generating"
        elif any(partial[n].token_ids for n in SIDES):
            who = "while both sides were generating"
        else:
            who = "before either side answered"
        for n in unfinished:
            r = partial[n]
            r.stop_reason = "error"
            r.error = self.failed.get(n) or f"{e.head} {who}{e.detail}; it loads again for the next prompt"
        return {n: finished.get(n, partial[n]) for n in SIDES}

    def holds(self, turn: int, results: dict[str, SideResult]) -> bool:
        _, answers = self._answers.get(turn, (0, {}))
        return all(answers.get(n) is results.get(n) for n in SIDES) and bool(answers)

    def hold(self, turn: int, results: dict[str, SideResult]) -> None:
        """Answers no worker gave as `turn`: the worker is handed them when the turn is scored."""
        self._answers[turn] = (0, results)  # worker 0: none has them

    def score(
        self,
        turn: int,
        on_progress: OnProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[Scores | None, Scores | None]:
        """ABEngine.score in the worker, on the answers it kept: progress comes back as events, and a
        cancel set here reaches the worker at once, which stops between batches (both scores then
        None). A worker that did not run the turn (a fresh one after a crash) is handed it first."""
        if not self._ready():
            raise WorkerDied(self.crashed or "the model process is not running")
        cancel = cancel or threading.Event()
        if cancel.is_set():
            return None, None
        ended, sent_cancel = threading.Event(), threading.Event()
        loading: dict[str, str | None] = {"side": None}

        def send_cancel() -> None:
            if not sent_cancel.is_set():
                sent_cancel.set()
                with contextlib.suppress(WorkerDied):
                    self._send(Cancel())

        def on_event(event: Any) -> None:
            if isinstance(event, Progress):
                if on_progress:
                    on_progress(event.done, event.total)
                if cancel.is_set():  # a callback that cancels takes effect before the next batch
                    send_cancel()
            else:
                self._status(loading, event)

        def watch() -> None:
            while not ended.wait(0.05):
                if cancel.is_set():
                    return send_cancel()

        def sent() -> None:  # after the request: the worker clears its cancel when it arrives
            threading.Thread(target=watch, name="ab-score-cancel", daemon=True).start()

        try:
            worker, answers = self._answers.get(turn, (self._worker, None))
            if worker != self._worker and answers is not None:
                self._call(Hold(turn, answers))
                self._answers[turn] = (self._worker, answers)
            scores: tuple[Scores | None, Scores | None] = self._call(Score(turn), on_event, sent)
            return scores
        except WorkerDied:
            if not cancel.is_set() and self.fall_back("while scoring") and self._ready():
                ended.set()
                return self.score(turn, on_progress, cancel)
            raise
        finally:
            ended.set()
