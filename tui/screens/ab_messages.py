"""Messages the A/B screen's workers post to it: loading status and the loaded session, the scoring
phase, a turn's end, and the outcome of checking a /ctx value. Each side's answer so far is not a
message: the screen reads the newest from its ABRun at each frame."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ...core.ab import ABSession, Turn


@dataclass
class Loaded(Message):
    """The A/B session is ready (each side may still carry its own load error)."""

    session: ABSession


@dataclass
class LoadStatus(Message):
    """What the engine is doing before it can answer, such as loading one side's model."""

    what: str
    side: str


@dataclass
class TurnDone(Message):
    """A turn ended: answered (and scored), or cancelled (`turn` is then part of the session only
    when it was kept as stopped: `turn.stopped`), or scored again when asked (`rescored`)."""

    turn: Turn | None
    cancelled: bool
    rescored: bool = False  # the last turn scored again when asked (/score)


@dataclass
class ContextChecked(Message):
    """The outcome of checking a /ctx value against training and memory: the context, or why not."""

    n_ctx: int | None
    error: str | None = None


@dataclass
class Scoring(Message):
    """Both answers are in; the worker is scoring them (KL divergence, teacher-forced both ways)."""

    n_tokens: int


@dataclass
class ScoringProgress(Message):
    """How far scoring has come: rows evaluated and in all (each model at each position of both
    answers); a newer one replaces an unhandled older one."""

    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ScoringProgress)
