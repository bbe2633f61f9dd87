"""llama.cpp's log, routed to Python once per process: never to the terminal (it would blank a
running Textual screen); collected while a caller needs it, and in model processes also written
to the process's log file as it comes, so the lines before a crash are there to read."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from typing import Any

from .lib import lib

DEBUG, INFO, WARN, ERROR, CONT = 1, 2, 3, 4, 5  # ggml_log_level
# How echoed lines start in a model process's log: what llama.cpp merely reports, and its warnings
# and errors (which a crash message may quote).
INFO_MARK, WARN_MARK = "llama.cpp| ", "llama.cpp! "


class LlamaLogCapture:
    """Installs the callback once; `start()`/`stop()` collect lines for a while; `echo_to(fd)` also
    writes each line of INFO level and above to a file descriptor, unbuffered."""

    _lock = threading.Lock()
    _installed: Any = None
    _sinks: list[list[str]] = []
    _echo_fd: int | None = None
    _last_level = INFO
    _pending = ""  # the start of a line llama.cpp has not ended yet

    @classmethod
    def install(cls) -> None:
        with cls._lock:
            if cls._installed is not None:
                return
            llama_cpp = lib()

            def _log(level: int, text: bytes, user_data: Any) -> None:
                line = text.decode("utf-8", errors="replace")
                for sink in list(cls._sinks):
                    sink.append(line)
                if level != CONT:
                    cls._last_level = level
                if cls._echo_fd is not None and cls._last_level >= INFO:
                    cls._echo(line)

            callback = llama_cpp.llama_log_callback(_log)
            cls._installed = callback  # llama.cpp keeps only the raw pointer
            llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))

    @classmethod
    def _echo(cls, text: str) -> None:
        """Whole lines, each marked with its level, so the log can be read back for the last warning."""
        *done, cls._pending = (cls._pending + text).split("\n")
        mark = WARN_MARK if cls._last_level >= WARN else INFO_MARK
        out = "".join(f"{mark}{line}\n" for line in done if line.strip())
        if out and cls._echo_fd is not None:
            with contextlib.suppress(OSError):
                os.write(cls._echo_fd, out.encode("utf-8", errors="replace"))

    @classmethod
    def echo_to(cls, fd: int) -> None:
        """Also write llama.cpp's lines to `fd` (a model process's log file) as they come."""
        cls.install()
        cls._echo_fd = fd

    @classmethod
    def start(cls) -> list[str]:
        cls.install()
        sink: list[str] = []
        cls._sinks.append(sink)
        return sink

    @classmethod
    def stop(cls, sink: list[str]) -> None:
        if sink in cls._sinks:
            cls._sinks.remove(sink)


@contextlib.contextmanager
def captured() -> Any:
    """Collect llama.cpp's log lines while the block runs: `with captured() as lines: ...`."""
    sink = LlamaLogCapture.start()
    try:
        yield sink
    finally:
        LlamaLogCapture.stop(sink)
