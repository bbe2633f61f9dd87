"""llama.cpp's memory rules as data: cache element sizes, sliding-window defaults, runtime overheads.

The overheads are measured, not derived: see ../shared/data/gpu-memory-h100-calibration.json (an
H100, CUDA build of llama-cpp-python 0.3.36). Each can be overridden through `Overheads`.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

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


def cpu_repack_types() -> tuple[str, ...]:
    """Tensor types llama.cpp's CPU backend repacks into a CPU_REPACK buffer on this machine.

    Matrices of these types (rows a multiple of 8) on the CPU get an interleaved copy for faster
    matmul: with mmap on, that copy comes on top of the mapped file. Measured on x86-64 with AVX2
    (llama-cpp-python 0.3.x): Q4_0, Q4_K and IQ4_NL; Q8_0, Q2_K, Q3_K, Q5_K, Q6_K and IQ4_XS are
    not. ARM builds repack Q4_0 and IQ4_NL (unmeasured here); other CPUs are assumed not to.
    """
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                flags = fh.read(1 << 16)
        except OSError:
            flags = " avx2 "  # not Linux: x86-64 CPUs of the last decade have AVX2
        return ("Q4_0", "Q4_K", "IQ4_NL") if " avx2" in flags else ()
    if machine in ("arm64", "aarch64"):
        return ("Q4_0", "IQ4_NL")
    return ()


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
    # Types the CPU backend repacks (an extra copy in RAM for layers on the CPU when mmap is on).
    cpu_repack: tuple[str, ...] = field(default_factory=cpu_repack_types)

    def gpu(self, backend: str, flash_attn: bool, float_weights: bool) -> int:
        if backend == "metal":
            return self.metal_runtime
        if not flash_attn:
            prompt = self.prompt_no_fa
        else:
            prompt = self.prompt_fa_float if float_weights else self.prompt_fa_quant
        return self.runtime + self.context + prompt


DEFAULT_OVERHEADS = Overheads()
