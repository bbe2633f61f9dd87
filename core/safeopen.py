"""The one way quanttui opens a file a person or a folder hands it: never blocks, regular files only,
bounded in size.

A path checked with stat() and then opened can be something else by the time it is opened (a FIFO
renamed over a listed model, a settings file linked to /dev/zero). Opening a FIFO for reading waits
for a writer forever, and reading /dev/zero never ends. So the file is opened with O_NONBLOCK (a
FIFO opens at once), O_NOCTTY (a terminal never becomes ours) and O_CLOEXEC, and the descriptor
itself is checked with fstat(): what was opened is what is read. A regular file then has O_NONBLOCK
cleared, and reads are bounded by what the caller allows.

Errors are `UnsafeFileError`: an OSError (so `except OSError` around a read catches it as before)
whose str() is one line without the path ("not a regular file (a FIFO)"); the caller names the file.
"""

from __future__ import annotations

import os
import stat
from os import fstat
from pathlib import Path
from typing import BinaryIO

from .errors import QuanttuiError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


class UnsafeFileError(QuanttuiError, OSError):
    """A file refused before or while reading: not a regular file, or larger than allowed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "refused"


def kind(mode: int) -> str:
    """What a file of this st_mode is, in words ("a FIFO", "a character device")."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "an unknown kind of file"


def _check(st: os.stat_result, max_bytes: int | None) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"not a regular file ({kind(st.st_mode)})")
    if max_bytes is not None and st.st_size > max_bytes:
        raise UnsafeFileError(f"{st.st_size:,} bytes, more than the {max_bytes:,} allowed")


def _flags(follow_symlinks: bool) -> int:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    return flags


def open_fd(
    path: str | os.PathLike[str], max_bytes: int | None = None, *, follow_symlinks: bool = True
) -> int:
    """A read-only descriptor of the regular file at `path` (at most `max_bytes` long when given),
    blocking reads restored. OSError as the system says it (no such file, permission denied, a link
    refused with follow_symlinks=False); UnsafeFileError for anything but a regular file or one too large.

    A stat() first refuses most non-regular files without opening them (opening a device can do
    things); the fstat() of the opened descriptor is what decides.
    """
    _check(os.stat(path, follow_symlinks=follow_symlinks), max_bytes)
    fd = os.open(path, _flags(follow_symlinks))
    try:
        _check(fstat(fd), max_bytes)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(
    path: str | os.PathLike[str],
    max_bytes: int | None = None,
    *,
    follow_symlinks: bool = True,
    buffering: int = -1,
) -> BinaryIO:
    """`open_fd` as a binary file object (unbuffered with buffering=0); the caller closes it."""
    fd = open_fd(path, max_bytes, follow_symlinks=follow_symlinks)
    try:
        return os.fdopen(fd, "rb", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: str | os.PathLike[str], max_bytes: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file at `path`; UnsafeFileError when it is not one or holds more than
    `max_bytes` (also when it grows past them while being read)."""
    with open_regular(path, max_bytes, follow_symlinks=follow_symlinks, buffering=0) as fh:
        chunks: list[bytes] = []
        have = 0
        while have <= max_bytes:
            chunk = fh.read(min(1 << 20, max_bytes + 1 - have))
            if not chunk:
                break
            chunks.append(chunk)
            have += len(chunk)
    if have > max_bytes:
        raise UnsafeFileError(f"grew past the {max_bytes:,} bytes allowed while being read")
    return b"".join(chunks)


def read_text_bounded(path: str | Path, max_bytes: int, *, follow_symlinks: bool = True) -> str:
    """`read_bounded` decoded as UTF-8 (UnicodeDecodeError, a ValueError, when it is not UTF-8)."""
    return read_bounded(path, max_bytes, follow_symlinks=follow_symlinks).decode("utf-8")


def check_regular(path: str | os.PathLike[str]) -> None:
    """Refuse anything but a regular file at `path` (opened and fstat()ed, never read): the check to
    make before handing a path to code that opens it its own way (llama.cpp)."""
    os.close(open_fd(path))
