"""What both sides of an A/B pair share, and where each setting starts: one place for the CLI
(`quanttui ab`) and the A/B screen alike. The mode and context a pair starts with come from the two
files' facts (context.py): chat when both have a chat template, and DEFAULT_CTX or less when either
model was trained for less."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .context import SideFacts, default_ctx, default_mode
from .template import RENDER_SECONDS

DEFAULT_CTX = 4096  # the context both models load with unless told otherwise (or trained for less)
DEFAULT_MAX_TOKENS = 256  # the longest answer, unless told otherwise
MODES = ("chat", "completion")
FRAME = 1 / 12  # the fastest a screen redraws streaming answers: the worker sends no more often


@dataclass
class GenConfig:
    """Settings both sides share, so any difference comes from the weights."""

    mode: str = "chat"  # "chat" uses each model's own template; "completion" sends raw text
    max_tokens: int = DEFAULT_MAX_TOKENS
    n_ctx: int = DEFAULT_CTX
    system: str | None = None
    stop: list[str] = field(default_factory=list)
    stop_on_loop: bool = False
    flash_attn: bool = False
    # Seconds between streamed updates of a side (0: every token). A screen that draws a few
    # frames a second sets it, so the worker process does not send it every token.
    stream_every: float = 0.0
    template_seconds: float = RENDER_SECONDS  # the longest a chat template may take to render
    # A chat template for the sides whose file has none ("borrowed"): llama.cpp's built-in one of
    # this name, or, with `template_source`, a Jinja template (from a file; this is its name),
    # rendered in the same sandbox as a file's own.
    template_name: str | None = None
    template_source: str | None = None


def starting_config(
    sides: Mapping[str, SideFacts],
    *,
    mode: str | None = None,
    n_ctx: int | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    system: str | None = None,
    stop_on_loop: bool = False,
    stream_every: float = 0.0,
) -> GenConfig:
    """The settings a pair starts with: what was asked, else the defaults for these two files."""
    return GenConfig(
        mode=mode or default_mode(sides),
        max_tokens=max_tokens,
        n_ctx=default_ctx(sides, DEFAULT_CTX) if n_ctx is None else n_ctx,
        system=system,
        stop_on_loop=stop_on_loop,
        stream_every=stream_every,
    )
