"""Terminal input bytes that are not UTF-8. Textual's Linux driver decodes stdin strictly, so one
invalid byte (a terminal in Latin-1, a paste of binary data) raises in its input thread and ends the
app (Textualize/textual#6456, open in Textual 8.2.8). Decoded with errors="replace" instead, such a
byte arrives as U+FFFD, which a text box shows and the filters treat as any other character."""

from __future__ import annotations

import codecs
import functools
from collections.abc import Callable
from typing import Any


def _lenient(encoding: str) -> Callable[..., Any]:
    """codecs.getincrementaldecoder, with bytes that cannot be decoded replaced instead of raising."""
    return functools.partial(codecs.getincrementaldecoder(encoding), errors="replace")


def tolerate_invalid_bytes() -> None:
    """Make the drivers that read a terminal decode its input leniently (idempotent)."""
    try:
        from textual.drivers import linux_driver
    except ImportError:  # not a POSIX terminal (Windows has its own driver)
        return
    linux_driver.getincrementaldecoder = _lenient  # type: ignore[attr-defined]
