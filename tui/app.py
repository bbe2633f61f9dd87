"""The quanttui Textual app, built by one factory for the CLI and the tests."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.content import Content
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from ..core import settings as settings_mod
from ..core.fit import Hardware, hardware
from ..core.format import size
from ..core.hub import Variant
from ..core.library import Root, scan
from ..core.organize import recover_interrupted
from ..core.textsafe import clean
from ..themes import THEMES, other_theme, register_themes
from .downloads import DownloadJob, run_job
from .messages import DownloadUpdate, ScanDone, ScanProgress
from .screens.library import LibraryScreen
from .state import LibraryState, ScanStatus
from .terminal_input import tolerate_invalid_bytes


class QuantApp(App):
    TITLE = "quanttui"
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
        self.downloads: list[DownloadJob] = []
        self._scan: Worker[None] | None = None
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
        worker = get_current_worker()
        skipped: list[str] = []
        entries = scan(
            roots,
            progress=lambda done, total, _: self.post_message(ScanProgress(done, total)),
            should_stop=lambda: worker.is_cancelled,
            skipped=skipped,
        )
        if not worker.is_cancelled:
            self.post_message(ScanDone(entries, hw or hardware(), skipped, worker))

    @on(ScanProgress)
    def _scan_progress(self, message: ScanProgress) -> None:
        if self.library.scan.running:
            self.library.set_scanning(ScanStatus(True, message.done, message.total))

    @on(ScanDone)
    def _scan_done(self, message: ScanDone) -> None:
        if message.worker is not self._scan:
            return  # a superseded scan
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
        else:
            self.notify(f"{what} failed: {type(err).__name__}: {err}", severity="error")

    def action_help(self) -> None:
        from .screens.help import HelpScreen

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
        from .screens.hub import HubScreen

        if not isinstance(self.screen, HubScreen):
            self.push_screen(HubScreen())

    def action_downloads(self) -> None:
        from .screens.downloads import DownloadsScreen

        if not isinstance(self.screen, DownloadsScreen):
            self.push_screen(DownloadsScreen())

    # downloads ------------------------------------------------------------------------------------

    def enqueue_download(self, repo: str, variant: Variant, revision: str = "main") -> DownloadJob:
        job = DownloadJob(repo, variant, revision, to=settings_mod.load().download_to)
        self.downloads.append(job)
        self.notify(
            f"queued {repo} {variant.label} ({size(variant.size)}); ctrl+g shows downloads", timeout=3
        )
        self.download_worker()
        return job

    def resume_download(self, job: DownloadJob) -> None:
        job.status, job.error, job.cancel = "queued", None, threading.Event()
        self.download_worker()

    @work(thread=True, exclusive=True, exit_on_error=False, group="downloads")
    def download_worker(self) -> None:
        """Runs queued jobs one after another; a new worker picks up where this one stops."""
        while job := next((j for j in self.downloads if j.status == "queued"), None):
            run_job(job, lambda *a: self.post_message(DownloadUpdate(*a)))

    def on_unmount(self) -> None:
        """Quitting stops downloads at once (each keeps its .partial to resume from next time): the
        process waits for its worker threads before it exits."""
        for job in self.downloads:
            job.cancel.set()

    @on(DownloadUpdate)
    def _download_update(self, message: DownloadUpdate) -> None:
        job = next((j for j in self.downloads if j.id == message.job_id), None)
        if job is None:
            return
        job.done, job.status, job.error = message.done, message.status, message.error
        if message.status == "done":
            self.notify(f"downloaded {job.repo} {job.variant.label}")
            self.rescan()
        elif message.status == "failed":
            self.notify(message.error or "download failed", severity="error")
        from .screens.downloads import DownloadsScreen

        if isinstance(self.screen, DownloadsScreen):
            self.screen.refresh_jobs()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
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
