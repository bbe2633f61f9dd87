"""Two models at once (for A/B): one process, so the GPU runtime is paid once, and what to lower."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .devices import Hardware
from .estimate import DeviceUse, FitResult, FitSettings, estimate, largest
from .rules import DEFAULT_OVERHEADS, Overheads


@dataclass
class PairResult:
    a: FitResult
    b: FitResult
    devices: list[DeviceUse]
    fits: bool
    suggestions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "devices": [d.to_dict() for d in self.devices],
            "fits": self.fits,
            "verdict": "both fit" if self.fits else "they do not fit together",
            "suggestions": self.suggestions,
        }


def _combine(a: FitResult, b: FitResult) -> list[DeviceUse]:
    """Sum per device; the GPU runtime and prompt pools are shared by one process, so count the larger."""
    out = []
    for da, db in zip(a.devices, b.devices, strict=True):
        d = DeviceUse(da.name, da.kind, da.total_bytes, da.free_bytes)
        d.weights = da.weights + db.weights
        d.kv_cache = da.kv_cache + db.kv_cache
        d.compute = da.compute + db.compute
        d.output = da.output + db.output
        d.overhead = max(da.overhead, db.overhead)
        d.layers = da.layers + db.layers
        out.append(d)
    return out


def _pair(
    fa: dict[str, Any],
    fb: dict[str, Any],
    s: FitSettings,
    hw: Hardware,
    ov: Overheads,
    layers_a: int | str,
    layers_b: int | str,
) -> tuple[FitResult, FitResult, list[DeviceUse]]:
    a = estimate(fa, replace(s, gpu_layers=layers_a), hw, ov, search=False)
    b = estimate(fb, replace(s, gpu_layers=layers_b), hw, ov, search=False)
    return a, b, _combine(a, b)


def fit_pair(
    fa: dict[str, Any],
    fb: dict[str, Any],
    settings: FitSettings,
    hw: Hardware,
    overheads: Overheads = DEFAULT_OVERHEADS,
) -> PairResult:
    """Both models on the same devices at `settings` ("auto" layers means all of both), with fixes if not."""
    layers = "all" if settings.gpu_layers == "auto" else settings.gpu_layers
    a, b, devices = _pair(fa, fb, settings, hw, overheads, layers, layers)
    result = PairResult(a, b, devices, all(d.fits for d in devices))
    if result.fits or not hw.gpus:
        return result
    if settings.type_v == "f16" and settings.type_k == "f16":
        q8 = replace(settings, type_k="q8_0", type_v="q8_0", flash_attn=True)
        *_, dq = _pair(fa, fb, q8, hw, overheads, layers, layers)
        if all(d.fits for d in dq):
            result.suggestions.append(
                {
                    "change": "kv",
                    "type_k": "q8_0",
                    "type_v": "q8_0",
                    "flash_attn": True,
                    "text": "use a q8_0 KV cache with flash attention",
                }
            )

    def fits(ctx: int = settings.n_ctx, layers_b: int | str = layers) -> bool:
        *_, devices = _pair(fa, fb, replace(settings, n_ctx=ctx), hw, overheads, layers, layers_b)
        return all(d.fits for d in devices)

    below = settings.n_ctx // 256 - 1  # contexts smaller than the one that did not fit, in 256s
    ctx = largest(1, below, lambda k: fits(ctx=k * 256)) * 256 if below >= 1 else 0
    if ctx > 0:
        result.suggestions.append({"change": "ctx", "n_ctx": ctx, "text": f"lower the context to {ctx}"})
    full_b = b.n_layer + 1
    n = largest(0, full_b - 1, lambda n: fits(layers_b=n))
    if n >= 0:
        result.suggestions.append(
            {"change": "gpu_layers_b", "gpu_layers": n, "text": f"put {n} of B's {full_b} layers on the GPU"}
        )
    if not result.suggestions:
        result.suggestions.append({"change": "sequential", "text": "run them one after the other"})
    return result
