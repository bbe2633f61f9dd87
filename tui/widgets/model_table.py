"""The Library table: one row per model file, quants of one model grouped under a header row."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.events import Resize
from textual.message import Message

from ...core import format as fmt
from ...core.library import LibraryEntry
from ..safe import safe
from .measured import MeasuredRead, measured_cells
from .safe_table import SafeTable

COLUMNS = (
    ("model", "Model"),
    ("arch", "Arch"),
    ("params", "Params"),
    ("quant", "Quant"),
    ("bpw", "BPW"),
    ("size", "Size"),
    ("fit", "Fit"),
    ("kld", "KLD"),
    ("tg", "tok/s"),
    ("imatrix", "imat"),
    ("store", "Store"),
)
# Width of each fixed column's cells (the header and its sort arrow fit), and the order in which
# columns give way when the table is narrow: Model always shows, Store goes first.
WIDTHS = {"arch": 8, "params": 8, "quant": 8, "bpw": 5, "size": 10, "fit": 5, "imatrix": 6, "store": 11}
WIDTHS |= {"kld": 6, "tg": 6}
PRIORITY = ("quant", "size", "fit", "bpw", "params", "arch", "imatrix", "store")
MEASURED = ("kld", "tg")  # planned only once a file is measured, right after params
MODEL_MIN, MODEL_MAX = 24, 60
PAD = 2  # DataTable's cell padding, one cell each side
SCROLLBAR = 2
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
DESCENDING_FIRST = ("params", "bpw", "size")


def plan_columns(available: int, model_width: int, measured: bool = False) -> list[tuple[str, int]]:
    """The columns that fit in `available` cells, in table order, with their widths: Model first
    (at least MODEL_MIN or its content), then the others by PRIORITY (KLD and tok/s after params when
    `measured`); Model takes what is left."""
    want = min(max(model_width, 8), MODEL_MIN)
    used = want + PAD
    chosen: set[str] = set()
    at = PRIORITY.index("params") + 1
    order = PRIORITY[:at] + MEASURED + PRIORITY[at:] if measured else PRIORITY
    for key in order:
        if used + WIDTHS[key] + PAD > available:
            break  # a column shows only when every more important one does
        chosen.add(key)
        used += WIDTHS[key] + PAD
    model = max(want, min(MODEL_MAX, max(model_width, want), available - used + want))
    return [
        (key, model if key == "model" else WIDTHS[key])
        for key, _ in COLUMNS
        if key == "model" or key in chosen
    ]


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
    """The Library table: owns its sorting, its filter query and how marks show. Rows are keyed by file
    path, group header rows `group:KEY`; names are shown cleaned, never as markup. Columns have fixed
    widths planned from the table's own width, so a row drawn before the table measures its cells is
    drawn at the same widths as every later one."""

    @dataclass
    class Refilled(Message):
        """The rows were rebuilt (new entries, filter, sort or marks); `shown` counts file rows."""

        table: ModelTable
        shown: int

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.entries: list[LibraryEntry] = []
        self.fits: dict[str, Text] = {}
        self.measured: dict[str, tuple[Text, Text]] = {}  # path -> (KLD, tok/s) cells
        self.marks: list[str] = []
        self.query_text = ""
        self.sort_key = "model"
        self.sort_reverse = False
        self._planned: list[tuple[str, int]] = []

    # what the table shows -------------------------------------------------------------------------

    def load(self, entries: list[LibraryEntry], fits: dict[str, Text], marks: list[str]) -> None:
        new = entries is not self.entries
        self.entries, self.fits, self.marks = entries, fits, list(marks)
        self._fill()
        if new:
            self.read_measured()

    def read_measured(self) -> None:
        """Read the KLD and tok/s cells from quanttui's cached results, off the UI thread."""
        self._measured_worker(list(self.entries))

    @work(thread=True, exclusive=True, exit_on_error=False, group="measured", name="measured results")
    def _measured_worker(self, entries: list[LibraryEntry]) -> None:
        self.post_message(MeasuredRead(measured_cells(entries)))

    @on(MeasuredRead)
    def _measured_read(self, message: MeasuredRead) -> None:
        message.stop()
        self.set_measured(message.cells)

    def set_measured(self, cells: dict[str, tuple[Text, Text]]) -> None:
        """KLD and tok/s cells of the measured files; the columns show once there is one."""
        if cells != self.measured:
            self.measured = cells
            self._fill()

    def set_marks(self, marks: list[str]) -> None:
        self.marks = list(marks)
        self._fill()

    def set_query(self, query: str) -> None:
        self.query_text = query.strip()
        self._fill()

    def visible_entries(self) -> list[LibraryEntry]:
        """The entries the filter lets through, in no particular order."""
        q = self.query_text
        return [e for e in self.entries if matches(e, q)] if q else list(self.entries)

    def cursor_key(self) -> str | None:
        """The row key under the cursor (a file path or `group:KEY`), None when the table is empty."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    # sorting --------------------------------------------------------------------------------------

    def sort_by(self, key: str) -> None:
        """Sort by column `key`; the same column again reverses the order."""
        if key not in SORTS:
            return
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key, self.sort_reverse = key, key in DESCENDING_FIRST
        self._fill()

    def cycle_sort(self) -> str:
        keys = [k for k, _ in COLUMNS if k in SORTS]
        self.sort_key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
        self.sort_reverse = self.sort_key in DESCENDING_FIRST
        self._fill()
        return self.sort_key

    def reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._fill()

    def on_data_table_header_selected(self, event: SafeTable.HeaderSelected) -> None:
        event.stop()
        if event.column_key.value:
            self.sort_by(event.column_key.value)

    # layout ---------------------------------------------------------------------------------------

    def _model_width(self) -> int:
        split = [18 if len(e.parts) > 1 or e.missing else 0 for e in self.entries]
        names = [len(e.group_label) + 10 for e in self.entries]
        names += [len(e.name) + 4 + extra for e, extra in zip(self.entries, split, strict=True)]
        return max(names, default=MODEL_MIN)

    def on_resize(self, event: Resize) -> None:
        self._fill()

    def _columns(self) -> None:
        """Rebuild the columns when the planned set or widths change (the table's width did)."""
        width = self.size.width or self.app.size.width
        plan = plan_columns(width - SCROLLBAR, self._model_width(), bool(self.measured))
        if plan == self._planned and self.columns:
            self._relabel()
            return
        self.clear(columns=True)
        self._planned = plan
        for key, w in plan:
            self.add_column("", width=w, key=key)
        self._relabel()

    def _relabel(self) -> None:
        arrow = "▼" if self.sort_reverse else "▲"
        for key, label in COLUMNS:
            if key in self.columns:  # type: ignore[operator]
                self.columns[key].label = Text(f"{label} {arrow}" if key == self.sort_key else label)  # type: ignore[index]

    def _fill(self) -> None:
        keep = self.cursor_key()
        self._columns()
        self.clear()
        shown = 0
        keys = [k for k, _ in self._planned]
        for group in arrange(self.visible_entries(), self.sort_key, self.sort_reverse):
            count = len(group)
            title = safe(group[0].group_label, style="bold")
            title.append(f"  {fmt.plural(count, 'file')}", style="italic")
            self.add_row(title, *[""] * (len(keys) - 1), key=GROUP_PREFIX + group[0].group)
            for i, e in enumerate(group):
                cells = self._cells(e, self.fits.get(e.path, Text("")), last=i == count - 1)
                cells["kld"], cells["tg"] = self.measured.get(e.path, (Text(""), Text("")))
                if e.path in self.marks:
                    n = self.marks.index(e.path)
                    cells["model"] = (
                        Text(f"{'AB'[n] if n < 2 else '•'} ", style="bold reverse") + cells["model"]
                    )
                self.add_row(*(cells[k] for k in keys), key=e.path)
                shown += 1
        if keep is not None:
            with contextlib.suppress(Exception):
                self.move_cursor(row=self.get_row_index(keep), scroll=False)
        self.refresh()
        self.post_message(self.Refilled(self, shown))

    @staticmethod
    def _cells(e: LibraryEntry, fit: Text, *, last: bool) -> dict[str, Any]:
        branch = "└ " if last else "├ "
        name = Text(branch, style="dim") + safe(e.name)
        store = e.store
        if len(e.parts) > 1 or e.missing:
            name.append(f" ({len(e.parts)} of {max(e.part_count, len(e.parts)):,} parts)", style="dim")
        size = Text(fmt.size(e.size_bytes), justify="right")
        if e.error:
            blank = dict.fromkeys(("arch", "params", "bpw", "fit", "imatrix"), "")
            return {
                **blank,
                "model": name,
                "quant": Text("error", style="bold red"),
                "size": size,
                "store": store,
            }
        bpw = e.fact("bpw")
        quant = safe(e.quant or "?")
        if e.fact("vocab_only"):
            quant = Text("vocab", style="dim")
        elif e.fact("label_matches") is False and not e.fact("label_fallback"):
            quant.append(" !", style="bold red")
        return {
            "model": name,
            "arch": safe(e.fact("architecture") or "?"),
            "params": Text(fmt.params(e.fact("parameters")), justify="right"),
            "quant": quant,
            "bpw": Text(f"{bpw:.2f}" if bpw is not None else "?", justify="right"),
            "size": size,
            "fit": fit,
            "imatrix": "yes" if e.fact("imatrix") else "-",
            "store": store,
        }
