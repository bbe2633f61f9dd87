"""Outside text as a rich Text: cleaned of control characters (core.textsafe) and never parsed as
markup, for every cell, label, title, dialog and notification that shows a name, path or output."""

from __future__ import annotations

from rich.text import Text

from ..core.textsafe import clean, clean_path


def safe(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """`value` as a Text that no markup in it can style, link or break."""
    return Text(clean(value, multiline=multiline), style=style)


def safe_path(path: object, style: str = "") -> Text:
    """A path as a one-line Text, undecodable bytes and controls shown as escapes."""
    return Text(clean_path(path), style=style)


def cell(value: object) -> object:
    """A table cell or label that is safe to show: a str becomes a cleaned Text (never markup); a Text
    whose plain text holds control characters is rebuilt cleaned with its base style; other
    renderables (built from safe pieces) pass as they are."""
    if isinstance(value, Text):
        cleaned = clean(value.plain, multiline=True)
        if cleaned == value.plain:
            return value
        return Text(cleaned, style=value.style, justify=value.justify)
    if isinstance(value, str):
        return Text(clean(value))
    return value
