"""`quanttui inspect`, `ls` and `roots`: a GGUF's facts, the library's files and its folders."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..core import report
from ..core import settings as settings_mod
from ..core.errors import QuanttuiError
from ..core.library import active_roots, add_root, all_roots, remove_root, scan
from ..core.modelfile import inspect_file
from ..core.textsafe import clean
from . import hub as hub_cli
from .errors import EXIT_FAILED, EXIT_OK, CliError, UsageError, exit_code_of


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("inspect", help="show a GGUF file's model and quant facts")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print JSON (a list when several paths)")
    p.add_argument("--tensors", action="store_true", help="include every tensor's type and shape")
    p.set_defaults(func=run_inspect)
    p = sub.add_parser("ls", help="list every GGUF in the library roots")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_ls)
    p = sub.add_parser("roots", help="show, add or remove library folders")
    p.add_argument("action", nargs="?", choices=["add", "remove"])
    p.add_argument("path", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_roots)


def _err(message: object) -> None:
    print(f"quanttui: {clean(message)}", file=sys.stderr)


def run_inspect(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    codes: set[int] = set()
    for path in args.paths:
        try:
            facts = hub_cli.remote_inspect(path) if path.startswith("hf:") else inspect_file(path)
            results.append(facts.to_dict(tensors=args.tensors))
        except (QuanttuiError, OSError) as e:  # HubCliError is a QuanttuiError
            codes.add(exit_code_of(e))
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
    # 3 only when every failure was an unreachable Hub; any other failure makes it 1
    return (codes.pop() if len(codes) == 1 else EXIT_FAILED) if codes else EXIT_OK


def run_ls(args: argparse.Namespace) -> int:
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


def run_roots(args: argparse.Namespace) -> int:
    if args.action:
        if not args.path:
            raise UsageError(f"roots {args.action} needs a PATH")
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
