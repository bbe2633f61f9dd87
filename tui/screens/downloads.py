"""The Downloads screen: every queued download with bytes, speed and ETA; cancel and resume. It follows
the app's DownloadsState and never changes it: cancel and resume are the app's."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, ProgressBar, Static

from ...core import format as fmt
from ..downloads import DownloadJob
from ..state import DownloadsState, quanttui_app
from ..widgets.key_footer import KeyFooter
from ..widgets.safe_table import SafeTable


def job_cells(job: DownloadJob) -> list[str]:
    """The row of one job; the table (a SafeTable) shows each cell cleaned, never as markup."""
    frac = job.done / job.total if job.total else 0.0
    speed = job.speed if job.status == "downloading" else 0.0
    eta = (job.total - job.done) / speed if speed else None
    detail = job.error or (f"{fmt.size(int(speed))}/s, ETA {eta:.0f}s" if eta is not None else "")
    return [
        f"{job.repo} {job.variant.label}",
        job.status,
        f"{frac:6.1%}",
        f"{fmt.size(job.done)} / {fmt.size(job.total)}",
        detail,
    ]


class DownloadsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="downloads.back"),
        Binding("c", "cancel", "Cancel", id="downloads.cancel"),
        Binding("r", "resume", "Resume", id="downloads.resume"),
    ]
    DEFAULT_CSS = "#overall { margin: 0 1; } #overall-text { padding: 0 1; height: auto; }"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="overall-text")
        yield ProgressBar(id="overall", show_eta=False)
        yield SafeTable(id="jobs", cursor_type="row")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Downloads"
        table = self.query_one(DataTable)
        for key in ("item", "status", "done", "bytes", "detail"):
            table.add_column(key, key=key)
        self.state.changed.subscribe(self, self._job_changed)
        self.refresh_jobs()

    def _job_changed(self, job: DownloadJob) -> None:
        self.refresh_jobs()

    @property
    def state(self) -> DownloadsState:
        return quanttui_app(self).downloads

    def jobs(self) -> list[DownloadJob]:
        return self.state.jobs

    def refresh_jobs(self) -> None:
        table = self.query_one(DataTable)
        keys = {str(k.value) for k in table.rows}
        for job in self.jobs():
            cells = job_cells(job)
            if str(job.id) in keys:
                for col, value in zip(("item", "status", "done", "bytes", "detail"), cells, strict=True):
                    table.update_cell(str(job.id), col, value)
            else:
                table.add_row(*cells, key=str(job.id))
        total = sum(j.total for j in self.jobs())
        done = sum(j.done for j in self.jobs())
        bar = self.query_one(ProgressBar)
        bar.update(total=total or None, progress=done)
        bar.display = table.display = bool(self.jobs())  # nothing to measure: no bar, no empty table
        active = sum(1 for j in self.jobs() if j.active)
        self.query_one("#overall-text", Static).update(
            Text(
                f"{len(self.jobs())} downloads, {active} active: {fmt.size(done)} of {fmt.size(total)}"
                if self.jobs()
                else "no downloads yet: find a model with the Hub (ctrl+f)"
            )
        )

    def _job(self) -> DownloadJob | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((j for j in self.jobs() if str(j.id) == key), None)

    def action_cancel(self) -> None:
        job = self._job()
        if job and job.active:
            quanttui_app(self).cancel_download(job)

    def action_resume(self) -> None:
        job = self._job()
        if job and job.status in ("failed", "cancelled"):
            quanttui_app(self).resume_download(job)
