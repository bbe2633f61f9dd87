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
from typing import Any

import psutil

from .. import pathgate
from ..library.roots import Root
from ..textsafe import clean, clean_path
from .dedupe import recover_dedupe
from .delete import STAGE_PREFIX, recover_delete
from .journal import OWNED, ROOTS, OperationBusy, claimed, pending, sweep, take_operation_lock, unlock
from .move import recover_move
from .safety import OrganizeError, gate, log_operation

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


def _journal_paths(data: dict[str, Any]) -> list[str]:
    """Every path a recovery of `data` may touch (TypeError/KeyError when the journal is malformed)."""
    op = data["op"]
    paths: list[Any] = []
    if op == "delete":
        for rec in data.get("units", []):
            paths += [rec.get("stage"), *(p for pair in rec["moves"] for p in pair)]
            paths += [p for kind in ("links", "refs", "manifests", "dirs") for p in rec.get(kind, [])]
    elif op == "move":
        paths += [p for pair in data.get("pairs", []) for p in pair] + list(data.get("made", []))
    elif op == "dedupe":
        paths += [data.get("extra"), data.get("tmp")]
    paths = [p for p in paths if p is not None]
    if not all(isinstance(p, str) and p and "\0" not in p for p in paths):
        raise TypeError("a path in it is not a string")
    return paths


def _stage_ok(data: dict[str, Any], journal: Path) -> bool:
    """Whether each staging folder of a delete journal is this operation's own (`.quanttui-deleting-ID`,
    ID the journal's) and each staged file lies inside it: recovery removes staging folders whole."""
    if data["op"] != "delete":
        return True
    mark = f"{STAGE_PREFIX}{journal.stem}"
    for rec in data.get("units", []):
        stage = rec.get("stage")
        staged = [s for _, s in rec["moves"] if s is not None]
        if stage is None:
            if staged:
                return False
            continue
        if mark not in Path(stage).parts[:-1] or not all(pathgate.inside(s, stage) for s in staged):
            return False
    return True


def _outside_roots(data: dict[str, Any], journal: Path) -> str | None:
    """Why the journal may not be acted on (a path outside the library roots, or a staging folder that
    is not its own), or None. A journal is data on disk: edited, damaged or left from another setup,
    it must never make recovery move or remove anything outside the roots."""
    recorded = data.get(ROOTS)
    if isinstance(recorded, list) and recorded and all(isinstance(r, str) and r for r in recorded):
        roots: list[Root] | None = [Root(Path(r), "folder", False) for r in recorded]
    elif data["op"] == "dedupe":
        roots = None  # an older dedupe journal: recover_dedupe removes only its own temporary link
    else:  # an older journal, which does not name its roots: those configured now, and the folders
        # holding this operation's own staging folders
        from ..library.roots import all_roots
        from ..settings import load

        roots = [r for r, state in all_roots(load()) if state != "missing"]
        mark = f"{STAGE_PREFIX}{journal.stem}"
        for rec in data.get("units", []) if data["op"] == "delete" else []:
            parts = Path(rec.get("stage") or "").parts
            if mark in parts[:-1]:
                roots.append(Root(Path(*parts[: parts.index(mark)]), "folder", False))
    if roots is None:
        return None if _stage_ok(data, journal) else "names a staging folder that is not its own"
    try:
        if not roots:
            raise OrganizeError("no library root holds it")
        gate(_journal_paths(data), roots, follow=False)
    except OrganizeError as e:
        return f"names a path outside the library roots ({e})"
    if not _stage_ok(data, journal):
        return "names a staging folder that is not its own"
    return None


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
        outside = _outside_roots(data, path)
        if outside:
            return [f"{clean_path(path)}: {outside}; this organize journal is left in place"]
        done = recover(data)
    except (OSError, KeyError, TypeError, ValueError) as e:
        return [f"{clean_path(path)}: could not recover the interrupted {clean(data['op'])} ({clean(e)})"]
    with contextlib.suppress(OSError):  # a log line that cannot be written stops nothing
        log_operation("recover", journal=path.name, actions=done)
    path.unlink(missing_ok=True)
    return done
