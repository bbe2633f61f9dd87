"""The detail pane: a highlighted file's facts, tensor-type histogram and per-layer bits per weight."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from ...core import format as fmt
from ...core.library import LibraryEntry
from ...core.report import imatrix_text, quant_text
from ..safe import safe, safe_path
from .bpw_chart import BpwChart


def facts_table(f: dict[str, Any], e: LibraryEntry) -> Table:
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
    rows.append(("path", e.path))
    for k, v in rows:
        value = safe(v, style="bold red" if "!" in str(v) and k == "quant" else "")
        if k == "path":
            value.overflow = "fold"  # a path is shown whole, over as many lines as it takes
        t.add_row(Text(k), value)
    return t


def histogram(f: dict[str, Any]) -> Table:
    t = Table(title=Text("tensor types"), title_justify="left", expand=False, box=None, padding=(0, 1))
    t.add_column("type", no_wrap=True)
    t.add_column("count", justify="right", no_wrap=True)
    t.add_column("params", justify="right", no_wrap=True)
    t.add_column("size", justify="right", no_wrap=True)
    t.add_column("share", no_wrap=True)
    total = sum(st["bytes"] for st in f["tensor_types"].values()) or 1
    for name, st in f["tensor_types"].items():
        share = st["bytes"] / total
        t.add_row(
            safe(name),
            Text(str(st["count"])),
            Text(fmt.params(st["parameters"])),
            Text(fmt.size(st["bytes"])),
            Text("█" * max(1, round(share * 8)) + f" {share:.0%}", style="cyan"),
        )
    return t


class DetailPane(VerticalScroll):
    """Shows one entry, a group's quant ladder, or an error in place."""

    def compose(self):
        yield Static(id="detail-facts")
        yield BpwChart(id="detail-chart")

    def show_entry(self, e: LibraryEntry) -> None:
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
        tensors = histogram(e.facts) if e.facts.get("tensor_types") else Text("no tensors", style="dim")
        body += [facts_table(e.facts, e), Text(""), tensors]
        facts.update(Group(*body))
        chart.tied = bool(e.facts.get("tied_embeddings"))
        chart.bars = e.facts.get("layers") or []

    def show_group(self, members: list[LibraryEntry]) -> None:
        title = safe(f"{members[0].group_label}: quant ladder")
        t = Table(title=title, title_justify="left", box=None)
        rows = []
        for e in members:
            bpw = e.fact("bpw")
            rows.append(
                (
                    safe(e.quant or "?"),
                    Text(f"{bpw:.2f}" if bpw else "?"),
                    Text(fmt.size(e.size_bytes)),
                    Text("yes" if e.fact("imatrix") else "-"),
                    safe(e.name),
                )
            )
        # The figures keep their full width in a narrow pane (rich would cut every column); the
        # file name gives way.
        for i, col in enumerate(("quant", "bpw", "size", "imatrix")):
            least = max([3 if col == "imatrix" else len(col), *(r[i].cell_len for r in rows)])
            side = "right" if col in ("bpw", "size") else "left"
            t.add_column(col, justify=side, no_wrap=True, min_width=least)
        t.add_column("file", no_wrap=True, overflow="ellipsis", min_width=4)
        for r in rows:
            t.add_row(*r)
        self.query_one("#detail-facts", Static).update(t)
        self.query_one("#detail-chart", BpwChart).bars = []

    def show_message(self, text: RenderableType) -> None:
        self.query_one("#detail-facts", Static).update(text)
        self.query_one("#detail-chart", BpwChart).bars = []
