"""The app's side of the A/B worker process: the ABEngine interface, with llama.cpp out of the app.

Both models live in one worker process (two threads, as the engine does): on an H100, two
threads in one process gave 1.5-1.6x the throughput of two processes and ~590 MiB less GPU memory.
When that process dies (a llama.cpp segfault or abort, the kernel's OOM killer), the app keeps
running: the side that was loading or still generating reports it in its own pane, a side that
crashes while loading is not loaded again, and the next request starts a fresh worker.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..paths import cache_dir
from .engine import GenConfig, OnToken, Pair, SideResult, load_error
from .scoring import Scores

SIDES = ("a", "b")
LOG_LIMIT = 4 << 20


class WorkerDied(RuntimeError):
    """The worker process ended in the middle of a request; the text says how (signal, last log line)."""


def worker_log() -> Path:
    """Where the worker's stdout and stderr go: llama.cpp's log goes to a callback, but its aborts
    (GGML_ASSERT, CUDA errors) print there, and the last line names the cause of a crash."""
    return cache_dir() / "ab-worker.log"


def _last_log_line(path: Path, start: int) -> str:
    """The last non-empty line the worker wrote after `start` (where its own output began)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(start, f.tell() - 4096))
            lines = f.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    lines = [line.strip() for line in lines if line.strip()]
    return lines[-1][:200] if lines else ""


def _reap(proc: subprocess.Popen[bytes]) -> int:
    """The worker's exit status, killing it if it has not ended within 10 s."""
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class ProcessEngine(Pair):
    """Loads A and B in a worker process and runs both on each prompt, like ABEngine in-process."""

    def __init__(self, path_a: str, path_b: str, cfg: GenConfig, **kw: Any) -> None:
        super().__init__(path_a, path_b, cfg, **kw)  # `failed` grows when loading kills the worker
        self.crashed: str | None = None  # how the worker last died, until a new one has loaded
        self._errors: dict[str, str] = {}
        self._same = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._log_start = 0  # where this worker's output begins in the shared log
        self._load()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # the process ------------------------------------------------------------------------------------

    def _start(self) -> None:
        log = worker_log()
        log.parent.mkdir(parents=True, exist_ok=True)
        # Appended to, so two apps at once do not erase each other's crash; kept under LOG_LIMIT.
        big = log.is_file() and log.stat().st_size > LOG_LIMIT
        ours, theirs = socket.socketpair()
        with ours, theirs, log.open("wb" if big else "ab") as out:
            self._log_start = out.tell()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "quanttui.core.ab.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
            self._conn = Connection(ours.detach())

    def _died(self) -> WorkerDied:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        code = _reap(proc) if proc is not None else None  # reaped: its in-use markers read as stale
        if code is None:
            how = "it is gone"
        elif code < 0:
            how = f"killed by {signal.Signals(-code).name}"
        else:
            how = f"exit status {code}"
        tail = _last_log_line(worker_log(), self._log_start)
        self.crashed = f"the model process crashed ({how}{': ' + tail if tail else ''})"
        return WorkerDied(self.crashed)

    def _send(self, *msg: Any) -> None:
        if self._conn is None:
            raise self._died()
        with self._send_lock:
            try:
                self._conn.send(msg)
            except OSError:
                raise self._died() from None

    def _call(self, msg: tuple[Any, ...], on_event: Callable[..., None] | None = None) -> Any:
        """Send a request and read events until its reply; WorkerDied if the process ends first."""
        self._send(*msg)
        while True:
            try:
                reply = self._conn.recv() if self._conn else None
            except (EOFError, OSError):
                reply = None
            if reply is None:
                raise self._died()
            kind = reply[0]
            if kind == "ok":
                return reply[1]
            if kind == "err":
                raise RuntimeError(reply[1])
            if on_event is not None:
                on_event(*reply)

    def _status(self, loading: dict[str, str | None]) -> Callable[..., None]:
        def on_event(kind: str, *args: Any) -> None:
            if kind == "status":
                loading["side"] = args[1]
                if self.on_status:
                    self.on_status(*args)

        return on_event

    def _load(self) -> None:
        """A fresh worker with both models; a side whose loading kills the worker is marked failed."""
        for _ in range(len(SIDES) + 1):
            self._start()
            loading: dict[str, str | None] = {"side": None}
            load = ("load", *self.paths.values(), self.cfg, self.placement())
            try:
                self._errors, self._same = self._call(load, self._status(loading))
            except WorkerDied as e:
                side = loading["side"]  # failed sides are never loaded, so this is a new one
                if side is None:
                    self._errors = {n: f"could not start the model process: {e}" for n in SIDES}
                    return
                self.failed[side] = load_error(self.paths[side], e)
                continue
            self.crashed = None
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
    ) -> dict[str, SideResult]:
        """Both sides' answers; when the worker dies, the sides it had not finished carry the error."""
        cancel = cancel or threading.Event()
        partial = {n: SideResult(n, self.paths[n]) for n in SIDES}
        if not self._ready():
            for n, r in partial.items():
                r.stop_reason, r.error = "error", self.errors().get(n)
            return partial
        finished: dict[str, SideResult] = {}
        loading: dict[str, str | None] = {"side": None}
        status = self._status(loading)
        sent = threading.Event()
        ended = threading.Event()

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
            else:
                status(kind, *args)

        def watch() -> None:
            while not ended.is_set():
                if cancel.wait(0.05):
                    send_cancel()
                    return

        watcher = threading.Thread(target=watch, name="ab-cancel", daemon=True)
        watcher.start()
        try:
            return self._call(("run", messages, self.cfg), on_event)
        except WorkerDied as e:
            return self._after_crash(e, partial, finished, loading["side"])
        finally:
            ended.set()

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
            r.error = self.failed.get(n) or f"{e} {who}; it loads again for the next prompt"
        return {n: finished.get(n, partial[n]) for n in SIDES}

    def cross_score(self, a: SideResult, b: SideResult) -> tuple[Scores, Scores]:
        if not self._ready():
            raise WorkerDied(self.crashed or "the model process is not running")
        return self._call(("score", a, b), self._status({"side": None}))

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(WorkerDied, RuntimeError):
            self._send("cancel")  # a run still going (Ctrl+C in the CLI) stops at its next token
            self._call(("close",))
        _reap(proc)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None
