"""ggml's backend registry through ctypes: the devices llama.cpp sees and the extra buffer types of
its CPU backend (AMX, CPU_REPACK, KleidiAI...), with which weights each takes and at what size.

The placement question is asked the way llama.cpp's loader asks it (`weight_buft_supported` in
llama-model-loader.cpp): build the weight's op in a no-alloc context, give the weight an empty
buffer of the candidate type and ask the CPU device whether it supports the op. No kernel runs, so
this is safe in the app's process even where the extra buffers crash at the first decode.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .lib import lib

DEV_CPU, DEV_GPU, DEV_IGPU, DEV_ACCEL = 0, 1, 2, 3
DEV_KINDS = {DEV_CPU: "cpu", DEV_GPU: "gpu", DEV_IGPU: "igpu", DEV_ACCEL: "accel", 4: "meta"}
GGML_TYPE_F32, GGML_TYPE_I32 = 0, 26
OP_ROWS = 512  # the batch llama.cpp's loader builds each weight's test op with
_VP = ctypes.c_void_p
_SIZE_P = ctypes.POINTER(ctypes.c_size_t)


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", _VP), ("no_alloc", ctypes.c_bool)]


class _TensorHead(ctypes.Structure):
    """The first fields of `struct ggml_tensor` (ggml.h): its type, then its buffer."""

    _fields_ = [("type", ctypes.c_int), ("buffer", _VP)]


@dataclass(frozen=True)
class BackendDevice:
    name: str
    description: str
    kind: str  # cpu, gpu, igpu, accel
    total_bytes: int
    free_bytes: int


def _load() -> ctypes.CDLL:
    """libggml from llama-cpp-python's own folder (it brings ggml-base's symbols with it)."""
    folder = Path(lib().__file__).parent / "lib"
    names = {"linux": "libggml.so", "darwin": "libggml.dylib", "win32": "ggml.dll"}
    key = next((k for k in names if sys.platform.startswith(k)), "linux")
    candidates = [folder / names[key], folder / "libggml.so", folder / "libggml.dylib"]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise OSError(f"no ggml library in {folder}")
    g = ctypes.CDLL(str(path))
    sig: dict[str, tuple[Any, list[Any]]] = {
        "ggml_backend_dev_count": (ctypes.c_size_t, []),
        "ggml_backend_dev_get": (_VP, [ctypes.c_size_t]),
        "ggml_backend_dev_by_type": (_VP, [ctypes.c_int]),
        "ggml_backend_dev_name": (ctypes.c_char_p, [_VP]),
        "ggml_backend_dev_description": (ctypes.c_char_p, [_VP]),
        "ggml_backend_dev_type": (ctypes.c_int, [_VP]),
        "ggml_backend_dev_memory": (None, [_VP, _SIZE_P, _SIZE_P]),
        "ggml_backend_dev_backend_reg": (_VP, [_VP]),
        "ggml_backend_dev_supports_op": (ctypes.c_bool, [_VP, _VP]),
        "ggml_backend_reg_count": (ctypes.c_size_t, []),
        "ggml_backend_reg_get": (_VP, [ctypes.c_size_t]),
        "ggml_backend_reg_name": (ctypes.c_char_p, [_VP]),
        "ggml_backend_reg_get_proc_address": (_VP, [_VP, ctypes.c_char_p]),
        "ggml_backend_buft_name": (ctypes.c_char_p, [_VP]),
        "ggml_backend_buft_get_alignment": (ctypes.c_size_t, [_VP]),
        "ggml_backend_buft_get_alloc_size": (ctypes.c_size_t, [_VP, _VP]),
        "ggml_backend_buft_alloc_buffer": (_VP, [_VP, ctypes.c_size_t]),
        "ggml_backend_buffer_free": (None, [_VP]),
        "ggml_init": (_VP, [_InitParams]),
        "ggml_free": (None, [_VP]),
        "ggml_tensor_overhead": (ctypes.c_size_t, []),
        "ggml_new_tensor_4d": (_VP, [_VP, ctypes.c_int] + [ctypes.c_int64] * 4),
        "ggml_mul_mat": (_VP, [_VP, _VP, _VP]),
        "ggml_mul_mat_id": (_VP, [_VP, _VP, _VP, _VP]),
        "ggml_nbytes": (ctypes.c_size_t, [_VP]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(g, name)
        fn.restype, fn.argtypes = res, args
    return g


@functools.lru_cache(maxsize=1)
def ggml() -> ctypes.CDLL:
    return _load()


def _text(p: bytes | None) -> str:
    return p.decode("utf-8", errors="replace") if p else ""


def devices() -> list[BackendDevice]:
    """Every device ggml has registered (CPU, each GPU, accelerators), with free and total memory."""
    g = ggml()
    out = []
    for i in range(g.ggml_backend_dev_count()):
        dev = g.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        g.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        kind = DEV_KINDS.get(g.ggml_backend_dev_type(dev), "other")
        out.append(
            BackendDevice(
                _text(g.ggml_backend_dev_name(dev)),
                _text(g.ggml_backend_dev_description(dev)),
                kind,
                int(total.value),
                int(free.value),
            )
        )
    return out


def backends() -> list[str]:
    """The backends compiled in and registered: CPU, CUDA, Metal, Vulkan, RPC..."""
    g = ggml()
    regs = (g.ggml_backend_reg_get(i) for i in range(g.ggml_backend_reg_count()))
    return [_text(g.ggml_backend_reg_name(reg)) for reg in regs]


@functools.lru_cache(maxsize=1)
def _extra_bufts() -> tuple[tuple[str, int], ...]:
    g = ggml()
    cpu = g.ggml_backend_dev_by_type(DEV_CPU)
    if not cpu:
        return ()
    reg = g.ggml_backend_dev_backend_reg(cpu)
    addr = g.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_dev_get_extra_bufts")
    if not addr:
        return ()
    get = ctypes.CFUNCTYPE(ctypes.POINTER(_VP), _VP)(addr)
    arr = get(cpu)
    out: list[tuple[str, int]] = []
    i = 0
    while arr and arr[i]:
        out.append((_text(g.ggml_backend_buft_name(arr[i])), int(arr[i])))
        i += 1
    return tuple(out)


def extra_buffer_types() -> list[str]:
    """The CPU backend's extra buffer types on this build and CPU, in llama.cpp's order of preference."""
    return [name for name, _ in _extra_bufts()]


@functools.lru_cache(maxsize=4096)
def placement(type_id: int, ne0: int, ne1: int, ne2: int = 1) -> tuple[str, int] | None:
    """The extra buffer a weight of this type and shape goes to when llama.cpp loads it on the CPU
    with extra buffers on, and the bytes it takes there (aligned); None: the plain CPU buffer.
    ne2 > 1 is a stack of experts (MUL_MAT_ID), else a matrix (MUL_MAT)."""
    bufts = _extra_bufts()
    if not bufts:
        return None
    g = ggml()
    cpu = g.ggml_backend_dev_by_type(DEV_CPU)
    ctx = g.ggml_init(_InitParams(g.ggml_tensor_overhead() * 8, None, True))
    if not ctx:
        raise MemoryError("ggml_init failed")
    try:
        w = g.ggml_new_tensor_4d(ctx, type_id, ne0, ne1, ne2, 1)
        if ne2 > 1:
            used = min(ne2, 8)
            b = g.ggml_new_tensor_4d(ctx, GGML_TYPE_F32, ne0, used, OP_ROWS, 1)
            ids = g.ggml_new_tensor_4d(ctx, GGML_TYPE_I32, used, OP_ROWS, 1, 1)
            op = g.ggml_mul_mat_id(ctx, w, b, ids)
        else:
            b = g.ggml_new_tensor_4d(ctx, GGML_TYPE_F32, ne0, OP_ROWS, 1, 1)
            op = g.ggml_mul_mat(ctx, w, b)
        head = _TensorHead.from_address(w)
        for name, buft in bufts:
            head.buffer = g.ggml_backend_buft_alloc_buffer(buft, 0)
            try:
                ok = g.ggml_backend_dev_supports_op(cpu, op)
            finally:
                g.ggml_backend_buffer_free(head.buffer)
                head.buffer = None
            if ok:
                size = g.ggml_backend_buft_get_alloc_size(buft, w)
                align = g.ggml_backend_buft_get_alignment(buft) or 1
                return name, -(-int(size) // align) * align
        return None
    finally:
        g.ggml_free(ctx)
