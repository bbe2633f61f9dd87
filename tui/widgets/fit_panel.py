"""The fit panel: one stacked bar per device (weights, KV cache, compute, overhead) against its memory."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ...core import format as fmt
from ...core.fit import FitResult, FitSettings
from ..safe import safe

PARTS = (("weights", "weights"), ("kv_cache", "KV"), ("compute", "compute"), ("overhead", "overhead"))


def settings_line(s: FitSettings) -> str:
    fa = "on" if s.flash_attn else "off"
    kv = s.type_k if s.type_k == s.type_v else f"{s.type_k}/{s.type_v}"
    return f"ctx {s.n_ctx} · KV {kv} · flash attn {fa} · GPU layers {s.gpu_layers}"


def verdict_cell(result: FitResult | None) -> Text:
    """The Library table's Fit column: GPU, N/M (partial), RAM, or no."""
    if result is None:
        return Text("")
    code = result.verdict_code
    if code == "gpu":
        return Text("GPU", style="bold green")
    if code == "partial":
        return Text(f"{result.gpu_layers}/{result.n_layer + 1}", style="yellow")
    if code == "ram":
        return Text("RAM", style="cyan")
    return Text("no", style="bold red")


class FitPanel(Widget):
    """Shows a FitResult; keys on the screen change the settings and a new result arrives."""

    DEFAULT_CSS = "FitPanel { height: auto; padding: 0 0 1 0; }"
    result: reactive[FitResult | None] = reactive(None, layout=True)
    error: reactive[str | None] = reactive(None, layout=True)

    def _colours(self) -> dict[str, str]:
        t = self.app.current_theme
        return {
            "weights": t.primary,
            "kv_cache": t.secondary or "magenta",
            "compute": t.accent or "yellow",
            "overhead": t.panel or "grey50",
            "over": t.error or "red",
        }

    def render(self) -> Group | Text:
        if self.error:
            return safe(f"memory fit: {self.error}", style="bold red")
        r = self.result
        if r is None:
            return Text("memory fit: highlight a model", style="dim")
        colours = self._colours()
        width = max(10, self.content_size.width - 2)
        lines: list[Text | Table] = [
            Text.assemble(("memory fit  ", "bold"), (settings_line(r.settings), "dim"))
        ]
        for d in r.devices:
            if d.total == 0 and d.kind == "gpu":
                lines.append(safe(f"{d.name}: unused", style="dim"))
                continue
            cap = max(d.free_bytes, 1)
            scale = width / max(cap, d.total)
            bar = Text()
            for part, _ in PARTS:
                value = getattr(d, part) + (d.output if part == "compute" else 0)
                cells = round(value * scale)
                if value and not cells:
                    cells = 1
                bar.append("█" * cells, style=colours[part])
            used = len(bar)
            if d.total > cap:
                bar.stylize(colours["over"], round(cap * scale), used)
            bar.append("░" * max(0, width - used), style="dim")
            head = safe(f"{d.name}  ", "bold") + Text(f"{fmt.size(d.total)} of {fmt.size(d.free_bytes)}")
            if not d.fits:
                head.append(f"  over by {fmt.size(d.total - d.free_bytes)}", style=colours["over"])
            lines += [head, bar]
        legend = Text()
        for part, label in PARTS:
            legend.append("█ ", style=colours[part])
            legend.append(f"{label}  ")
        lines.append(legend)
        style = {"gpu": "bold green", "partial": "bold yellow", "ram": "bold cyan"}.get(
            r.verdict_code, "bold red"
        )
        lines.append(safe(r.verdict, style=style))
        limits = []
        if r.max_context_full_offload is not None:
            limits.append(f"largest context fully on GPU {r.max_context_full_offload}")
        if r.max_gpu_layers is not None and r.devices[0].kind == "gpu":
            limits.append(f"most layers on GPU {r.max_gpu_layers}/{r.n_layer + 1}")
        if limits:
            lines.append(Text(" · ".join(limits), style="dim"))
        lines.append(Text("[ ] context  { } GPU layers  ; KV type  ' flash attn", style="dim"))
        return Group(*lines)
