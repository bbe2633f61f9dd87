"""The help screen: every key of the screen underneath (its focused widget's included) and of the
app, built from their bindings, so a screen's keys are listed without the help screen knowing them.
From it, `d` opens the doctor report (core/doctor.py, as `quanttui doctor` prints it), collected in
a thread: the Hub check and the first extra-buffer probe take up to a few seconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.events import Resize
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from ...core import doctor
from ..safe import safe


def key_rows(screen: Screen[Any]) -> list[tuple[str, str, str]]:
    """(where, key, what) for every active binding of `screen` and the app that has a description,
    after what the screen's HELP_TYPED lists (commands typed into it, with what they do) and its
    HELP_NOTES (what its figures mean)."""
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
    notes = [("note", name, what) for name, what in getattr(screen, "HELP_NOTES", ())]  # A/B: KLD, Esc
    return typed + notes + rows


GENERIC = {"Focus Next", "Focus Previous", "Copy selected text", "Command palette", "Maximize", "Minimize"}


class HelpScreen(ModalScreen[None]):
    """Lists every key; Esc, q, f1 or ? closes it."""

    BINDINGS = [
        Binding("escape,q,f1,question_mark", "app.pop_screen", "Close", id="help.close"),
        Binding("d", "doctor", "Doctor report", id="help.doctor"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 72; max-width: 100%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    HelpScreen VerticalScroll { height: 1fr; }
    """

    def __init__(self, under: Screen[Any]) -> None:
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
            yield Static(DOCTOR_LINE, id="help-doctor")
            with VerticalScroll():
                yield Static(t, id="help-keys")

    def action_doctor(self) -> None:
        self.app.push_screen(DoctorScreen())


DOCTOR_LINE = Text.assemble(
    ("d", "bold"), "  doctor report for bug reports: llama.cpp, devices, Hub, folders"
)


class DoctorScreen(ModalScreen[None]):
    """The doctor report as `quanttui doctor` prints it, wrapped to the box; c copies it (at the
    CLI's width) to the clipboard where the terminal allows, r collects it again."""

    BINDINGS = [
        Binding("escape,q,f1,question_mark", "app.pop_screen", "Close", id="doctor.close"),
        Binding("c", "copy", "Copy report", id="doctor.copy"),
        Binding("r", "refresh", "Collect again", id="doctor.refresh"),
    ]
    DEFAULT_CSS = """
    DoctorScreen { align: center middle; }
    DoctorScreen > Vertical {
        width: 86; max-width: 100%; height: 100%; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    DoctorScreen VerticalScroll { height: 1fr; scrollbar-gutter: stable; }
    """

    @dataclass
    class Ready(Message):
        """A collected report, or the one line saying why there is none."""

        report: dict[str, Any] | None
        error: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.report: dict[str, Any] | None = None
        self.text = ""  # the report as shown now (cleaned, wrapped to the box)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                Text("Doctor: for a bug report  (Esc closes, c copies, r collects again)"),
                id="doctor-title",
            )
            with VerticalScroll():
                yield Static(
                    Text("collecting… (the Hub check takes up to a few seconds)"), id="doctor-report"
                )

    def on_mount(self) -> None:
        self.collect()

    @work(thread=True, exclusive=True, exit_on_error=False, group="doctor")
    def collect(self) -> None:
        try:
            self.post_message(self.Ready(doctor.report()))
        except Exception as e:  # noqa: BLE001 - shown in the box as one line
            self.post_message(self.Ready(None, f"the report failed: {type(e).__name__}: {e}"))

    @on(Ready)
    def _ready(self, message: Ready) -> None:
        self.report = message.report
        if message.report is None:
            self.text = ""
            self.query_one("#doctor-report", Static).update(safe(message.error))
            return
        self._show()

    def _show(self) -> None:
        if self.report is None:
            return
        box = self.query_one(VerticalScroll).scrollable_content_region.width
        self.text = doctor.as_text(self.report, width=max(40, min(doctor.WIDTH, box)))
        self.query_one("#doctor-report", Static).update(safe(self.text, multiline=True))

    def on_resize(self, event: Resize) -> None:
        self.call_after_refresh(self._show)

    def action_copy(self) -> None:
        if self.report is None:
            self.notify("nothing collected yet", severity="warning")
            return
        self.app.copy_to_clipboard(doctor.as_text(self.report))
        self.notify("doctor report copied (where the terminal allows it)")

    def action_refresh(self) -> None:
        self.report = None
        self.query_one("#doctor-report", Static).update(Text("collecting…"))
        self.collect()
