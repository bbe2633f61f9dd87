"""What crosses the A/B worker's socket, typed: requests from the app, events streamed back before
the reply (childproc.Ok or Err), and the two controls a run or a scoring heeds at once (Cancel,
StopLoops). Answers go one way only: the worker keeps each turn it ran and scores it when the app
asks for `Score(turn)`; a fresh worker (after a crash) is handed the turn once with `Hold`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..childproc import Close
from .config import GenConfig
from .side import SideResult

__all__ = [
    "Cancel",
    "Close",
    "Describe",
    "Hold",
    "Load",
    "Loaded",
    "Placement",
    "Progress",
    "Render",
    "Run",
    "SameTokenizer",
    "Score",
    "SideDone",
    "Status",
    "StopLoops",
    "Tokens",
]


@dataclass
class Placement:
    """Where the pair loads: one model at a time or both, GPU layers per side, a GPU of its own per
    side (two or more GPUs), and the sides known to break (a crash at load): never loaded."""

    sequential: bool = False
    gpu_layers: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    main_gpu: dict[str, int] | None = None
    failed: dict[str, str] = field(default_factory=dict)


# requests -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """Load both models (closing any loaded); replies (errors per side, same tokenizer)."""

    paths: dict[str, str]
    cfg: GenConfig
    placement: Placement


@dataclass(frozen=True)
class Run:
    """Both sides answer; the worker keeps the answers as turn `turn`. Replies both SideResults."""

    turn: int
    messages: dict[str, list[dict[str, str]]]
    cfg: GenConfig  # settings like max tokens can change between turns


@dataclass(frozen=True)
class Score:
    """Cross-score turn `turn`, which the worker holds; replies (Scores | None, Scores | None)."""

    turn: int


@dataclass(frozen=True)
class Hold:
    """A turn's answers for a worker that did not run it (a fresh one after a crash)."""

    turn: int
    results: dict[str, SideResult]


@dataclass(frozen=True)
class Loaded:
    """Replies the sides loaded now."""


@dataclass(frozen=True)
class Describe:
    """Replies each loaded model's n_ctx and n_vocab."""


@dataclass(frozen=True)
class SameTokenizer:
    """Replies whether both models (each loaded at least once) tokenize alike."""


# controls: acted on at once, no reply ---------------------------------------------------------------


@dataclass(frozen=True)
class Cancel:
    """Stop the run or the scoring under way (at its next token or batch)."""


@dataclass(frozen=True)
class StopLoops:
    """Stop now a side whose answer ends in a loop; the other goes on."""


# events -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """What the engine is doing before it can answer: ("loading", side)."""

    what: str
    side: str


@dataclass(frozen=True)
class Render:
    """A side's chat template starts (True) or has finished (False) rendering."""

    side: str
    started: bool


@dataclass(frozen=True)
class Tokens:
    """New tokens of a side: their ids and the text they add (`replace`: the whole text, after a stop
    string was cut from the end)."""

    side: str
    ids: list[int]
    text: str
    replace: bool = False


@dataclass(frozen=True)
class SideDone:
    """A side has finished its answer."""

    result: SideResult


@dataclass(frozen=True)
class Progress:
    """Scoring's rows evaluated and in all."""

    done: int
    total: int
