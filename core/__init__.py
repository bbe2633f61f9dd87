"""quanttui's headless engine: everything the screens show, without importing Textual."""

from __future__ import annotations

import contextlib

# A CUDA build of llama-cpp-python segfaults at tokenizer load when numpy was imported before it
# (seen on an H100: shared/notes/facts.md, and bench/ab.py --gpu here). Every module below imports
# numpy through gguf, so llama_cpp, when installed, is imported first.
with contextlib.suppress(ImportError):
    import llama_cpp  # noqa: F401
