"""What cross-scoring keeps between turns: per side, the tokens both models have already decoded
teacher-forced and each model's KV cache for them, so a chat's next turn decodes only what is new.

Without it every turn decodes the whole conversation again, four times (each model on each side's
answer): on Gemma 3 270M (CPU, 2 cores, 192-token answers) scoring took 76% of generation's time on
the first turn and 97% on the fourth. Both models of a side always resume from the same prefix,
and every position was decoded in a whole block (scoring.BLOCK), so a resumed turn scores exactly
as one decoded from the start, and a model against itself still scores 0.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from ..llama import lib
from .metrics import first_divergence

BUDGET = 512 * 2**20  # bytes of KV kept in all; a longer conversation is decoded again instead
RAM_SHARE = 8  # and never more than an eighth of the memory available when it is kept


def keeps_prefixes(llm: Any) -> bool:
    """Whether a model's cache can be cut back to a prefix (not so for recurrent state)."""
    llama_cpp = lib()

    model = llm._model.model
    return not (llama_cpp.llama_model_is_recurrent(model) or llama_cpp.llama_model_is_hybrid(model))


def window(llm: Any) -> int:
    """The model's sliding attention window in positions (0: none)."""
    llama_cpp = lib()

    return max(0, int(llama_cpp.llama_model_n_swa(llm._model.model)))


def resumable(saved: int, window: int) -> bool:
    """Whether a sequence saved with `saved` positions can be put back and cut back. llama.cpp
    saves a sliding-window cache without the positions already out of the window, and such a
    sequence put back scores differently from one decoded from the start (Gemma 3 270M, 512-position
    window: up to 1.5 in a logit, 0.39 even with nothing cut); one that fits the window is exact."""
    return not window or saved <= window


def save_seq(llm: Any) -> Any:
    """A copy of the model's KV cache for sequence 0 (a ctypes byte array), or None."""
    llama_cpp = lib()

    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    if not size:
        return None
    buf = (ctypes.c_uint8 * size)()
    return buf if llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0) == size else None


def load_seq(llm: Any, state: Any, keep: int) -> bool:
    """Put a saved sequence back and drop its positions from `keep` on; False (and an empty cache)
    where the model refuses either step, as a recurrent model does for a partial removal."""
    llama_cpp = lib()

    ctx = llm._ctx
    ctx.kv_cache_clear()
    if not llama_cpp.llama_state_seq_set_data(ctx.ctx, state, len(state), 0) or not ctx.kv_cache_seq_rm(
        0, keep, -1
    ):
        ctx.kv_cache_clear()
        return False
    return True


@dataclass
class _Side:
    tokens: list[int]
    states: dict[str, Any] = field(default_factory=dict)  # model name -> saved sequence


class KeptPrefixes:
    """Per side, the decoded tokens and both models' saved sequences for them."""

    def __init__(self, budget: int = BUDGET) -> None:
        self.budget = budget
        self._sides: dict[str, _Side] = {}

    def resume_at(
        self, side: str, tokens: Sequence[int], limit: int, models: Sequence[str], window: int = 0
    ) -> int:
        """How many leading tokens of `tokens` (at most `limit`) every model in `models` can take
        from what was kept for `side`; 0 when nothing can be (`window`: see `resumable`)."""
        kept = self._sides.get(side)
        if kept is None or not resumable(len(kept.tokens), window):
            return 0
        if any(m not in kept.states for m in models):
            return 0
        shared = first_divergence(kept.tokens, tokens)
        return min(len(kept.tokens) if shared is None else shared, limit)

    def state(self, side: str, model: str) -> Any:
        return self._sides[side].states[model]

    def keep(self, side: str, tokens: Sequence[int], states: dict[str, Any]) -> None:
        """Keep both models' sequences for `tokens`, unless that would pass the budget or take
        more than a share of the memory available now."""
        self._sides.pop(side, None)
        if not states or any(s is None for s in states.values()):
            return
        held = sum(len(s) for k in self._sides.values() for s in k.states.values())
        limit = min(self.budget, psutil.virtual_memory().available // RAM_SHARE)
        if held + sum(len(s) for s in states.values()) <= limit:
            self._sides[side] = _Side(list(tokens), dict(states))
