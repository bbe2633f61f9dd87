"""A/B chat: two quants answer the same prompt greedily, side by side, with the damage measured."""

from __future__ import annotations

from .engine import ABEngine
from .plan import ContextRefused, Plan, check_context, plan_pair
from .session import ABSession, Turn
from .side import GenConfig, SideResult
from .template import TemplateError

__all__ = [
    "ABEngine",
    "ABSession",
    "ContextRefused",
    "GenConfig",
    "Plan",
    "SideResult",
    "TemplateError",
    "Turn",
    "check_context",
    "plan_pair",
]
