"""quanttui's headless engine: everything the screens show, without importing Textual.

Importing it imports nothing heavy: `quanttui ls` and `quanttui --help` never load llama.cpp. A process
that loads models imports llama_cpp before numpy (a CUDA build segfaults at tokenizer load otherwise,
shared/notes/facts.md) through `core.llama.preload()`, the boundary: `quanttui`'s main() does so for
the TUI and the commands that load models, and here for a module of core run as a program (the model
workers, `python -m quanttui.core.ab.worker`), whose own package imports numpy before its code runs.
"""

from __future__ import annotations

import os
import sys

# CUDA numbers GPUs fastest first unless told otherwise; NVML, which fit reads, numbers them by PCI bus.
# Set before anything loads CUDA, here and in every process this one starts (core/llama/lib.py too).
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")

# While `python -m` locates its module, sys.argv[0] is "-m" (the Python docs): core is then being
# imported as a parent of that module, i.e. a worker or probe of core is starting.
if sys.argv[:1] == ["-m"]:
    from .llama.lib import preload

    preload()
