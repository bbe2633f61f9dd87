"""A/B chat: two quants answer the same prompt greedily, side by side, with the damage measured."""

from __future__ import annotations

from .engine import ABEngine, GenConfig, SideResult
from .session import ABSession, Plan, Turn, plan_pair

__all__ = ["ABEngine", "ABSession", "GenConfig", "Plan", "SideResult", "Turn", "plan_pair"]
