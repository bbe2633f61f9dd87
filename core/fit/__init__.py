"""Memory fit: how much VRAM and RAM a quant needs at a context, for one model or two."""

from __future__ import annotations

from .devices import Device, Hardware, detect, hardware
from .estimate import DeviceUse, FitError, FitResult, FitSettings, estimate
from .pair import PairResult, fit_pair
from .rules import DEFAULT_OVERHEADS, KV_TYPES, Overheads

__all__ = [
    "DEFAULT_OVERHEADS",
    "KV_TYPES",
    "Device",
    "DeviceUse",
    "FitError",
    "FitResult",
    "FitSettings",
    "Hardware",
    "Overheads",
    "PairResult",
    "detect",
    "estimate",
    "fit_pair",
    "hardware",
]
