"""One side of the A/B screen: the conversation, the answer streaming in, its meters and KLD sparkline."""

from __future__ import annotations

from collections.abc import Callable

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Sparkline, Static

from ...core.ab import SideResult, Turn
from ...core.ab.metrics import distinct_n, loops
from ...core.ab.scoring import Scores
from ...core.textsafe import clean
from ..safe import safe

DIVERGENCE_MARK = "▌"


def printable(text: str) -> str:
    """Model output as display text: newlines and tabs kept, every control, bidi and undecodable
    character shown as an escape (an ESC would otherwise be a terminal escape sequence)."""
    return clean(text, multiline=True)


def shown_offsets(text: str) -> Callable[[int], int]:
    """Maps a character offset in `text` to the same place in `printable(text)`, where each escaped
    character takes several characters."""
    if len(printable(text)) == len(text):
        return lambda i: i
    ends: list[int] = []  # ends[i]: where character i ends in the printable text
    pos = 0
    for ch in text:
        pos += len(printable(ch))
        ends.append(pos)
    return lambda i: 0 if i <= 0 else ends[min(i, len(ends)) - 1]


def answer_text(
    r: SideResult,
    divergence: int | None,
    basis: str | None,
    colours: dict[str, str],
    worst: list[int] | None = None,
) -> Text:
    """The answer with loops underlined, the tokens where the other model disagreed most (`worst`,
    by KL divergence) in reverse, and everything from the first divergence on tinted."""
    text = Text(printable(r.text))
    at_ = shown_offsets(r.text)

    def span(start: int, end: int) -> tuple[int, int]:
        lo, hi = r.char_span(start, end)
        return at_(lo), at_(hi)

    for lp in loops(r.token_ids):
        lo, hi = span(lp.start, lp.end)
        text.stylize(f"underline {colours['loop']}", lo, hi)
    for i in worst or []:
        lo, hi = span(i, i + 1)
        text.stylize(f"reverse {colours['mark']}", lo, hi)
    if divergence is not None:
        at = at_(divergence) if basis == "text" else span(divergence, divergence)[0]
        at = min(at, len(text))
        text.stylize(f"on {colours['tint']}", at, len(text))
        text = text[:at] + Text(DIVERGENCE_MARK, style=f"bold {colours['mark']}") + text[at:]
    return text


def _asked(prompt: str, style: str = "bold") -> tuple[str, str]:
    """The prompt line that heads a turn, as a piece for `Text.assemble`."""
    return f"> {printable(prompt)}\n", style


def _lines(text: str, width: int) -> int:
    """Lines `text` takes at `width` cells without word wrapping: it changes when a line is added."""
    width = max(width, 1)
    return sum(cell_len(line) // width + 1 for line in text.split("\n"))


STOP_SHOWN = {"cancelled": "stopped (Esc)"}


def meters(r: SideResult) -> str:
    if r.error:
        return ""
    n = len(r.token_ids)
    stop = STOP_SHOWN.get(r.stop_reason, r.stop_reason or "…")
    return (
        f"{n} tokens · {r.tokens_per_second:.1f} tok/s · stop: {stop} · "
        f"longest loop {r.loop_text()} · distinct-1 {distinct_n(r.token_ids, 1):.2f} · "
        f"distinct-2 {distinct_n(r.token_ids, 2):.2f}"
    )


def kl_name(side: str) -> str:
    """What a side's KLD is: KL(this side's model || the other's), on this side's own tokens."""
    me, other = side.upper(), "B" if side == "a" else "A"
    return f"KL({me}||{other}) on {me}'s tokens"


def _brief(turn: Turn, side: str, scores: Scores | None, div: str) -> list[tuple[int, str]]:
    """The compact figures as (priority, text) in the order shown; 0 is kept longest."""
    r: SideResult = getattr(turn, side)
    lp = r.loop
    me, other = side.upper(), "B" if side == "a" else "A"
    items = [(0, f"{len(r.token_ids)} tokens"), (6, f"{r.tokens_per_second:.0f} tok/s")]
    items.append((5, "stopped" if r.stop_reason == "cancelled" else r.stop_reason or "…"))
    items.append((3, f"loop {lp.length} ({lp.period}×{lp.repeats})" if lp else "loop 0"))
    if scores is not None and scores.kld:
        items += [(1, f"KL({me}||{other}) {scores.kld_mean:.3f}"), (2, f"top-1 {scores.top1_agreement:.0%}")]
    else:
        items.append((1, "not scored" + (" (/score)" if "/score" in turn.unscored else "")))
    if div:
        short = div.replace("diverges from the other side at ", "diverges at ")
        items.append((4, short.replace("identical to the other side", "identical")))
    return items


def _pack(items: list[tuple[int, str]], width: int, lines: int = 2) -> str:
    """The items joined with " · " into at most `lines` lines of `width` cells, dropping the least
    important ones (highest priority number) until they fit."""
    items = list(items)
    while True:
        out: list[str] = []
        for _, text in items:
            if out and cell_len(out[-1]) + 3 + cell_len(text) <= width:
                out[-1] += " · " + text
            else:
                out.append(text)
        if len(out) <= lines or len(items) == 1:
            return "\n".join(out[:lines])
        items.remove(max(items, key=lambda it: it[0]))


def stats(turn: Turn, side: str, *, compact: bool = False, width: int = 36) -> str:
    """A finished turn's figures for one side: several lines, or at most two of `width` cells
    (`compact`, for small terminals: the answer gets the rest of the pane)."""
    r: SideResult = getattr(turn, side)
    scores = turn.scores_a if side == "a" else turn.scores_b
    worst = scores.worst(3) if scores is not None and scores.kld else []
    if turn.divergence_basis is None:  # the other side failed: nothing to compare with
        div = ""
    elif turn.first_divergence is not None:
        unit = "character" if turn.divergence_basis == "text" else "token"
        div = f"diverges from the other side at {unit} {turn.first_divergence}"
    elif turn.a.token_ids or turn.b.token_ids:
        div = "identical to the other side"
    else:
        div = ""
    if compact:
        return _pack(_brief(turn, side, scores, div), width)
    line = meters(r)
    if scores is not None and scores.kld:
        line += f"\n{kl_name(side)}: mean {scores.kld_mean:.4f} · top-1 agreement {scores.top1_agreement:.1%}"
        if any(v > 0 for _, v in worst):  # a model against itself disagrees nowhere: no worst positions
            line += " · worst (marked) " + ", ".join(f"{i} ({v:.2f})" for i, v in worst if v > 0)
    if scores is None and turn.unscored:
        line += f"\nnot scored: {turn.unscored}"
    if div:
        line += f"\n{div}"
    return line


class ChatPane(Vertical):
    """Previous turns dim, the current answer live; errors stay in this pane. The turns before the
    current one sit in their own widget, so streaming redraws only the answer coming in."""

    DEFAULT_CSS = """
    ChatPane { width: 1fr; border: round $panel; padding: 0 1; }
    ChatPane > .title { text-style: bold; height: auto; }
    ChatPane > .note { color: $text-muted; height: auto; }
    ChatPane > VerticalScroll { height: 1fr; }
    ChatPane .past { display: none; margin-bottom: 1; }
    ChatPane > .meters { height: auto; color: $text-muted; }
    ChatPane > Sparkline { height: 2; }
    """

    def __init__(self, side: str, title: str, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.side = side
        self.title = title
        self.past: list[Text] = []
        self._notes: set[int] = set()  # ids of the lines in `past` that are notes, not turns
        self._stream_lines = 0  # lines the streaming answer was last laid out with
        self._past_shown = 0  # how many of `past` the .past widget shows (a finished turn shows as
        # the current one, in full colour, until the next turn starts)
        self._turn: Turn | None = None  # the finished turn whose figures are shown
        self.compact = False  # figures in two lines, no sparkline (small terminals)

    def compose(self) -> ComposeResult:
        yield Static(Text(f"{self.side.upper()}  ") + safe(self.title), classes="title")
        yield Static("", classes="note")
        with VerticalScroll():
            yield Static("", classes="past")
            yield Static("", classes="body")
        yield Static("", classes="meters")
        yield Sparkline([], summary_function=max)

    def _colours(self) -> dict[str, str]:
        t = self.app.current_theme
        return {"loop": t.warning or "yellow", "tint": t.panel or "grey23", "mark": t.error or "red"}

    def _show(self, current: Text | str, *, layout: bool = True) -> None:
        if self._past_shown != len(self.past):
            self._past_shown = len(self.past)
            past = self.query_one(".past", Static)
            past.update(Text("\n\n").join(self.past))
            past.display = bool(self.past)
            layout = True
        self.query_one(".body", Static).update(current, layout=layout)
        self.query_one(VerticalScroll).scroll_end(animate=False)

    def set_note(self, note: str) -> None:
        """The line under the title: what this side carries into its next prompt."""
        self.query_one(".note", Static).update(safe(note))

    def cleared(self, why: str = "history cleared") -> None:
        """The conversation was forgotten: earlier turns stay on screen, above a line that says why."""
        line = Text(f"── {why}: the next prompt starts afresh ──", style="italic")
        self._notes.add(id(line))
        self.past.append(line)
        self._turn = None
        self._show(Text(""))
        self.query_one(".meters", Static).update(Text(""))
        self.query_one(Sparkline).data = []

    def show_error(self, message: str) -> None:
        self.query_one(".body", Static).update(safe(message, style="bold red", multiline=True))

    def streaming(self, prompt: str, text: str, n_tokens: int) -> None:
        """The answer so far. The screen is laid out again only when the answer needs another line:
        a frame with a layout pass cost 24 ms of CPU, one without 8 ms (bench/ab.py, 160x48)."""
        current = Text.assemble(_asked(prompt), printable(text))
        lines = _lines(current.plain, self.query_one(".body", Static).content_size.width)
        layout = not text or lines != self._stream_lines
        self._stream_lines = lines
        if not text:  # a new turn: the last turn's numbers and its KLD sparkline go together
            self._turn = None
            self.query_one(Sparkline).data = []
        self._show(current, layout=layout)
        self.query_one(".meters", Static).update(Text(f"{n_tokens} tokens …"), layout=layout)

    def cancelled(self) -> None:
        """The turn was dropped: back to the conversation as it was, with no numbers of the dropped
        turn left (neither its meters nor its sparkline)."""
        self._turn = None
        self._show(Text(""))
        self.query_one(".meters", Static).update(Text(""))
        self.query_one(Sparkline).data = []

    def finish(self, turn: Turn) -> None:
        r: SideResult = getattr(turn, self.side)
        if r.error:  # earlier turns stay; this one is not part of the conversation
            self._turn = None
            self._show(Text.assemble(_asked(turn.prompt), (printable(r.error), "bold red")))
            self.query_one(".meters", Static).update(Text(""))
            self.query_one(Sparkline).data = []
            return
        scores = turn.scores_a if self.side == "a" else turn.scores_b
        worst = scores.worst(3) if scores is not None and scores.kld else []
        marked = [i for i, v in worst if v > 0]
        answer = answer_text(r, turn.first_divergence, turn.divergence_basis, self._colours(), marked)
        self._show(Text.assemble(_asked(turn.prompt), answer))
        earlier = Text.assemble(_asked(turn.prompt, "bold"), answer)  # marks kept, dimmed
        earlier.stylize("dim")
        self.past.append(earlier)
        self._turn = turn
        self._draw_stats()

    def _draw_stats(self) -> None:
        turn = self._turn
        meters_ = self.query_one(".meters", Static)
        spark = self.query_one(Sparkline)
        spark.display = not self.compact
        if turn is None:
            return
        width = self.content_size.width or 36
        meters_.update(safe(stats(turn, self.side, compact=self.compact, width=width), multiline=True))
        scores = turn.scores_a if self.side == "a" else turn.scores_b
        spark.data = scores.kld if scores is not None else []

    def set_compact(self, compact: bool) -> None:
        """At small heights the figures take at most two lines and the sparkline none."""
        if compact != self.compact:
            self.compact = compact
            self._draw_stats()

    def on_resize(self) -> None:
        """The current turn stays in view: the answer's end, above its figures (a resize reflows
        the text above it, which would otherwise leave an older turn where the view was)."""
        if self.compact:  # the figures are packed to the width
            self._draw_stats()
        self.call_after_refresh(self.query_one(VerticalScroll).scroll_end, animate=False)

    def forget_last(self) -> None:
        """Take the last turn off the conversation shown (a "history cleared" line stays)."""
        turns = [i for i, t in enumerate(self.past) if id(t) not in self._notes]
        if turns:
            del self.past[turns[-1]]
            self._past_shown = -1  # drawn again at the next turn
