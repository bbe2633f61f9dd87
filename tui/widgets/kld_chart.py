"""A scatter of KL divergence (log scale) against file size, drawn with Unicode in any size of box:
one marker per measured quant, its label beside it when there is room, the recommended one marked,
and a line under the axis for what the chart leaves out (the reference, whose KLD is 0)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ...core.format import size as fmt_size
from ...core.textsafe import clean
from ..safe import safe

Y_LABEL = 9  # width of the KLD labels left of the axis
KLD_FLOOR = 1e-6  # a quant equal to the reference still gets a place on the log scale


@dataclass(frozen=True)
class Point:
    """One quant on the chart: its label (the quant type), size in bytes and mean KLD."""

    label: str
    size_bytes: int
    kld: float
    recommended: bool = False


def _fmt_kld(v: float) -> str:
    return f"{v:.4f}" if v >= 1e-3 else f"{v:.1e}"


def layout(points: list[Point], width: int, height: int) -> list[tuple[int, int, Point]]:
    """(column, row) of each point in a plot `width` x `height` cells: size grows rightwards,
    KLD upwards on a log scale; equal values share the middle."""
    if not points or width < 1 or height < 1:
        return []
    sizes = [p.size_bytes for p in points]
    logs = [math.log10(max(p.kld, KLD_FLOOR)) for p in points]
    s0, s1, y0, y1 = min(sizes), max(sizes), min(logs), max(logs)
    out = []
    for p, ly in zip(points, logs, strict=True):
        col = round((p.size_bytes - s0) / (s1 - s0) * (width - 1)) if s1 > s0 else width // 2
        row = round((y1 - ly) / (y1 - y0) * (height - 1)) if y1 > y0 else height // 2
        out.append((col, row, p))
    return out


class KldChart(Widget):
    """What each quant loses against what it saves: KLD (log) up, file size right."""

    DEFAULT_CSS = "KldChart { height: 1fr; min-height: 5; }"
    points: reactive[list[Point]] = reactive(list, layout=True)
    footnote: reactive[str] = reactive("")  # outside text (a quant label): drawn through safe()

    def on_resize(self) -> None:
        self.refresh()

    def _footnote(self, width: int) -> Text | None:
        """The footnote, under the plot when it fits on one line there, else from the left edge."""
        if not self.footnote:
            return None
        note = safe(self.footnote, style="dim")
        indent = Y_LABEL + 1 if Y_LABEL + 1 + note.cell_len <= width else 0
        return Text(" " * indent) + note

    def render(self) -> Text:
        title = Text("KLD (log scale) against file size", style="bold")
        points = self.points
        width, height = self.content_size.width, self.content_size.height
        note = self._footnote(width)
        note_h = len(note.wrap(self.app.console, width)) if note else 0
        plot_w, plot_h = width - Y_LABEL - 1, height - 3 - note_h
        if not points:
            title.append("\nnothing measured yet: press e to run the eval", style="dim")
            return title
        if plot_w < 8 or plot_h < 2:
            return title
        theme = self.app.current_theme
        best, other = (theme.success or "green"), (theme.primary or "blue")
        grid: list[list[tuple[str, str]]] = [[(" ", "")] * plot_w for _ in range(plot_h)]
        placed = layout(points, plot_w, plot_h)
        for col, row, p in placed:
            grid[row][col] = ("◆" if p.recommended else "●", f"bold {best}" if p.recommended else other)
        for col, row, p in placed:  # labels after all markers, so no label hides a marker
            label = clean(p.label)[:16] + (" ←" if p.recommended else "")
            start = col + 2 if col + 2 + len(label) <= plot_w else col - 1 - len(label)
            cells = range(start, start + len(label))
            if start >= 0 and all(grid[row][c][0] == " " for c in cells):
                for c, ch in zip(cells, label, strict=True):
                    grid[row][c] = (ch, f"bold {best}" if p.recommended else "")
        klds = [max(p.kld, KLD_FLOOR) for p in points]
        top, bottom = _fmt_kld(max(klds)), _fmt_kld(min(klds))
        out = Text()
        out.append_text(title)
        for r, line in enumerate(grid):
            label = top if r == 0 else bottom if r == plot_h - 1 else ""
            out.append(f"\n{label:>{Y_LABEL}}│")
            for ch, style in line:
                out.append(ch, style)
        out.append("\n" + " " * Y_LABEL + "└" + "─" * plot_w)
        sizes = [p.size_bytes for p in points]
        left, right = fmt_size(min(sizes)), fmt_size(max(sizes))
        gap = max(1, plot_w - len(left) - len(right))
        out.append("\n" + " " * (Y_LABEL + 1) + left + " " * gap + (right if max(sizes) > min(sizes) else ""))
        if note:
            out.append("\n")
            out.append_text(note)
        return out
