"""Running interruptible work from the command line: eval, bench and demo run in a thread that a
first Ctrl+C asks to stop (keeping what it finished) and a second Ctrl+C abandons."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def interruptible(work: Callable[[threading.Event], T]) -> tuple[T, bool]:
    """Run `work(cancel)` in a thread; Ctrl+C sets cancel and waits for what it finished (a second
    Ctrl+C quits at once). True with the result when it was cancelled.

    Ctrl+C is a SIGINT handler that only sets the event, and the wait is on an event the thread sets
    when done, never `Thread.join`: on CPython 3.11 a KeyboardInterrupt that lands in `join()` marks
    the thread as stopped while it still runs (`is_alive()` turns False), so the caller read a result
    that was not there yet (KeyError: 'value') and lost every finished row.
    """
    cancel = threading.Event()
    done = threading.Event()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work(cancel)
        except BaseException as e:  # noqa: BLE001  handed to the main thread
            box["error"] = e
        finally:
            done.set()

    def on_sigint(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt  # the second Ctrl+C: quit without waiting
        cancel.set()

    installed, previous = _handle_sigint(on_sigint)
    try:
        threading.Thread(target=target, name="quality", daemon=True).start()
        while not done.wait(0.2):
            pass
    finally:
        if installed:
            signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if "error" in box:
        raise box["error"]
    return box["value"], cancel.is_set()


def _handle_sigint(handler: Callable[[int, Any], None]) -> tuple[bool, Any]:
    """Install `handler` for SIGINT: (True, the handler it replaces), or (False, None) where none can
    be set (on a thread other than the main one, where Ctrl+C is not delivered anyway)."""
    try:
        return True, signal.signal(signal.SIGINT, handler)
    except ValueError:
        return False, None
