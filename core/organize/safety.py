"""The rules every file operation passes first: inside a root, not through a symlink out, not in use.

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

from ..errors import QuanttuiError
from ..library.roots import Root
from ..paths import data_dir


class OrganizeError(QuanttuiError):
    """An operation refused or failed; str() is one line and nothing was changed."""


def _inside(path: str, top: str) -> bool:
    try:
        return os.path.commonpath([path, top]) == top
    except ValueError:  # different drives on Windows
        return False


def root_of(path: str | Path, roots: Iterable[Root]) -> Root:
    """The root holding `path`, after resolving every symlink; refuses paths outside all roots."""
    raw = os.path.abspath(path)
    real = os.path.realpath(path)
    for root in roots:
        top = os.path.realpath(root.path)
        if _inside(raw, os.path.abspath(root.path)) or _inside(raw, top):
            if not _inside(real, top):
                raise OrganizeError(f"{path}: a symlink pointing outside the library root {root.path}")
            return root
    raise OrganizeError(f"{path}: outside the library roots (see `quanttui roots`)")


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
        except (OSError, ValueError):
            continue
        if not psutil.pid_exists(int(info.get("pid", -1))):
            marker.unlink(missing_ok=True)
            continue
        if info.get("path") == real:
            return int(info["pid"])
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
