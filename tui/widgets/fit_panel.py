"""The fit panel: the memory fit of the highlighted file at the shared fit settings, one stacked bar per
device (weights, KV cache, compute, overhead), and the keys that change those settings within bounds."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ...core import format as fmt
from ...core.fit import FitError, FitResult, FitSettings, estimate
from ...core.fit.rules import MAX_CTX
from ...core.library import LibraryEntry
from ..safe import safe
from ..state import LibraryState, runnable

KV_CYCLE = ("f16", "q8_0", "q4_0")
MIN_CTX = 256

PARTS = (("weights", "weights"), ("kv_cache", "KV"), ("compute", "compute"), ("overhead", "overhead"))


def settings_parts(s: FitSettings) -> list[str]:
    fa = "on" if s.flash_attn else "off"
    kv = s.type_k if s.type_k == s.type_v else f"{s.type_k}/{s.type_v}"
    return [f"ctx {s.n_ctx}", f"KV {kv}", f"flash attn {fa}", f"GPU layers {s.gpu_layers}"]


def settings_line(s: FitSettings) -> str:
    return " · ".join(settings_parts(s))


def packed(items: list[Text], width: int, sep: str = "  ", first: Text | None = None) -> list[Text]:
    """`items` on as few lines of `width` cells as they take, each item whole on one line (a legend's
    swatch stays with its word, a key with what it does); `first` starts the first line."""
    lines: list[Text] = []
    line, bare = (first.copy() if first is not None else Text()), True  # bare: no item on it yet
    for item in items:
        gap = "" if bare else sep
        if not bare and line.cell_len + len(gap) + item.cell_len > width:
            lines.append(line)
            line, gap = Text(), ""
        line.append(gap)
        line.append_text(item)
        bare = False
    if line.cell_len:
        lines.append(line)
    return lines


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
    """Names the file it shows and its FitResult; its key methods change the shared fit settings, each
    bounded (the context by the file's trained context, GPU layers by the GPUs present), and say why
    when a change is refused, saving nothing."""

    DEFAULT_CSS = "FitPanel { height: auto; padding: 0 0 1 0; }"
    result: reactive[FitResult | None] = reactive(None, layout=True)
    error: reactive[str | None] = reactive(None, layout=True)
    note: reactive[str] = reactive("highlight a file", layout=True)

    def __init__(self, state: LibraryState, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = state
        self.entry: LibraryEntry | None = None

    def show(self, entry: LibraryEntry | None, note: str = "highlight a file") -> None:
        """The fit of `entry` at the current settings; None clears the panel to `note`."""
        self.entry = entry
        self.result, self.error, self.note = None, None, note
        if entry is None:
            return
        if entry.fact("vocab_only"):
            self.note = f"{entry.name}: vocabulary only (a tokenizer, no weights); nothing to run"
        elif not runnable(entry):
            self.note = f"{entry.name}: cannot be read, so no fit"
        elif self.state.hardware is None:
            self.note = "detecting the hardware…"
        else:
            try:
                self.result = estimate(entry.facts or {}, self.state.fit_settings, self.state.hardware)
            except FitError as err:
                self.error = str(err)

    def recompute(self) -> None:
        self.show(self.entry, self.note)

    # keys -----------------------------------------------------------------------------------------

    def _apply(self, s: FitSettings) -> None:
        problem = self.state.set_fit(s)
        if problem:
            self.app.notify(problem, severity="warning")

    def _refuse(self, why: str) -> None:
        self.app.notify(why, severity="warning", timeout=4)

    def change_ctx(self, factor: float) -> None:
        """Halve or double the context, between MIN_CTX and the file's trained context."""
        n = self.state.fit_settings.n_ctx
        trained = self.entry.fact("context_length") if self.entry else None
        top = trained if isinstance(trained, int) and 0 < trained <= MAX_CTX else MAX_CTX
        new = min(max(int(n * factor) // MIN_CTX * MIN_CTX, MIN_CTX), top)
        if new == n or (factor > 1) != (new > n):  # never lowered by the key that raises it
            edge = (
                (
                    f"{self.entry.name} was trained for {top:,} tokens"
                    if top != MAX_CTX and self.entry
                    else f"the largest context is {MAX_CTX:,}"
                )
                if factor > 1
                else f"the smallest context here is {MIN_CTX}"
            )
            self._refuse(f"context stays {n:,}: {edge}")
            return
        self._apply(self.state.with_fit(n_ctx=new))

    def change_layers(self, step: int) -> None:
        """One layer more or fewer on the GPU; refused on a machine without a GPU."""
        hw = self.state.hardware
        if hw is None or not hw.gpus:
            self._refuse("no GPU on this machine: every layer runs on the CPU")
            return
        result = self.result
        full = result.n_layer + 1 if result else 1 << 16
        current = self.state.fit_settings.gpu_layers
        n = (result.gpu_layers if result else 0) if current in ("auto", "all") else int(current)
        n += step
        layers: int | str = "auto" if n < 0 else "all" if n >= full else n
        self._apply(self.state.with_fit(gpu_layers=layers))

    def cycle_kv(self) -> None:
        s = self.state.fit_settings
        nxt = KV_CYCLE[(KV_CYCLE.index(s.type_k) + 1) % len(KV_CYCLE)] if s.type_k in KV_CYCLE else "f16"
        # A quantized V cache needs flash attention, so switching to one turns it on.
        self._apply(self.state.with_fit(type_k=nxt, type_v=nxt, flash_attn=s.flash_attn or nxt != "f16"))

    def toggle_flash_attn(self) -> None:
        self._apply(self.state.with_fit(flash_attn=not self.state.fit_settings.flash_attn))

    # drawing --------------------------------------------------------------------------------------

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
        name = safe(self.entry.name, style="bold") if self.entry is not None else Text("")
        if self.error:
            return Group(name, safe(f"memory fit: {self.error}", style="bold red"))
        r = self.result
        if r is None:
            return safe(f"memory fit: {self.note}", style="dim")
        colours = self._colours()
        width = max(10, self.content_size.width - 2)
        text_width = max(10, self.content_size.width)
        lines: list[Text | Table] = list(
            packed(
                [Text(p, style="dim") for p in settings_parts(r.settings)],
                text_width,
                sep=" · ",
                first=Text("memory fit  ", style="bold"),
            )
        )
        lines.append(Text.assemble(("file  ", "dim"), name))
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
        swatches = [Text.assemble(("█ ", colours[part]), label) for part, label in PARTS]
        lines += packed(swatches, text_width)
        style = {"gpu": "bold green", "partial": "bold yellow", "ram": "bold cyan"}.get(
            r.verdict_code, "bold red"
        )
        lines.append(safe(r.verdict, style=style))
        limits = []
        if r.max_context_full_offload is not None:
            limits.append(f"largest context fully on GPU {r.max_context_full_offload}")
        if r.max_gpu_layers is not None and r.devices[0].kind == "gpu":
            limits.append(f"most layers on GPU {r.max_gpu_layers}/{r.n_layer + 1}")
        lines += packed([Text(limit, style="dim") for limit in limits], text_width, sep=" · ")
        keys = ("[ ] context", "{ } GPU layers", "; KV type", "' flash attn")
        lines += packed([Text(k, style="dim") for k in keys], text_width)
        return Group(*lines)
