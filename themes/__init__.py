"""quanttui's own Textual themes, registered on the app at mount."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.theme import Theme

if TYPE_CHECKING:
    from textual.app import App

QUANT_DARK = Theme(
    name="quanttui-dark",
    primary="#5FB3B3",
    secondary="#C594C5",
    accent="#F9AE58",
    warning="#F9AE58",
    error="#EC5F66",
    success="#99C794",
    foreground="#D8DEE9",
    background="#1B2B34",
    surface="#22333D",
    panel="#2B3E4A",
    dark=True,
)

QUANT_LIGHT = Theme(
    name="quanttui-light",
    primary="#1F6F8B",
    secondary="#7A4B94",
    accent="#B8570E",
    warning="#A86A00",
    error="#B3261E",
    success="#2E7D32",
    foreground="#10181C",  # dark enough that dimmed text keeps a 3:1 contrast (tests/tui/test_themes.py)
    background="#F7F5EF",
    surface="#EEEBE2",
    panel="#E2DED2",
    dark=False,
    variables={"text-muted": "#555B5E", "text-disabled": "#666B6D"},
)

THEMES = (QUANT_DARK, QUANT_LIGHT)


def register_themes(app: App[Any]) -> None:
    for theme in THEMES:
        app.register_theme(theme)


def other_theme(name: str) -> str:
    """The theme to switch to from `name`: dark to light and back."""
    return QUANT_LIGHT.name if name == QUANT_DARK.name else QUANT_DARK.name
