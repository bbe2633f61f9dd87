"""The Library's KLD and tok/s cells, from quanttui's measurement records (core/quality/records.py).

Records are found by content identity, not path, so a moved, renamed or copied file keeps its figures
and a byte-identical copy of a reference shows "ref". Within a model group KLD comes from one eval
settings set (records.library_cells: the set that covers most of the group, newest on a tie), as
`quanttui advise` chooses it, so the figures of a group compare with each other. tok/s is the newest
idle bench record, else a busy one marked "!" (the side pane says why, from `MeasuredRead.records`).

A content identity reads about 1.6 MiB of a file the first time; only files whose size is the size of
some recorded content (a measured file or a reference: the identity holds the size) can have a record,
so only those are identified. Run it off the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.message import Message

from ...core.library import LibraryEntry
from ...core.quality import records

BUSY_MARK = "!"


@dataclass
class MeasuredRead(Message):
    """The measured cells of the library's files: path -> (KLD cell, tok/s cell, KLD cell with its
    "±"), and path -> the records they come from (when and under what: `records.Cell`)."""

    cells: dict[str, tuple[Text, Text, Text]]
    records: dict[str, records.Cell] = field(default_factory=dict)


def _recorded_sizes() -> set[int]:
    """The sizes of every recorded content: measured files and eval references ("c1:SIZE:HEX")."""
    sizes: set[int] = set()
    for kind in ("eval", "bench"):
        for m in records.all_records(kind):
            for cid in (m.content, m.settings.get("reference")):
                parts = cid.split(":") if isinstance(cid, str) else []
                if len(parts) == 3 and parts[1].isdigit():
                    sizes.add(int(parts[1]))
    return sizes


def _kld(v: float) -> str:
    return f"{v:.4f}" if v < 10 else f"{v:.1f}"


def cells_of(cell: records.Cell) -> tuple[Text, Text, Text]:
    """A file's (KLD, tok/s, KLD ± se) cells."""
    if cell.is_reference:
        short = Text("ref", style="dim", justify="right")
        wide = short.copy()
    elif cell.eval is not None and isinstance(cell.kld, (int, float)):
        short = Text(_kld(cell.kld), justify="right")
        se = cell.eval.values.get("kld_mean_se")
        wide = Text(
            _kld(cell.kld) + (f"±{_kld(se)}" if isinstance(se, (int, float)) else ""), justify="right"
        )
    else:
        short, wide = Text(""), Text("")
    tg = cell.tg
    if isinstance(tg, (int, float)):
        busy = cell.bench is not None and cell.bench.busy
        tg_cell = Text(f"{tg:.1f}", justify="right")
        if busy:
            tg_cell.append(BUSY_MARK, style="bold yellow")
    else:
        tg_cell = Text("")
    return short, tg_cell, wide


def measured_records(entries: list[LibraryEntry]) -> dict[str, records.Cell]:
    """Per path, its records (eval from its group's one settings set, bench idle first); files
    without any are left out."""
    sizes = _recorded_sizes()
    if not sizes:
        return {}
    groups: dict[str, list[str]] = {}
    for e in entries:
        if e.size_bytes in sizes:
            groups.setdefault(e.group, []).append(e.path)
    cells, _views = records.library_cells(groups)
    return cells


def measured_cells(entries: list[LibraryEntry]) -> dict[str, tuple[Text, Text, Text]]:
    """KLD, tok/s and KLD-with-± cells for every entry that has a record; the others are left out."""
    return {path: cells_of(cell) for path, cell in measured_records(entries).items()}


def measured_read(entries: list[LibraryEntry]) -> MeasuredRead:
    found = measured_records(entries)
    return MeasuredRead({path: cells_of(cell) for path, cell in found.items()}, found)
