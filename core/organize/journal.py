"""A journal of the organize operation under way, so a kill -9 never leaves a set half-done.

Each multi-step operation writes one JSON file under `data_dir()/journal/` (beside operations.log)
before its first change, rewrites it at each commit point and removes it after its last change; every
write is atomic (temp file, fsync, rename, fsync of the folder). At the next start `recover_interrupted`
(in recover.py) reads what is left and rolls each operation back or completes it.

`failpoint(name)` is the one test hook: when the environment variable QUANTTUI_FAILPOINT equals `name`
the process kills itself with SIGKILL there (or, for `name=error`, raises OSError), so tests can
interrupt an operation at each of its steps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ..paths import data_dir

FAILPOINT_ENV = "QUANTTUI_FAILPOINT"


def failpoint(name: str) -> None:
    """Test hook: SIGKILL this process at step `name`, or raise OSError for `name=error`."""
    wanted = os.environ.get(FAILPOINT_ENV)
    if not wanted:
        return
    if wanted == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if wanted == f"{name}=error":
        raise OSError(5, f"failpoint {name}")


def journal_dir() -> Path:
    return data_dir() / "journal"


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make renames inside `folder` durable before the next commit point."""
    _fsync_dir(Path(folder))


class Journal:
    """One operation's record on disk; `save` is atomic and durable, `close` removes it."""

    def __init__(self, op: str, data: dict[str, Any], path: Path | None = None) -> None:
        self.op = op
        self.data = {"op": op, "pid": os.getpid(), **data}
        self.path = path or journal_dir() / f"{op}-{os.getpid()}-{uuid.uuid4().hex[:12]}.json"

    @property
    def id(self) -> str:
        return self.path.stem

    def save(self, **changes: Any) -> None:
        self.data.update(changes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)


def pending() -> list[Path]:
    """Journal files left by operations that did not finish, oldest first."""
    folder = journal_dir()
    try:
        files = [p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith(".tmp-")]
    except OSError:
        return []
    for tmp in folder.glob(".tmp-*"):  # a journal write cut off before its rename: never a commit point
        tmp.unlink(missing_ok=True)
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))
