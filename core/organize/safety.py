"""The rules every file operation passes first: inside a root (through the one path gate), not in use.

Every operation is also logged (what, where, when) under the data dir.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from .. import pathgate
from ..errors import QuanttuiError
from ..library.roots import Root
from ..paths import data_dir
from ..textsafe import clean_path


class OrganizeError(QuanttuiError):
    """An operation refused or failed; str() is one line and nothing was changed."""


def _tops(roots: Iterable[Root]) -> list[Path]:
    return [r.path for r in roots]


def gate(paths: Iterable[str | os.PathLike[str]], roots: Iterable[Root], *, follow: bool = True) -> None:
    """Every path of a plan through the path gate before the first change; OrganizeError on the first
    one that is, or leads through a symlink or `..`, outside the roots."""
    try:
        pathgate.check_all(paths, _tops(roots), follow=follow)
    except pathgate.PathRefused as e:
        raise OrganizeError(str(e)) from None


def root_of(path: str | Path, roots: Iterable[Root], *, follow: bool = True) -> Root:
    """The innermost root `path` sits in, after the gate has checked that it, and (with follow) what it
    points to, stay inside the roots; OrganizeError otherwise."""
    roots = list(roots)
    gate([path], roots, follow=False)
    if follow:
        gate([path], roots, follow=True)
    where = pathgate.resolve(path, follow=False)
    holding = [r for r in roots if pathgate.inside(where, os.path.realpath(r.path))]
    if not holding:  # the gate passed, so this only happens if a root changed in between
        raise OrganizeError(f"{clean_path(path)}: outside the library roots (see `quanttui roots`)")
    return max(holding, key=lambda r: len(Path(os.path.realpath(r.path)).parts))


# Files held by a running A/B session: one marker file per load under the data dir, named
# `PID-KEY-N` where KEY is a hash of the whole resolved path (two files never share a marker, however
# long their names) and N counts loads of that file by that process (A and B may load the same file).
# A marker says the pid and when that process started, so neither a dead pid nor a reused one holds
# a file.


def _inuse_dir() -> Path:
    return data_dir() / "in-use"


def _key(real: str) -> str:
    """A fixed-length name for a resolved path: its SHA-256 (the path itself may be any length)."""
    return hashlib.sha256(os.fsencode(real)).hexdigest()


def _started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch); None when that cannot be known."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError, ValueError):
        return None


def _alive(pid: int, started: object) -> bool:
    """Whether the process that wrote a marker still runs: its pid exists and, where the marker says
    when it started, that process is the one now holding the pid (a pid is reused after a while)."""
    try:
        now = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, ValueError):
        return False
    except (psutil.Error, OSError):
        return psutil.pid_exists(pid)  # running, but its start time is not ours to read
    return not isinstance(started, (int, float)) or abs(now - started) <= 1.0


def mark_in_use(path: str) -> None:
    """Record that this process has `path` loaded: organize refuses to delete or move it until
    unmark_in_use (or this process ends). Each call adds one marker; each unmark_in_use removes one."""
    real = os.path.realpath(path)
    info = json.dumps({"pid": os.getpid(), "started": _started(os.getpid()), "path": real})
    folder = _inuse_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{os.getpid()}-{_key(real)}"
    for n in itertools.count():  # O_EXCL: two threads loading the same file get a marker each
        try:
            fd = os.open(folder / f"{stem}-{n}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(info)
        return


def unmark_in_use(path: str) -> None:
    """Undo one mark_in_use of `path` by this process (the last one made)."""
    stem = f"{os.getpid()}-{_key(os.path.realpath(path))}-"
    mine = [m for m in _markers() if m.name.startswith(stem) and m.name[len(stem) :].isdigit()]
    if mine:
        max(mine, key=lambda m: int(m.name[len(stem) :])).unlink(missing_ok=True)


def _markers() -> list[Path]:
    try:
        return sorted(_inuse_dir().iterdir())
    except OSError:  # no marker written yet
        return []


def _holder(marker: Path) -> tuple[int, str] | None:
    """(pid, resolved path) of a marker whose process still runs; a stale one (dead pid, or a pid now
    used by a process that started later) is removed, and an unreadable one is skipped."""
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
        pid, real = int(info["pid"]), info["path"]
        started = info.get("started")
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(real, str):
        return None
    if not _alive(pid, started):
        marker.unlink(missing_ok=True)
        return None
    return pid, real


def in_use(path: str | Path) -> int | None:
    """The pid of a live quanttui process that has `path` loaded, if any (stale markers are removed)."""
    real = os.path.realpath(path)
    for marker in _markers():
        holder = _holder(marker)
        if holder and holder[1] == real:
            return holder[0]
    return None


def log_operation(op: str, **details: Any) -> None:
    """Append one JSON line to the operations log; a log that cannot be written never stops the work."""
    entry = {"when": dt.datetime.now().isoformat(timespec="seconds"), "op": op, **details}
    try:
        data_dir().mkdir(parents=True, exist_ok=True)
        with open(log_path(), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")
    except OSError:
        pass


def log_path() -> Path:
    return data_dir() / "operations.log"
