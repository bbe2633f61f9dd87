"""The command line's errors and its one table of exit codes.

main() prints any QuanttuiError as one cleaned line on stderr and exits with `exit_code_of(error)`.
The codes follow the neighbours: 2 for a usage error is argparse's own (and `hf`'s); 1 for anything
that failed, as `hf`, `ollama` and llama.cpp's `llama-*` tools exit; 130 for Ctrl+C is the shell's
128 + SIGINT. 3 is quanttui's own, so a script can tell "offline, try later" from "refused".

    0    done (for fit: it fits; for advise: a quant is recommended)
    1    failed or refused: a file unreadable, an operation refused, a model that does not fit, no quant
         to recommend, a row of eval/bench/ab that failed, a confirmation declined; also an unexpected
         error (its traceback goes to the cache dir's errors.log)
    2    usage: an unknown command or option, a missing or malformed argument
    3    the Hub could not be reached (offline, DNS, connection refused)
    130  interrupted (Ctrl+C); eval and bench print the rows they finished first
"""

from __future__ import annotations

from ..core.errors import QuanttuiError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_OFFLINE = 3
EXIT_INTERRUPTED = 130


class CliError(QuanttuiError):
    """A one-line error for stderr; the command exits with `exit_code` (1 unless said otherwise)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: object = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(CliError):
    """An argument argparse let through but the command cannot use: exits 2, as argparse's own."""

    exit_code = EXIT_USAGE


def exit_code_of(error: BaseException) -> int:
    """The exit code for an error that ends a command (the table above). An error raised while
    handling an unreachable Hub (core and the commands put Hub errors into their own words, `from
    None` keeps the context) is 3 as well."""
    from ..core.hub.errors import HubUnreachable

    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, HubUnreachable):
            return EXIT_OFFLINE
        seen = seen.__cause__ or seen.__context__
    return error.exit_code if isinstance(error, CliError) else EXIT_FAILED
