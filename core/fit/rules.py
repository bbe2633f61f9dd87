"""llama.cpp's memory rules as data: cache element sizes, sliding-window defaults, runtime overheads.

The overheads are measured, not derived: see ../shared/data/gpu-memory-h100-calibration.json (an
H100, CUDA build of llama-cpp-python 0.3.36). Each can be overridden through `Overheads`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gguf

MIB = 1 << 20
CTX_PAD = 256  # llama.cpp pads the KV cache to a multiple of 256 cells
MAX_CTX = 1 << 24

# Cache types llama.cpp accepts for --cache-type-k / --cache-type-v.
KV_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")


def kv_row_bytes(kv_type: str, n_elements: int) -> int:
    """Bytes of one cache row of `n_elements` values of `kv_type` (rows are whole blocks)."""
    qt = gguf.GGMLQuantizationType[kv_type.upper()]
    block, size = gguf.GGML_QUANT_SIZES[qt]
    return n_elements * size // block


# Architectures whose sliding-window layout llama.cpp sets in code when the GGUF does not say:
# every Nth layer is global, the others use the window.
SWA_PATTERN_DEFAULTS = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4, "gpt-oss": 2, "exaone4": 4}
RECURRENT_ARCHS = ("mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7")

# (ggml type, ne0, ne1, ne2) -> (extra buffer, bytes there), or None for the plain CPU buffer.
Placement = Callable[[int, int, int, int], "tuple[str, int] | None"]


def machine_placement() -> Placement | None:
    """Where llama.cpp on this machine puts each CPU weight matrix: its extra buffers as ggml
    answers (AMX, CPU_REPACK..., asked once per shape), or None when loads here run without them
    (the machine's verdict or a person's setting) or llama.cpp cannot be asked."""
    try:
        from ..llama import ggml
        from ..llama.extra import cached_use

        return ggml.placement if cached_use() and ggml.extra_buffer_types() else None
    except (ImportError, OSError, AttributeError, RuntimeError):
        return None


def _no_extra(type_id: int, ne0: int, ne1: int, ne2: int) -> tuple[str, int] | None:
    return None


@dataclass(frozen=True)
class Overheads:
    """Memory llama.cpp does not log, per GPU. Defaults for CUDA from the H100 calibration data.

    runtime: CUDA context and cuBLAS, 527-529 MiB at model load whatever the model.
    context: 3-5 MiB at context creation.
    prompt_*: pools filled at the first prompt: 180-186 MiB with flash attention off, about 80 MiB
    with it on and quantized weights, about 175 MiB with it on and 16/32-bit weights.
    """

    runtime: int = 528 * MIB
    context: int = 4 * MIB
    prompt_no_fa: int = 184 * MIB
    prompt_fa_quant: int = 80 * MIB
    prompt_fa_float: int = 174 * MIB
    # Unmeasured backends: Metal keeps no CUDA-sized context; CPU-only processes pay nothing extra here.
    metal_runtime: int = 64 * MIB
    # Where CPU weights go: llama.cpp's extra buffers on this machine (None: ask it at each estimate);
    # `no_extra_buffers` for a machine without them.
    extra_placement: Placement | None = None

    def placement(self) -> Placement:
        if self.extra_placement is not None:
            return self.extra_placement
        return machine_placement() or _no_extra

    def gpu(self, backend: str, flash_attn: bool, float_weights: bool) -> int:
        if backend == "metal":
            return self.metal_runtime
        if not flash_attn:
            prompt = self.prompt_no_fa
        else:
            prompt = self.prompt_fa_float if float_weights else self.prompt_fa_quant
        return self.runtime + self.context + prompt


DEFAULT_OVERHEADS = Overheads()
