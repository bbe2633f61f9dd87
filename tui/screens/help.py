"""The help screen: every key of the screen underneath (its focused widget's included) and of the
app, built from their bindings, so a screen's keys are listed without the help screen knowing them."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from ..safe import safe


def key_rows(screen: Screen) -> list[tuple[str, str, str]]:
    """(where, key, what) for every active binding of `screen` and the app that has a description,
    after what the screen's HELP_TYPED lists (commands typed into it, with what they do)."""
    app = screen.app
    rows: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for namespace, binding, enabled, _tooltip in screen.active_bindings.values():
        if not binding.description or not enabled:
            continue
        where = "everywhere" if namespace is app else "this screen" if namespace is screen else "focused box"
        key = app.get_key_display(binding)
        if (key, binding.description) in seen:
            continue
        seen.add((key, binding.description))
        rows.append((where, key, binding.description))
    order = {"this screen": 0, "everywhere": 1, "focused box": 2}  # the screen's own actions first
    rows.sort(key=lambda r: (r[2] in GENERIC, order[r[0]]))  # Textual's own keys last
    typed = [("typed", name, what) for name, what in getattr(screen, "HELP_TYPED", ())]
    return typed + rows


GENERIC = {"Focus Next", "Focus Previous", "Copy selected text", "Command palette", "Maximize", "Minimize"}


class HelpScreen(ModalScreen[None]):
    """Lists every key; Esc, q, f1 or ? closes it."""

    BINDINGS = [Binding("escape,q,f1,question_mark", "app.pop_screen", "Close", id="help.close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 72; max-width: 100%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    HelpScreen VerticalScroll { height: auto; max-height: 40; }
    """

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.rows = key_rows(under)
        self.under_title = under.sub_title or type(under).__name__

    def compose(self) -> ComposeResult:
        t = Table(box=None, padding=(0, 1), expand=True)
        t.add_column("key", style="bold", no_wrap=True)
        t.add_column("what")
        t.add_column("", style="dim", no_wrap=True)
        for where, key, what in self.rows:
            t.add_row(safe(key), safe(what), Text(where))
        with Vertical():
            yield Static(
                safe(f"Keys: {self.under_title}  (Esc closes; ctrl+p finds any command)"), id="help-title"
            )
            with VerticalScroll():
                yield Static(t, id="help-keys")
