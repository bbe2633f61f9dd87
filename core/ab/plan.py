"""Where the two models of an A/B pair go: each on a GPU of its own, both together, or one after
the other, decided with the fit estimator before anything loads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Any

from ..errors import QuanttuiError
from ..fit import FitError, FitResult, FitSettings, Hardware, estimate, fit_pair, hardware
from ..fit.rules import CTX_PAD, MAX_CTX
from ..modelfile import GGUFError, inspect_file
from ..textsafe import clean

MIN_CTX = 64  # below this no chat template and prompt fit


@dataclass
class Plan:
    """How to load the pair: together (GPU layers each) or one after the other, and why."""

    sequential: bool
    gpu_layers: dict[str, int]
    note: str
    # With two or more GPUs: the GPU each model has to itself (llama.cpp's split mode "none"), so
    # neither waits for the other's kernels.
    main_gpu: dict[str, int] | None = None


def _ram_used(r: FitResult) -> int:
    return sum(d.total for d in r.devices if d.kind == "ram")


def own_gpus(fa: dict[str, Any], fb: dict[str, Any], n_ctx: int, hw: Hardware) -> dict[str, int] | None:
    """A GPU for each model where it fits whole, the two sharing only RAM; None if there is no such pair."""
    s = FitSettings(n_ctx=n_ctx, gpu_layers="all")
    fits: dict[tuple[str, int], FitResult] = {}
    for side, f in (("a", fa), ("b", fb)):
        for i, gpu in enumerate(hw.gpus):
            r = estimate(f, s, Hardware((gpu,), hw.ram, hw.source), search=False)
            if r.verdict_code == "gpu":
                fits[side, i] = r
    for i, j in permutations(range(len(hw.gpus)), 2):
        a, b = fits.get(("a", i)), fits.get(("b", j))
        if a and b and _ram_used(a) + _ram_used(b) <= hw.ram.free_bytes:
            return {"a": i, "b": j}
    return None


Facts = Mapping[str, "dict[str, Any] | None"]  # per side, the header's facts already read (None: unreadable)


def plan_pair(
    path_a: str, path_b: str, n_ctx: int, hw: Hardware | None = None, facts: Facts | None = None
) -> Plan:
    """Check with the fit estimator that both fit at once; if not, load them one at a time. `facts`
    (the Library's) spares reading both headers again."""
    fa, fb = (facts["a"], facts["b"]) if facts is not None else (_facts(path_a), _facts(path_b))
    if fa is None or fb is None:
        return Plan(False, {"a": 0, "b": 0}, "")  # the side that cannot be read reports its own error
    hw = hw or hardware()
    s = FitSettings(n_ctx=n_ctx, gpu_layers="all" if hw.gpus else 0)
    try:
        own = own_gpus(fa, fb, n_ctx, hw) if len(hw.gpus) >= 2 else None
        if own is not None:
            where = f"A on {hw.gpus[own['a']].name}, B on {hw.gpus[own['b']].name}"
            return Plan(False, {"a": -1, "b": -1}, f"{where}: neither waits for the other", own)
        pair = fit_pair(fa, fb, s, hw)
        alone = {
            n: estimate(f, FitSettings(n_ctx=n_ctx), hw, search=False) for n, f in (("a", fa), ("b", fb))
        }
    except FitError as e:
        return Plan(False, {"a": 0, "b": 0}, str(e))
    layers = -1 if hw.gpus else 0
    if pair.fits:
        return Plan(False, {"a": layers, "b": layers}, "")
    per_side = {
        n: (-1 if r.verdict_code == "gpu" else r.gpu_layers) if hw.gpus else 0 for n, r in alone.items()
    }
    tips = "; ".join(s["text"] for s in pair.suggestions if s["change"] != "sequential")
    note = "the two models do not fit in memory together: running them one after the other"
    return Plan(True, per_side, note + (f" (or {tips})" if tips else ""))


class ContextRefused(QuanttuiError):
    """A context length the pair cannot be given; the text says why, in one line."""


def _facts(path: str) -> dict[str, Any] | None:
    try:
        return inspect_file(path).to_dict()
    except (GGUFError, OSError):
        return None  # that side reports its own error when it loads


def _fits_alone(facts: dict[str, Any], n_ctx: int, hw: Hardware) -> FitResult:
    return estimate(facts, FitSettings(n_ctx=n_ctx), hw, search=False)


def check_context(
    path_a: str, path_b: str, n_ctx: object, hw: Hardware | None = None, facts: Facts | None = None
) -> int:
    """`n_ctx` as a whole number when both models can run with it (together, or one after the
    other); ContextRefused with the reason when it is not a number, below MIN_CTX, above either
    model's trained context, or more than either fits in memory (with the most that fits)."""
    try:
        n = int(str(n_ctx).strip()) if not isinstance(n_ctx, (bool, float)) else None
    except ValueError:
        n = None
    if n is None:
        raise ContextRefused(f"the context must be a whole number of tokens, not {clean(str(n_ctx)[:40])!r}")
    if not MIN_CTX <= n <= MAX_CTX:
        raise ContextRefused(f"a context of {n:,} tokens is out of range ({MIN_CTX} to {MAX_CTX:,})")
    fa, fb = (facts["a"], facts["b"]) if facts is not None else (_facts(path_a), _facts(path_b))
    sides = {side: f for side, f in (("A", fa), ("B", fb)) if f is not None}
    names = {"A": Path(path_a).name, "B": Path(path_b).name}
    for side, f in sides.items():
        trained = f.get("context_length")
        if isinstance(trained, int) and 0 < trained < n:
            raise ContextRefused(
                f"{n:,} is above the context {side} was trained for ({trained:,} tokens, "
                f"{clean(names[side])})"
            )
    hw = hw or hardware()
    for side, f in sides.items():
        try:
            r = _fits_alone(f, n, hw)
        except FitError as e:
            raise ContextRefused(f"{side} ({clean(names[side])}): {e}") from None
        if not r.fits:
            most = _most_that_fits(f, n, hw)
            hint = f"; the most that fits is {most:,}" if most >= MIN_CTX else ""
            where = f"{side} ({clean(names[side])}) at a context of {n:,} tokens"
            raise ContextRefused(f"{where} {r.verdict}{hint}")
    return n


def _most_that_fits(facts: dict[str, Any], above: int, hw: Hardware) -> int:
    """The largest multiple of 256 below `above` at which the model fits (0 when none does)."""
    lo, hi = 0, max(0, (above - 1) // CTX_PAD)  # in units of CTX_PAD; lo always fits (or is 0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            ok = _fits_alone(facts, mid * CTX_PAD, hw).fits
        except FitError:
            ok = False
        lo, hi = (mid, hi) if ok else (lo, mid - 1)
    return lo * CTX_PAD
