"""A/B chat: two quants answer the same prompt greedily, side by side, with the damage measured."""

from __future__ import annotations

from .engine import ABEngine, GenConfig, SideResult
from .plan import Plan, plan_pair
from .session import ABSession, Turn

__all__ = ["ABEngine", "ABSession", "GenConfig", "Plan", "SideResult", "Turn", "plan_pair"]
