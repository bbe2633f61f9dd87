"""The A/B worker process: hosts one ABEngine (both models, two threads) and answers requests.

Run as `python -m quanttui.core.ab.worker FD PARENT_PID`, FD being one end of a socket pair.
Requests and events are protocol.py's dataclasses; replies are childproc.Ok or Err, with events
(Status, Render, Tokens, SideDone, and Progress while scoring) streamed before the reply. A Cancel
or StopLoops is acted on at once, even mid-run or mid-scoring. The engine keeps the answers of each
turn it ran, so scoring a turn sends nothing back but its number. Its stdout and stderr go to a log
file chosen by the parent, never the terminal. It dies with its parent: the kernel kills it
(Linux), or its reader sees the socket close and ends the process when the main thread does not.
Importing quanttui.core first imports llama_cpp before numpy, which a CUDA build needs.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from ..childproc import Close, Err, Ok, worker_main
from .engine import ABEngine
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

ORPHAN_GRACE = 5.0  # seconds the main thread has to unload after the app is gone


class _Link:
    """The worker's end: a reader thread splits off cancels; sends from both decode threads lock."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.requests: queue.Queue[Any] = queue.Queue()
        self.cancel = threading.Event()
        self.stop_loops = threading.Event()
        self._send_lock = threading.Lock()
        self.closed = threading.Event()  # set by the main thread once it has unloaded
        threading.Thread(target=self._read, name="ab-worker-read", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                self.cancel.set()  # the app is gone: unload and exit, or end here if that hangs
                self.requests.put(Close())
                if not self.closed.wait(ORPHAN_GRACE):
                    os._exit(1)
                return
            if isinstance(msg, (Cancel, Close)):  # a run still going stops at its next token
                self.cancel.set()
            if isinstance(msg, StopLoops):
                self.stop_loops.set()
            if isinstance(msg, (Cancel, StopLoops)):
                continue
            if isinstance(msg, (Run, Score)):
                self.cancel.clear()  # here, in arrival order, so a cancel sent right after it holds
            if isinstance(msg, Run):
                self.stop_loops.clear()
            self.requests.put(msg)
            if isinstance(msg, Close):
                return

    def send(self, msg: Any) -> None:
        with self._send_lock:
            self.conn.send(msg)


class _Streamer:
    """Turns the engine's per-token callback (ids and text so far) into small deltas."""

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.sent = {"a": (0, 0), "b": (0, 0)}  # ids and characters already sent per side

    def __call__(self, side: str, ids: list[int], text: str) -> None:
        n_ids, n_chars = self.sent[side]
        # Text only grows while generating; a stop string cut at the end makes it shorter: resend it.
        delta, replace = (text[n_chars:], False) if len(text) >= n_chars else (text, True)
        self.link.send(Tokens(side, ids[n_ids:], delta, replace))
        self.sent[side] = (len(ids), len(text))


def _handle(link: _Link, engine: ABEngine | None, msg: Any) -> tuple[ABEngine | None, Any]:
    """Carry out one request; returns the (possibly new) engine and the reply value."""
    if isinstance(msg, Load):
        if engine is not None:
            engine.close()
        engine = None
        engine = ABEngine(
            msg.paths["a"],
            msg.paths["b"],
            msg.cfg,
            placement=msg.placement,
            on_status=lambda what, side: link.send(Status(what, side)),
        )
        return engine, (engine.errors(), engine.same_tokenizer())
    if engine is None:
        raise RuntimeError("no models loaded")
    if isinstance(msg, Run):
        engine.cfg = msg.cfg  # settings like max tokens can change between turns
        results = engine.run(
            msg.messages,
            _Streamer(link),
            link.cancel,
            lambda side, started: link.send(Render(side, started)),
            link.stop_loops,
            turn=msg.turn,
            on_done=lambda r: link.send(SideDone(r)),
        )
        return engine, results
    if isinstance(msg, Score):
        progress = lambda done, total: link.send(Progress(done, total))  # noqa: E731
        return engine, engine.score(msg.turn, progress, link.cancel)
    if isinstance(msg, Hold):
        engine.hold(msg.turn, msg.results)
        return engine, None
    if isinstance(msg, Loaded):
        return engine, engine.loaded()
    if isinstance(msg, Describe):
        return engine, engine.describe()
    if isinstance(msg, SameTokenizer):
        return engine, engine.same_tokenizer()
    raise ValueError(f"unknown request {type(msg).__name__}")


def serve(conn: Connection) -> None:
    link = _Link(conn)
    engine: ABEngine | None = None
    while True:
        msg = link.requests.get()
        if isinstance(msg, Close):
            if engine is not None:
                engine.close()
            link.closed.set()
            with contextlib.suppress(OSError):
                link.send(Ok())
            return
        try:
            engine, value = _handle(link, engine, msg)
        except Exception as e:  # noqa: BLE001  every failure goes back to the app as one line
            link.send(Err(f"{type(e).__name__}: {e}"))
        else:
            link.send(Ok(value))


def main(argv: list[str]) -> int:
    return worker_main(serve, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
