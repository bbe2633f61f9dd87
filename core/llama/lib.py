"""Importing llama-cpp-python: once, before numpy, and nowhere else in quanttui.

A CUDA build of llama-cpp-python segfaults at tokenizer load when numpy was imported before it (seen
on an H100: shared/notes/facts.md), and every other core module imports numpy through gguf, so
`quanttui.core` imports this module first. Every other use of llama.cpp goes through `lib()`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from types import ModuleType
from typing import Any

from ..errors import QuanttuiError

# CUDA numbers GPUs fastest first unless told otherwise; NVML, which fit reads, numbers them by PCI
# bus. Make CUDA agree, here and in the model processes this one starts, so "GPU 1" is one GPU.
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")

_module: ModuleType | None = None
_error: str | None = None
_lock = threading.Lock()


class LlamaUnavailable(QuanttuiError, RuntimeError):
    """llama-cpp-python is not installed or its library does not load; str() says which."""


def preload() -> None:
    """Import llama_cpp now if it is installed (before numpy); a failure is kept for `lib()` to say."""
    global _module, _error
    with _lock:
        if _module is not None or _error is not None:
            return
        try:
            import llama_cpp

            _module = llama_cpp
        except ImportError as e:
            _error = f"llama-cpp-python is not installed ({e})"
        except OSError as e:  # the package is there but its shared library does not load
            _error = f"llama.cpp's library does not load ({e})"


def lib() -> Any:
    """The llama_cpp module; LlamaUnavailable when it cannot be imported."""
    preload()
    if _module is None:
        raise LlamaUnavailable(_error or "llama-cpp-python is not available")
    return _module


def available() -> bool:
    preload()
    return _module is not None


def chat_format_module() -> Any:
    """llama_cpp.llama_chat_format, whose formatter the loader keeps from compiling templates."""
    import llama_cpp.llama_chat_format as formats

    return formats


def low_level() -> Any:
    """llama_cpp.llama_cpp, the ctypes bindings `Llama` calls (patched for a load's own parameters)."""
    import llama_cpp.llama_cpp as bindings

    return bindings


def version() -> str:
    with contextlib.suppress(LlamaUnavailable):
        return str(getattr(lib(), "__version__", "?"))
    return "not installed"
