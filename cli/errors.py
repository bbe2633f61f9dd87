"""The one base of the command line's own errors: main() prints any QuanttuiError as one cleaned
line on stderr and exits 2; CliError marks a refusal the CLI itself makes (a bad argument, a
failure of core put into the command's words)."""

from __future__ import annotations

from ..core.errors import QuanttuiError


class CliError(QuanttuiError):
    """A one-line error for stderr; the command exits 2."""
