"""Stop Hub requests at a deadline or on cancel, even a read blocked on a Hub that sends a byte at a time.

A per-read timeout cannot end an answer dripped at one byte every few seconds, and closing a response
from another thread does not wake a read blocked in this one. So every connection huggingface_hub's
session opens inside `guarded()` is noted (httpcore's `trace` extension; its socket is duplicated so it
can be shut down at any stage, the TLS handshake included), and a watcher thread shuts those sockets
down when the deadline passes, when a response's headers take longer than HEADERS_DEADLINE, or when
the cancel event is set: the blocked read returns at once and the call ends with one line. Requests
carry `Connection: close`, so no request rides on a connection opened outside its guard.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from ..errors import QuanttuiError
from .errors import Stopped

HEADERS_DEADLINE = 60.0  # seconds from sending a request to its last response header (a HEAD: all of it)
POLL = 0.2  # seconds between the watcher's looks at the clock and the cancel event

_guard: ContextVar[Guard | None] = ContextVar("hub_guard", default=None)
_cancel: ContextVar[threading.Event | None] = ContextVar("hub_cancel", default=None)


@contextlib.contextmanager
def cancel_on(event: threading.Event) -> Iterator[None]:
    """Hub calls made in this block (in this thread) stop soon after `event` is set."""
    token = _cancel.set(event)
    try:
        yield
    finally:
        _cancel.reset(token)


def cancelled() -> bool:
    """Whether the cancel event of this block (see cancel_on) is set."""
    event = _cancel.get()
    return event is not None and event.is_set()


class Guard:
    """The connections of one Hub call and the watcher that shuts them down (see the module doc)."""

    def __init__(self, seconds: float | None, cancel: threading.Event | None) -> None:
        self.seconds = seconds
        self.until = time.monotonic() + seconds if seconds is not None else None
        self.cancel = cancel
        self.reason: str | None = None
        self._socks: list[socket.socket] = []
        self._headers_until: float | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's trace callback, called in the requesting thread."""
        if name.endswith("connect_tcp.complete"):
            sock = info["return_value"].get_extra_info("socket")
            with contextlib.suppress(OSError, AttributeError):
                dup = sock.dup()  # survives TLS taking the original over (wrap_socket detaches it)
                with self._lock:
                    self._socks.append(dup)
                    tripped = self.reason is not None
                if tripped:
                    _shut(dup)
        elif name.endswith("send_request_headers.started"):
            with self._lock:
                self._headers_until = time.monotonic() + HEADERS_DEADLINE
        elif name.endswith("receive_response_headers.complete"):
            with self._lock:
                self._headers_until = None

    def start(self) -> None:
        threading.Thread(target=self._watch, name="hub-guard", daemon=True).start()

    def _watch(self) -> None:
        while not self._done.wait(POLL):
            now = time.monotonic()
            with self._lock:
                headers_until = self._headers_until
            if self.cancel is not None and self.cancel.is_set():
                return self._trip("cancelled")
            if self.until is not None and now >= self.until:
                return self._trip(f"the Hub did not finish answering within {self.seconds:g} s; stopped")
            if headers_until is not None and now >= headers_until:
                return self._trip(f"the Hub sent no complete answer header within {HEADERS_DEADLINE:g} s")

    def _trip(self, reason: str) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self.reason = reason
            socks = list(self._socks)
        for s in socks:
            _shut(s)

    def check(self) -> None:
        """Stopped when the deadline has passed or the call was cancelled (between chunks of a body)."""
        if self.reason is None and self.cancel is not None and self.cancel.is_set():
            self._trip("cancelled")
        if self.reason is not None:
            raise Stopped(self.reason)

    def close(self) -> None:
        with self._lock:
            self._done.set()
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked on this connection in any thread


@contextlib.contextmanager
def guarded(seconds: float | None, cancel: threading.Event | None = None) -> Iterator[Guard]:
    """Hub requests made in this block end at `seconds` (None: no overall limit, only the header
    deadline) or when `cancel` (default: the one of cancel_on) is set; any failure then is Stopped."""
    guard = Guard(seconds, cancel if cancel is not None else _cancel.get())
    token = _guard.set(guard)
    guard.start()
    try:
        yield guard
        guard.check()  # a body cut short by the watcher can end like a whole one
    except QuanttuiError:
        raise
    except Exception:
        if guard.reason is not None:
            raise Stopped(guard.reason) from None
        raise
    finally:
        _guard.reset(token)
        guard.close()


def on_request(request: Any) -> None:
    """A request hook for huggingface_hub's session: the request is watched by the guard of the block
    it is made in, and its connection is not kept for another request (whose guard would not see it)."""
    request.headers["Connection"] = "close"
    guard = _guard.get()
    if guard is not None:
        request.extensions = {**request.extensions, "trace": guard.trace}
