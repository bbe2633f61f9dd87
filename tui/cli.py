"""The `quanttui` command: the TUI by default, and subcommands that print what the screens show.

Textual is imported only on the TUI path, so `quanttui inspect` starts fast and works headless.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ..core import settings as settings_mod
from ..core.library import active_roots, add_root, all_roots, remove_root, scan
from ..core.modelfile import GGUFError, inspect_file
from . import ab_cli, fit_cli, hub_cli, organize_cli, report


class CliError(Exception):
    """A one-line error for stderr; the command exits non-zero."""


def _inspect(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    failed = False
    for path in args.paths:
        try:
            facts = hub_cli.remote_inspect(path) if path.startswith("hf:") else inspect_file(path)
            results.append(facts.to_dict(tensors=args.tensors))
        except hub_cli.HubCliError as e:
            failed = True
            results.append({"path": path, "error": str(e)})
        except (GGUFError, OSError) as e:
            failed = True
            results.append({"path": path, "error": str(e)})
    if args.json:
        out = results[0] if len(results) == 1 else results
        print(json.dumps(out, indent=2, default=str))
    else:
        for i, item in enumerate(results):
            if "error" in item:
                print(f"quanttui: {item['path']}: {item['error']}", file=sys.stderr)
            else:
                if i:
                    print()
                print(report.inspect_text(item, tensors=args.tensors))
    return 1 if failed else 0


def _ls(args: argparse.Namespace) -> int:
    s = settings_mod.load()
    if s.load_error:
        print(f"quanttui: {s.load_error}", file=sys.stderr)
    roots = active_roots(s)
    entries = scan(roots)
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
            try:
                root = (add_root if args.action == "add" else remove_root)(s, args.path)
            except ValueError as e:
                raise CliError(str(e)) from None
        verb = "added" if args.action == "add" else "hidden" if root.default else "removed"
        print(f"{verb}: {root.path}")
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
    p = argparse.ArgumentParser(
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        from .app import run_app

        return run_app()
    try:
        return args.func(args)
    except (
        CliError,
        fit_cli.FitCliError,
        ab_cli.AbCliError,
        organize_cli.OrganizeCliError,
        hub_cli.HubCliError,
    ) as e:
        print(f"quanttui: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
