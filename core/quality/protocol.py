"""What crosses the quality worker's socket: a Request (one Model method and its arguments) from the
app, and childproc's Ok or Err back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPS = ("load", "unload", "tokenize", "reference", "compare", "logits", "bench")


@dataclass(frozen=True)
class Request:
    """`op` (one of OPS) with its arguments."""

    op: str
    args: tuple[Any, ...] = ()
