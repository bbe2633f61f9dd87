"""The detail pane: a highlighted file's facts, tensor-type histogram and per-layer bits per weight."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ...core import format as fmt
from ...core.library import LibraryEntry
from ...core.report import imatrix_text, quant_text
from ..safe import safe, safe_path
from .bpw_chart import BpwChart

KEY_WIDTH = len("bits per weight")  # the facts table's first column


def path_lines(path: str, width: int) -> Text:
    """A path broken into lines of `width` cells after a `/` where it can (a folder name too long for
    a line folds), so a line never ends in the middle of a name that would fit on the next."""
    text = safe(path)
    plain, out, start, last = text.plain, Text(), 0, 0
    for i, ch in enumerate(plain):
        if ch == "/" and i + 1 - start <= width:
            last = i + 1
        if i + 1 - start > width and last > start:
            out.append_text(text[start:last])
            out.append("\n")
            start = last
    out.append_text(text[start:])
    return out


def facts_table(f: dict[str, Any], e: LibraryEntry, width: int = 80) -> RenderableType:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="dim", no_wrap=True)
    t.add_column()
    rows = [
        ("model", f.get("name") or "?"),
        ("architecture", f.get("architecture") or "?"),
        ("parameters", f"{fmt.params(f['parameters'])} ({f['parameters']:,})"),
        ("quant", quant_text(f)),
        ("bits per weight", f"{f['bpw']:.2f}" if f.get("bpw") is not None else "?"),
        ("file size", fmt.size(e.size_bytes)),
        ("imatrix", imatrix_text(f.get("imatrix"))),
        ("context length", f"{f.get('context_length') or '?'}"),
        ("layers", f"{f.get('block_count') or '?'}"),
        ("heads / kv", f"{f.get('head_count') or '?'} / {f.get('head_count_kv') or '?'}"),
        ("vocabulary", f"{f.get('vocab_size')} ({f.get('tokenizer_model') or '?'})"),
        ("chat template", "yes" if f.get("has_chat_template") else "no"),
    ]
    if f.get("expert_count"):
        rows.append(("experts", f"{f.get('expert_used_count')} of {f['expert_count']}"))
    if f.get("sliding_window"):
        rows.append(("sliding window", str(f["sliding_window"])))
    split = f.get("split")
    if split:
        missing = f"; missing {', '.join(split['missing'])}" if split["missing"] else ""
        rows.append(("split", f"{split['count']} parts{missing}"))
    origin = e.origin.get("hf_repo") or e.origin.get("ollama")
    if origin:
        rows.append(("from", origin))
    value_width = width - KEY_WIDTH - 2
    beside = value_width >= len(e.name)  # the file's name fits beside "path": the path goes there
    if beside:
        rows.append(("path", e.path))
    for k, v in rows:
        value = safe(v, style="bold red" if "!" in str(v) and k == "quant" else "")
        if k == "path":  # shown whole, over as many lines as it takes, broken after a `/`
            value = path_lines(str(v), max(8, value_width))
            value.overflow = "fold"
        t.add_row(Text(k), value)
    if beside:
        return t
    path = path_lines(e.path, max(8, width - 2))  # a narrow pane: the path under the table, whole
    path.overflow = "fold"
    return Group(t, Text("path", style="dim"), Padding(path, (0, 0, 0, 2)))


SHARE_BAR = 8  # cells of the share bar in a wide pane


def histogram(f: dict[str, Any], width: int = 80) -> RenderableType:
    """The tensor-type table at `width` cells: every column while they fit; narrower, count goes,
    then params, then the share bar shortens to its percentage; below that each type is stacked on
    lines of its own. A figure is never cut."""
    total = sum(st["bytes"] for st in f["tensor_types"].values()) or 1
    rows = []
    for name, st in f["tensor_types"].items():
        share = st["bytes"] / total
        rows.append(
            {
                "type": safe(name),
                "count": Text(str(st["count"])),
                "params": Text(fmt.params(st["parameters"])),
                "size": Text(fmt.size(st["bytes"])),
                "share": share,
            }
        )
    widths: dict[str, int] = {
        k: max(len(k), *(r[k].cell_len for r in rows)) for k in ("type", "count", "params", "size")
    }

    def need(columns: list[str], bar: int) -> int:
        share = (bar + 1 if bar else 0) + 4
        return sum(widths[c] + 2 for c in columns) + max(share, len("share")) + 2

    title = Text("tensor types")
    for columns in (["type", "count", "params", "size"], ["type", "params", "size"], ["type", "size"]):
        bar = next((b for b in (SHARE_BAR, 4, 0) if need(columns, b) <= width), None)
        if bar is None:
            continue
        t = Table(title=title, title_justify="left", expand=False, box=None, padding=(0, 1))
        for c in columns:
            t.add_column(c, justify="left" if c == "type" else "right", no_wrap=True)
        t.add_column("share", no_wrap=True)
        for r in rows:
            share = r["share"]
            cell = Text("█" * max(1, round(share * bar)) + " " if bar else "", style="cyan")
            cell.append(f"{share:.0%}", style="cyan")
            t.add_row(*(r[c] for c in columns), cell)
        return t
    lines: list[RenderableType] = [title]  # too narrow for columns: one type after another
    for r in rows:
        lines.append(Text.assemble("  ", (r["type"].plain, "bold"), f"  {r['share']:.0%}"))
        lines.append(Text(f"    {r['size']}, {r['params']} params, {r['count']} tensors", style="dim"))
    return Group(*lines)


def ladder(members: list[LibraryEntry], width: int = 80) -> Group:
    """A model's quant ladder at `width` cells: quant, bpw, size and imatrix, then the file, on the
    same line when the longest name fits and on its own line under each row when not, never cut. Files
    of the same name (copies in other folders) are told apart by their folder."""
    names = [e.name for e in members]
    dup = {n for n in names if names.count(n) > 1}

    def label(e: LibraryEntry) -> str:
        if e.name in dup and e.root and not e.origin.get("ollama"):
            return os.path.relpath(e.path, e.root)
        return e.name

    rows = []
    for e in members:
        bpw = e.fact("bpw")
        rows.append(
            {
                "quant": e.quant or "?",
                "bpw": f"{bpw:.2f}" if bpw else "?",
                "size": fmt.size(e.size_bytes),
                "imat": "yes" if e.fact("imatrix") else "-",
                "file": label(e),
            }
        )
    right = {"bpw", "size"}
    columns = ["quant", "bpw", "size", "imat"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    while len(columns) > 2 and sum(widths[c] for c in columns) + 2 * (len(columns) - 1) > width:
        columns.remove("imat" if "imat" in columns else "bpw")
    figures = sum(widths[c] for c in columns) + 2 * (len(columns) - 1)
    longest = max(len(r["file"]) for r in rows)
    inline = figures + 2 + longest <= width

    def line(r: dict[str, str], style: str = "") -> Text:
        cells = [r[c].rjust(widths[c]) if c in right else r[c].ljust(widths[c]) for c in columns]
        text = Text("  ".join(cells), style=style)
        if inline:
            text.append("  ")
            text.append_text(safe(r["file"]))
        return text

    head = line({c: c for c in columns} | {"file": "file"}, "bold")
    head.rstrip()
    out: list[RenderableType] = [safe(f"{members[0].group_label}: quant ladder"), head]
    for r in rows:
        out.append(line(r))
        if not inline:
            out.append(Padding(safe(r["file"], style="dim"), (0, 0, 0, 2)))  # folded, still indented
    return Group(*out)


class DetailPane(VerticalScroll):
    """Shows one entry, a group's quant ladder, or an error in place."""

    def compose(self) -> ComposeResult:
        yield Static(id="detail-facts")
        yield BpwChart(id="detail-chart")

    _shown: tuple[str, Any] | None = None  # what is shown, drawn again at a new width

    def _width(self) -> int:
        """The cells a line may take: the pane's content less its scrollbar's gutter."""
        width = self.scrollable_content_region.width or self.content_size.width
        return max(20, width - (0 if self.show_vertical_scrollbar else self.styles.scrollbar_size_vertical))

    def on_resize(self) -> None:
        if self._shown is not None:
            what, shown = self._shown
            self.call_after_refresh(self.show_group if what == "group" else self.show_entry, shown)

    def show_entry(self, e: LibraryEntry) -> None:
        self._shown = ("entry", e)
        facts = self.query_one("#detail-facts", Static)
        chart = self.query_one("#detail-chart", BpwChart)
        if e.error or not e.facts:
            facts.update(
                Group(
                    safe(e.name, style="bold"),
                    Text(""),
                    safe(f"cannot read this file: {e.error}", style="bold red"),
                    safe_path(e.path, style="dim"),
                )
            )
            chart.bars = []
            return
        body: list[RenderableType] = [safe(e.name, style="bold")]
        if e.facts.get("vocab_only"):
            body.append(
                Text("vocabulary only: a tokenizer file with no weights; it cannot be run", "bold yellow")
            )
        tensors: RenderableType = Text("no tensors", style="dim")
        if e.facts.get("tensor_types"):
            tensors = histogram(e.facts, self._width())
        body += [facts_table(e.facts, e, self._width()), Text(""), tensors]
        facts.update(Group(*body))
        chart.tied = bool(e.facts.get("tied_embeddings"))
        chart.bars = e.facts.get("layers") or []

    def show_group(self, members: list[LibraryEntry]) -> None:
        self._shown = ("group", members)
        self.query_one("#detail-facts", Static).update(ladder(members, self._width()))
        self.query_one("#detail-chart", BpwChart).bars = []

    def show_message(self, text: RenderableType) -> None:
        self._shown = None
        self.query_one("#detail-facts", Static).update(text)
        self.query_one("#detail-chart", BpwChart).bars = []
