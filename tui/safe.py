"""Outside text as a rich Text: cleaned of control characters (core.textsafe) and never parsed as
markup, for every cell, label, title, dialog and notification that shows a name, path or output."""

from __future__ import annotations

from rich.text import Text

from ..core.textsafe import clean, clean_path


def safe(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """`value` as a Text that no markup in it can style, link or break."""
    return Text(clean(value, multiline=multiline), style=style)


def safe_path(path: object, style: str = "") -> Text:
    return Text(clean_path(path), style=style)
