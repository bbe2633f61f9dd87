"""Modal dialogs: ask for a value (a folder, a new name), and confirm an operation that changes files."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ..safe import safe

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 90; max-width: 100%; max-height: 90%; height: auto;
    border: thick $primary; background: $surface; padding: 1 2;
}}
"""


class AskScreen(ModalScreen[str | None]):
    """One line of input; Enter returns it, Esc returns None. `lines` (the files it acts on) are listed
    above the box, each shown exactly."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="ask.cancel")]
    DEFAULT_CSS = (
        DIALOG_CSS.format(name="AskScreen")
        + "AskScreen VerticalScroll { height: auto; max-height: 12; margin: 1 0; }"
    )

    def __init__(
        self, question: str, value: str = "", placeholder: str = "", lines: list[str] | None = None
    ) -> None:
        super().__init__()
        self.question, self.value, self.placeholder = question, value, placeholder
        self.lines = lines or []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(safe(self.question) + Text(" (Enter to confirm, Esc to cancel)"))
            if self.lines:
                with VerticalScroll():
                    yield Static(Text("\n").join(safe(line) for line in self.lines), id="ask-files")
            yield Input(value=self.value, placeholder=self.placeholder, id="ask-value", select_on_focus=False)

    def on_mount(self) -> None:
        self.query_one("#ask-value", Input).focus()

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Names every file an operation touches and what it frees; y/Enter confirms, n/Esc cancels. Each
    line is shown exactly (cleaned of control characters, never read as markup), so the dialog names the
    real file."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]
    DEFAULT_CSS = (
        DIALOG_CSS.format(name="ConfirmScreen")
        + """
    ConfirmScreen VerticalScroll { height: auto; max-height: 20; margin: 1 0; }
    ConfirmScreen Horizontal { height: auto; align: right middle; }
    ConfirmScreen Button { margin-left: 2; }
    """
    )

    def __init__(self, title: str, lines: list[str]) -> None:
        super().__init__()
        self.title_text, self.lines = title, lines

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(safe(self.title_text), id="confirm-title")
            with VerticalScroll():
                yield Static(Text("\n").join(safe(line) for line in self.lines), id="confirm-files")
            with Horizontal():
                yield Button("No", id="no")
                yield Button("Yes", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
