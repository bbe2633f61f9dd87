"""How eval and bench load a model: threads as llama-bench counts them, GPU layers as fit plans them."""

from __future__ import annotations

import os
from typing import Any

import psutil

from ..fit import FitError, FitSettings, detect, estimate
from ..llama import LlamaUnavailable, lib


def default_threads() -> int:
    """Physical cores, llama-bench's default (llama-cpp-python's would be half the logical CPUs)."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def gpu_layers(facts: dict[str, Any] | None, n_ctx: int) -> int:
    """Layers to offload at this context: 0 without a GPU build, else fit's largest that fits."""
    try:
        if not lib().llama_supports_gpu_offload():
            return 0
    except LlamaUnavailable:
        return 0
    if not facts:
        return 0
    try:
        return estimate(facts, FitSettings(n_ctx=n_ctx), detect(), search=False).gpu_layers
    except (FitError, ValueError, TypeError, KeyError):
        return 0
