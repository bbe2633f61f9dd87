"""The one boundary between quanttui and llama.cpp: importing it, its log, every load's parameters
(extra buffers included), quantizing, and what this build and machine offer. Nothing else in
quanttui, its tests included, imports llama_cpp."""

from __future__ import annotations

from .lib import LlamaUnavailable, available, lib, preload, version
from .load import FTYPES, load, quantize, system_info
from .log import LlamaLogCapture, captured

__all__ = [
    "FTYPES",
    "LlamaLogCapture",
    "LlamaUnavailable",
    "available",
    "captured",
    "lib",
    "load",
    "preload",
    "quantize",
    "system_info",
    "version",
]
