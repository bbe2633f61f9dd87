"""Estimate VRAM and RAM for a model at a context, cache type and GPU offload, the way llama.cpp lays it out.

Rules (read in llama.cpp's source, checked against its logged buffers; see rules.py for overheads):
- `n_gpu_layers = N` puts the output layer and the last N-1 blocks on the GPU(s); token_embd stays in RAM.
  Tied embeddings copy token_embd to the output layer's device.
- KV per attention layer = row(type_k, head_dim_k * n_head_kv) + row(type_v, ...), times cells padded
  to 256. Sliding-window layers hold min(ctx, window + ubatch) cells unless swa_full. Recurrent
  layers hold fixed f32 state.
- Compute buffer = the largest stage of the graph: attention (scores without flash attention) or the
  output (logits).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

from .devices import Device, Hardware
from .rules import CTX_PAD, DEFAULT_OVERHEADS, KV_TYPES, MAX_CTX, Overheads
from .shape import FitError, Shape, _pad

__all__ = ["FitError", "FitSettings", "Shape", "estimate"]


@dataclass(frozen=True)
class FitSettings:
    """What the user chooses. Defaults follow llama-cpp-python's (flash attention off, swa_full on)."""

    n_ctx: int = 4096
    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: bool = False
    gpu_layers: int | str = "auto"  # a number, "all" or "auto"
    n_batch: int = 512
    n_ubatch: int = 512
    n_parallel: int = 1
    swa_full: bool = True
    use_mmap: bool = True  # llama-cpp-python's default: repacked CPU weights are a copy beside the map

    def validate(self) -> None:
        """Refuse values llama.cpp would refuse, and values of the wrong type (settings come from JSON)."""

        def count(v: Any) -> TypeGuard[int]:
            return isinstance(v, int) and not isinstance(v, bool)

        if not count(self.n_ctx) or not 0 < self.n_ctx <= MAX_CTX:
            raise FitError(f"context {self.n_ctx!r} is out of range (1 to {MAX_CTX:,})")
        for which, t in (("K", self.type_k), ("V", self.type_v)):
            if not isinstance(t, str) or t not in KV_TYPES:
                raise FitError(f"unknown {which} cache type {t!r} (one of {', '.join(KV_TYPES)})")
        for name in ("flash_attn", "swa_full", "use_mmap"):
            if not isinstance(getattr(self, name), bool):
                raise FitError(f"{name} must be true or false, not {getattr(self, name)!r}")
        if self.type_v not in ("f16", "f32", "bf16") and not self.flash_attn:
            raise FitError(f"a quantized V cache ({self.type_v}) needs flash attention: add --flash-attn")
        if not (count(self.n_ubatch) and count(self.n_batch)) or not (
            0 < self.n_ubatch <= 1 << 16 and 0 < self.n_batch <= 1 << 20
        ):
            raise FitError(f"batch {self.n_batch!r} / ubatch {self.n_ubatch!r} out of range")
        if not count(self.n_parallel) or not 0 < self.n_parallel <= 256:
            raise FitError(f"parallel sequences {self.n_parallel!r} out of range (1 to 256)")
        gl = self.gpu_layers
        if not (gl in ("all", "auto") or (count(gl) and gl >= 0)):
            raise FitError(f"gpu layers must be a number >= 0, 'all' or 'auto', not {gl!r}")


@dataclass
class DeviceUse:
    """One device's share of the model, in bytes per part."""

    name: str
    kind: str
    total_bytes: int
    free_bytes: int
    weights: int = 0
    kv_cache: int = 0
    compute: int = 0
    output: int = 0
    overhead: int = 0
    layers: int = 0
    extra_buffers: dict[str, int] = field(default_factory=dict)  # of `weights`: llama.cpp's AMX, CPU_REPACK

    def add_extra(self, alloc: dict[str, int], orig: int, beside_map: bool) -> None:
        """Weights copied into extra buffers: beside the mapped file, or instead of their plain copy."""
        for name, n in alloc.items():
            self.extra_buffers[name] = self.extra_buffers.get(name, 0) + n
        self.weights += sum(alloc.values()) - (0 if beside_map else orig)

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.output + self.overhead

    @property
    def fits(self) -> bool:
        return self.total <= self.free_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "total_bytes": self.total_bytes,
            "free_bytes": self.free_bytes,
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "compute": self.compute,
            "output": self.output,
            "overhead": self.overhead,
            "total": self.total,
            "layers": self.layers,
            "extra_buffers": dict(self.extra_buffers),
            "fits": self.fits,
        }


@dataclass
class FitResult:
    model: str
    settings: FitSettings
    devices: list[DeviceUse]
    gpu_layers: int
    n_layer: int
    verdict: str
    verdict_code: str  # "gpu", "partial", "ram", "no_fit"
    max_context_full_offload: int | None = None
    max_gpu_layers: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.verdict_code != "no_fit"

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "model": self.model,
            "settings": {
                "n_ctx": s.n_ctx,
                "type_k": s.type_k,
                "type_v": s.type_v,
                "flash_attn": s.flash_attn,
                "gpu_layers": s.gpu_layers,
                "n_batch": s.n_batch,
                "n_ubatch": s.n_ubatch,
                "n_parallel": s.n_parallel,
                "swa_full": s.swa_full,
                "use_mmap": s.use_mmap,
            },
            "devices": [d.to_dict() for d in self.devices],
            "gpu_layers": self.gpu_layers,
            "n_layer": self.n_layer,
            "verdict": self.verdict,
            "verdict_code": self.verdict_code,
            "max_context_full_offload": self.max_context_full_offload,
            "max_gpu_layers": self.max_gpu_layers,
            "notes": self.notes,
        }


def compute_bytes(shape: Shape, s: FitSettings, cells: int, *, output_stage: bool) -> int:
    """The compute buffer: the largest of the attention stage and (where the output lives) the logits."""
    ub = min(s.n_ubatch, s.n_batch, cells)
    heads = max(shape.n_head) or 1
    act = 4 * ub * (4 * shape.n_embd + 2 * shape.n_embd_gqa)
    if s.flash_attn:
        attn = 2 * ub * cells + 4 * ub * (12 * shape.n_embd + 2 * shape.n_embd_gqa)
    else:
        attn = 4 * ub * cells * heads + 4 * ub * cells + act
    if not any(not r for r in shape.recurrent_layers):
        attn = act
    out = 4 * ub * (shape.n_vocab + shape.n_embd) if output_stage else 0
    return max(attn, out)


def host_compute_bytes(shape: Shape, s: FitSettings, cells: int) -> int:
    """Pinned host buffer next to a GPU: input embeddings and the attention mask."""
    ub = min(s.n_ubatch, s.n_batch, cells)
    mask = (2 if s.flash_attn else 4) * ub * cells
    return mask + 2 * ub * shape.n_embd * (4 if s.flash_attn else 5)


def _layer_devices(shape: Shape, n_gpu: int, gpus: tuple[Device, ...]) -> list[int]:
    """Device index (-1 = RAM) for blocks 0..n_layer-1 and the output layer (index n_layer)."""
    n_layer = shape.n_layer
    n_gpu = min(n_gpu, n_layer + 1) if gpus else 0
    start = n_layer + 1 - n_gpu
    total = sum(g.free_bytes for g in gpus) or 1
    bounds, acc = [], 0
    for g in gpus:
        acc += g.free_bytes
        bounds.append(acc / total)
    out = []
    for il in range(n_layer + 1):
        if il < start:
            out.append(-1)
            continue
        pos = (il - start) / n_gpu
        out.append(next((i for i, b in enumerate(bounds) if pos < b), len(gpus) - 1))
    return out


def layout(shape: Shape, s: FitSettings, hw: Hardware, n_gpu: int, overheads: Overheads) -> list[DeviceUse]:
    """Bytes per device and part for `n_gpu` offloaded layers; the last entry is RAM."""
    cells = _pad(s.n_ctx)
    devs = [DeviceUse(g.name, "gpu", g.total_bytes, g.free_bytes) for g in hw.gpus]
    ram = DeviceUse(hw.ram.name, "ram", hw.ram.total_bytes, hw.ram.free_bytes)
    where = _layer_devices(shape, n_gpu, hw.gpus)

    def dev(i: int) -> DeviceUse:
        return ram if i < 0 else devs[i]

    ram.weights += shape.embd_bytes
    place = overheads.placement()
    for il in range(shape.n_layer):
        d = dev(where[il])
        d.weights += shape.block_bytes[il]
        if d is ram:
            ram.add_extra(*shape.extra_bytes(il, place), beside_map=s.use_mmap)
        d.kv_cache += shape.kv_layer_bytes(il, cells, s)
        d.layers += 1
    out_dev = dev(where[shape.n_layer])
    out_dev.weights += shape.output_bytes
    out_dev.layers += 1
    if out_dev is ram:
        if shape.tied:
            out_dev.weights -= shape.embd_bytes  # on the CPU the output reads token_embd itself...
        ram.add_extra(*shape.extra_bytes(shape.n_layer, place), beside_map=s.use_mmap or shape.tied)
    ram.output += 4 * shape.n_vocab * s.n_parallel
    used = [i for i, d in enumerate(devs) if d.layers]
    if used:
        for i in used:
            d = devs[i]
            d.compute = compute_bytes(shape, s, cells, output_stage=d is out_dev)
            d.overhead = overheads.gpu(hw.gpus[i].backend, s.flash_attn, shape.float_weights)
        ram.compute = host_compute_bytes(shape, s, cells)
    else:
        ram.compute = compute_bytes(shape, s, cells, output_stage=True)
    return [*devs, ram]


def _fits(devices: list[DeviceUse]) -> bool:
    return all(d.fits for d in devices)


def estimate(
    facts: dict[str, Any],
    settings: FitSettings,
    hw: Hardware,
    overheads: Overheads = DEFAULT_OVERHEADS,
    *,
    search: bool = True,
) -> FitResult:
    """Where the model goes at these settings, whether it fits, and the limits around it."""
    settings.validate()
    shape = Shape.from_facts(facts)
    full = shape.n_layer + 1
    gl = settings.gpu_layers
    if not hw.gpus:
        n_gpu = 0
    elif gl == "all":
        n_gpu = full
    elif gl == "auto":
        n_gpu = max_gpu_layers(shape, settings, hw, overheads)
    else:
        n_gpu = min(int(gl), full)
    devices = layout(shape, settings, hw, n_gpu, overheads)
    result = FitResult(shape.name, settings, devices, n_gpu, shape.n_layer, "", "")
    ram = devices[-1]
    gpus_ok = all(d.fits for d in devices[:-1])
    if not (gpus_ok and ram.fits):
        short = [d for d in devices if not d.fits]
        need = ", ".join(f"{d.name} needs {_gib(d.total)} of {_gib(d.free_bytes)}" for d in short)
        result.verdict, result.verdict_code = f"does not fit: {need}", "no_fit"
    elif n_gpu >= full:
        result.verdict, result.verdict_code = "fits on GPU", "gpu"
    elif n_gpu > 0:
        result.verdict, result.verdict_code = f"fits with {n_gpu} of {full} layers on GPU", "partial"
    else:
        result.verdict, result.verdict_code = (
            "RAM only" if not hw.gpus else "RAM only (no layer fits on GPU)",
            "ram",
        )
    if hw.unified:
        result.notes.append("Apple unified memory: GPU and RAM figures share the same physical memory")
    if search:
        result.max_gpu_layers = n_gpu if gl == "auto" else max_gpu_layers(shape, settings, hw, overheads)
        result.max_context_full_offload = max_context(shape, settings, hw, overheads) if hw.gpus else None
    return result


def largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The largest n in [lo, hi] with ok(n), for an ok that holds up to some n and fails after it
    (memory only grows with context and layers); lo - 1 when it holds nowhere."""
    if ok(hi):
        return hi
    if not ok(lo):
        return lo - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def max_gpu_layers(shape: Shape, s: FitSettings, hw: Hardware, overheads: Overheads) -> int:
    """The most layers that fit on the GPU(s) at these settings (0 when none, or no GPU)."""
    if not hw.gpus:
        return 0
    return max(0, largest(0, shape.n_layer + 1, lambda n: _gpus_fit(layout(shape, s, hw, n, overheads))))


def _gpus_fit(devices: list[DeviceUse]) -> bool:
    return all(d.fits for d in devices[:-1])


def max_context(shape: Shape, s: FitSettings, hw: Hardware, overheads: Overheads) -> int:
    """The largest context (a multiple of 256, up to the trained length) with every layer on the GPU(s)."""
    full = shape.n_layer + 1

    def ok(ctx: int) -> bool:
        return _fits(layout(shape, replace(s, n_ctx=ctx), hw, full, overheads))

    top = max(1, min(shape.n_ctx_train, MAX_CTX) // CTX_PAD)
    return max(0, largest(1, top, lambda k: ok(k * CTX_PAD))) * CTX_PAD


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB"
