"""quanttui's headless engine: everything the screens show, without importing Textual."""

from __future__ import annotations

# llama_cpp, when installed, is imported before any module below imports numpy (through gguf): a
# CUDA build segfaults otherwise. core/llama/ is the one place that imports it.
from .llama.lib import preload

preload()
