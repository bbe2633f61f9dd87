"""The memory a model can use: GPUs (NVML, Apple unified memory) and system RAM, each overridable.

No GPU is a normal case: the list of GPUs is then empty and everything runs from RAM.
"""

from __future__ import annotations

import contextlib
import platform
import subprocess
from dataclasses import dataclass

import psutil

from ..format import parse_size

# macOS lets the GPU wire about this share of unified memory by default (recommendedMaxWorkingSetSize).
APPLE_GPU_SHARE = 0.75


@dataclass(frozen=True)
class Device:
    """One memory pool. `free_bytes` is what a new process can use; for planned hardware it equals total."""

    name: str
    kind: str  # "gpu" or "ram"
    backend: str  # "cuda", "metal" or "cpu"
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class Hardware:
    gpus: tuple[Device, ...]
    ram: Device
    source: str  # "detected", "override" or a mix, for display

    @property
    def unified(self) -> bool:
        return any(g.backend == "metal" for g in self.gpus)


def nvidia_gpus() -> list[Device]:
    """NVIDIA GPUs through NVML; an empty list when the driver or library is absent."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no NVIDIA GPU here
        return []
    gpus = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            gpus.append(Device(f"GPU {i}: {name}", "gpu", "cuda", int(mem.total), int(mem.free)))
    except Exception:
        return gpus
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return gpus


def apple_gpu(ram_total: int) -> list[Device]:
    if platform.system() != "Darwin" or platform.machine() != "arm64":
        return []
    total = ram_total
    try:
        out = subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True, timeout=2).stdout
        total = int(out.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    share = int(total * APPLE_GPU_SHARE)
    return [Device("Apple GPU (unified memory)", "gpu", "metal", share, share)]


def detect() -> Hardware:
    vm = psutil.virtual_memory()
    ram = Device("RAM", "ram", "cpu", int(vm.total), int(vm.available))
    gpus = nvidia_gpus() or apple_gpu(ram.total_bytes)
    return Hardware(tuple(gpus), ram, "detected")


def parse_sizes(text: str) -> list[int]:
    """'24GiB,12GiB' -> sizes; '0' or 'none' means no GPU. Raises ValueError with a one-line reason."""
    if text.strip().lower() in ("0", "none", ""):
        return []
    return [parse_size(part) for part in text.split(",")]


def hardware(vram: str | None = None, ram: str | None = None, detected: Hardware | None = None) -> Hardware:
    """Detected hardware with user overrides: `vram` replaces every GPU, `ram` replaces RAM."""
    base = detected or detect()
    gpus = base.gpus
    if vram is not None:
        backend = base.gpus[0].backend if base.gpus else "cuda"
        gpus = tuple(Device(f"GPU {i}", "gpu", backend, n, n) for i, n in enumerate(parse_sizes(vram)))
    ram_dev = base.ram
    if ram is not None:
        n = parse_size(ram)
        ram_dev = Device("RAM", "ram", "cpu", n, n)
    source = "override" if vram is not None or ram is not None else base.source
    return Hardware(gpus, ram_dev, source)
