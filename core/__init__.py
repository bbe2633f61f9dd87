"""quanttui's headless engine: everything the screens show, without importing Textual."""

from __future__ import annotations

import contextlib
import os

# CUDA numbers GPUs fastest first unless told otherwise; NVML, which fit reads, numbers them by PCI
# bus. Make CUDA agree, here and in the model process this one starts, so "GPU 1" is one GPU.
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")

# A CUDA build of llama-cpp-python segfaults at tokenizer load when numpy was imported before it
# (seen on an H100: shared/notes/facts.md, and bench/ab.py --gpu here). Every module below imports
# numpy through gguf, so llama_cpp, when installed, is imported first.
with contextlib.suppress(ImportError):
    import llama_cpp  # noqa: F401
