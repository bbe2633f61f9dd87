"""The Quality view's table: one row per quant of a model with size, bpw, fit, measured KLD, top-1,
perplexity ratio and tokens/s, the recommended quant marked. Columns are planned from the table's
width by priority, so a narrow terminal keeps the model, KLD and fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.events import Resize

from ...core import format as fmt
from ...core.quality.advise import Advice, QuantRow
from ..safe import safe
from .safe_table import SafeTable

# key, label, width; in table order. Model takes what the others leave.
COLUMNS = (
    ("mark", "", 1),
    ("model", "Model", 0),
    ("quant", "Quant", 8),
    ("size", "Size", 10),
    ("bpw", "BPW", 5),
    ("fit", "Fit", 6),
    ("kld", "KLD ± se", 13),
    ("top1", "top-1", 6),
    ("ppl", "ppl ×", 6),
    ("tg", "tok/s", 7),
)
PRIORITY = ("kld", "fit", "size", "tg", "top1", "bpw", "ppl", "quant")
MODEL_MIN = 20
PAD, SCROLLBAR = 2, 2


def plan(available: int) -> list[tuple[str, int]]:
    """The columns that fit in `available` cells with their widths, in table order."""
    widths = {k: w for k, _, w in COLUMNS}
    used = widths["mark"] + PAD + MODEL_MIN + PAD
    chosen = {"mark", "model"}
    for key in PRIORITY:
        if used + widths[key] + PAD > available:
            break
        chosen.add(key)
        used += widths[key] + PAD
    widths["model"] = MODEL_MIN + max(0, available - used)
    return [(k, widths[k]) for k, _, _ in COLUMNS if k in chosen]


def fit_cell(fit: dict[str, Any] | None) -> Text:
    if not fit:
        return Text("")
    code = fit.get("verdict_code")
    if code == "gpu":
        return Text("GPU", style="bold green")
    if code == "partial":
        return Text(f"{fit.get('gpu_layers')}/{fit.get('layers')}", style="yellow")
    if code == "ram":
        return Text("RAM", style="cyan")
    return Text("no", style="bold red")


def _num(v: object, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def row_cells(r: QuantRow, recommended: bool, error: str | None) -> dict[str, object]:
    """The cells of one quant; an error (unreadable file, failed eval) shows in the KLD column."""
    q = r.quality or {}
    top1 = q.get("top1_agreement")
    name = safe(Path(r.model).name, style="bold" if recommended else "")
    cells: dict[str, object] = {
        "mark": Text("→", style="bold green") if recommended else Text(""),
        "model": name,
        "quant": safe(r.quant or "?"),
        "size": Text(fmt.size(r.size_bytes), justify="right"),
        "bpw": Text(_num(r.bpw, ".2f"), justify="right"),
        "fit": fit_cell(r.fit),
        "top1": Text(_num(top1 * 100 if isinstance(top1, (int, float)) else None, ".1f"), justify="right"),
        "ppl": Text(_num(q.get("ppl_ratio"), ".3f"), justify="right"),
        "tg": tg_cell(r),
    }
    if error or r.error:
        cells["kld"] = Text("error", style="bold red")
    elif r.is_reference:
        cells["kld"] = Text("reference", style="dim")
    elif r.quality is None:
        cells["kld"] = Text("not measured", style="dim")
    else:
        cells["kld"] = kld_cell(q)
    return cells


def kld_cell(q: dict[str, Any]) -> Text:
    """Mean KLD with llama-perplexity's "±": "0.0149±0.0003" (13 cells)."""
    kld, se = q.get("kld_mean"), q.get("kld_mean_se")
    text = _num(kld, ".4f")
    if isinstance(se, (int, float)) and isinstance(kld, (int, float)):
        text += f"±{se:.4f}"
    return Text(text, justify="right")


def tg_cell(r: QuantRow) -> Text:
    """tok/s: "~" before an estimate (scaled from a sibling), "!" after a busy measurement."""
    if r.tg_source == "estimated":
        return Text("~" + _num(r.tg, ".1f"), style="dim", justify="right")
    cell = Text(_num(r.tg, ".1f"), justify="right")
    if r.tg_busy:
        cell.append("!", style="bold yellow")
    return cell


def keep_end(name: Text, width: int) -> Text:
    """A name cut from the left when too long: quants of one model differ at the end of their names."""
    if len(name.plain) <= width or width < 2:
        return name
    return Text("…" + name.plain[len(name.plain) - width + 1 :], style=name.style)


class QualityTable(SafeTable):
    """Rows keyed by file path; `show` replaces them. Outside text (names, quant labels) is cleaned."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.advice: Advice | None = None
        self.errors: dict[str, str] = {}
        self._planned: list[tuple[str, int]] = []

    def show(self, advice: Advice, errors: dict[str, str]) -> None:
        self.advice, self.errors = advice, dict(errors)
        self._fill()

    def on_resize(self, event: Resize) -> None:
        self._fill()

    def _fill(self) -> None:
        width = self.size.width or self.app.size.width
        columns = plan(width - SCROLLBAR)
        if columns != self._planned or not self.columns:
            self.clear(columns=True)
            self._planned = columns
            labels = {k: label for k, label, _ in COLUMNS}
            for key, w in columns:
                self.add_column(labels[key], width=w, key=key)
        self.clear()
        if self.advice is None:
            return
        model_width = dict(self._planned)["model"]
        for r in self.advice.rows:
            cells = row_cells(r, r.model == self.advice.recommended, self.errors.get(r.model))
            cells["model"] = keep_end(cells["model"], model_width)  # type: ignore[arg-type]
            self.add_row(*(cells[k] for k, _ in self._planned), key=r.model)
