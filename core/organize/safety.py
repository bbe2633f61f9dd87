"""The rules every file operation passes first: inside a root (through the one path gate), not in use.

Every operation is also logged (what, where, when) under the data dir.
"""

from __future__ import annotations

import datetime as dt
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


# Files held by a running A/B session: one marker file per (process, model) under the data dir.


def _inuse_dir() -> Path:
    return data_dir() / "in-use"


def _marker(path: str) -> Path:
    key = os.path.realpath(path).replace(os.sep, "_").replace(":", "_")[-180:]
    return _inuse_dir() / f"{os.getpid()}-{key}"


def mark_in_use(path: str) -> None:
    _inuse_dir().mkdir(parents=True, exist_ok=True)
    _marker(path).write_text(json.dumps({"pid": os.getpid(), "path": os.path.realpath(path)}))


def unmark_in_use(path: str) -> None:
    _marker(path).unlink(missing_ok=True)


def in_use(path: str | Path) -> int | None:
    """The pid of a live quanttui process that has `path` loaded, if any (stale markers are removed)."""
    folder = _inuse_dir()
    if not folder.is_dir():
        return None
    real = os.path.realpath(path)
    for marker in folder.iterdir():
        try:
            info = json.loads(marker.read_text())
            pid = int(info.get("pid", -1))
        except (OSError, ValueError, TypeError, AttributeError):
            continue
        if not psutil.pid_exists(pid):
            marker.unlink(missing_ok=True)
            continue
        if info.get("path") == real:
            return pid
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
