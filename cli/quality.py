"""`quanttui eval`, `bench` and `advise`: what a lower quant loses, how fast each runs, which to pick."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core import format as fmt
from ..core.fit import hardware
from ..core.quality.advise import MAX_KLD, Advice, QuantRow, advise, noisy_bench
from ..core.quality.bench import N_GEN, N_PROMPT, REPS, BenchResult, bench
from ..core.quality.eval import EvalReport, Progress, evaluate
from ..core.quality.text import EvalText, QualityError
from ..core.quality.typical import source_line
from ..core.textsafe import clean
from . import demo
from .errors import CliError, UsageError
from .run import interruptible


class QualityCliError(CliError):
    """One line for stderr."""


class QualityUsageError(QualityCliError, UsageError):
    """A number out of its bounds: one line with the reason; exits 2, as argparse's own."""


MAX_REPS = 100
MAX_PROMPT = 16384
MAX_GEN = 4096
MAX_KLD_BOUND = 100.0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "eval", help="KL divergence, top-1 agreement and perplexity of quants against a reference"
    )
    p.add_argument("reference", metavar="REFERENCE")
    p.add_argument("candidates", nargs="+", metavar="CANDIDATE")
    p.add_argument("--text", metavar="FILE", help="a UTF-8 text file (default: the text quanttui ships)")
    p.add_argument("--ctx", type=int, help="tokens per chunk, the second half scored (default 512)")
    p.add_argument("--chunks", type=int, help="chunks to score (default: all the text holds)")
    _force(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_eval)
    p = sub.add_parser(
        "bench",
        help="prompt and generation tokens/s, mean ± standard deviation (llama-bench's pp512 / tg128)",
    )
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("-t", "--threads", type=int, help="CPU threads (default: the physical cores)")
    p.add_argument("-p", "--n-prompt", type=int, help=f"prompt tokens, pp (default {N_PROMPT})")
    p.add_argument("-n", "--n-gen", type=int, help=f"generated tokens, tg (default {N_GEN})")
    p.add_argument("-r", "--repetitions", type=int, default=REPS, help=f"runs of each (default {REPS})")
    _force(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_bench)
    p = sub.add_parser("advise", help="which quant of a model to run here, with what each loses")
    p.add_argument("target", metavar="MODEL-OR-GROUP", help="a file, a group, or hf:OWNER/REPO on the Hub")
    p.add_argument("--ctx", type=int, default=4096, help="target context length (default 4096)")
    p.add_argument("--vram", help="GPU memory to plan for, e.g. 24GiB or 24GiB,12GiB; 0 for none")
    p.add_argument("--ram", help="system RAM to plan for, e.g. 64GiB")
    p.add_argument(
        "--max-kld",
        type=float,
        default=MAX_KLD,
        help=f"the quality budget: the most mean KLD a pick may lose (default {MAX_KLD})",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_advise)
    demo.add_parser(sub)


def _force(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        "--again",
        dest="again",
        action="store_true",
        help="measure again, replacing the recorded figures (--again is the same)",
    )


# Every number a person types is bounded: (least, most, why the most).
BENCH_BOUNDS = {
    "repetitions": ("-r", 1, MAX_REPS, "runs of each test"),
    "n_prompt": ("-p", 1, MAX_PROMPT, "prompt tokens (also bounded by the model's trained context)"),
    "n_gen": ("-n", 1, MAX_GEN, "generated tokens (also bounded by the model's trained context)"),
}


def _bounded(args: argparse.Namespace) -> None:
    """Refuse a bench number out of its bounds, in one line with the reason."""
    for name, (flag, least, most, what) in BENCH_BOUNDS.items():
        v = getattr(args, name)
        if v is not None and not least <= v <= most:
            raise QualityUsageError(f"{flag} {v}: between {least} and {most} {what}")
    cpus = os.cpu_count() or 1
    if args.threads is not None and not 1 <= args.threads <= cpus:
        raise QualityUsageError(f"-t {args.threads}: between 1 and {cpus} (this machine's logical CPUs)")


def _progress(quiet: bool) -> Callable[[Progress], None] | None:
    if quiet or not sys.stderr.isatty():
        return None

    def show(p: Progress) -> None:
        eta = f", about {p.eta_seconds:.0f} s left" if p.eta_seconds is not None else ""
        sys.stderr.write(f"\r\x1b[K{p.stage} {clean(p.model)}: {p.done}/{p.total} chunk passes{eta}")
        sys.stderr.flush()

    return show


def _num(v: Any, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def _pm(v: Any, se: Any, spec: str, scale: float = 1.0) -> str:
    """`v ± se` as llama-perplexity and llama-bench print it (just `v` when there is no ±)."""
    if not isinstance(v, (int, float)):
        return "-"
    out = format(v * scale, spec)
    return f"{out}±{format(se * scale, spec)}" if isinstance(se, (int, float)) else out


def _stamp(at: float | None) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(at)) if at else ""


def _when(record: Any) -> str:
    return _stamp(getattr(record, "measured_at", None))


def eval_text(report: EvalReport) -> str:
    lines = [
        f"reference  {clean(Path(report.reference).name)}   "
        f"ppl {_pm(report.ref_ppl, report.ref_ppl_se, '.4f')}",
        f"text       {clean(report.text.name)} ({_num(report.n_tokens, 'd')} tokens), ctx {report.ctx}, "
        f"{report.chunks if report.chunks is not None else 'all'} chunks",
        "",
        f"  {'model':<34}{'KLD mean ± se':>18}{'median':>10}{'p99':>9}{'max':>9}{'top-1 %':>13}"
        f"{'ppl':>11}{'ratio':>15}{'Δp mean':>9}{'Δp RMS':>8}{'tokens':>8}{'s':>12}",
    ]
    for c in report.candidates:
        name = clean(Path(c.model).name)[:33]
        if c.error:
            lines.append(f"  {name:<34}error: {clean(c.error)}")
            continue
        g = c.get
        top1 = g("top1_agreement")
        lines.append(
            f"  {name:<34}{_pm(g('kld_mean'), g('kld_mean_se'), '.5f'):>18}{_num(g('kld_median'), '.5f'):>10}"
            f"{_num(g('kld_p99'), '.4f'):>9}{_num(g('kld_max'), '.3f'):>9}"
            f"{_pm(top1, g('top1_agreement_se'), '.2f', 100.0):>13}{_num(g('ppl'), '.5g'):>11}"
            f"{_pm(g('ppl_ratio'), g('ppl_ratio_se'), '.4f'):>15}"
            f"{_num((g('p_diff_mean') or 0) * 100, '+.2f') + '%':>9}"
            f"{_num((g('p_diff_rms') or 0) * 100, '.2f') + '%':>8}{_num(g('tokens_scored'), 'd'):>8}"
            f"{'from ' + _when(c.record) if c.cached else _num(g('seconds'), '.1f'):>12}"
        )
    if report.cancelled:
        lines.append("cancelled: rows without figures were not finished")
    return "\n".join(lines)


def run_eval(args: argparse.Namespace) -> int:
    try:
        text = EvalText.load(args.text)

        def work(cancel: threading.Event) -> EvalReport:
            return evaluate(
                args.reference,
                args.candidates,
                text=text,
                ctx=args.ctx,
                chunks=args.chunks,
                on_progress=_progress(args.json),
                cancel=cancel,
                again=args.again,
            )

        report, interrupted = interruptible(work)
    except QualityError as e:
        raise QualityCliError(str(e)) from None
    if sys.stderr.isatty() and not args.json:
        sys.stderr.write("\r\x1b[K")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(eval_text(report))
    if interrupted:
        return 130
    return 1 if any(c.error for c in report.candidates) else 0


def bench_entry(r: BenchResult) -> dict[str, Any]:
    """A bench row for --json: bench's own fields, its "±" as tg_stddev / pp_stddev, and whether it
    is noisy (busy, or runs spread over advise.NOISY_CV of their mean) and why."""
    out = r.to_dict()
    out["tg_stddev"], out["pp_stddev"] = out.get("tg_stdev"), out.get("pp_stdev")
    noisy, why = noisy_bench(r.record) if r.record is not None else (False, None)
    out["noisy"], out["noisy_reason"] = noisy, why
    return out


def run_bench(args: argparse.Namespace) -> int:
    _bounded(args)
    sizes = {k: v for k, v in (("n_prompt", args.n_prompt), ("n_gen", args.n_gen)) if v is not None}
    results, interrupted = interruptible(
        lambda cancel: bench(
            args.models, reps=args.repetitions, threads=args.threads, cancel=cancel, again=args.again, **sizes
        )
    )
    if args.json:
        print(json.dumps([bench_entry(r) for r in results], indent=2))
    else:
        print(f"  {'model':<40}{'pp t/s':>14}{'tg t/s':>12}{'load s':>8}{'threads':>8}   mean ± stddev")
        for r in results:
            name = clean(Path(r.model).name)[:39]
            if r.error:
                print(f"  {name:<40}error: {clean(r.error)}")
                continue
            f = r.figures
            pp = f"pp{f.get('pp_tokens')}" if f.get("pp_tokens") != 512 else ""
            tg = f"tg{f.get('tg_tokens')}" if f.get("tg_tokens") != 128 else ""
            cached = f"recorded {_when(r.record)} (--force to measure again)" if r.cached else ""
            busy = (
                f"BUSY: {r.record.conditions.get('busy_reason')}" if r.busy and r.record is not None else ""
            )
            kept = f"(kept the idle record of {_when(r.kept)})" if r.kept is not None else ""
            print(
                f"  {name:<40}{_pm(f.get('pp_tokens_per_second'), f.get('pp_stdev'), '.1f'):>14}"
                f"{_pm(f.get('tg_tokens_per_second'), f.get('tg_stdev'), '.1f'):>12}"
                f"{_num(f.get('load_seconds'), '.2f'):>8}"
                f"{_num(f.get('threads'), 'd'):>8}  {' '.join(x for x in (pp, tg, cached, busy, kept) if x)}"
            )
        if interrupted:
            print("cancelled: rows without figures were not finished")
    if interrupted:
        return 130
    return 1 if any(r.error for r in results) else 0


def eval_line(a: Advice) -> str:
    """Which eval the quality column shows: reference, text, ctx × chunks, when; other sets counted."""
    if not a.reference:
        return "quality: not measured (run quanttui eval REFERENCE CANDIDATE...)"
    e = a.eval_settings
    at = e.get("measured_at")
    when = f", measured {_stamp(at)}" if at else ""
    others = f" ({len(a.other_eval_sets)} other settings not shown)" if a.other_eval_sets else ""
    return (
        f"quality: eval against {clean(Path(a.reference).name)} on {clean(e.get('text'))}, "
        f"ctx {e.get('ctx')} × {e.get('chunks')} chunks{when}{others}"
    )


def kld_cell(r: QuantRow) -> str:
    """A quant's KLD as the advise table shows it: with its "±", "reference" or "not measured"."""
    if r.is_reference:
        return "reference"
    if not r.quality:
        return "not measured"
    q = r.quality
    return _pm(q.get("kld_mean"), q.get("kld_mean_se"), ".4f")


def advise_text(a: Advice) -> str:
    lines = [f"{clean(a.group)}  at context {a.ctx}, quality budget KLD ≤ {a.max_kld:g}", eval_line(a)]
    lines += [
        "",
        f"  {'':2}{'model':<36}{'size':>11}{'bpw':>6}  {'fit':<30}"
        f"{'KLD ± se':>15}{'top-1':>8}{'ppl ×':>7}{'tg t/s':>10}",
    ]
    for r in a.rows:
        mark = "→ " if r.model == a.recommended else "  "
        name = clean(Path(r.model).name)[:35]
        if r.error or not r.fit:
            lines.append(
                f"  {mark}{name:<36}{fmt.size(r.size_bytes):>11}  error: {clean(r.error or 'unreadable')}"
            )
            continue
        q = r.quality or {}
        top1 = q.get("top1_agreement")
        tg = _num(r.tg, ".1f") + ("~" if r.tg_source == "estimated" else "!" if r.tg_busy else "")
        lines.append(
            f"  {mark}{name:<36}{fmt.size(r.size_bytes):>11}{_num(r.bpw, '.2f'):>6}  "
            f"{clean(r.fit['verdict'])[:29]:<30}"
            f"{kld_cell(r):>15}{_num(top1 * 100 if top1 is not None else None, '.1f'):>8}"
            f"{_num(q.get('ppl_ratio'), '.3f'):>7}{tg:>10}"
        )
    lines.append("")
    lines.append(f"recommended: {clean(Path(a.recommended).name) if a.recommended else 'none'} ({a.reason})")
    if a.to_measure:
        lines.append(f"to measure: {clean(a.to_measure)}")
    if any(r.tg_source == "estimated" for r in a.rows):
        lines.append("~ estimated from a measured quant of the group, scaled by file size")
    for r in a.rows:
        if r.tg_busy and r.tg_record is not None:
            why = clean(r.tg_record.conditions.get("busy_reason"))
            lines.append(
                f"! {clean(Path(r.model).name)}: measured while busy ({why}): quanttui bench --force"
            )
    for r in a.rows:
        if r.tg_note:
            lines.append(f"tok/s of {clean(Path(r.model).name)} not shown: {clean(r.tg_note)}")
    return "\n".join(lines)


def _typical(t: dict[str, Any] | None, key: str, spec: str) -> str:
    v = (t or {}).get(key)
    return f"~{v:{spec}} (typical)" if isinstance(v, (int, float)) else "not listed"


def advise_hub_text(a: Advice) -> str:
    """A Hub repo's table: sizes and fit from the remote headers, quality as the quant type's typical
    figure (marked `(typical)`, its source in a footnote), never presented as measured."""
    hub = a.hub or {}
    lines = [
        f"{clean(a.group)}  at context {a.ctx}  (revision {clean(hub.get('revision'))[:12]})",
        "quality: not measured; typical for each quant type, from llama.cpp's published figures (see ¹)",
        "",
        f"  {'':2}{'file':<36}{'quant':<9}{'size':>11}{'bpw':>6}  {'fit':<24}{'KLD¹':>18} {'ppl ×¹':>17}",
    ]
    for r in a.rows:
        mark = "→ " if r.model == a.recommended else "  "
        name = clean(r.model.split("/", 2)[-1])[-35:]
        head = f"  {mark}{name:<36}{clean(r.quant or '?')[:8]:<9}{fmt.size(r.size_bytes):>11}"
        if r.error or not r.fit:
            lines.append(f"{head}  error: {clean(r.error or 'unreadable')}")
            continue
        lines.append(
            f"{head}{_num(r.bpw, '.2f'):>6}  {clean(r.fit['verdict'])[:23]:<24}"
            f"{_typical(r.typical, 'kld_mean', '.4f'):>18} {_typical(r.typical, 'ppl_ratio', '.3f'):>17}"
        )
    for refused in hub.get("refused") or []:
        lines.append(f"  skipped: {clean(refused['reason'])}")
    lines.append("")
    pick = clean(a.recommended.split("/", 2)[-1]) if a.recommended else "none"
    lines.append(f"recommended: {pick} ({clean(a.reason)})")
    lines.append(
        f"¹ typical for the quant type, not measured on this model: {source_line()}. "
        "To measure: quanttui pull, then quanttui eval."
    )
    return "\n".join(lines)


def run_advise(args: argparse.Namespace) -> int:
    try:
        hw = hardware(args.vram, args.ram)
    except ValueError as e:
        raise QualityCliError(str(e)) from None
    if not 16 <= args.ctx <= 1 << 24:
        raise QualityCliError(f"--ctx {args.ctx}: between 16 and {1 << 24}")
    if not 0 < args.max_kld <= MAX_KLD_BOUND:  # NaN fails this too
        raise QualityUsageError(
            f"--max-kld {args.max_kld}: above 0 and at most {MAX_KLD_BOUND:g} (a mean KLD)"
        )
    try:
        a = advise(args.target, args.ctx, hw, max_kld=args.max_kld)
    except QualityError as e:
        raise QualityCliError(str(e)) from None
    text = advise_hub_text if a.hub is not None else advise_text
    print(json.dumps(a.to_dict(), indent=2) if args.json else text(a))
    return 0 if a.recommended else 1
