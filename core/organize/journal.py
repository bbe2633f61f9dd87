"""A journal of the organize operation under way, so a kill -9 never leaves a set half-done.

Each multi-step operation writes one JSON file under `data_dir()/journal/` (beside operations.log)
before its first change, rewrites it at each commit point and removes it after its last change; every
write is atomic (temp file `.tmp-ID.*`, fsync, rename, fsync of the folder). At the next start
`recover_interrupted` (in recover.py) reads what is left and rolls each operation back or completes it.

Owners. From its first save to its close an operation holds two flock(2) locks, which die with its
process (so a kill -9 leaves the journal recoverable) and never outlive it:
- `journal/ID.lock`, its owner lock: recovery (another quanttui starting, `quanttui du`...) takes it
  without waiting and leaves alone every journal and temp file whose lock is held, so it never touches
  an operation that is still running.
- `data_dir()/organize.lock`: one organize operation (delete, move, rename, dedupe link) at a time per
  data dir. A second one, from this quanttui or another, is refused before its first change with one
  line (`OperationBusy`) rather than made to wait: its plan was made before the first one changed the
  files, and a wait would look like a hang. Recovery takes it, without waiting, only to finish or undo
  a dead operation, so a rollback never runs beside a new operation either.

`failpoint(name)` is the one test hook: when the environment variable QUANTTUI_FAILPOINT equals `name`
the process kills itself with SIGKILL there; `name=error` raises OSError; `name=pause:FILE` writes FILE
(holding the pid) and waits until FILE is removed, so a test can act while an operation is held there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import signal
import tempfile
import time
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..paths import data_dir
from ..textsafe import clean_path
from .safety import OrganizeError

FAILPOINT_ENV = "QUANTTUI_FAILPOINT"
PAUSE_LIMIT_S = 300.0  # a held test operation goes on (with an error) rather than hang for ever
NAME_MAX = 255  # bytes in one path component on common filesystems
TMP_PREFIX = ".tmp-"
LOCK_SUFFIX = ".lock"
OWNED = "owner_lock"  # set in every journal written under an owner lock (older ones only have a pid)
ROOTS = "roots"  # the library roots the operation ran with: recovery acts only inside them
_paused: set[str] = set()


class OperationBusy(OrganizeError):
    """Another organize operation is under way; this one was refused before its first change."""


def failpoint(name: str) -> None:
    """Test hook: SIGKILL this process at step `name`, raise OSError for `name=error`, or hold here
    (once per process) for `name=pause:FILE`."""
    wanted = os.environ.get(FAILPOINT_ENV)
    if not wanted:
        return
    if wanted == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if wanted == f"{name}=error":
        raise OSError(5, f"failpoint {name}")
    if wanted.startswith(f"{name}=pause:") and name not in _paused:
        _paused.add(name)
        _pause(Path(wanted.split("=pause:", 1)[1]), name)


def _pause(flag: Path, name: str) -> None:
    tmp = flag.with_name(f"{flag.name}.{os.getpid()}")
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, flag)  # the test sees the flag whole, or not at all
    deadline = time.monotonic() + PAUSE_LIMIT_S
    while flag.exists():
        if time.monotonic() > deadline:
            raise OSError(errno.ETIMEDOUT, f"failpoint {name}: nobody removed {flag}")
        time.sleep(0.01)


def bounded_name(name: str, room: int = 32) -> str:
    """`name`, or when it would not leave `room` bytes (for a mark like `.NAME.link-PID`) in one path
    component (255 bytes), its start cut at a character and a hash of the whole name: the same name
    always gives the same result, two long names sharing a start give two. For temporary names built
    from a file's name, which would otherwise fail with "File name too long"."""
    limit = NAME_MAX - room
    raw = os.fsencode(name)
    if len(raw) <= limit:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:16]
    kept, used = [], 0
    for ch in name:
        size = len(os.fsencode(ch)) if not 0xD800 <= ord(ch) <= 0xDFFF else 1  # surrogateescape bytes
        if used + size > limit - len(digest) - 1:
            break
        kept.append(ch)
        used += size
    return f"{''.join(kept)}~{digest}"


def journal_dir() -> Path:
    return data_dir() / "journal"


def operation_lock_path() -> Path:
    return data_dir() / "organize.lock"


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


def move_no_replace(
    src: str | Path, dst: str | Path, step: str | None = None, tops: list[str] | None = None
) -> None:
    """Rename `src` to `dst`, refusing (FileExistsError) when `dst` exists: a hard link under the new
    name (which the OS refuses over an existing name), then the old name's unlink. Where no hard link
    can be made (a filesystem without them) the name is checked free first and renamed. A kill between
    the two steps leaves both names on one inode; recovery then drops the staged one.

    With `tops` (the operation's roots), both folders are opened first and each must really be inside
    the tops; the link and the unlink then go through those open folders, so a folder swapped for a
    symlink after the plan was checked cannot lead the move outside the roots (OSError EXDEV)."""
    src, dst = Path(src), Path(dst)
    with _folder(src.parent, tops) as sfd, _folder(dst.parent, tops) as dfd:
        s_name = src.name if sfd is not None else os.fspath(src)  # by name in its open folder
        d_name = dst.name if dfd is not None else os.fspath(dst)
        try:
            os.link(s_name, d_name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
        except FileExistsError:
            raise
        except (OSError, NotImplementedError) as e:
            no_links = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS)
            if isinstance(e, OSError) and e.errno not in no_links:
                raise
            try:
                os.stat(d_name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                os.rename(s_name, d_name, src_dir_fd=sfd, dst_dir_fd=dfd)
                return
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from None
        if step:
            failpoint(step)
        os.unlink(s_name, dir_fd=sfd)


@contextlib.contextmanager
def _folder(folder: Path, tops: list[str] | None) -> Iterator[int | None]:
    """An open descriptor of `folder`, checked to lie inside `tops` (None without tops: by name)."""
    if tops is None:
        yield None
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        where = _where(fd, folder)
        if not any(_inside(where, os.path.realpath(t)) for t in tops):
            raise OSError(errno.EXDEV, "now leads outside the library roots", str(folder))
        yield fd
    finally:
        os.close(fd)


def _where(fd: int, folder: Path) -> str:
    """The real location of an open folder: from /proc where there is one, else its resolved name
    checked to be that same folder."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        real = os.path.realpath(folder)
        if not os.path.samestat(os.fstat(fd), os.stat(real)):
            raise OSError(errno.EXDEV, "changed while it was being opened", str(folder)) from None
        return real


def _inside(path: str, top: str) -> bool:
    try:
        return os.path.commonpath([path, top]) == top
    except ValueError:
        return False


def root_paths(roots: Any) -> list[str]:
    """The roots of an operation as its journal records them (resolved folder names)."""
    return [os.path.realpath(r.path) for r in roots]


# Locks -------------------------------------------------------------------------------------------


def try_lock(path: Path, *, create: bool = True) -> int | None:
    """A descriptor holding an exclusive flock on the file at `path`, or None when another holder has
    it (or, without `create`, there is no such file). A lock file may be removed by its holder once
    done, so the lock only counts when the locked file is still the one at `path`: else try again."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0), 0o600)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # its holder removed it after we opened it: that holder is done
        if not create:
            return None


def unlock(fd: int, path: Path | None = None) -> None:
    """Release a lock from `try_lock`; with `path`, remove the lock file first (safe: see try_lock)."""
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()
    with contextlib.suppress(OSError):
        os.close(fd)


def take_operation_lock(what: str) -> int:
    """The one-operation-at-a-time lock for `what` (e.g. "delete"); OperationBusy naming the holder when
    another operation has it."""
    path = operation_lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = try_lock(path)
    if fd is None:
        try:
            holder = path.read_text(encoding="utf-8", errors="replace").split()
        except OSError:
            holder = []
        doing = (
            f"{holder[0]} (process {holder[1]})" if len(holder) == 2 and holder[1].isdigit() else "operation"
        )
        raise OperationBusy(
            f"another quanttui {doing} is under way; nothing was changed: try again when it has finished"
        )
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} {os.getpid()}\n".encode(), 0)
    return fd


def _close_all(fds: list[int]) -> None:
    """Drop the locks of a Journal that was never closed (left for recovery): they die with it."""
    while fds:
        with contextlib.suppress(OSError):
            os.close(fds.pop())


# The journal -------------------------------------------------------------------------------------


class Journal:
    """One operation's record on disk; `save` is atomic and durable, `close` removes it.

    The first `save` takes the operation lock (OperationBusy if another operation holds it) and the
    journal's owner lock, both before anything is written; `close` releases them. A journal left for
    recovery (its owner raised past a commit point) keeps its locks until this object is dropped."""

    def __init__(self, op: str, data: dict[str, Any], path: Path | None = None) -> None:
        self.op = op
        self.data = {"op": op, "pid": os.getpid(), OWNED: True, **data}
        self.path = path or journal_dir() / f"{op}-{os.getpid()}-{uuid.uuid4().hex[:12]}.json"
        self._saves = 0
        self._fds: list[int] = []  # [operation lock, owner lock] while held
        weakref.finalize(self, _close_all, self._fds)

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def lock_path(self) -> Path:
        return owner_lock_path(self.path)

    def _lock(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        op_fd = take_operation_lock(str(self.data.get("what") or self.op))
        try:
            fd = try_lock(self.lock_path)
        except OSError:
            unlock(op_fd)
            raise
        if fd is None:  # an id is never reused: only a stray process could hold it
            unlock(op_fd)
            raise OperationBusy(
                f"{clean_path(self.lock_path)}: this journal's lock is held by another process"
            )
        self._fds += [op_fd, fd]

    def save(self, **changes: Any) -> None:
        if not self._fds:
            self._lock()
        self.data.update(changes)
        self._saves += 1
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f"{TMP_PREFIX}{self.id}.", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.data, fh)
                fh.flush()
                os.fsync(fh.fileno())
            failpoint(f"journal:written:{self._saves}")
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path.parent)

    def close(self) -> None:
        """Remove the journal, then its lock file, then release the locks (in that order: a recovery
        that gets the owner lock and still finds the journal knows its owner is gone)."""
        self.path.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)
        if len(self._fds) == 2:
            unlock(self._fds.pop(), self.lock_path)
        _close_all(self._fds)


def owner_lock_path(journal: Path) -> Path:
    return journal.with_name(journal.stem + LOCK_SUFFIX)


def pending() -> list[Path]:
    """Journal files left by operations that did not finish (or are still running), oldest first."""
    try:
        files = [
            p for p in journal_dir().iterdir() if p.suffix == ".json" and not p.name.startswith(TMP_PREFIX)
        ]
    except OSError:
        return []
    stamped = []
    for p in files:
        with contextlib.suppress(OSError):  # one that its owner closed meanwhile
            stamped.append((p.stat().st_mtime_ns, p.name, p))
    return [p for _, _, p in sorted(stamped)]


@contextlib.contextmanager
def claimed(journal: Path) -> Iterator[bool]:
    """Hold the owner lock of `journal` while recovery deals with it: True when it was free (its
    owner is gone), False when a live operation holds it (leave the journal alone). On leaving, the
    journal's temp files go (a write cut off before its rename is never a commit point) and so does
    the lock file."""
    lock = owner_lock_path(journal)
    fd = try_lock(lock)
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            for tmp in journal.parent.iterdir():
                if tmp.name.startswith(f"{TMP_PREFIX}{journal.stem}."):
                    tmp.unlink(missing_ok=True)
        unlock(fd, lock)


def sweep() -> None:
    """Remove temp files and lock files no live operation holds and no journal needs: what a kill left
    between an operation's lock and its first journal, or in the middle of a journal write."""
    folder = journal_dir()
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return
    for name in names:
        if name.startswith(TMP_PREFIX):
            op_id = name[len(TMP_PREFIX) :].split(".", 1)[0]  # `.tmp-ID.xxxx.json`; older: `.tmp-xxxx.json`
        elif name.endswith(LOCK_SUFFIX):
            op_id = name[: -len(LOCK_SUFFIX)]
        else:
            continue
        journal = folder / f"{op_id}.json"
        if op_id and not journal.exists():
            with contextlib.suppress(OSError), claimed(journal) as free:
                if free and os.path.lexists(folder / name):
                    (folder / name).unlink(missing_ok=True)
