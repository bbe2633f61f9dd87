"""A horizontal bar chart of bits per weight per layer, coloured from the theme by how low it goes."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ...core.report import bar
from ..safe import safe


class BpwChart(Widget):
    """One row per layer (token_embd, blk.N, output_norm, output): name, bpw and a bar scaled to the
    widest; with tied embeddings the title says token_embd is also the output."""

    DEFAULT_CSS = "BpwChart { height: auto; }"
    bars: reactive[list[dict[str, Any]]] = reactive(list, layout=True)
    tied: reactive[bool] = reactive(False, layout=True)

    def _colour(self, bpw: float) -> str:
        theme = self.app.current_theme
        if bpw < 3.5:
            return theme.error or "red"
        if bpw < 5.0:
            return theme.warning or "yellow"
        if bpw < 7.0:
            return theme.success or "green"
        return theme.primary

    def on_resize(self) -> None:
        self.refresh()

    def render(self) -> Table | Text:
        if not self.bars:
            return Text("")
        title = Text("bits per weight by layer")
        if self.tied:
            title.append("  (tied embeddings: token_embd is also the output)", style="dim")
        t = Table(title=title, title_justify="left", box=None, padding=(0, 1))
        t.add_column("layer", no_wrap=True)
        t.add_column("bpw", justify="right")
        t.add_column("", no_wrap=True)
        top = max(layer["bpw"] for layer in self.bars) or 1.0
        width = max(10, min(40, self.content_size.width - 26))
        for layer in self.bars:
            t.add_row(
                safe(layer["name"]),
                Text(f"{layer['bpw']:.2f}"),
                Text(bar(layer["bpw"], top, width), style=self._colour(layer["bpw"])),
            )
        return t
