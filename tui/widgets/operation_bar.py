"""The status line of the Library and Disk usage screens: the library summary, progress, and the one
operation (delete, move, rename, link) that runs in a worker, with its result or error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ...core.errors import QuanttuiError
from ..safe import safe

Report = Callable[[int, int], None]
"""How a job reports its progress: report(done, total)."""
Job = Callable[[Report], str]


class OperationBar(Horizontal):
    """Runs one operation at a time off the UI thread. A refused or failed operation (QuanttuiError,
    OSError) is one line; anything else is reported under the operation's name, never as another's.
    `finished` is called on the UI thread after each operation, failed or not."""

    @dataclass
    class Progress(Message):
        """Bytes copied or hashed so far by the running operation."""

        done: int
        total: int

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, OperationBar.Progress)

    @dataclass
    class Done(Message):
        """An operation's end: its name, the line to show, or the one-line error that stopped it."""

        name: str
        text: str
        error: str | None = None

    DEFAULT_CSS = """
    OperationBar { height: 1; background: $panel; padding: 0 1; }
    OperationBar > #op-text { width: 1fr; }
    OperationBar > ProgressBar { width: 32; }
    OperationBar > ProgressBar Bar { width: 20; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.running: str | None = None
        self._summary: Text = Text("")
        self._finished: Callable[[OperationBar.Done], None] | None = None
        self.text = ""  # what the bar says now, as plain text

    def compose(self) -> ComposeResult:
        yield Static("", id="op-text")
        yield ProgressBar(id="op-progress", show_eta=False)

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False

    def _say(self, text: Text) -> None:
        self.text = text.plain
        self.query_one("#op-text", Static).update(text)

    def show_summary(self, summary: Text) -> None:
        """The resting text (the library summary); kept while an operation runs and shown after it."""
        self._summary = summary
        if self.running is None:
            self._say(summary)

    def show_progress(self, label: str, done: int = 0, total: int | None = None) -> None:
        self._say(Text(label))
        bar = self.query_one(ProgressBar)
        bar.display = True
        bar.update(total=total, progress=done)

    def idle(self) -> None:
        self.query_one(ProgressBar).display = False
        self._say(self._summary)

    def start(self, name: str, job: Job, finished: Callable[[OperationBar.Done], None] | None = None) -> bool:
        """Run `job` (given a progress callback, returns the line to show) as operation `name`; refused
        while another operation runs."""
        if self.running is not None:
            self.app.notify(f"wait: {self.running} is still running", severity="warning")
            return False
        self.running, self._finished = name, finished
        self.show_progress(f"{name}…")
        self._operation(name, job)
        return True

    @work(thread=True, exit_on_error=False, group="operation")
    def _operation(self, name: str, job: Job) -> None:
        worker = get_current_worker()

        def report(done: int, total: int) -> None:
            self.post_message(self.Progress(done, total))

        try:
            text = job(report)
        except (QuanttuiError, OSError) as err:
            self.post_message(self.Done(name, "", str(err) or type(err).__name__))
            return
        if not worker.is_cancelled:
            self.post_message(self.Done(name, text))

    @on(Progress)
    def _progress(self, message: OperationBar.Progress) -> None:
        message.stop()
        if self.running is not None:
            self.show_progress(f"{self.running}…", message.done, message.total)

    @on(Done)
    def _done(self, message: OperationBar.Done) -> None:
        message.stop()
        self._end(message)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "operation":
            return
        event.stop()
        if event.state == WorkerState.ERROR and self.running is not None:
            err = event.worker.error
            self._end(self.Done(self.running, "", f"{type(err).__name__}: {err}"))

    def _end(self, message: OperationBar.Done) -> None:
        if self.running is None:
            return
        self.running = None
        self.idle()
        if message.error:
            self._say(safe(f"{message.name} failed: {message.error}", "bold red"))
            self.app.notify(f"{message.name} failed: {message.error}", severity="error")
        else:
            self.app.notify(message.text)
        if self._finished is not None:
            self._finished(message)
