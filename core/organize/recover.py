"""At start-up, finish or undo what a killed organize operation left half-done (see journal.py).

Any quanttui that starts (the app, `quanttui du`...) runs this, possibly while another one is in the
middle of an operation: a journal is only touched while its owner lock is free (its process is gone)
and no other operation runs; anything else is left for a later start.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import psutil

from ..textsafe import clean, clean_path
from .dedupe import recover_dedupe
from .delete import recover_delete
from .journal import OWNED, OperationBusy, claimed, pending, sweep, take_operation_lock, unlock
from .move import recover_move
from .safety import log_operation

_RECOVER = {"delete": recover_delete, "move": recover_move, "dedupe": recover_dedupe}


def _owner_alive(data: dict[str, object]) -> bool:
    """For a journal written before owner locks: whether the process that wrote it still runs."""
    pid = data.get("pid")
    return isinstance(pid, int) and pid != os.getpid() and psutil.pid_exists(pid)


def recover_interrupted() -> list[str]:
    """Roll back or complete every journaled operation whose process is gone; one line per action.

    A journal that cannot be read is left in place and reported; one whose owner lock is held (an
    operation still running, here or in another quanttui) is left alone, and so are its temp files;
    while another operation runs, a dead one waits for the next start."""
    lines: list[str] = []
    held: list[int] = []  # the operation lock, once a dead operation is found
    try:
        for path in pending():
            try:
                with claimed(path) as free:
                    done = _recover_claimed(path, held) if free and path.exists() else []
            except OSError as e:  # its lock cannot be taken (a read-only data dir...)
                done = [f"{clean_path(path)}: cannot lock this organize journal ({clean(e)}); left in place"]
            if done is None:
                return lines  # another operation runs: the dead ones wait for the next start
            lines += done
        sweep()
    finally:
        for fd in held:
            unlock(fd)
    return lines


def _recover_claimed(path: Path, held: list[int]) -> list[str] | None:
    """Finish or undo the dead operation of `path` (its owner lock held), then remove its journal; the
    journal stays, and is named, when that fails. None when another operation is under way."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        recover = _RECOVER[data["op"]]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{clean_path(path)}: an unreadable organize journal, left in place"]
    if not data.get(OWNED) and _owner_alive(data):
        return []
    if not held:
        try:
            held.append(take_operation_lock("recovery"))
        except OperationBusy:
            return None
        except OSError:
            pass  # no operation can take it either: recover without it
    try:
        done = recover(data)
    except (OSError, KeyError, TypeError, ValueError) as e:
        return [f"{clean_path(path)}: could not recover the interrupted {clean(data['op'])} ({clean(e)})"]
    with contextlib.suppress(OSError):  # a log line that cannot be written stops nothing
        log_operation("recover", journal=path.name, actions=done)
    path.unlink(missing_ok=True)
    return done
