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
from typing import Any

from ..errors import QuanttuiError
from .devices import Device, Hardware
from .rules import (
    CTX_PAD,
    DEFAULT_OVERHEADS,
    KV_TYPES,
    MAX_CTX,
    RECURRENT_ARCHS,
    SWA_PATTERN_DEFAULTS,
    Overheads,
    kv_row_bytes,
)

FLOAT_TYPES = {"F32", "F16", "BF16"}


class FitError(QuanttuiError, ValueError):
    """A configuration llama.cpp would refuse, or a bad input; str() is one line."""


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

    def validate(self) -> None:
        if not isinstance(self.n_ctx, int) or not 0 < self.n_ctx <= MAX_CTX:
            raise FitError(f"context {self.n_ctx} is out of range (1 to {MAX_CTX:,})")
        for which, t in (("K", self.type_k), ("V", self.type_v)):
            if t not in KV_TYPES:
                raise FitError(f"unknown {which} cache type {t!r} (one of {', '.join(KV_TYPES)})")
        if self.type_v not in ("f16", "f32", "bf16") and not self.flash_attn:
            raise FitError(f"a quantized V cache ({self.type_v}) needs flash attention: add --flash-attn")
        if not 0 < self.n_ubatch <= 1 << 16 or not 0 < self.n_batch <= 1 << 20:
            raise FitError(f"batch {self.n_batch} / ubatch {self.n_ubatch} out of range")
        if not 0 < self.n_parallel <= 256:
            raise FitError(f"parallel sequences {self.n_parallel} out of range (1 to 256)")
        gl = self.gpu_layers
        if not (gl in ("all", "auto") or (isinstance(gl, int) and gl >= 0)):
            raise FitError(f"gpu layers must be a number >= 0, 'all' or 'auto', not {gl!r}")


@dataclass(frozen=True)
class Shape:
    """What memory depends on, taken from a model's header facts."""

    name: str
    architecture: str
    n_layer: int
    n_embd: int
    n_head: list[int]
    n_head_kv: list[int]
    head_dim_k: int
    head_dim_v: int
    n_vocab: int
    n_ff: int
    n_ctx_train: int
    n_swa: int
    swa_layers: list[bool]
    recurrent_layers: list[bool]
    ssm: dict[str, int]
    embd_bytes: int
    block_bytes: list[int]
    output_bytes: int
    tied: bool
    float_weights: bool

    @classmethod
    def from_facts(cls, f: dict[str, Any]) -> Shape:
        arch = f.get("architecture") or "?"
        n_layer = f.get("block_count")
        n_embd = f.get("embedding_length")
        if not n_layer or not n_embd:
            raise FitError("the header lacks block_count or embedding_length: cannot estimate memory")

        def per_layer(value: Any, default: int) -> list[int]:
            if isinstance(value, list):
                return [int(v) for v in value][:n_layer] + [default] * max(0, n_layer - len(value))
            return [int(value) if value is not None else default] * n_layer

        n_head = per_layer(f.get("head_count"), 0)
        n_head_kv = per_layer(f.get("head_count_kv"), max(n_head) if n_head else 0)
        head = max(n_head) or 1
        layers = {layer["name"]: layer for layer in f.get("layers", [])}
        blocks = [layers.get(f"blk.{i}", {}).get("padded", 0) for i in range(n_layer)]
        output = layers.get("output", {}).get("padded", 0) + layers.get("other", {}).get("padded", 0)
        embd = layers.get("token_embd", {}).get("padded", 0)
        tied = bool(f.get("tied_embeddings"))
        if tied:
            output += embd
        ssm = f.get("ssm") or {}
        if arch in RECURRENT_ARCHS:
            recurrent = [True] * n_layer
        elif isinstance(f.get("head_count_kv"), list) and ssm:
            recurrent = [kv == 0 for kv in n_head_kv]
        else:
            recurrent = [False] * n_layer
        window = f.get("sliding_window") or 0
        pattern = f.get("sliding_window_pattern")
        if isinstance(pattern, list):
            swa = [bool(x) for x in pattern][:n_layer] + [False] * max(0, n_layer - len(pattern))
        else:
            every = pattern if isinstance(pattern, int) and pattern > 0 else SWA_PATTERN_DEFAULTS.get(arch, 0)
            swa = [bool(window) and every > 1 and (i % every) < every - 1 for i in range(n_layer)]
        dominant = f.get("dominant_type") or ""
        return cls(
            name=f.get("name") or f.get("path") or "?",
            architecture=arch,
            n_layer=n_layer,
            n_embd=n_embd,
            n_head=n_head,
            n_head_kv=n_head_kv,
            head_dim_k=f.get("key_length") or n_embd // head,
            head_dim_v=f.get("value_length") or n_embd // head,
            n_vocab=f.get("vocab_size") or 0,
            n_ff=max(f.get("feed_forward_length") or [0])
            if isinstance(f.get("feed_forward_length"), list)
            else (f.get("feed_forward_length") or 0),
            n_ctx_train=f.get("context_length") or MAX_CTX,
            n_swa=window,
            swa_layers=swa,
            recurrent_layers=recurrent,
            ssm=ssm,
            embd_bytes=embd,
            block_bytes=blocks,
            output_bytes=output,
            tied=tied,
            float_weights=dominant in FLOAT_TYPES,
        )

    @property
    def n_embd_gqa(self) -> int:
        return max(self.n_head_kv) * self.head_dim_k

    def kv_layer_bytes(self, il: int, cells: int, s: FitSettings) -> int:
        """Cache bytes of block `il`: attention K+V, or recurrent state (f32, per sequence)."""
        if self.recurrent_layers[il]:
            return self._recurrent_bytes() * s.n_parallel
        kv_heads = self.n_head_kv[il]
        if kv_heads == 0:
            return 0
        if self.swa_layers[il] and not s.swa_full and self.n_swa:
            cells = min(cells, _pad(self.n_swa * s.n_parallel + s.n_ubatch))
        k = kv_row_bytes(s.type_k, self.head_dim_k * kv_heads)
        v = kv_row_bytes(s.type_v, self.head_dim_v * kv_heads)
        return (k + v) * cells

    def _recurrent_bytes(self) -> int:
        m = self.ssm
        if "wkv_head_size" in m:  # RWKV: token shift (2 x n_embd) + wkv state (n_embd x head size)
            return 4 * (2 * self.n_embd + self.n_embd * m["wkv_head_size"])
        if "shortconv_l_cache" in m:  # LFM2 short convolutions
            return 4 * (m["shortconv_l_cache"] - 1) * self.n_embd
        d_conv, d_inner = m.get("conv_kernel", 4), m.get("inner_size", 2 * self.n_embd)
        d_state, groups = m.get("state_size", 16), m.get("group_count", 0)
        conv = (d_conv - 1) * (d_inner + 2 * groups * d_state)
        return 4 * (conv + d_state * d_inner)


def _pad(n: int, to: int = CTX_PAD) -> int:
    return -(-n // to) * to


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
    for il in range(shape.n_layer):
        d = dev(where[il])
        d.weights += shape.block_bytes[il]
        d.kv_cache += shape.kv_layer_bytes(il, cells, s)
        d.layers += 1
    out_dev = dev(where[shape.n_layer])
    out_dev.weights += shape.output_bytes
    out_dev.layers += 1
    if shape.tied and where[shape.n_layer] < 0:
        out_dev.weights -= shape.embd_bytes  # on the CPU the output reads token_embd itself
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
