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

from ..core import settings as settings_mod
from ..core.fit import Hardware
from ..core.format import size
from ..core.hub import Variant
from ..core.library import Root
from ..core.organize import recover_interrupted
from ..core.textsafe import clean
from ..themes import THEMES, other_theme, register_themes
from .downloads import DownloadJob, run_job
from .messages import DownloadUpdate
from .screens.library import LibraryScreen


class QuantApp(App):
    TITLE = "quanttui"
    BINDINGS = [
        Binding("ctrl+f", "hub", "Hub", id="app.hub"),
        Binding("ctrl+g", "downloads", "Downloads", id="app.downloads"),
        Binding("ctrl+t", "toggle_theme", "Theme", id="app.toggle_theme"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
    ]

    def __init__(self, roots: list[Root] | None = None, hw: Hardware | None = None) -> None:
        super().__init__()
        self._roots = roots
        self._hw = hw
        self.downloads: list[DownloadJob] = []

    def on_mount(self) -> None:
        register_themes(self)
        for line in recover_interrupted():  # organize operations an earlier run left half done
            self.notify(line, severity="warning", timeout=10)
        s = settings_mod.load()
        self.theme = s.theme if s.theme in self.available_themes else THEMES[0].name
        if s.load_error:
            self.notify(s.load_error, severity="warning")
        self.push_screen(LibraryScreen(self._roots, self._hw))

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
        if not self.is_mounted:
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

    @on(DownloadUpdate)
    def _download_update(self, message: DownloadUpdate) -> None:
        job = next((j for j in self.downloads if j.id == message.job_id), None)
        if job is None:
            return
        job.done, job.status, job.error = message.done, message.status, message.error
        if message.status == "done":
            self.notify(f"downloaded {job.repo} {job.variant.label}")
            for s in self.screen_stack:
                if isinstance(s, LibraryScreen):
                    s.action_rescan()
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
        if isinstance(screen, LibraryScreen):
            yield SystemCommand(
                "Rescan library", "Look for new and changed model files", screen.action_rescan
            )
            yield SystemCommand("Add folder", "Add a folder to the library roots", screen.action_add_root)
            yield SystemCommand("Filter models", "Focus the filter box", screen.action_focus_filter)
            yield SystemCommand(
                "Cycle sort column", "Sort the table by the next column", screen.action_cycle_sort
            )
            yield SystemCommand("Reverse sort", "Reverse the table order", screen.action_reverse_sort)
            yield from fit_commands(screen)
            yield from organize_commands(screen)


def fit_commands(screen: LibraryScreen) -> Iterable[SystemCommand]:
    """The fit panel's keys as palette commands."""
    yield SystemCommand(
        "Fit: double the context", "Memory fit at twice the context", lambda: screen.action_fit_ctx(2)
    )
    yield SystemCommand(
        "Fit: halve the context", "Memory fit at half the context", lambda: screen.action_fit_ctx(0.5)
    )
    yield SystemCommand("Fit: next KV cache type", "f16, q8_0, q4_0", screen.action_fit_kv)
    yield SystemCommand(
        "Fit: toggle flash attention", "Flash attention on or off", screen.action_fit_flash_attn
    )
    yield SystemCommand(
        "Fit: one more GPU layer", "Offload one more layer", lambda: screen.action_fit_layers(1)
    )
    yield SystemCommand(
        "Fit: one GPU layer less", "Offload one layer fewer", lambda: screen.action_fit_layers(-1)
    )


def organize_commands(screen: LibraryScreen) -> Iterable[SystemCommand]:
    """Marking, A/B and the organize operations as palette commands."""
    yield SystemCommand("Mark file", "Mark the highlighted file (first two: A and B)", screen.action_mark)
    yield SystemCommand("A/B chat", "Compare the two marked files side by side", screen.action_open_ab)
    yield SystemCommand(
        "Delete to trash", "Marked files, or the highlighted one", lambda: screen.action_delete(False)
    )
    yield SystemCommand(
        "Delete permanently", "Marked files, or the highlighted one", lambda: screen.action_delete(True)
    )
    yield SystemCommand("Move to folder", "Marked files, split sets whole", screen.action_move)
    yield SystemCommand("Rename", "The highlighted file (every part of a split set)", screen.action_rename)
    yield SystemCommand("Disk usage and duplicates", "Per root, model and quant", screen.action_usage)


def create_app(roots: list[Root] | None = None, hw: Hardware | None = None) -> QuantApp:
    """The app the CLI runs and the tests drive; `roots` and `hw` replace the configured roots and
    the detected hardware."""
    return QuantApp(roots, hw)


def run_app() -> int:
    create_app().run()
    return 0
