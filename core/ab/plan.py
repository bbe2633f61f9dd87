"""Where the two models of an A/B pair go: each on a GPU of its own, both together, or one after
the other, decided with the fit estimator before anything loads."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from typing import Any

from ..fit import FitError, FitResult, FitSettings, Hardware, estimate, fit_pair, hardware
from ..modelfile import GGUFError, inspect_file


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


def plan_pair(path_a: str, path_b: str, n_ctx: int, hw: Hardware | None = None) -> Plan:
    """Check with the fit estimator that both fit at once; if not, load them one at a time."""
    try:
        fa, fb = inspect_file(path_a).to_dict(), inspect_file(path_b).to_dict()
    except (GGUFError, OSError):
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
