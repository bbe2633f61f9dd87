"""The `quanttui` command: the TUI by default, and subcommands that print what the screens show.

Textual is imported only on the TUI path, so `quanttui inspect` starts fast and works headless.
Every error is one cleaned line on stderr; plain output is cleaned of control characters and never
fails to encode; `--json` keeps exact values (json.dumps escapes controls and undecodable bytes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

from ..core import report
from ..core import settings as settings_mod
from ..core.errors import QuanttuiError
from ..core.library import active_roots, add_root, all_roots, remove_root, scan
from ..core.modelfile import inspect_file
from ..core.paths import cache_dir
from ..core.textsafe import clean
from . import ab as ab_cli
from . import doctor as doctor_cli
from . import fit as fit_cli
from . import hub as hub_cli
from . import organize as organize_cli
from . import quality as quality_cli


class CliError(QuanttuiError):
    """A one-line error for stderr; the command exits non-zero."""


class _Parser(argparse.ArgumentParser):
    """argparse whose error line (which may quote an argument) is cleaned before it reaches stderr."""

    def error(self, message: str):  # type: ignore[override]
        super().error(clean(message))


def _err(message: object) -> None:
    print(f"quanttui: {clean(message)}", file=sys.stderr)


def _inspect(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    failed = False
    for path in args.paths:
        try:
            facts = hub_cli.remote_inspect(path) if path.startswith("hf:") else inspect_file(path)
            results.append(facts.to_dict(tensors=args.tensors))
        except (hub_cli.HubCliError, QuanttuiError, OSError) as e:
            failed = True
            results.append({"path": path, "error": str(e)})
    if args.json:
        out = results[0] if len(results) == 1 else results
        print(json.dumps(out, indent=2, default=str))
    else:
        for i, item in enumerate(results):
            if "error" in item:
                _err(f"{item['path']}: {item['error']}")
            else:
                if i:
                    print()
                print(report.inspect_text(item, tensors=args.tensors))
    return 1 if failed else 0


def _ls(args: argparse.Namespace) -> int:
    s = settings_mod.load()
    if s.load_error:
        _err(s.load_error)
    roots = active_roots(s)
    skipped: list[str] = []
    entries = scan(roots, skipped=skipped)
    for line in skipped:
        _err(line)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2, default=str))
    elif not entries:
        print(report.empty_library_text(all_roots(s)))
    else:
        print(report.ls_text(entries))
    return 0


def _roots(args: argparse.Namespace) -> int:
    if args.action:
        if not args.path:
            raise CliError(f"roots {args.action} needs a PATH")
        with settings_mod.update() as s:
            known = {str(r.path) for r, state in all_roots(s) if state != "hidden"}
            try:
                root = (add_root if args.action == "add" else remove_root)(s, args.path)
            except ValueError as e:
                raise CliError(str(e)) from None
        added = "already a root" if str(root.path) in known else "added"
        verb = added if args.action == "add" else "hidden" if root.default else "removed"
        print(clean(f"{verb}: {root.path}"))
        return 0
    s = settings_mod.load()
    rows = [
        {"path": str(r.path), "kind": r.kind, "default": r.default, "state": st} for r, st in all_roots(s)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(report.roots_text(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="quanttui", description="Which GGUF quant should you run, and what do you lose by going lower?"
    )
    sub = p.add_subparsers(dest="command")
    pi = sub.add_parser("inspect", help="show a GGUF file's model and quant facts")
    pi.add_argument("paths", nargs="+", metavar="PATH")
    pi.add_argument("--json", action="store_true", help="print JSON (a list when several paths)")
    pi.add_argument("--tensors", action="store_true", help="include every tensor's type and shape")
    pi.set_defaults(func=_inspect)
    pl = sub.add_parser("ls", help="list every GGUF in the library roots")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=_ls)
    pr = sub.add_parser("roots", help="show, add or remove library folders")
    pr.add_argument("action", nargs="?", choices=["add", "remove"])
    pr.add_argument("path", nargs="?")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=_roots)
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
    return p


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


LOADS_MODELS = ("ab", "eval", "bench", "demo")


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
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    _tolerant_streams()
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
            return args.func(args)
        finally:
            if loads:
                _say_extra_buffers(before=False)
    except (
        QuanttuiError,
        fit_cli.FitCliError,
        ab_cli.AbCliError,
        organize_cli.OrganizeCliError,
        hub_cli.HubCliError,
    ) as e:
        _err(e)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        return _unexpected(e, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
