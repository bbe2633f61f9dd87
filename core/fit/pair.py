"""Two models at once (for A/B): one process, so the GPU runtime is paid once, and what to lower."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .devices import Hardware
from .estimate import DeviceUse, FitResult, FitSettings, estimate
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
    lo, hi = 0, settings.n_ctx // 256
    while hi - lo > 1:
        mid = (lo + hi) // 2
        *_, dm = _pair(fa, fb, replace(settings, n_ctx=mid * 256), hw, overheads, layers, layers)
        lo, hi = (mid, hi) if all(d.fits for d in dm) else (lo, mid)
    if lo:
        result.suggestions.append(
            {"change": "ctx", "n_ctx": lo * 256, "text": f"lower the context to {lo * 256}"}
        )
    full_b = b.n_layer + 1
    for n in range(full_b - 1, -1, -1):
        *_, dl = _pair(fa, fb, settings, hw, overheads, layers, n)
        if all(d.fits for d in dl):
            result.suggestions.append(
                {
                    "change": "gpu_layers_b",
                    "gpu_layers": n,
                    "text": f"put {n} of B's {full_b} layers on the GPU",
                }
            )
            break
    if not result.suggestions:
        result.suggestions.append({"change": "sequential", "text": "run them one after the other"})
    return result
