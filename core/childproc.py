"""A child process that dies with the app: the app starts it from a thread that lasts (Linux's
parent-death signal follows the starting thread), and the child asks the kernel for that signal."""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1

_spawns: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]]] = queue.Queue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _spawn_forever() -> None:
    while True:
        make, reply = _spawns.get()
        try:
            reply.put((True, make()))
        except BaseException as e:  # noqa: BLE001  handed back to the caller
            reply.put((False, e))


def start_on_lasting_thread(make: Callable[[], Any]) -> Any:
    """Run `make` on a thread that lives as long as the app. Linux's parent-death signal fires
    when the thread that started a child ends, and the app starts workers from short-lived ones."""
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawn_forever, name="child-spawner", daemon=True)
            _spawner.start()
    reply: queue.Queue[Any] = queue.Queue()
    _spawns.put((make, reply))
    ok, value = reply.get()
    if not ok:
        raise value
    return value


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent ends (Linux), then make sure the
    parent had not already gone before the request was made."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
