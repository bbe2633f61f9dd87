"""`quanttui search` and `quanttui pull`, and `hf:OWNER/REPO/FILE` for inspect and fit.

Every repo id, file name, path and error in plain output passes through textsafe.clean (a Hub can
send ESC sequences in ids); `--json` prints the exact values.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..core import format as fmt
from ..core import settings as settings_mod
from ..core.errors import QuanttuiError
from ..core.hub import (
    HubError,
    RepoListing,
    Variant,
    parse_hf_path,
    pull,
    remote_facts,
    repo_variants,
    search,
)
from ..core.modelfile.facts import ModelFacts
from ..core.modelfile.quant_types import IK_ONLY, is_ik_label
from ..core.textsafe import clean, clean_path
from .errors import EXIT_INTERRUPTED, CliError, exit_code_of


class HubCliError(CliError):
    """One line for stderr; exits 3 when the Hub could not be reached (cli/errors.py)."""

    @classmethod
    def of(cls, e: BaseException, message: str | None = None) -> HubCliError:
        """`e` in the command's words, keeping its exit code (3 for an unreachable Hub, else 1)."""
        return cls(str(e) if message is None else message, exit_code_of(e))


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("search", help="search Hugging Face for GGUF repos")
    p.add_argument("query")
    p.add_argument("--sort", choices=["downloads", "likes", "recent"], default="downloads")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_search)
    p = sub.add_parser("pull", help="download a repo's quant (all parts of a split set) into the library")
    p.add_argument("repo", metavar="OWNER/REPO")
    p.add_argument(
        "which", nargs="?", metavar="FILE|QUANT", help="a file name or a quant label such as Q4_K_M"
    )
    p.add_argument("--revision", default="main")
    p.add_argument(
        "--to", choices=["library", "hf-cache"], help="where to (default: the download_to setting)"
    )
    p.set_defaults(func=run_pull)


def remote_inspect(spec: str) -> ModelFacts:
    """Facts for hf:OWNER/REPO/FILE (a split set's part reads the whole set)."""
    try:
        repo, name, rev = parse_hf_path(spec)
        listing = repo_variants(repo, rev)
        v = next((v for v in listing.variants if any(f.name == name for f in v.files)), None)
        if v is None:
            refused = next((r for r in listing.refused if r.name == name), None)
            raise HubError(f"{clean(spec)}: " + (f"refused: {refused.reason}" if refused else "no such GGUF"))
        # The commit, not the branch name: the header cache is keyed by it, so a moved branch is read again.
        commit = listing.revision
        return remote_facts(repo, v.first, commit, [f.name for f in v.files], [f.size for f in v.files])
    except HubCliError:
        raise
    except QuanttuiError as e:
        raise HubCliError.of(e) from None


def run_search(args: argparse.Namespace) -> int:
    try:
        hits = search(args.query, args.sort, args.limit)
    except HubError as e:
        raise HubCliError.of(e) from None
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=2))
        return 0
    print(f"{'repo':<50} {'downloads':>10} {'likes':>6} {'params':>8} {'arch':<10} modified")
    for h in hits:
        print(
            f"{clean(h.repo)[:50]:<50} {h.downloads or 0:>10,} {h.likes or 0:>6} "
            f"{fmt.params(h.parameters):>8} {clean(h.architecture or '?')[:10]:<10} "
            f"{clean(h.last_modified or '')[:10]}"
        )
    return 0


def pick_variant(variants: list[Variant], which: str | None, listing: RepoListing | None = None) -> Variant:
    """The variant named by a quant label or a file name; HubCliError says what there is."""
    refused = next((r for r in listing.refused if r.name == which), None) if listing else None
    if refused is not None:
        raise HubCliError(f"refused: {refused.reason}")
    if not variants:
        raise HubCliError("this repo has no GGUF files quanttui can download")
    if which is None:
        labels = ", ".join(f"{clean(v.label)} ({fmt.size(v.size)}{_ik_mark(v.label)})" for v in variants)
        raise HubCliError(f"say which quant to pull: {labels}")
    for v in variants:
        if (
            which in (v.label, v.first)
            or any(f.name == which for f in v.files)
            or v.label.upper() == which.upper()
        ):
            return v
    have = ", ".join(clean(v.label) for v in variants)
    raise HubCliError(f"{clean(which)}: not in this repo (have {have})")


def _ik_mark(label: str) -> str:
    """`, ik_llama.cpp only` after a quant whose label names one of ik_llama.cpp's own recipes."""
    return f", {IK_ONLY}" if is_ik_label(label) else ""


def run_pull(args: argparse.Namespace) -> int:
    shown = [False]  # whether a progress line was drawn (and so needs its newline)
    try:
        listing = repo_variants(args.repo, args.revision)
        for r in listing.refused:
            print(f"quanttui: skipped, {r.reason}", file=sys.stderr)
        v = pick_variant(listing.variants, args.which, listing)
        start = time.monotonic()
        last = [0.0]

        def progress(done: int, total: int, name: str) -> None:
            now = time.monotonic()
            if now - last[0] < 0.2 and done < total:
                return
            last[0] = now
            shown[0] = True
            speed = done / max(now - start, 1e-6)
            eta = (total - done) / speed if speed else 0
            width = 30
            filled = int(width * done / total) if total else width
            bar = "█" * filled + "░" * (width - filled)
            print(
                f"\r{bar} {done / total:6.1%} {fmt.size(done)}/{fmt.size(total)} {fmt.size(int(speed))}/s "
                f"ETA {eta:4.0f}s {clean(name)[:30]}",
                end="",
                file=sys.stderr,
                flush=True,
            )

        to = args.to or settings_mod.load().download_to
        paths = pull(args.repo, v.files, listing.revision, progress=progress, to=to)
        _end_progress(shown[0])
    except HubCliError:  # pick_variant's refusal: no progress line to end
        raise
    except (QuanttuiError, OSError) as e:
        _end_progress(shown[0])
        raise HubCliError.of(e, None if isinstance(e, QuanttuiError) else _os_error(e)) from None
    except KeyboardInterrupt:
        _end_progress(shown[0])
        print("quanttui: interrupted; pull again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    for p in paths:
        print(clean_path(p))
    return 0


def _end_progress(shown: bool) -> None:
    if shown:
        print(file=sys.stderr)


def _os_error(e: OSError) -> str:
    """An OSError as one safe line: what failed and where."""
    where = f"{clean_path(e.filename)}: " if e.filename else ""
    return f"{where}{e.strerror or type(e).__name__}"
