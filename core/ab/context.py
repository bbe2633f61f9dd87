"""What an A/B pair starts with, read from the two files' headers before either loads: each side's
name, trained context and chat template, the mode and the context both get unless told otherwise.
A context asked for is bounded by plan.check_context (training, and what fits in memory)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..modelfile import GGUFError, inspect_file


@dataclass
class SideFacts:
    """One side's file before it loads: its name, its trained context and whether it has a chat
    template (None where the header cannot be read)."""

    name: str
    trained: int | None
    has_template: bool | None
    path: str = field(default="", compare=False)
    # The header's facts (modelfile's to_dict, as the Library holds them), for the fit estimator;
    # None where the header cannot be read.
    facts: dict[str, Any] | None = field(default=None, compare=False, repr=False)


def facts_of(path: str, facts: dict[str, Any] | None, name: str | None = None) -> SideFacts:
    """One side from facts already read (a LibraryEntry's), without reading the header again."""
    name = name or Path(path).name
    if facts is None:
        return SideFacts(name, None, None, path, None)
    trained = facts.get("context_length")
    trained = trained if isinstance(trained, int) and not isinstance(trained, bool) and trained > 0 else None
    return SideFacts(name, trained, bool(facts.get("has_chat_template")), path, facts)


def side_facts(path: str) -> SideFacts:
    """The facts of one side, read from its header; an unreadable file reports its error on load."""
    try:
        facts = inspect_file(path).to_dict()
    except (GGUFError, OSError):
        facts = None
    return facts_of(path, facts)


def default_mode(sides: Mapping[str, SideFacts]) -> str:
    """Chat when both sides have a chat template, completion otherwise."""
    return "chat" if all(s.has_template for s in sides.values()) else "completion"


def default_ctx(sides: Mapping[str, SideFacts], default: int) -> int:
    """`default`, or less when either model was trained for less."""
    return min([default, *(s.trained for s in sides.values() if s.trained)])
