"""The quanttui Textual app, built by one factory for the CLI and the tests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from ..core import settings as settings_mod
from ..core.fit import Hardware, hardware
from ..core.format import size
from ..core.hub import Variant
from ..core.library import LibraryEntry, Root, scan
from ..core.organize import recover_interrupted
from ..core.textsafe import clean
from ..themes import THEMES, other_theme, register_themes
from .commands import KeyedCommands
from .downloads import DownloadJob, Status, run_job
from .screens.downloads import DownloadsScreen
from .screens.help import HelpScreen
from .screens.hub import HubScreen
from .screens.library import LibraryScreen
from .state import DownloadsState, LibraryState, ScanStatus
from .terminal_input import tolerate_invalid_bytes


class QuantApp(App[None]):
    """Owns the state (LibraryState, DownloadsState) and the workers that change it: the library scan
    and the download queue. Screens reach it through tui.state.quanttui_app.

    A worker whose result may be superseded (a newer scan, search or run) is exclusive in its group;
    its messages carry the worker, and the handler drops a message whose worker is not the one the
    screen or app holds now. Cancelling is the worker's: its `cancelled_event` is passed down to the
    core function that loops."""

    @dataclass
    class ScanProgress(Message):
        """Files read so far by the library scan; a newer one replaces an unhandled older one."""

        worker: Worker[None]
        done: int
        total: int

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, QuantApp.ScanProgress)

    @dataclass
    class ScanDone(Message):
        """A finished scan: its entries, the hardware, the folders it could not read."""

        worker: Worker[None]
        entries: list[LibraryEntry]
        hardware: Hardware
        skipped: list[str]

    @dataclass
    class DownloadUpdate(Message):
        """A running download's progress or end; newer progress for the same job replaces older."""

        job_id: int
        done: int
        total: int
        status: Status
        error: str | None = None

        def can_replace(self, message: Message) -> bool:
            return (
                isinstance(message, QuantApp.DownloadUpdate)
                and message.job_id == self.job_id
                and message.status == self.status == "downloading"
            )

    TITLE = "quanttui"
    COMMANDS = {KeyedCommands}  # every command and key of the screen underneath, with its key
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("f1", "help", "Help", id="app.help"),
        Binding("question_mark", "help", "Help", show=False, id="app.help_key"),
        Binding("ctrl+f", "hub", "Hub", id="app.hub"),
        Binding("ctrl+g", "downloads", "Downloads", show=False, id="app.downloads"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False, id="app.toggle_theme"),
    ]

    def __init__(self, roots: list[Root] | None = None, hw: Hardware | None = None) -> None:
        super().__init__()
        self._hw = hw
        self.library = LibraryState(self, roots, hw)
        self.downloads = DownloadsState(self)
        self._scan: Worker[None] | None = None
        self._download: Worker[None] | None = None  # the worker of the running download
        self._theme_ready = False  # the saved theme is applied before theme changes are saved
        self._extra_said = False  # the machine's extra-buffer verdict is said once a run

    def on_mount(self) -> None:
        register_themes(self)
        for line in recover_interrupted():  # organize operations an earlier run left half done
            self.notify(line, severity="warning", timeout=10)
        s = settings_mod.load()
        self.theme = s.theme if s.theme in self.available_themes else THEMES[0].name
        self._theme_ready = True
        if s.load_error:
            self.notify(s.load_error, severity="warning")
        self.push_screen(LibraryScreen())
        self.say_extra_buffers()

    def say_extra_buffers(self) -> None:
        """Say, once a run, that llama.cpp's extra buffers are off on this machine and why; and each
        fallback a model process's crash made since (screens call this after their model work)."""
        from ..core.llama import LlamaUnavailable
        from ..core.llama.extra import decide, take_notices

        try:
            lines = take_notices()
            if not self._extra_said and not lines:
                d = decide(probe=False)
                lines = [d.notice()] if d.turned_off else []
        except (LlamaUnavailable, OSError):
            return
        for line in lines:
            self._extra_said = True
            self.notify(clean(line), title="extra buffers off", severity="warning", timeout=15)

    # the library scan -----------------------------------------------------------------------------

    def rescan(self) -> None:
        """Scan the roots again in a worker; a running scan is cancelled and its result dropped."""
        self.library.set_scanning(ScanStatus(running=True))
        self._scan = self.scan_worker(self.library.roots(), self._hw)

    @work(thread=True, exclusive=True, exit_on_error=False, group="scan", name="scan")
    def scan_worker(self, roots: list[Root], hw: Hardware | None) -> None:
        worker: Worker[None] = get_current_worker()
        skipped: list[str] = []

        def progress(done: int, total: int, _: str) -> None:
            self.post_message(self.ScanProgress(worker, done, total))

        entries = scan(
            roots,
            progress=progress,
            should_stop=worker.cancelled_event.is_set,
            skipped=skipped,
        )
        self.post_message(self.ScanDone(worker, entries, hw or hardware(), skipped))

    @on(ScanProgress)
    def _scan_progress(self, message: ScanProgress) -> None:
        if message.worker is self._scan and self.library.scan.running:
            self.library.set_scanning(ScanStatus(True, message.done, message.total))

    @on(ScanDone)
    def _scan_done(self, message: ScanDone) -> None:
        if message.worker is not self._scan:
            return  # a superseded or cancelled scan
        self.library.set_entries(message.entries, message.hardware, message.skipped)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR or event.worker.node is not self:
            return
        err = event.worker.error
        what = {"scan": "scan", "downloads": "download"}.get(
            event.worker.group, event.worker.name or "worker"
        )
        if event.worker is self._scan:
            self.library.set_scanning(ScanStatus(error=f"{what} failed: {type(err).__name__}: {err}"))
        elif event.worker is self._download and (job := self.downloads.running()) is not None:
            self.downloads.report(job.id, job.done, "failed", f"{type(err).__name__}: {err}")
            self.notify(f"{what} failed: {type(err).__name__}: {err}", severity="error")
            self._next_download()
        else:
            self.notify(f"{what} failed: {type(err).__name__}: {err}", severity="error")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification in quanttui is plain text: messages carry file names, Hub ids and error
        text from outside, so they are cleaned and never parsed as markup (`markup` is ignored)."""
        text = clean(message, multiline=True)
        super().notify(text, title=clean(title), severity=severity, timeout=timeout, markup=False)

    def format_title(self, title: str, sub_title: str) -> Content:
        """The header line, with a Hub id or file name in a title shown cleaned."""
        return super().format_title(clean(title), clean(sub_title))

    def watch_theme(self, theme: str) -> None:
        if not self._theme_ready:
            return
        try:
            with settings_mod.update() as s:
                s.theme = theme
        except OSError as e:
            self.notify(f"could not save the theme: {e}", severity="warning")

    def action_toggle_theme(self) -> None:
        self.theme = other_theme(self.theme)

    def action_toggle_download_target(self) -> None:
        with settings_mod.update() as s:
            s.download_to = "hf-cache" if s.download_to == "library" else "library"
        where = "the Hugging Face cache" if s.download_to == "hf-cache" else "quanttui's models folder"
        self.notify(f"new downloads go to {where}")

    def action_hub(self) -> None:
        if not isinstance(self.screen, HubScreen):
            self.push_screen(HubScreen())

    def action_downloads(self) -> None:
        if not isinstance(self.screen, DownloadsScreen):
            self.push_screen(DownloadsScreen())

    # downloads ------------------------------------------------------------------------------------

    def enqueue_download(self, repo: str, variant: Variant, revision: str = "main") -> DownloadJob:
        job = DownloadJob(repo, variant, revision, to=settings_mod.load().download_to)
        self.downloads.add(job)
        self.notify(
            f"queued {repo} {variant.label} ({size(variant.size)}); ctrl+g shows downloads", timeout=3
        )
        self._next_download()
        return job

    def cancel_download(self, job: DownloadJob) -> None:
        """A queued job leaves the queue; the running one is stopped (its .partial is kept)."""
        if job.status == "queued":
            self.downloads.cancel_queued(job)
        elif job.status == "downloading" and self._download is not None:
            self._download.cancel()  # its worker reports "cancelled", then the next job starts

    def resume_download(self, job: DownloadJob) -> None:
        self.downloads.requeue(job)
        self._next_download()

    def _next_download(self) -> None:
        """Start the first queued job unless one is running: the queue runs one job at a time, each
        in its own worker, and the UI thread decides which runs next."""
        if self.downloads.running() is not None:
            return
        job = self.downloads.next_queued()
        if job is not None:
            self.downloads.start(job)
            self._download = self.download_worker(job)

    @work(thread=True, exit_on_error=False, group="downloads", name="download")
    def download_worker(self, job: DownloadJob) -> None:
        """Run one job; quitting the app cancels this worker, which stops the download at once (it
        keeps its .partial to resume from next time): the process waits for its worker threads."""
        worker: Worker[None] = get_current_worker()

        def post(job_id: int, done: int, total: int, status: Status, error: str | None) -> None:
            self.post_message(self.DownloadUpdate(job_id, done, total, status, error))

        run_job(job, post, worker.cancelled_event)

    @on(DownloadUpdate)
    def _download_update(self, message: DownloadUpdate) -> None:
        job = self.downloads.report(message.job_id, message.done, message.status, message.error)
        if job is None:
            return
        if message.status == "done":
            self.notify(f"downloaded {job.repo} {job.variant.label}")
            self.rescan()
        elif message.status == "failed":
            self.notify(message.error or "download failed", severity="error")
        if not job.active:
            self._next_download()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Toggle dark/light theme", "Switch between quanttui's two themes", self.action_toggle_theme
        )
        yield SystemCommand("Hub: search Hugging Face", "Find GGUF repos and their quants", self.action_hub)
        yield SystemCommand("Downloads", "Queued downloads with progress", self.action_downloads)
        yield SystemCommand(
            "Downloads go to: library / HF cache",
            "Toggle where new downloads land",
            self.action_toggle_download_target,
        )
        commands = getattr(screen, "system_commands", None)
        if callable(commands):
            yield from commands()


def create_app(roots: list[Root] | None = None, hw: Hardware | None = None) -> QuantApp:
    """The app the CLI runs and the tests drive; `roots` and `hw` replace the configured roots and
    the detected hardware."""
    return QuantApp(roots, hw)


def run_app() -> int:
    tolerate_invalid_bytes()
    create_app().run()
    return 0
