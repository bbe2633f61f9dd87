"""`quanttui ab`: two quants on the same prompt (or a suite of prompts) without the TUI.

Model output, names, prompts and errors are printed cleaned (no escape sequence reaches the
terminal); `--json` prints them exactly as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..core.ab import ABSession, ContextRefused, Turn, borrow, check_context
from ..core.ab.config import DEFAULT_CTX, DEFAULT_MAX_TOKENS, MODES, starting_config
from ..core.ab.context import side_facts
from ..core.textsafe import clean, clean_path
from .errors import CliError, UsageError


class AbCliError(CliError):
    """One line for stderr."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ab", help="run two models on the same prompt, greedy, and compare them")
    p.add_argument("model_a", metavar="MODEL_A")
    p.add_argument("model_b", metavar="MODEL_B")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="the prompt")
    src.add_argument(
        "--suite", type=Path, help='a text file (one prompt per line) or JSONL ({"prompt": ...})'
    )
    p.add_argument(
        "--mode", choices=list(MODES), help="default: chat when both carry a chat template"
    )
    p.add_argument("--system", help="system prompt (chat mode)")
    p.add_argument(
        "--template",
        metavar="NAME|FILE",
        help="a chat template for a model file without one: llama.cpp's built-in NAME (gemma, chatml, "
        "llama3, ...) or a Jinja file; implies --mode chat unless told otherwise",
    )
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    p.add_argument(
        "--ctx",
        type=int,
        help=f"context in tokens (default: {DEFAULT_CTX}, or less if a model was trained for less)",
    )
    p.add_argument("--stop-on-loop", action="store_true", help="stop a side that is stuck in a loop")
    p.add_argument(
        "--save", action="store_true", help="also save the session (JSON and Markdown) in the data dir"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def read_suite(path: Path) -> list[str]:
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise AbCliError(f"{clean_path(path)}: cannot read the suite: {clean(e)}") from None
    prompts = []
    for i, line in enumerate(lines, 1):
        if path.suffix == ".jsonl":
            try:
                item = json.loads(line)
                prompts.append(str(item["prompt"] if isinstance(item, dict) else item))
            except (ValueError, KeyError):
                raise AbCliError(f'{clean_path(path)}:{i}: not a JSON object with a "prompt"') from None
        else:
            prompts.append(line)
    if not prompts:
        raise AbCliError(f"{clean_path(path)}: the suite has no prompts")
    return prompts


def turn_row(t: Turn) -> dict[str, Any]:
    d = t.to_dict()
    return {
        "prompt": t.prompt,
        "first_divergence": d["first_divergence"],
        "kld_mean": d["kld_mean"],
        "top1_agreement": d["top1_agreement"],
        "loops": [d["a"]["longest_loop"], d["b"]["longest_loop"]],
        "tokens_per_second": [d["a"]["tokens_per_second"], d["b"]["tokens_per_second"]],
    }


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def print_turn(t: Turn) -> None:
    d = t.to_dict()
    for n in ("a", "b"):
        r = d[n]
        print(f"--- {n.upper()}: {clean_path(r['model'])}")
        if r["error"]:
            print(f"error: {clean(r['error'])}")
            continue
        print(clean(r["text"], multiline=True))
        print(
            f"[{len(r['token_ids'])} tokens, {r['tokens_per_second']} tok/s, stop: {r['stop_reason']}, "
            f"longest loop {getattr(t, n).loop_text()}, distinct-1 {r['distinct_1']}, "
            f"distinct-2 {r['distinct_2']}]"
        )
    if d["divergence_basis"] is None:
        print(f"--- not compared: {clean(d['unscored'] or 'a side failed')}")
        return
    basis = "" if d["divergence_basis"] == "tokens" else " (compared as text: the tokenizers differ)"
    div = "identical" if d["first_divergence"] is None else f"at {d['first_divergence']}{basis}"
    why = f"; not scored: {clean(d['unscored'])}" if d["unscored"] else ""
    print(
        f"--- first divergence {div}; mean KLD {_fmt(d['kld_mean'], '.4f')}; "
        f"top-1 agreement {_fmt(d['top1_agreement'], '.1%')}{why}"
    )


def run(args: argparse.Namespace) -> int:
    if args.max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1")
    sides = {"a": side_facts(args.model_a), "b": side_facts(args.model_b)}  # each header read once
    facts = {n: s.facts for n, s in sides.items()}
    cfg = starting_config(
        sides,
        mode=args.mode,
        n_ctx=args.ctx,
        max_tokens=args.max_tokens,
        system=args.system,
        stop_on_loop=args.stop_on_loop,
    )
    if args.template:
        try:
            cfg.template_name, cfg.template_source = borrow.resolve(args.template)
        except borrow.TemplateRefused as e:
            raise AbCliError(f"--template: {e}") from None
        cfg.mode = args.mode or "chat"
        lacking = borrow.lacking(sides)
        who = " and ".join(n.upper() for n in lacking) or "neither side (both files have their own)"
        print(f"quanttui: borrowed chat template {clean(cfg.template_name)!r} for {who}", file=sys.stderr)
    elif cfg.mode == "chat" and len(borrow.lacking(sides)) == 2:
        hint = borrow.suggest(sides)
        raise AbCliError(
            "--mode chat: neither model has a chat template; "
            + (f"--template {hint} borrows llama.cpp's" if hint else "--template NAME|FILE borrows one")
        )
    if cfg.system and cfg.mode == "completion":
        raise UsageError("--system: completion mode sends the prompt as plain text, with no system turn")
    try:  # as the A/B screen's /ctx: within both models' training and what fits, before either loads
        check_context(args.model_a, args.model_b, cfg.n_ctx, facts=facts)
    except ContextRefused as e:
        raise UsageError(f"--ctx refused: {e}") from None
    prompts = read_suite(args.suite) if args.suite else [args.prompt]
    session = ABSession(args.model_a, args.model_b, cfg, facts=facts)
    try:
        if session.plan.note:
            print(f"quanttui: {clean(session.plan.note)}", file=sys.stderr)
        errors = session.engine.errors()
        if len(errors) == 2:
            raise AbCliError("; ".join(clean(e) for e in errors.values()))
        turns = []
        for prompt in prompts:
            # A suite compares fresh answers: every prompt starts a new conversation.
            if args.suite:
                session.clear_history()
            turns.append(session.ask(prompt))
            if not args.json and not args.suite:
                print_turn(turns[-1])
        if args.save:
            js, md = session.save()
            print(f"quanttui: saved {clean_path(js)} and {clean_path(md)}", file=sys.stderr)
    finally:
        session.close()
    if args.json:
        out = (
            turns[0].to_dict()
            if not args.suite
            else {"prompts": [t.to_dict() for t in turns], "table": [turn_row(t) for t in turns]}
        )
        print(json.dumps(out, indent=2))
    elif args.suite:
        print(f"{'#':>3} {'diverge':>7} {'KLD':>8} {'top-1':>7} {'loops A/B':>10} {'tok/s A/B':>15}  prompt")
        for i, t in enumerate(turns, 1):
            r = turn_row(t)
            div = "-" if r["first_divergence"] is None else str(r["first_divergence"])
            tps = f"{r['tokens_per_second'][0]:.0f}/{r['tokens_per_second'][1]:.0f}"
            print(
                f"{i:>3} {div:>7} {_fmt(r['kld_mean'], '.4f'):>8} {_fmt(r['top1_agreement'], '.1%'):>7} "
                f"{r['loops'][0]:>4}/{r['loops'][1]:<5} {tps:>15}  {clean(t.prompt[:60])}"
            )
    return 1 if any(t.a.error or t.b.error for t in turns) else 0
