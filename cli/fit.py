"""`quanttui fit`: the memory estimate for one model or two, and llama.cpp's own figures beside it.

Plain output passes every outside string (paths, device names, llama.cpp's buffer names) through
`clean`, so no control sequence reaches the terminal; `--json` keeps exact values.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..core import format as fmt
from ..core import report
from ..core.fit import KV_TYPES, FitError, FitSettings, estimate, fit_pair, hardware
from ..core.fit.estimate import DeviceUse
from ..core.modelfile import GGUFError, inspect_file
from ..core.textsafe import clean
from .errors import EXIT_USAGE, CliError

PARTS = ("weights", "kv_cache", "compute", "output", "overhead")


class FitCliError(CliError):
    """One cleaned line for stderr."""

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(clean(message), exit_code)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("fit", help="estimate VRAM and RAM for a model at a context and offload")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--ctx", type=int, default=4096, help="context length (default 4096)")
    p.add_argument("--kv", choices=KV_TYPES, help="K and V cache type")
    p.add_argument("--kv-k", choices=KV_TYPES, help="K cache type")
    p.add_argument("--kv-v", choices=KV_TYPES, help="V cache type")
    p.add_argument(
        "--flash-attn", action="store_true", help="flash attention on (needed by a quantized V cache)"
    )
    p.add_argument("--gpu-layers", default="auto", help="a number, all or auto (default auto)")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--ubatch", type=int, default=512)
    p.add_argument("--parallel", type=int, default=1, help="parallel sequences")
    p.add_argument("--swa-full", choices=["on", "off"], default="on", help="full-size sliding-window cache")
    p.add_argument("--vram", help="GPU memory to plan for, e.g. 24GiB or 24GiB,12GiB; 0 for none")
    p.add_argument("--ram", help="system RAM to plan for, e.g. 64GiB")
    p.add_argument(
        "--with", dest="with_model", metavar="MODEL2", help="a second model loaded at the same time"
    )
    p.add_argument(
        "--measure", action="store_true", help="also load the model and print llama.cpp's own sizes"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> FitSettings:
    gl: int | str = args.gpu_layers
    if gl not in ("all", "auto"):
        try:
            gl = int(gl)
        except ValueError:
            raise FitCliError(f"--gpu-layers must be a number, all or auto, not {gl!r}", EXIT_USAGE) from None
    kv = args.kv or "f16"
    s = FitSettings(
        n_ctx=args.ctx,
        type_k=args.kv_k or kv,
        type_v=args.kv_v or kv,
        flash_attn=args.flash_attn,
        gpu_layers=gl,
        n_batch=args.batch,
        n_ubatch=args.ubatch,
        n_parallel=args.parallel,
        swa_full=args.swa_full == "on",
    )
    try:
        s.validate()
    except FitError as e:  # a setting out of range: a usage error, as argparse's own
        raise FitCliError(str(e), EXIT_USAGE) from None
    return s


def _facts(path: str) -> dict[str, Any]:
    if path.startswith("hf:"):
        from .hub import HubCliError, remote_inspect

        try:
            return remote_inspect(path).to_dict()
        except HubCliError as e:
            raise FitCliError(str(e)) from None
    try:
        return inspect_file(path).to_dict()
    except (GGUFError, OSError) as e:
        raise FitCliError(f"{path}: {e}") from None


def device_table(devices: list[DeviceUse]) -> str:
    head = (
        f"  {'device':<26}"
        + "".join(f"{p.replace('_', ' '):>11}" for p in PARTS)
        + f"{'total':>11}{'free':>11}"
    )
    rows = [head]
    for d in devices:
        cells = "".join(f"{fmt.size(getattr(d, p)):>11}" for p in PARTS)
        mark = "" if d.fits else "  over"
        name = clean(d.name)[:26]
        rows.append(f"  {name:<26}{cells}{fmt.size(d.total):>11}{fmt.size(d.free_bytes):>11}{mark}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        hw = hardware(args.vram, args.ram)
    except ValueError as e:  # --vram or --ram unreadable
        raise FitCliError(str(e), EXIT_USAGE) from None
    facts = _facts(args.model)
    try:
        if args.with_model:
            pair_facts = _facts(args.with_model)
            pair = fit_pair(facts, pair_facts, settings, hw)
            if args.json:
                print(json.dumps(pair.to_dict(), indent=2))
            else:
                print(f"A: {clean(args.model)}\nB: {clean(args.with_model)}")
                for which, f in (("A", facts), ("B", pair_facts)):
                    if f.get("ik_only"):
                        print(f"  note: {which} is {clean(report.ik_text(f))}")
                print(device_table(pair.devices))
                print("both fit" if pair.fits else "they do not fit together")
                for tip in pair.suggestions:
                    print(f"  try: {clean(tip['text'])}")
            return 0 if pair.fits else 1
        result = estimate(facts, settings, hw)
    except FitError as e:
        raise FitCliError(str(e)) from None
    measured = None
    if args.measure and facts.get("ik_only"):
        raise FitCliError(f"{args.model}: cannot --measure: {report.ik_text(facts)}")
    if args.measure:
        from ..core.fit.measure import compare, measure

        try:
            measured = measure(args.model, settings)
        except RuntimeError as e:
            raise FitCliError(str(e)) from None
    if args.json:
        out = result.to_dict()
        out["ik_only"] = bool(facts.get("ik_only"))
        if measured is not None:
            out["measured"] = measured
            out["comparison"] = compare(result, measured)
        print(json.dumps(out, indent=2))
    else:
        print(clean(args.model))
        s = settings
        fa = "on" if s.flash_attn else "off"
        print(f"  context {s.n_ctx}, KV {s.type_k}/{s.type_v}, flash attention {fa}, ubatch {s.n_ubatch}")
        print(f"  {result.gpu_layers} of {result.n_layer + 1} layers on GPU ({hw.source} hardware)")
        print(device_table(result.devices))
        print(f"  verdict: {clean(result.verdict)}")
        if result.max_context_full_offload is not None:
            print(f"  largest context fully on GPU: {result.max_context_full_offload}")
        if result.max_gpu_layers is not None:
            print(f"  most layers on GPU at this context: {result.max_gpu_layers}")
        if facts.get("ik_only"):
            print(f"  note: {clean(report.ik_text(facts))}; the estimate is for ik_llama.cpp")
        for note in result.notes:
            print(f"  note: {clean(note)}")
        if measured is not None:
            print("  llama.cpp measured (its logged buffers):")
            for name, parts in measured.items():
                cells = ", ".join(f"{k} {fmt.size(v)}" for k, v in parts.items())
                print(f"    {clean(name):<14} {cells}")
            print(comparison_table(compare(result, measured)))
    return 0 if result.fits else 1


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """Estimate and measured side by side, per device and part, with the difference."""
    out = ["  estimate beside llama.cpp's buffers:"]
    out.append(f"    {'':<26}{'estimate':>12}{'measured':>12}{'difference':>13}")
    for r in rows:
        d = r["difference"]
        pct = f" ({100 * d / r['measured']:+.1f}%)" if r["measured"] else ""
        label = clean(f"{r['device'][:12]} {r['part']}")
        diff = ("+" if d > 0 else "-" if d < 0 else "") + fmt.size(abs(d))
        est, got = fmt.size(r["estimate"]), fmt.size(r["measured"])
        out.append(f"    {label:<26}{est:>12}{got:>12}{diff:>13}{pct}")
    return "\n".join(out)
