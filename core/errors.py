"""The one base class of every error quanttui reports to a person: str() is a single safe line."""

from __future__ import annotations


class QuanttuiError(Exception):
    """An expected failure (a refused operation, an unreadable file, a Hub error); never a traceback."""
