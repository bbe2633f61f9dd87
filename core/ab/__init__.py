"""A/B chat: two quants answer the same prompt greedily, side by side, with the damage measured."""

from __future__ import annotations

from .config import DEFAULT_CTX, DEFAULT_MAX_TOKENS, GenConfig, starting_config
from .engine import ABEngine, Engine
from .plan import ContextRefused, Plan, check_context, plan_pair
from .session import ABSession, Turn
from .side import SideResult
from .template import TemplateError

__all__ = [
    "DEFAULT_CTX",
    "DEFAULT_MAX_TOKENS",
    "ABEngine",
    "ABSession",
    "ContextRefused",
    "Engine",
    "GenConfig",
    "Plan",
    "SideResult",
    "TemplateError",
    "Turn",
    "check_context",
    "plan_pair",
    "starting_config",
]
