"""A scatter of KL divergence (log scale) against file size, drawn with Unicode in any size of box:
one marker per measured quant, its label beside it (right or left, on its row or the one above or
below, never over another label or marker; a label with no room is named under the axis), the
recommended one marked, and a line under the axis for what the chart leaves out (the reference,
whose KLD is 0: a point of KLD 0 is never plotted, so it cannot squash the axis)."""

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
    points = [p for p in points if p.kld > 0]  # KLD 0 is the reference's: off a log scale
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
        points = [p for p in self.points if p.kld > 0]  # the reference (KLD 0) is never plotted
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
        taken = [[False] * plot_w for _ in range(plot_h)]  # markers and labels, each with a gap
        for col, row, _ in placed:
            for c in range(max(col - 1, 0), min(col + 2, plot_w)):
                taken[row][c] = True
        unlabelled: list[str] = []
        for col, row, p in sorted(placed, key=lambda t: (not t[2].recommended, t[0])):
            label = clean(p.label)[:16] + (" ←" if p.recommended else "")
            spot = _label_spot(taken, col, row, len(label))
            if spot is None:
                unlabelled.append(clean(p.label)[:16])
                continue
            r, start = spot
            for c, ch in enumerate(label, start):
                grid[r][c] = (ch, f"bold {best}" if p.recommended else "")
            for c in range(max(start - 1, 0), min(start + len(label) + 1, plot_w)):
                taken[r][c] = True
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
        if unlabelled:
            out.append("\n" + " " * (Y_LABEL + 1))
            out.append_text(safe("no room to label: " + ", ".join(unlabelled), style="dim"))
        if note:
            out.append("\n")
            out.append_text(note)
        return out


def _label_spot(taken: list[list[bool]], col: int, row: int, length: int) -> tuple[int, int] | None:
    """(row, first column) for a label of `length` cells beside the marker at (col, row): right of it
    on its row, left of it, then right and left on the row above and below; None when all are taken."""
    width = len(taken[0]) if taken else 0
    for r in (row, row - 1, row + 1):
        if not 0 <= r < len(taken):
            continue
        near = 2 if r == row else 1  # beside the marker on its row; one step off it above or below
        for start in (col + near, col - near + 1 - length):
            cells = range(start, start + length)
            if start >= 0 and start + length <= width and not any(taken[r][c] for c in cells):
                return r, start
    return None
