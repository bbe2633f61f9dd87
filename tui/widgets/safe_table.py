"""A DataTable that shows every cell, label and column header as literal, cleaned text.

DataTable parses a str cell as Rich markup: a file named `a[/]b.gguf` would crash the table and
`[link=...]` would plant a link. Every table that shows names, Hub ids or header values is a SafeTable,
so no caller can pass outside text to the markup parser by mistake.
"""

from __future__ import annotations

from typing import Any, cast

from rich.text import Text
from textual.widgets import DataTable

from ..safe import cell


class SafeTable(DataTable[Any]):
    """DataTable whose str cells, row labels and column labels are cleaned Text, never markup."""

    def add_row(self, *cells: Any, height: int | None = 1, key: str | None = None, label: Any = None) -> Any:
        return super().add_row(
            *(cell(c) for c in cells), height=height, key=key, label=None if label is None else _text(label)
        )

    def update_cell(self, row_key: Any, column_key: Any, value: Any, *, update_width: bool = False) -> None:
        super().update_cell(row_key, column_key, cell(value), update_width=update_width)

    def add_column(
        self, label: Any, *, width: int | None = None, key: str | None = None, default: Any = None
    ) -> Any:
        return super().add_column(
            _text(label), width=width, key=key, default=None if default is None else cell(default)
        )


def _text(label: Any) -> str | Text:
    """`cell(label)` for a row or column label, which DataTable takes as str or Text: `cell` gives a str or
    Text back as a cleaned Text (its declared `object` covers the other renderables it passes through)."""
    return cast("str | Text", cell(label))
