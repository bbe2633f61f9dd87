"""The A/B worker process: hosts one ABEngine (both models, two threads) and answers requests.

Run as `python -m quanttui.core.ab.worker FD PARENT_PID`, FD being one end of a socket pair.
Requests are tuples `(op, *args)`; replies are `("ok", value)` or `("err", text)`, with events
(`status`, `render`, `token`, `done`, and `progress` while scoring) streamed before the reply.
A `("cancel",)` is acted on at once, even mid-run or mid-scoring. Its stdout and stderr go to a
log file chosen by the parent, never the terminal. It dies with its parent: the kernel kills it
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

from ..childproc import worker_main
from .engine import ABEngine

ORPHAN_GRACE = 5.0  # seconds the main thread has to unload after the app is gone


class _Link:
    """The worker's end: a reader thread splits off cancels; sends from both decode threads lock."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.requests: queue.Queue[tuple[Any, ...]] = queue.Queue()
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
                self.requests.put(("close",))
                if not self.closed.wait(ORPHAN_GRACE):
                    os._exit(1)
                return
            if msg[0] in ("cancel", "close"):  # a run still going stops at its next token
                self.cancel.set()
            if msg[0] == "stop_loops":
                self.stop_loops.set()
            if msg[0] in ("cancel", "stop_loops"):
                continue
            if msg[0] in ("run", "score"):
                self.cancel.clear()  # here, in arrival order, so a cancel sent right after it holds
            if msg[0] == "run":
                self.stop_loops.clear()
            self.requests.put(msg)
            if msg[0] == "close":
                return

    def send(self, *msg: Any) -> None:
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
        self.link.send("token", side, ids[n_ids:], delta, replace)
        self.sent[side] = (len(ids), len(text))


def _handle(link: _Link, engine: ABEngine | None, op: str, args: tuple[Any, ...]) -> tuple[Any, Any]:
    """Carry out one request; returns the (possibly new) engine and the reply value."""
    if op == "load":
        path_a, path_b, cfg, placement = args
        if engine is not None:
            engine.close()

        def status(what: str, side: str) -> None:
            link.send("status", what, side)

        engine = ABEngine(path_a, path_b, cfg, on_status=status, **placement)
        return engine, (engine.errors(), engine.same_tokenizer())
    if engine is None:
        raise RuntimeError("no models loaded")
    if op == "run":
        messages, engine.cfg = args  # settings like max tokens can change between turns
        results = engine.run(
            messages,
            _Streamer(link),
            link.cancel,
            on_done=lambda r: link.send("done", r.side, r),
            on_render=lambda side, started: link.send("render", side, started),
            stop_loops=link.stop_loops,
        )
        return engine, results
    if op == "score":
        a, b = args

        def progress(done: int, total: int) -> None:
            link.send("progress", done, total)

        return engine, engine.cross_score(a, b, progress, link.cancel)
    if op == "loaded":
        return engine, engine.loaded()
    if op == "describe":
        return engine, engine.describe()
    if op == "same":
        return engine, engine.same_tokenizer()
    raise ValueError(f"unknown request {op!r}")


def serve(conn: Connection) -> None:
    link = _Link(conn)
    engine: ABEngine | None = None
    while True:
        op, *args = link.requests.get()
        if op == "close":
            if engine is not None:
                engine.close()
            link.closed.set()
            with contextlib.suppress(OSError):
                link.send("ok", None)
            return
        try:
            engine, value = _handle(link, engine, op, tuple(args))
        except Exception as e:  # noqa: BLE001  every failure goes back to the app as one line
            link.send("err", f"{type(e).__name__}: {e}")
        else:
            link.send("ok", value)


def main(argv: list[str]) -> int:
    return worker_main(serve, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
