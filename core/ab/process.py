"""The app's side of the A/B worker process: the ABEngine interface, with llama.cpp out of the app.

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
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from ..textsafe import clean
from .engine import Pair
from .loader import load_error
from .scoring import OnProgress, Scores
from .side import GenConfig, OnRender, OnToken, SideResult
from .worker_client import WorkerClient, WorkerDied

SIDES = ("a", "b")
CANCEL_GRACE = 3.0  # seconds a run has to stop after a cancel before its worker is killed
RENDER_GRACE = 5.0  # beyond the template's own time limit, before its worker is killed


class ProcessEngine(WorkerClient, Pair):
    """Loads A and B in a worker process and runs both on each prompt, like ABEngine in-process."""

    def __init__(self, path_a: str, path_b: str, cfg: GenConfig, **kw: Any) -> None:
        # Set from any thread (the screen is left while loading): the load stops, its worker killed.
        self.abort: threading.Event = kw.pop("abort", None) or threading.Event()
        super().__init__(path_a, path_b, cfg, **kw)  # `failed` grows when loading kills the worker
        self._errors: dict[str, str] = {}
        self._same = False
        self._load()

    # the process ------------------------------------------------------------------------------------

    def _status(self, loading: dict[str, str | None]) -> Callable[..., None]:
        def on_event(kind: str, *args: Any) -> None:
            if kind == "status":
                loading["side"] = args[1]
                if self.on_status:
                    self.on_status(*args)

        return on_event

    def _load(self) -> None:
        """A fresh worker with both models; a side whose loading kills the worker is marked failed."""
        for _ in range(len(SIDES) + 2):  # each side may crash once, and extra buffers go off once
            if self.abort.is_set():
                self._errors = {n: "loading was cancelled" for n in SIDES}
                return
            self._start()
            loading: dict[str, str | None] = {"side": None}
            load = ("load", *self.paths.values(), self.cfg, self.placement())
            done = threading.Event()
            threading.Thread(target=self._kill_on_abort, args=(self._proc, done), daemon=True).start()
            try:
                self._errors, self._same = self._call(load, self._status(loading))
            except RuntimeError as e:  # the worker answered with an error: no models there
                if not isinstance(e, WorkerDied):
                    self.close()
                    self._errors = {n: f"could not load the models: {clean(str(e))}" for n in SIDES}
                    return
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

    # the ABEngine interface --------------------------------------------------------------------------

    def errors(self) -> dict[str, str]:
        return {**self._errors, **self.failed}

    def same_tokenizer(self) -> bool:
        if self.sequential and not self._same and self._ready():  # known once both have loaded
            self._same = bool(self._call(("same",)))
        return self._same

    def loaded(self) -> list[str]:
        return self._call(("loaded",)) if self._ready() else []

    def describe(self) -> dict[str, dict[str, int]]:
        return self._call(("describe",)) if self._ready() else {}

    def run(
        self,
        messages: dict[str, list[dict[str, str]]],
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
        on_render: OnRender | None = None,
        stop_loops: threading.Event | None = None,
    ) -> dict[str, SideResult]:
        """Both sides' answers; when the worker dies, the sides it had not finished carry the error.
        `on_render` hears when a side's chat template starts and stops rendering; setting
        `stop_loops` stops now a side whose answer ends in a loop (ABEngine.run)."""
        cancel = cancel or threading.Event()
        partial = {n: SideResult(n, self.paths[n]) for n in SIDES}
        if not self._ready():
            for n, r in partial.items():
                r.stop_reason, r.error = "error", self.errors().get(n)
            return partial
        finished: dict[str, SideResult] = {}
        loading: dict[str, str | None] = {"side": None}
        rendering: dict[str, float] = {}  # sides whose chat template is rendering, since when
        killed: dict[str, str] = {}  # why the watch killed this run's worker
        status = self._status(loading)
        sent = threading.Event()
        ended = threading.Event()
        proc = self._proc

        def send_cancel() -> None:
            if not sent.is_set():
                sent.set()
                with contextlib.suppress(WorkerDied):
                    self._send("cancel")

        def on_event(kind: str, *args: Any) -> None:
            if kind == "token":
                side, ids, delta, replace = args
                r = partial[side]
                r.token_ids += ids
                r.text = delta if replace else r.text + delta
                if on_token:
                    on_token(side, r.token_ids, r.text)
                if cancel.is_set():  # a callback that cancels takes effect before the next token
                    send_cancel()
            elif kind == "done":
                finished[args[0]] = args[1]
            elif kind == "render":
                side, started = args
                if started:
                    rendering[side] = time.monotonic()
                else:
                    rendering.pop(side, None)
                if on_render:
                    on_render(side, started)
            else:
                status(kind, *args)

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
                        self._send("stop_loops")
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
            return self._call(("run", messages, self.cfg), on_event)
        except WorkerDied as e:
            if killed:
                return self._after_kill(killed.get("side"), partial, finished)
            if self.fall_back("while answering") and self._ready():
                return self.run(messages, on_token, cancel, on_render, stop_loops)
            return self._after_crash(e, partial, finished, loading["side"])
        finally:
            ended.set()

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
        if one_by_one and not partial[loading].token_ids:  # it died loading this side
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

    def cross_score(
        self,
        a: SideResult,
        b: SideResult,
        on_progress: OnProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[Scores | None, Scores | None]:
        """ABEngine.cross_score in the worker: progress comes back as events, and a cancel set
        here reaches the worker at once, which stops between batches (both scores then None)."""
        if not self._ready():
            raise WorkerDied(self.crashed or "the model process is not running")
        cancel = cancel or threading.Event()
        if cancel.is_set():
            return None, None
        ended, sent_cancel = threading.Event(), threading.Event()
        status = self._status({"side": None})

        def send_cancel() -> None:
            if not sent_cancel.is_set():
                sent_cancel.set()
                with contextlib.suppress(WorkerDied):
                    self._send("cancel")

        def on_event(kind: str, *args: Any) -> None:
            if kind == "progress":
                if on_progress:
                    on_progress(*args)
                if cancel.is_set():  # a callback that cancels takes effect before the next batch
                    send_cancel()
            else:
                status(kind, *args)

        def watch() -> None:
            while not ended.wait(0.05):
                if cancel.is_set():
                    return send_cancel()

        def sent() -> None:  # after the request: the worker clears its cancel when it arrives
            threading.Thread(target=watch, name="ab-score-cancel", daemon=True).start()

        try:
            return self._call(("score", a, b), on_event, sent)
        except WorkerDied:
            if not cancel.is_set() and self.fall_back("while scoring") and self._ready():
                ended.set()
                return self.cross_score(a, b, on_progress, cancel)
            raise
        finally:
            ended.set()
