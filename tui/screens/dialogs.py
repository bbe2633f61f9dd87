"""Modal dialogs: ask for a value (a folder, a new name), and confirm an operation that changes files;
`confirm_delete` plans a delete, names every file it touches and runs it on an operation bar."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ...core.format import size
from ...core.library import Root
from ...core.organize import DeletePlan, OrganizeError, execute_delete, plan_delete
from ..safe import safe
from ..widgets.operation_bar import OperationBar, Report

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


def confirm_delete(
    bar: OperationBar,
    what: str,
    targets: list[str],
    roots: list[Root],
    finished: Callable[[OperationBar.Done], None],
    *,
    permanent: bool = False,
    note: Iterable[str] = (),
    planner: Callable[[], DeletePlan] | None = None,
) -> None:
    """Plan a delete (`planner`, or `plan_delete` of `targets`), name every file it touches in a
    confirmation, and on yes run it on `bar` (the screen's operation bar) off the UI thread; a refused
    plan is one line and nothing is asked."""
    try:
        plan = planner() if planner else plan_delete(targets, roots, permanent=permanent)
    except OrganizeError as err:
        bar.app.notify(str(err), severity="error")
        return
    lines = [str(p) for p in plan.files] + [f"(link) {p}" for p in plan.links] + list(note)
    title = f"{plan.summary()} ({size(plan.bytes_freed)})?"

    def job(progress: Report) -> str:
        execute_delete(plan, roots)
        return plan.done_text()

    def answered(yes: bool | None) -> None:
        if yes:
            bar.start(what, job, finished)

    bar.app.push_screen(ConfirmScreen(title[0].upper() + title[1:], lines), answered)
