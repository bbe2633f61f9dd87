"""The memory a model can use: GPUs (NVML, Apple unified memory) and system RAM, each overridable.

No GPU is a normal case: the list of GPUs is then empty and everything runs from RAM.
"""

from __future__ import annotations

import contextlib
import os
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


def cuda_visible(value: str | None, uuids: list[str]) -> list[int] | None:
    """NVML indices of the GPUs CUDA will show, in CUDA's order, from CUDA_VISIBLE_DEVICES (None when
    unset: all of them). Entries are indices or GPU UUIDs (a unique prefix is enough); like CUDA, the
    list ends at the first entry that names no GPU or one already listed. Indices follow PCI bus
    order, as NVML's do: quanttui's model process sets CUDA_DEVICE_ORDER=PCI_BUS_ID to match."""
    if value is None:
        return None
    out: list[int] = []
    for entry in (e.strip() for e in value.split(",")):
        if entry.isdigit():
            i = int(entry)
        else:
            hits = [k for k, u in enumerate(uuids) if entry and u.startswith(entry)]
            i = hits[0] if len(hits) == 1 else -1
        if not 0 <= i < len(uuids) or i in out:
            break
        out.append(i)
    return out


def nvidia_gpus() -> list[Device]:
    """NVIDIA GPUs through NVML, as CUDA will number them; an empty list without a driver or library."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no NVIDIA GPU here
        return []
    found: list[tuple[str, str, int, int]] = []  # uuid, name, total, free
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name, uuid = pynvml.nvmlDeviceGetName(handle), pynvml.nvmlDeviceGetUUID(handle)
            name = name.decode() if isinstance(name, bytes) else name
            uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
            found.append((uuid, name, int(mem.total), int(mem.free)))
    except Exception:
        pass
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    order = cuda_visible(os.environ.get("CUDA_VISIBLE_DEVICES"), [f[0] for f in found])
    shown = [found[i] for i in order] if order is not None else found
    return [Device(f"GPU {k}: {n}", "gpu", "cuda", size, free) for k, (_, n, size, free) in enumerate(shown)]


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
