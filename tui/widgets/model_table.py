"""The Library table: one row per model file, quants of one model grouped under a header row.

A refill never touches every file of a large library (issue 17: 40,000 files): each file's search text
is made once per scan, its cells when first shown, the arrangement (groups and their order) once per
sort, and the table holds the first ROW_LIMIT matching files in sort order (the screen says how many
more match). Filter keystrokes are coalesced: a query is applied at once, or with the others typed
meanwhile DEBOUNCE seconds after the last refill when it follows one closely (a paste, a fast typist,
keys that queued during a refill), and anything that reads the rows applies it first.

A refill and its redraw cost what DataTable's general paths would not (bench/filter.py): the rows go in
in one pass (`_add_rows`: no per-row cursor check, nothing for the idle pass to measure, the columns
having planned widths), and a one-line cell is drawn straight into the segments Rich's nested render
gives (`one_line`). A large new library is frozen out of the garbage collector's walks once shown
(`_freeze`): its full collections otherwise walk every entry's facts, a second at 40,000 files, during
a keystroke."""

from __future__ import annotations

import contextlib
import functools
import gc
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.coordinate import Coordinate
from textual.events import Resize
from textual.message import Message
from textual.timer import Timer
from textual.widgets._data_table import CellCacheKey, DuplicateKey, Row, RowCacheKey, RowKey

from ...core import format as fmt
from ...core.library import LibraryEntry
from ..safe import cell, safe
from .measured import MeasuredRead, measured_read
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
# Once a file is measured (KLD and tok/s planned): KLD at every width, then what a person comparing
# quants came for (quant, size, fit, speed), the KLD's "±" ("kld±": the column widened to KLD_WIDE),
# and BPW and Params give way first of the rest. Model narrows to MODEL_NARROW so KLD, Quant, Size and
# Fit all show at 80 and 100 columns.
MEASURED_PRIORITY = ("kld", "quant", "size", "fit", "tg", "kld±", "bpw", "params", "arch", "imatrix", "store")
MEASURED_ESSENTIAL = ("kld", "quant", "size", "fit")
KLD_WIDE = 13  # "0.0149±0.0003"
MODEL_MIN, MODEL_MAX = 24, 60
MODEL_NARROW = 14
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
ROW_LIMIT = 500  # file rows the table holds at most: a refill costs its rows, never the library's size
DEBOUNCE = 0.03  # seconds after a refill before the next query's refill; the keys typed meanwhile join it
FREEZE_AT = 5_000  # files from which a new library is frozen out of the garbage collector's walks
DRAWN_KEPT = 8_000  # cells' drawn lines kept for later refills (some 15 screens' worth)


class Cell:
    """A table cell: cleaned Text, made when first drawn when `make` is given (a file's fit estimate
    is made for the rows on screen only). It has no Rich measure on purpose: the columns have planned
    widths, and DataTable measures every cell of every new row, which cost more than adding the rows.
    str() is its plain text."""

    __slots__ = ("_make", "_text")

    def __init__(self, text: Any = None, make: Callable[[], Any] | None = None) -> None:
        self._text: Text | None = None if text is None else _clean_text(text)
        self._make = make

    @property
    def text(self) -> Text:
        if self._text is None:
            self._text = _clean_text(self._make() if self._make else "")
        return self._text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.text

    def __str__(self) -> str:
        return self.text.plain


def _clean_text(value: Any) -> Text:
    cleaned = cell(value)
    return cleaned if isinstance(cleaned, Text) else Text(str(cleaned))


BLANK = Cell("")
_NULL = Style.null()


def one_line(
    console: Console, text: Text, width: int, padding: int, pre: Style, post: Style
) -> list[list[Segment]] | None:
    """The segments DataTable draws for a one-line Text cell `width` cells wide, padding included:
    what console.render_lines(Styled(Padding(text, (0, padding)), pre, post), one line, no wrap) gives,
    made without Rich's general layout (three nested renders, options copied at each, lines split and
    cropped twice), which was most of a redraw's time. None for a text it does not cover (more than
    one line, tabs, wrapping asked): DataTable draws those."""
    inner = width - 2 * padding
    plain = text.plain
    if inner < 1 or "\n" in plain or "\t" in plain or text.no_wrap is False:
        return None
    lines = text.wrap(
        console, inner, justify=text.justify or "default", overflow=text.overflow or "fold", no_wrap=True
    )
    segments = [s for s in Text("\n").join(lines).render(console) if s.text] or [Segment("")]
    segments = Segment.adjust_line_length(segments, inner, style=_NULL)
    if padding:
        blank = Segment(" " * padding, _NULL)
        segments = [blank, *segments, blank]
    return [list(Segment.apply_style(segments, pre, post))]


def plan_columns(available: int, model_width: int, measured: bool = False) -> list[tuple[str, int]]:
    """The columns that fit in `available` cells, in table order, with their widths: Model first
    (at least MODEL_MIN or its content), then the others by PRIORITY, or MEASURED_PRIORITY when
    `measured` (Model then narrows, down to MODEL_NARROW, for KLD, Quant, Size and Fit); Model takes
    what is left."""
    want = min(max(model_width, 8), MODEL_MIN)
    widths = dict(WIDTHS)
    if measured:
        essential = sum(widths[k] + PAD for k in MEASURED_ESSENTIAL)
        want = max(min(want, MODEL_NARROW), min(want, available - essential - PAD))
        want = min(want, max(8, available - 2 * PAD - widths["kld"]))  # KLD at any width
    used = want + PAD
    chosen: set[str] = set()
    for key in MEASURED_PRIORITY if measured else PRIORITY:
        grow = KLD_WIDE - widths["kld"] if key == "kld±" else widths[key] + PAD
        if used + grow > available:
            break  # a column shows only when every more important one does
        if key == "kld±":
            widths["kld"] = KLD_WIDE
        else:
            chosen.add(key)
        used += grow
    model = max(want, min(MODEL_MAX, max(model_width, want), available - used + want))
    return [
        (key, model if key == "model" else widths[key])
        for key, _ in COLUMNS
        if key == "model" or key in chosen
    ]


def haystack(entry: LibraryEntry, name: str | None = None) -> str:
    """What the filter searches, lowercase: the entry's name (`name` when known), group, architecture,
    quant, store, path and "error" for a file that cannot be read."""
    return " ".join(
        str(x)
        for x in (
            entry.name if name is None else name,
            entry.group_label,
            entry.fact("architecture"),
            entry.quant,
            entry.store,
            entry.path,
            "error" if entry.error else "",
        )
    ).lower()


def matches(entry: LibraryEntry, query: str) -> bool:
    """Every word of the query appears in the entry's name, group, architecture, quant or store."""
    hay = haystack(entry)
    return all(word in hay for word in query.lower().split())


def _order_groups(entries: list[LibraryEntry], groups: list[list[int]], sort: str, reverse: bool) -> None:
    """Order groups of entry indices (each sorted inside) by their first member, unreadable groups last."""
    if sort == "model":
        groups.sort(key=lambda g: entries[g[0]].group_label.lower(), reverse=reverse)
    else:
        key = SORTS[sort]
        groups.sort(key=lambda g: key(entries[g[0]]), reverse=reverse)
    groups.sort(key=lambda g: all(entries[i].error for i in g))  # stable: unreadable groups last either way


def arrange_indices(
    entries: list[LibraryEntry], sort: str, reverse: bool, names: list[str] | None = None
) -> list[list[int]]:
    """`arrange`, as indices into `entries`; `names` are the entries' names when known."""
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        groups.setdefault(e.group, []).append(i)
    if sort == "model":
        # The quant ladder: most bits first, groups alphabetically, unreadable files last.
        names = names or [e.name for e in entries]
        ordered = [
            sorted(g, key=lambda i: (entries[i].error is not None, -(entries[i].fact("bpw") or 0), names[i]))
            for g in groups.values()
        ]
    else:
        key = SORTS[sort]
        ordered = [sorted(g, key=lambda i: key(entries[i]), reverse=reverse) for g in groups.values()]
    _order_groups(entries, ordered, sort, reverse)
    return ordered


def arrange(entries: list[LibraryEntry], sort: str, reverse: bool) -> list[list[LibraryEntry]]:
    """Groups of entries, sorted inside each group; groups follow their first member's order."""
    return [[entries[i] for i in g] for g in arrange_indices(entries, sort, reverse)]


class Arranged:
    """The whole library's arrangement for one sort: its groups of entry indices, and for each entry
    its group's place and its own place in that group, to arrange any part of the library quickly."""

    def __init__(self, groups: list[list[int]]) -> None:
        self.groups = groups
        n = sum(len(g) for g in groups)
        self.group_of, self.rank = [0] * n, [0] * n
        for at, members in enumerate(groups):
            for r, i in enumerate(members):
                self.group_of[i], self.rank[i] = at, r


class ModelTable(SafeTable):
    """The Library table: owns its sorting, its filter query and how marks show. Rows are keyed by file
    path, group header rows `group:KEY`; names are shown cleaned, never as markup. Columns have fixed
    widths planned from the table's own width, so a row drawn before the table measures its cells is
    drawn at the same widths as every later one. `fits` maps a path to its Fit cell and is read only
    for the rows drawn."""

    @dataclass
    class Refilled(Message):
        """The rows were rebuilt (new entries, filter, sort or marks): `shown` counts the file rows,
        `matched` the files the filter lets through (more than `shown` past ROW_LIMIT)."""

        table: ModelTable
        shown: int
        matched: int

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.entries: list[LibraryEntry] = []
        self.fits: Mapping[str, Text] = {}
        self.measured: dict[str, tuple[Text, ...]] = {}  # path -> (KLD, tok/s[, KLD ± se]) cells
        self.measured_records: dict[str, Any] = {}  # path -> records.Cell: when and under what
        self.marks: list[str] = []
        self.query_text = ""
        self.sort_key = "model"
        self.sort_reverse = False
        self._planned: list[tuple[str, int]] = []
        self._pending = False  # a query was typed that the rows do not show yet
        self._timer: Timer | None = None  # its refill, when it waits for DEBOUNCE
        self._applied = ""  # the query the rows show
        self._quiet_at = 0.0  # time.monotonic() from when a query may be applied at once
        self._stripes: dict[int, Style] | None = None  # the rows' styles while a drawing lasts
        self._froze = False  # whether this table froze the collector's objects (`_freeze`)
        self._forget_entries()

    def _forget_entries(self) -> None:
        """Drop what was made from the entries: search texts, cells, arrangements, matches."""
        self._names = [e.name for e in self.entries]  # a path's name costs a Path each time
        self._hay: list[str] = [haystack(e, n) for e, n in zip(self.entries, self._names, strict=True)]
        self._model_w: int | None = None
        self._cells_made: dict[tuple[int, bool], dict[str, Any]] = {}
        self._fit_cells: dict[int, Cell] = {}
        self._drawn: dict[tuple[Cell, int, int, Style, Style], list[Segment] | None] = {}
        self._arranged: dict[tuple[str, bool], Arranged] = {}
        self._matched: tuple[list[str], list[int] | None] = ([], None)
        self._groups_shown: list[list[int]] = []  # the groups of the last refill, their matching members

    # what the table shows -------------------------------------------------------------------------

    def load(self, entries: list[LibraryEntry], fits: Mapping[str, Text], marks: list[str]) -> None:
        new = entries is not self.entries
        if fits is not self.fits:
            self._fit_cells = {}
        self.entries, self.fits, self.marks = entries, fits, list(marks)
        if new:
            self._forget_entries()
        self._fill()
        if new:
            if len(entries) >= FREEZE_AT:
                self.call_after_refresh(self._freeze)  # once the rows are on screen
            self.read_measured()

    def _freeze(self) -> None:
        """Collect the garbage, then take every object left (the scan's entries and their facts, the
        search texts) out of the collector's generations: its full collections walked them all (0.2 s
        at 40,000 files sharing facts, 1.6 s with a scan's own facts dicts) and a few keystrokes'
        allocations set one off. Frozen objects are still freed by reference counting (a rescan's
        entries replace these); the table thaws them when it goes (`on_unmount`)."""
        gc.collect()
        gc.freeze()
        self._froze = True

    def on_unmount(self) -> None:
        if self._froze:
            gc.unfreeze()  # what was frozen is the collector's again: an app's cycles are not kept

    def read_measured(self) -> None:
        """Read the KLD and tok/s cells from quanttui's cached results, off the UI thread."""
        self._measured_worker(list(self.entries))

    # The description is given: Textual otherwise makes one from the arguments' repr, every entry's facts
    # (two seconds on the UI thread at 40,000 files).
    @work(
        thread=True, exclusive=True, exit_on_error=False, group="measured", name="measured results",
        description="the KLD and tok/s of the library's files",
    )  # fmt: skip
    def _measured_worker(self, entries: list[LibraryEntry]) -> None:
        self.post_message(measured_read(entries))

    @on(MeasuredRead)
    def _measured_read(self, message: MeasuredRead) -> None:
        message.stop()
        self.measured_records = message.records
        self.set_measured(message.cells)  # type: ignore[arg-type]

    def set_measured(self, cells: dict[str, tuple[Text, ...]]) -> None:
        """KLD and tok/s cells of the measured files; the columns show once there is one."""
        if cells != self.measured:
            self.measured = cells
            self._fill()

    def set_marks(self, marks: list[str]) -> None:
        self.marks = list(marks)
        self._fill()

    def set_query(self, query: str) -> None:
        """Filter by `query`, coalesced: the rows follow at once, or within DEBOUNCE seconds of the last
        refill, with the latest query."""
        self.query_text = query.strip()
        if self._pending or self.query_text == self._applied:
            return
        self._pending = True
        wait = self._quiet_at - time.monotonic()
        if wait > 0:
            self._timer = self.set_timer(wait, self.flush, name="filter")
        else:
            self.call_later(self.flush)

    @property
    def refill_pending(self) -> bool:
        """Whether a query was typed that the rows do not show yet."""
        return self._pending

    def flush(self) -> None:
        """Apply a query still waiting for its refill now (before the rows are read or moved)."""
        if self._pending:
            self._fill()

    def visible_entries(self) -> list[LibraryEntry]:
        """The entries the filter lets through, in no particular order (all of them, not only the rows
        the table holds)."""
        found = self._matching(self.query_text)
        return list(self.entries) if found is None else [self.entries[i] for i in found]

    def group_members(self, group: str) -> list[LibraryEntry]:
        """The files of model `group` the filter lets through, as the rows show them, in library order."""
        entries = self.entries
        found = next((g for g in self._groups_shown if entries[g[0]].group == group), ())
        return [entries[i] for i in sorted(found)]  # the cursor's group: among the first shown

    def cursor_key(self) -> str | None:
        """The row key under the cursor (a file path or `group:KEY`), None when the table is empty."""
        self.flush()
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def on_focus(self) -> None:
        self.flush()  # the keys that follow move the cursor over the rows of the query typed

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
        if self._model_w is None:
            split = [18 if len(e.parts) > 1 or e.missing else 0 for e in self.entries]
            names = [len(e.group_label) + 10 for e in self.entries]
            names += [len(n) + 4 + extra for n, extra in zip(self._names, split, strict=True)]
            self._model_w = max(names, default=MODEL_MIN)
        return self._model_w

    def on_resize(self, event: Resize) -> None:
        if self._plan() != self._planned or not self.columns:
            self._fill()  # the columns change; rows keep their cells when they do not

    def _plan(self) -> list[tuple[str, int]]:
        width = self.size.width or self.app.size.width
        return plan_columns(width - SCROLLBAR, self._model_width(), bool(self.measured))

    def _columns(self) -> None:
        """Rebuild the columns when the planned set or widths change (the table's width did)."""
        plan = self._plan()
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
            if key in self.columns:
                self.columns[key].label = Text(f"{label} {arrow}" if key == self.sort_key else label)  # type: ignore[index]

    # the rows -------------------------------------------------------------------------------------

    def _matching(self, query: str) -> list[int] | None:
        """Indices (library order) of the entries every word of `query` is found in; None: all of them.
        The last answer is kept, and a query that only adds to it searches within it."""
        words = query.lower().split()
        if not words:
            return None
        last_words, last = self._matched
        if words == last_words:
            return last
        hay = self._hay
        found: Iterable[int] = range(len(hay))
        if last is not None and last_words and all(any(w in n for n in words) for w in last_words):
            found = last  # every earlier word is inside a new one: the new matches are among the old
        for w in words:
            found = [i for i in found if w in hay[i]]
        self._matched = (words, list(found))
        return self._matched[1]

    def _groups(self, found: list[int] | None) -> list[list[int]]:
        """The groups the rows show, each its matching members in sort order, as `arrange` would order
        the matching entries; the whole library's arrangement is made once per sort and filtered."""
        sort = (self.sort_key, self.sort_reverse)
        if sort not in self._arranged:
            self._arranged = {sort: Arranged(arrange_indices(self.entries, *sort, self._names))}
        every = self._arranged[sort]
        if found is None or len(found) == len(self.entries):
            return every.groups
        buckets: dict[int, list[int]] = {}
        for i in found:  # in library order: the groups come as met, like arrange's before they are sorted
            buckets.setdefault(every.group_of[i], []).append(i)
        groups = [sorted(b, key=every.rank.__getitem__) for b in buckets.values()]
        _order_groups(self.entries, groups, *sort)
        return groups

    def _fill(self) -> None:
        self._pending = False
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        keep = self.cursor_key()
        self._columns()
        self.clear()
        self._applied = self.query_text
        found = self._matching(self.query_text)
        groups = self._groups(found)
        self._groups_shown = groups
        keys = [k for k, _ in self._planned]
        blanks = [BLANK] * (len(keys) - 1)
        marks = {path: n for n, path in reversed(list(enumerate(self.marks)))}
        rows: list[tuple[str, list[Cell]]] = []
        shown = 0
        for group in groups:
            if shown >= ROW_LIMIT:
                break
            first, count = self.entries[group[0]], len(group)
            title = safe(first.group_label, style="bold")
            title.append(f"  {fmt.plural(count, 'file')}", style="italic")
            rows.append((GROUP_PREFIX + first.group, [Cell(title), *blanks]))
            for n, i in enumerate(group[: ROW_LIMIT - shown]):
                cells = self._row(i, last=n == count - 1, mark=marks.get(self.entries[i].path))
                rows.append((self.entries[i].path, [cells[k] for k in keys]))
                shown += 1
        self._add_rows(rows)
        if keep is not None:
            with contextlib.suppress(Exception):
                self.move_cursor(row=self.get_row_index(keep), scroll=False)
        self.refresh()
        self.post_message(self.Refilled(self, shown, len(self.entries) if found is None else len(found)))
        self._quiet_at = time.monotonic() + DEBOUNCE

    def _add_rows(self, rows: list[tuple[str, list[Cell]]]) -> None:
        """Append rows (key, one Cell per column) as add_row does one by one, in one pass: add_row
        re-validates the cursor, lists the columns and checks for idle at each row, and marks each row
        for the next idle pass to measure, which renders all its cells; these rows are one line high with
        no label, and the columns have planned widths, so there is nothing to measure. The cells are
        Cells, cleaned when made: SafeTable's cleaning would pass them as they are."""
        if not rows:
            return
        columns = [c.key for c in self.ordered_columns]
        at = self.row_count
        locations, data, meta = self._row_locations, self._data, self.rows
        for index, (key, cells) in enumerate(rows, at):
            row_key = RowKey(key)
            if row_key in locations:
                raise DuplicateKey(f"The row key {row_key!r} already exists.")
            locations[row_key] = index
            data[row_key] = dict(zip(columns, cells, strict=True))
            meta[row_key] = Row(row_key, 1)
        self._require_update_dimensions = True
        self._update_count += 1
        self.cursor_coordinate = self.cursor_coordinate
        if at == 0 and columns and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()  # a cell for the cursor appeared: add_row's RowHighlighted
        self.check_idle()

    def render_lines(self, crop: Any) -> Any:
        # One drawing's rows share their stripe styles: DataTable looks them up again for every line
        # (a walk up the DOM each), kept here for this drawing only (a theme or focus change is another).
        self._stripes = {}
        try:
            return super().render_lines(crop)
        finally:
            self._stripes = None

    def _get_row_style(self, row_index: int, base_style: Style) -> Style:
        stripes = self._stripes
        if stripes is None or row_index < self.fixed_rows or not self.zebra_stripes:
            return super()._get_row_style(row_index, base_style)
        if row_index % 2 not in stripes:
            stripes[row_index % 2] = super()._get_row_style(row_index, base_style)
        return stripes[row_index % 2]

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> tuple[list[list[Segment]], list[list[Segment]]]:
        """DataTable's line of a file or group row, for this table's case (a row cursor, no row labels,
        no fixed rows or columns), without the lookups DataTable makes for the cases it does not have
        (the header's style, the columns listed three times); anything else is DataTable's."""
        row_index = self._row_locations.get(row_key)
        if (
            row_index is None
            or self.cursor_type != "row"
            or self.fixed_rows
            or self.fixed_columns
            or (self._labelled_row_exists and self.show_row_labels)
        ):
            return super()._render_line_in_row(row_key, line_no, base_style, cursor_location, hover_location)
        show_cursor, show_hover = self.show_cursor, self._show_hover_cursor
        key: RowCacheKey = (
            row_key, line_no, base_style, cursor_location, hover_location, "row", show_cursor, show_hover,
            self._update_count, self._pseudo_class_state,
        )  # fmt: skip
        cache = self._row_render_cache
        if key in cache:
            return cache[key]
        row_style = self._get_row_style(row_index, base_style)
        cursor, hover = cursor_location.row == row_index, hover_location.row == row_index
        line = []
        used = 0
        for column_index, column in enumerate(self.ordered_columns):
            width = column.get_render_width(self)
            used += width
            line.append(self._render_cell(row_index, column_index, row_style, width, cursor, hover)[line_no])
        extend, _ = self._get_styles_to_render_cell(
            False, False, False, hover_location.row == (row_index or 0), cursor, show_cursor, show_hover,
            False, False,
        )  # fmt: skip
        extend = row_style + extend + Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
        line.append([Segment(" " * max(0, self.size.width - used), extend)])
        pair: tuple[list[list[Segment]], list[list[Segment]]] = ([], line)
        cache[key] = pair
        return pair

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        """DataTable's cell, its Cell drawn by `one_line` (header, labels and anything else by
        DataTable), cached under DataTable's own key."""
        if row_index < 0 or column_index < 0 or self.fixed_rows or self.fixed_columns:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        # DataTable's own key: its CellCacheKey leaves out the None that get_key can give, as DataTable does.
        key: CellCacheKey = (  # type: ignore[assignment]
            row_key, column_key, base_style, cursor, hover,
            self._show_hover_cursor, self._update_count, self._pseudo_class_state,
        )  # fmt: skip
        cache = self._cell_render_cache
        if key in cache:
            return cache[key]
        value = self._data.get(row_key, {}).get(column_key)  # type: ignore[arg-type]
        row = self.rows.get(row_key)  # type: ignore[arg-type]
        lines = None
        if isinstance(value, Cell) and row is not None and row.height == 1 and not row.auto_height:
            component, post = self._get_styles_to_render_cell(
                False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
                self.cursor_foreground_priority == "css", self.cursor_background_priority == "css",
            )  # fmt: skip
            drawn = self._drawn_cell(value, width, base_style + component, post)
            if drawn is not None:
                # DataTable puts the cell's place (for the mouse) in the first style; it holds no
                # colour or attribute, so it goes last here, on the line kept without it.
                meta = Style.from_meta({"row": row_index, "column": column_index})
                lines = [[Segment(text, meta if style is None else style + meta) for text, style, _ in drawn]]
        if lines is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cache[key] = lines
        return lines

    def _drawn_cell(self, cell: Cell, width: int, pre: Style, post: Style) -> list[Segment] | None:
        """`cell`'s line as `one_line` draws it (None: not one line), kept for the refills that show it
        again (a file's cells outlive the rows; a row's styles are one of a few: stripe, cursor, focus),
        DRAWN_KEPT lines at most."""
        key = (cell, width, self.cell_padding, pre, post)
        drawn = self._drawn
        if key not in drawn:
            if len(drawn) >= DRAWN_KEPT:
                drawn.clear()
            lines = one_line(self.app.console, cell.text, width, self.cell_padding, pre, post)
            drawn[key] = None if lines is None else lines[0]
        return drawn[key]

    def _row(self, i: int, *, last: bool, mark: int | None) -> dict[str, Any]:
        """Entry `i`'s cells: made once (per branch glyph), with its fit, measured figures and mark."""
        e = self.entries[i]
        made = self._cells_made.get((i, last))
        if made is None:
            made = {k: Cell(v) for k, v in self._cells(e, Text(""), last=last).items()}
            self._cells_made[i, last] = made
        cells = dict(made)
        if not e.error:
            fit = self._fit_cells.get(i)
            if fit is None:
                fit = self._fit_cells[i] = Cell(make=functools.partial(self.fits.get, e.path, ""))
            cells["fit"] = fit
        measured = self.measured.get(e.path)
        if measured:
            wide = len(measured) > 2 and dict(self._planned).get("kld", 0) >= KLD_WIDE
            cells["kld"], cells["tg"] = Cell(measured[2] if wide else measured[0]), Cell(measured[1])
        else:
            cells["kld"], cells["tg"] = BLANK, BLANK
        if mark is not None:
            badge = Text(f"{'AB'[mark] if mark < 2 else '•'} ", style="bold reverse")
            cells["model"] = Cell(badge + made["model"].text)
        return cells

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
