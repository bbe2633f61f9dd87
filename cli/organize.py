"""`quanttui rm`, `mv`, `dedupe` and `du`: the Organize operations from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..core import format as fmt
from ..core import settings as settings_mod
from ..core.errors import QuanttuiError
from ..core.library import Root, active_roots, scan
from ..core.organize import (
    disk_usage,
    execute_delete,
    find_duplicates,
    link_extras,
    move,
    plan_delete,
)
from ..core.organize.dedupe import plan_delete_extras
from ..core.textsafe import clean, clean_path
from .errors import EXIT_USAGE, CliError


class OrganizeCliError(CliError):
    """One line for stderr."""


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("rm", help="delete models (to the trash unless --permanent)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--permanent", action="store_true")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=rm)
    p = sub.add_parser("mv", help="move models (split sets whole) into a folder inside the library roots")
    p.add_argument("paths", nargs="+", metavar="SRC")
    p.add_argument("dest", metavar="DEST")
    p.set_defaults(func=mv)
    p = sub.add_parser("dedupe", help="find identical model files across the roots")
    p.add_argument("--apply", choices=["delete", "link"], help="delete the extras, or hard-link them")
    p.add_argument("--yes", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=dedupe)
    p = sub.add_parser("du", help="disk usage per root, model and quant")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=du)


def _roots() -> list[Root]:
    return active_roots(settings_mod.load())


def _confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        # a usage error (2): without a terminal, the command needs --yes
        raise OrganizeCliError(f"{question}: refusing without --yes (no terminal to ask)", EXIT_USAGE)
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def rm(args: argparse.Namespace) -> int:
    roots = _roots()
    try:
        plan = plan_delete(args.paths, roots, permanent=args.permanent)
        for p in plan.files:
            print(f"  {clean_path(p)}")
        if not _confirm(f"{plan.summary()} ({fmt.size(plan.bytes_freed)})?", args.yes):
            print("nothing deleted")
            return 1
        execute_delete(plan, roots)
    except OrganizeCliError:  # _confirm's refusal, with its own exit code
        raise
    except QuanttuiError as e:  # OrganizeError, and PathRefused from the path gate
        raise OrganizeCliError(clean(e)) from None
    print(plan.done_text())
    return 0


def mv(args: argparse.Namespace) -> int:
    # Each file moves beside the others of its split set, so a path whose folder is DEST stays put.
    dest = os.path.realpath(args.dest)
    already = all(os.path.realpath(os.path.dirname(os.path.abspath(p))) == dest for p in args.paths)
    try:
        moved = move(args.paths, args.dest, _roots())
    except OrganizeCliError:  # _confirm's refusal, with its own exit code
        raise
    except QuanttuiError as e:  # OrganizeError, and PathRefused from the path gate
        raise OrganizeCliError(clean(e)) from None
    if already:
        print(f"nothing moved: already in {clean_path(args.dest)}")
        return 0
    for p in moved:
        print(f"moved: {clean_path(p)}")
    return 0


def dedupe(args: argparse.Namespace) -> int:
    roots = _roots()
    files = [part for e in scan(roots) for part in e.parts]
    try:
        groups = find_duplicates(files, roots=roots)
    except OSError as e:  # a file removed or made unreadable while it was hashed
        raise OrganizeCliError(f"{clean_path(e.filename or '')}: {clean(e.strerror or e)}") from None
    if args.json:
        print(json.dumps([g.to_dict() for g in groups], indent=2))
    else:
        if not groups:
            print("no duplicates")
        for g in groups:
            print(f"{fmt.size(g.size)} x {1 + len(g.extras) + len(g.linked)}  sha256 {g.sha256[:12]}")
            print(f"  keep   {clean_path(g.keep)}")
            for p in g.extras:
                print(f"  extra  {clean_path(p)}")
            for p in g.linked:
                print(f"  linked {clean_path(p)}")
        print(f"reclaimable: {fmt.size(sum(g.reclaimable for g in groups))}")
    if not args.apply or not any(g.extras for g in groups):
        return 0
    try:
        if args.apply == "delete":
            plan = plan_delete_extras(groups, roots)
            if not _confirm(f"{plan.summary()}?", args.yes):
                print("nothing deleted")
                return 1
            execute_delete(plan, roots)
            print(plan.done_text())
        elif _confirm(f"replace {sum(len(g.extras) for g in groups)} extras with hard links?", args.yes):
            linked = [(g, link_extras(g, roots)) for g in groups]
            n = sum(len(done) for _, done in linked)
            kept = sum(len(g.extras) - len(done) for g, done in linked)
            freed = sum(g.size * len(done) for g, done in linked)
            line = f"linked {fmt.plural(n, 'extra')} to their kept copy, freed {fmt.size(freed)}"
            print(line + (f"; {kept} on another filesystem stay copies" if kept else ""))
        else:
            print("nothing linked")
            return 1
    except OrganizeCliError:  # _confirm's refusal, with its own exit code
        raise
    except QuanttuiError as e:  # OrganizeError, and PathRefused from the path gate
        raise OrganizeCliError(clean(e)) from None
    return 0


def du(args: argparse.Namespace) -> int:
    roots = _roots()
    usage = disk_usage(scan(roots), roots)
    if args.json:
        print(json.dumps(usage.to_dict(), indent=2))
        return 0
    d = usage.to_dict()
    print(f"total {fmt.size(d['total'])}")
    if usage.outside_links:
        print(
            f"{fmt.plural(len(usage.outside_links), 'link')} to files outside the roots, not counted "
            f"({fmt.size(usage.outside_bytes)} there; deleting a link frees nothing)"
        )
    for title in ("roots", "groups", "quants"):
        print(f"by {title[:-1]}:")
        for name, size in d[title].items():
            print(f"  {fmt.size(size):>11}  {clean(name)}")
    return 0
