"""The app in a real terminal (a pseudo-terminal) keeps running when its input holds bytes that are
not UTF-8 (a Latin-1 terminal, a binary paste), and quits cleanly after them."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time

import pytest

pytestmark = pytest.mark.slow


def _read(fd: int, seconds: float) -> bytes:
    """What the app drew within `seconds`."""
    out, end = b"", time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the app has gone
                break
            if not chunk:
                break
            out += chunk
    return out


def _exited(pid: int, seconds: float) -> int | None:
    """The app's exit status once it has ended within `seconds`, else None."""
    end = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= end:
            return None
        time.sleep(0.1)


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
def test_bytes_that_are_not_utf8_do_not_end_the_app(isolated):
    env = {**os.environ, "TERM": "xterm-256color", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the app, as the quanttui command runs it
        run = "from quanttui.cli.main import main; raise SystemExit(main())"
        os.execve(sys.executable, [sys.executable, "-c", run], env)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        drawn = _read(fd, 8.0)
        assert b"Library" in drawn  # the app is up
        os.write(fd, b"abc\x9bdef\xff\xfe")  # not UTF-8, typed into the Library's filter
        after = _read(fd, 3.0)
        assert _exited(pid, 0.1) is None, after.decode(errors="replace")[-2000:]
        assert b"UnicodeDecodeError" not in after
        os.write(fd, b"\x11")  # ctrl+q
        _read(fd, 1.0)
        code = _exited(pid, 10.0)
        if code is not None:
            pid = 0  # reaped
        assert code == 0
    finally:
        if pid and _exited(pid, 0) is None:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
