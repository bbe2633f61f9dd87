"""Typed errors for GGUF reading; each message is one line a user can act on."""

from __future__ import annotations

from ..errors import QuanttuiError


class GGUFError(QuanttuiError, ValueError):
    """A file that cannot be read as a GGUF model; str() is a one-line reason."""


class NotGGUFError(GGUFError):
    """Wrong magic, empty file, or an unsupported GGUF version."""


class TruncatedError(GGUFError):
    """The file ends before its header or its tensor data does."""


class CorruptError(GGUFError):
    """Absurd counts or lengths, invalid UTF-8 in names, unknown value types."""


class NeedMoreData(Exception):
    """A header prefix ended early; `needed` is the byte count known to be required so far."""

    def __init__(self, needed: int):
        super().__init__(f"header needs at least {needed:,} bytes")
        self.needed = needed
