"""A modal that asks for a folder to add to the library."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class AddRootScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="add_root.cancel")]
    DEFAULT_CSS = """
    AddRootScreen { align: center middle; }
    AddRootScreen > Vertical {
        width: 72; height: auto; border: thick $primary; background: $surface; padding: 1 2;
    }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Add a folder to the library (Enter to add, Esc to cancel)")
            yield Input(placeholder="/path/to/models", id="root-path")

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
