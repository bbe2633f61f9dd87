"""The `quanttui` command: the TUI by default, and subcommands that print what the screens show.

Textual is imported only on the TUI path, so `quanttui inspect` starts fast and works headless.
Every error is one cleaned line on stderr, and the exit code comes from one table (cli/errors.py:
0 done, 1 failed or refused, 2 usage, 3 the Hub unreachable, 130 interrupted); plain output is
cleaned of control characters and never fails to encode; `--json` keeps exact values (json.dumps
escapes controls and undecodable bytes).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from ..core.errors import QuanttuiError
from ..core.textsafe import clean
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, exit_code_of

# Nothing heavy is imported here: main() imports llama_cpp first (before numpy) when this run may load
# a model, then builds the parser, which imports the topic modules (and numpy, gguf) they need.

LOADS_MODELS = ("ab", "eval", "bench", "demo")
# The runs that may load a model in this very process (the TUI's, `fit --measure`, the doctor's
# llama.cpp checks) or start model processes: llama_cpp is imported before anything imports numpy.
_PRELOADS = (*LOADS_MODELS, "doctor")


class _Parser(argparse.ArgumentParser):
    """argparse whose error line (which may quote an argument) is cleaned before it reaches stderr."""

    def error(self, message: str) -> NoReturn:
        super().error(clean(message))


class _Version(argparse.Action):
    """`--version`: `quanttui VERSION`, read from the installed metadata only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from .. import __version__

        print(f"quanttui {__version__}")
        parser.exit()


def _err(message: object) -> None:
    print(f"quanttui: {clean(message)}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from . import ab as ab_cli
    from . import doctor as doctor_cli
    from . import fit as fit_cli
    from . import helptext
    from . import hub as hub_cli
    from . import library as library_cli
    from . import organize as organize_cli
    from . import quality as quality_cli

    p = _Parser(
        prog="quanttui", description="Which GGUF quant should you run, and what do you lose by going lower?"
    )
    p.add_argument("--version", action=_Version, help="print quanttui's version and exit")
    sub = p.add_subparsers(dest="command")
    library_cli.add_parsers(sub)
    fit_cli.add_parser(sub)
    ab_cli.add_parser(sub)
    organize_cli.add_parsers(sub)
    hub_cli.add_parsers(sub)
    quality_cli.add_parsers(sub)
    for name in (*LOADS_MODELS, "fit"):
        sub.choices[name].add_argument(
            "--extra-buffers",
            choices=("auto", "on", "off"),
            help="llama.cpp's extra buffer types (AMX, CPU_REPACK): auto probes this machine once (default)",
        )
    doctor_cli.add_parser(sub)
    helptext.apply(p, sub)
    return p


def _preload_llama(argv: Sequence[str]) -> None:
    """Import llama_cpp now, before numpy, when this run may load a model in this process (a CUDA
    build segfaults at tokenizer load otherwise): the TUI, the model commands, `fit --measure`."""
    if any(a in ("-h", "--help", "--version") for a in argv):
        return
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is None or command in _PRELOADS or (command == "fit" and "--measure" in argv):
        from ..core.llama.lib import preload

        preload()


def _tolerant_streams() -> None:
    """Output never dies on an encoding: a character the stream cannot encode is written as an escape."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]


def _recover_interrupted() -> None:
    """Finish or roll back organize operations an earlier run left half done, one line each on stderr.
    The TUI does this itself at start and shows the lines as notifications."""
    from ..core.organize import recover_interrupted

    for line in recover_interrupted():
        _err(line)


def _say_extra_buffers(before: bool) -> None:
    """Before a command that loads models: say once that this machine runs without llama.cpp's
    extra buffers, and why; after it: any fallback a crash made meanwhile."""
    from ..core.llama import LlamaUnavailable
    from ..core.llama.extra import machine_notice, take_notices

    try:
        lines = [machine_notice()] if before else take_notices()
    except (LlamaUnavailable, OSError):
        return
    for line in lines:
        if line:
            _err(f"note: {line}")


def _unexpected(e: Exception, argv: Sequence[str]) -> int:
    """A bug or an unforeseen failure: one cleaned line, the full traceback kept in the cache dir."""
    from ..core.paths import cache_dir

    where = ""
    try:
        log = cache_dir() / "errors.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} quanttui {' '.join(argv)}\n")
            f.write("".join(traceback.format_exception(type(e), e, e.__traceback__)))
        where = f" (traceback in {log})"
    except OSError:
        pass
    _err(f"unexpected error: {type(e).__name__}: {e}{where}")
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    _tolerant_streams()
    _preload_llama(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command is None:
            from ..tui.app import run_app

            return run_app()
        _recover_interrupted()
        if getattr(args, "extra_buffers", None):  # for this command (model processes inherit it)
            os.environ["QUANTTUI_EXTRA_BUFFERS"] = args.extra_buffers
        loads = args.command in LOADS_MODELS or getattr(args, "measure", False)
        if loads:
            _say_extra_buffers(before=True)
        try:
            code: int = args.func(args)
            return code
        finally:
            if loads:
                _say_extra_buffers(before=False)
    except QuanttuiError as e:  # CliError (cli/errors.py) and every refusal of core
        _err(e)
        return exit_code_of(e)  # the table in cli/errors.py
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        return _unexpected(e, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
