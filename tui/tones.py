"""Colours by role (warning, success, error, primary) from the app's current theme, for Rich text that
cannot use CSS variables: fixed ANSI colours such as yellow are unreadable on the light theme."""

from __future__ import annotations

from textual.dom import DOMNode

_FALLBACK = {"warning": "yellow", "success": "green", "error": "red", "primary": "cyan", "accent": "magenta"}


def tone(node: DOMNode, role: str) -> str:
    """The current theme's colour for `role`, or the ANSI colour of that role without a theme."""
    theme = node.app.current_theme
    return getattr(theme, role, None) or _FALLBACK[role]
