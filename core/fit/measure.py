"""Load a model for real and read the buffer sizes llama.cpp logs, to set beside the estimate.

llama.cpp's logs go to a callback (never the terminal): `verbose=False` would redirect the whole
process's stdout/stderr, which blanks a running Textual screen.
"""

from __future__ import annotations

import re
from typing import Any

from ..llama import captured, load
from .estimate import FitResult, FitSettings

_BUFFER_RE = re.compile(r"(\S+)\s+(model|output|KV|compute|RS) buffer size =\s+([\d.]+) MiB")
_PART = {"model": "weights", "KV": "kv_cache", "RS": "kv_cache", "compute": "compute", "output": "output"}
GGML_TYPES = {
    "f32": 0,
    "f16": 1,
    "q4_0": 2,
    "q4_1": 3,
    "q5_0": 6,
    "q5_1": 7,
    "q8_0": 8,
    "iq4_nl": 20,
    "bf16": 30,
}


def parse_buffers(lines: list[str]) -> dict[str, dict[str, int]]:
    """{buffer name (CPU, CUDA0, CPU_Mapped...): {part: bytes}} from llama.cpp's log lines."""
    out: dict[str, dict[str, int]] = {}
    for line in lines:
        m = _BUFFER_RE.search(line)
        if m:
            name, part, mib = m.group(1), _PART[m.group(2)], float(m.group(3))
            parts = out.setdefault(name, {})
            parts[part] = parts.get(part, 0) + round(mib * (1 << 20))
    return out


def measure(
    path: str, settings: FitSettings, *, use_mmap: bool | None = None, extra_buffers: bool | None = None
) -> dict[str, dict[str, int]]:
    """Load `path` with llama-cpp-python at `settings` and return the buffers llama.cpp reported
    (extra buffers as the machine's decision has them unless `extra_buffers` says)."""
    if use_mmap is None:
        use_mmap = settings.use_mmap
    gl = settings.gpu_layers
    n_gpu = -1 if gl in ("all", "auto") else int(gl)
    with captured() as sink:
        try:
            llm = load(
                path,
                extra_buffers=extra_buffers,
                n_ctx=settings.n_ctx,
                n_batch=settings.n_batch,
                n_ubatch=settings.n_ubatch,
                n_gpu_layers=n_gpu,
                flash_attn=settings.flash_attn,
                type_k=GGML_TYPES[settings.type_k],
                type_v=GGML_TYPES[settings.type_v],
                swa_full=settings.swa_full,
                use_mmap=use_mmap,
            )
            llm.close()
        except (ValueError, RuntimeError) as e:
            tail = [line.strip() for line in sink if line.strip()][-1:] or [str(e)]
            raise RuntimeError(f"llama.cpp could not load the model: {tail[0]}") from None
    return parse_buffers(sink)


_GPU_BUFFER = re.compile(r"^(?:CUDA|ROCm|Vulkan|SYCL|MTL|Metal|RPC\[.*\]|CANN|MUSA)(\d*)$")
PARTS = ("weights", "kv_cache", "compute", "output")


def compare(result: FitResult, measured: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """Estimate beside llama.cpp's logged buffers, a row per device and part, RAM's weights split
    into the plain buffers and each extra buffer (AMX, CPU_REPACK...). GPU overheads llama.cpp does
    not log (CUDA context, pools) are left out of both sides."""
    ram = result.devices[-1]
    host = {n: p for n, p in measured.items() if not _GPU_BUFFER.match(n)}
    extras = set(ram.extra_buffers) | (set(host) & _known_extra())
    rows = []

    def row(device: str, part: str, est: int, got: int) -> None:
        diff = est - got
        rows.append({"device": device, "part": part, "estimate": est, "measured": got, "difference": diff})

    plain = {n: p for n, p in host.items() if n not in extras}
    row("RAM", "weights", ram.weights - sum(ram.extra_buffers.values()), _sum(plain, "weights"))
    for name in sorted(extras):
        row("RAM", f"weights in {name}", ram.extra_buffers.get(name, 0), host.get(name, {}).get("weights", 0))
    for part in PARTS[1:]:
        row("RAM", part, getattr(ram, part), _sum(host, part))
    row("RAM", "total", ram.total, sum(_sum(host, p) for p in PARTS))
    gpus = [d for d in result.devices[:-1] if d.layers]
    for i, dev in enumerate(gpus):
        mine = {n: p for n, p in measured.items() if _gpu_index(n) == i}
        for part in PARTS:
            row(dev.name, part, getattr(dev, part), _sum(mine, part))
        row(dev.name, "total (logged)", dev.total - dev.overhead, sum(_sum(mine, p) for p in PARTS))
    return rows


def _gpu_index(name: str) -> int | None:
    m = _GPU_BUFFER.match(name)
    return int(m.group(1) or 0) if m else None


def _sum(buffers: dict[str, dict[str, int]], part: str) -> int:
    return sum(p.get(part, 0) for p in buffers.values())


def _known_extra() -> set[str]:
    try:
        from ..llama import ggml

        return set(ggml.extra_buffer_types())
    except (ImportError, OSError, AttributeError):
        return set()
