"""GGUF files: a fast header reader and the model and quant facts derived from it."""

from __future__ import annotations

from .errors import CorruptError, GGUFError, NeedMoreData, NotGGUFError, TruncatedError
from .facts import ModelFacts, inspect_file, summarize, unloadable_reason
from .reader import Header, TensorInfo, parse_header, read_header

__all__ = [
    "CorruptError",
    "GGUFError",
    "Header",
    "ModelFacts",
    "NeedMoreData",
    "NotGGUFError",
    "TensorInfo",
    "TruncatedError",
    "inspect_file",
    "parse_header",
    "read_header",
    "summarize",
    "unloadable_reason",
]
