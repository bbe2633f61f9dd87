"""The library: every GGUF on the machine, across the stores of the tools that keep them."""

from __future__ import annotations

from .roots import Root, active_roots, add_root, all_roots, default_roots, remove_root
from .scan import LibraryEntry, index_path, scan

__all__ = [
    "LibraryEntry",
    "Root",
    "active_roots",
    "add_root",
    "all_roots",
    "default_roots",
    "index_path",
    "remove_root",
    "scan",
]
