"""The Library table: one row per model file, quants of one model grouped under a header row."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from rich.text import Text

from ...core import format as fmt
from ...core.library import LibraryEntry
from ..safe import safe
from .safe_table import SafeTable

COLUMNS = (
    ("model", "Model"),
    ("arch", "Arch"),
    ("params", "Params"),
    ("quant", "Quant"),
    ("bpw", "BPW"),
    ("size", "Size"),
    ("fit", "Fit"),
    ("imatrix", "imatrix"),
    ("store", "Store"),
)
SORTS: dict[str, Callable[[LibraryEntry], Any]] = {
    "model": lambda e: e.name.lower(),
    "arch": lambda e: str(e.fact("architecture") or ""),
    "params": lambda e: e.fact("parameters") or 0,
    "quant": lambda e: e.quant or "",
    "bpw": lambda e: e.fact("bpw") or 0.0,
    "size": lambda e: e.size_bytes,
    "fit": lambda e: e.size_bytes,  # a smaller file fits more easily at the same settings
    "imatrix": lambda e: bool(e.fact("imatrix")),
    "store": lambda e: e.store,
}
GROUP_PREFIX = "group:"


def matches(entry: LibraryEntry, query: str) -> bool:
    """Every word of the query appears in the entry's name, group, architecture, quant or store."""
    hay = " ".join(
        str(x)
        for x in (
            entry.name,
            entry.group_label,
            entry.fact("architecture"),
            entry.quant,
            entry.store,
            entry.path,
            "error" if entry.error else "",
        )
    ).lower()
    return all(word in hay for word in query.lower().split())


def arrange(entries: list[LibraryEntry], sort: str, reverse: bool) -> list[list[LibraryEntry]]:
    """Groups of entries, sorted inside each group; groups follow their first member's order."""
    key = SORTS[sort]
    groups: dict[str, list[LibraryEntry]] = {}
    for e in entries:
        groups.setdefault(e.group, []).append(e)
    if sort == "model":
        # The quant ladder: most bits first, groups alphabetically, unreadable files last.
        ordered = [
            sorted(g, key=lambda e: (e.error is not None, -(e.fact("bpw") or 0), e.name))
            for g in groups.values()
        ]
        ordered.sort(key=lambda g: g[0].group_label.lower(), reverse=reverse)
        ordered.sort(key=lambda g: all(e.error for e in g))
        return ordered
    ordered = [sorted(g, key=key, reverse=reverse) for g in groups.values()]
    ordered.sort(key=lambda g: key(g[0]), reverse=reverse)
    ordered.sort(key=lambda g: all(e.error for e in g))  # stable: unreadable groups last either way
    return ordered


class ModelTable(SafeTable):
    """Rows keyed by file path; group header rows keyed `group:KEY`; names shown cleaned, never as markup."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for key, label in COLUMNS:
            self.add_column(f"{label}  ", key=key)  # room for the sort arrow

    def show(
        self,
        groups: list[list[LibraryEntry]],
        fits: dict[str, Text],
        keep: str | None = None,
        marks: list[str] | None = None,
    ) -> None:
        """Fill the table; `fits` holds each path's Fit cell at the current fit settings."""
        self.clear()
        for group in groups:
            count = len(group)
            title = safe(group[0].group_label, style="bold")
            title.append(f"  {count} quant{'s' if count != 1 else ''}", style="dim")
            self.add_row(title, *[""] * (len(COLUMNS) - 1), key=GROUP_PREFIX + group[0].group)
            for i, e in enumerate(group):
                cells = self._cells(e, fits.get(e.path, Text("")), last=i == count - 1)
                if marks and e.path in marks:
                    i = marks.index(e.path)
                    cells[0] = Text(f"{'AB'[i] if i < 2 else '•'} ", style="bold reverse") + cells[0]
                self.add_row(*cells, key=e.path)
        if keep is not None:
            with contextlib.suppress(Exception):
                self.move_cursor(row=self.get_row_index(keep))

    @staticmethod
    def _cells(e: LibraryEntry, fit: Text, *, last: bool) -> list[Any]:
        branch = "└ " if last else "├ "
        name = Text(branch, style="dim") + safe(e.name)
        if e.error:
            return [
                name,
                "",
                "",
                Text("error", style="bold red"),
                "",
                fmt.size(e.size_bytes),
                "",
                "",
                e.store,
            ]
        bpw = e.fact("bpw")
        quant = safe(e.quant or "?")
        if e.fact("label_matches") is False:
            quant.append(" !", style="bold red")
        return [
            name,
            str(e.fact("architecture") or "?"),
            Text(fmt.params(e.fact("parameters")), justify="right"),
            quant,
            Text(f"{bpw:.2f}" if bpw is not None else "?", justify="right"),
            Text(fmt.size(e.size_bytes), justify="right"),
            fit,
            "yes" if e.fact("imatrix") else "-",
            e.store + (" (split)" if len(e.parts) > 1 or e.missing else ""),
        ]
