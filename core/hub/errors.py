"""The Hub's errors, apart so that every module of core/hub can raise them without import cycles."""

from __future__ import annotations

from ..errors import QuanttuiError


class HubError(QuanttuiError):
    """A Hub request that failed; str() is one line, never containing the token."""


class HubUnreachable(HubError):
    """The Hub could not be reached at all (offline, DNS, refused): said at once, not after retries."""


class Stopped(HubError):
    """A Hub call ended by its deadline or a cancel."""
