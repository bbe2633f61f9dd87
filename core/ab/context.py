"""What an A/B pair starts with, read from the two files' headers before either loads: each side's
name, trained context and chat template, the mode and the context both get unless told otherwise.
A context asked for is bounded by plan.check_context (training, and what fits in memory)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..modelfile import GGUFError, inspect_file


@dataclass
class SideFacts:
    """One side's file before it loads: its name, its trained context and whether it has a chat
    template (None where the header cannot be read)."""

    name: str
    trained: int | None
    has_template: bool | None


def side_facts(path: str) -> SideFacts:
    """The facts of one side, read from its header; an unreadable file reports its error on load."""
    name = Path(path).name
    try:
        f = inspect_file(path)
    except (GGUFError, OSError):
        return SideFacts(name, None, None)
    trained = f.context_length if isinstance(f.context_length, int) and f.context_length > 0 else None
    return SideFacts(name, trained, bool(f.has_chat_template))


def default_mode(sides: Mapping[str, SideFacts]) -> str:
    """Chat when both sides have a chat template, completion otherwise."""
    return "chat" if all(s.has_template for s in sides.values()) else "completion"


def default_ctx(sides: Mapping[str, SideFacts], default: int) -> int:
    """`default`, or less when either model was trained for less."""
    return min([default, *(s.trained for s in sides.values() if s.trained)])
