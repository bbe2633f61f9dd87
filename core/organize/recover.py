"""At start-up, finish or undo what a killed organize operation left half-done (see journal.py)."""

from __future__ import annotations

import json
import os

import psutil

from ..textsafe import clean, clean_path
from .dedupe import recover_dedupe
from .delete import recover_delete
from .journal import pending
from .move import recover_move
from .safety import log_operation

_RECOVER = {"delete": recover_delete, "move": recover_move, "dedupe": recover_dedupe}


def _owner_alive(data: dict[str, object]) -> bool:
    pid = data.get("pid")
    return isinstance(pid, int) and pid != os.getpid() and psutil.pid_exists(pid)


def recover_interrupted() -> list[str]:
    """Roll back or complete every journaled operation whose process is gone; one line per action.

    A journal that cannot be read is left in place and reported; one still owned by a live process
    (another quanttui at work) is left alone."""
    lines: list[str] = []
    for path in pending():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            recover = _RECOVER[data["op"]]
        except (OSError, ValueError, KeyError, TypeError):
            lines.append(f"{clean_path(path)}: an unreadable organize journal, left in place")
            continue
        if _owner_alive(data):
            continue
        try:
            done = recover(data)
        except (OSError, KeyError, TypeError, ValueError) as e:
            lines.append(
                f"{clean_path(path)}: could not recover the interrupted {clean(data['op'])} ({clean(e)})"
            )
            continue
        log_operation("recover", journal=path.name, actions=done)
        lines += done
        path.unlink(missing_ok=True)
    return lines
