"""Disk usage: a bar per root and per model group, and the duplicates that could be reclaimed."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, ProgressBar, Static
from textual.worker import Worker, WorkerState

from ...core.format import size
from ...core.library import LibraryEntry, Root
from ...core.organize import (
    DuplicateGroup,
    OrganizeError,
    disk_usage,
    execute_delete,
    find_duplicates,
    link_extras,
    plan_delete,
)
from ..messages import OrganizeDone, OrganizeProgress
from ..report import bar
from ..safe import safe
from .dialogs import ConfirmScreen


def bars(title: str, sizes: dict[str, int], limit: int = 15) -> Table:
    t = Table(title=Text(title), title_justify="left", box=None, padding=(0, 1))
    t.add_column("size", justify="right", no_wrap=True)
    t.add_column("", no_wrap=True)
    t.add_column(title.split()[-1])
    top = max(sizes.values(), default=0)
    for name, n in list(sizes.items())[:limit]:
        t.add_row(Text(size(n)), Text(bar(n, top, 30), style="cyan"), safe(name))
    return t


class UsageScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="usage.back"),
        Binding("l", "link", "Hard-link duplicates", id="usage.link"),
        Binding("x", "delete_extras", "Delete duplicates", id="usage.delete"),
    ]
    DEFAULT_CSS = "#usage-body { padding: 0 1; } #dupes { margin-top: 1; } #hash-progress { margin: 0 1; }"

    def __init__(self, entries: list[LibraryEntry], roots: list[Root]) -> None:
        super().__init__()
        self.entries, self.roots = entries, roots
        self.groups: list[DuplicateGroup] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="usage-body"):
            yield Static(id="usage")
            yield Static(Text("looking for duplicates…"), id="dupes")
        yield ProgressBar(id="hash-progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Disk usage"
        u = disk_usage(self.entries).to_dict()
        self.query_one("#usage", Static).update(
            Group(
                Text(f"total {size(u['total'])} in {len(self.entries)} models", style="bold"),
                bars("by root", u["roots"]),
                bars("by model", u["groups"]),
                bars("by quant", u["quants"]),
            )
        )
        self.hash_worker()

    @work(thread=True, exclusive=True, exit_on_error=False, group="dedupe")
    def hash_worker(self) -> None:
        files = [part for e in self.entries if not e.error for part in e.parts]
        self.groups = find_duplicates(files, lambda d, t: self.post_message(OrganizeProgress(d, t)))
        self.post_message(OrganizeDone("hashed"))

    @on(OrganizeProgress)
    def _progress(self, message: OrganizeProgress) -> None:
        self.query_one("#hash-progress", ProgressBar).update(total=message.total, progress=message.done)

    @on(OrganizeDone)
    def _done(self, message: OrganizeDone) -> None:
        self.query_one("#hash-progress").display = False
        if message.error:
            self.notify(message.error, severity="error")
        self.show_duplicates()

    def show_duplicates(self) -> None:
        if not self.groups:
            self.query_one("#dupes", Static).update(Text("no duplicate files", style="dim"))
            return
        lines = [
            Text(
                f"duplicates: {size(sum(g.reclaimable for g in self.groups))} reclaimable "
                "(l: replace extras with hard links, x: move extras to the trash)",
                style="bold",
            )
        ]
        for g in self.groups:
            lines.append(Text(f"{size(g.size)}  sha256 {g.sha256[:12]}"))
            lines.append(safe(f"  keep   {g.keep}", style="green"))
            lines += [safe(f"  extra  {p}", style="yellow") for p in g.extras]
            lines += [safe(f"  linked {p}", style="dim") for p in g.linked]
        self.query_one("#dupes", Static).update(Group(*lines))

    @on(Worker.StateChanged)
    def _failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(f"failed: {event.worker.error}", severity="error")

    def _extras(self) -> list[str]:
        return [str(p) for g in self.groups for p in g.extras]

    def action_link(self) -> None:
        if not self._extras():
            return

        def answered(yes: bool | None) -> None:
            if yes:
                try:
                    n = sum(len(link_extras(g, self.roots)) for g in self.groups)
                except OrganizeError as e:
                    self.notify(str(e), severity="error")
                    return
                self.notify(f"{n} files are now hard links")
                self.hash_worker()

        self.app.push_screen(
            ConfirmScreen("Replace these with hard links to the kept copy?", self._extras()), answered
        )

    def action_delete_extras(self) -> None:
        if not self._extras():
            return
        try:
            plan = plan_delete(self._extras(), self.roots)
        except OrganizeError as e:
            self.notify(str(e), severity="error")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                execute_delete(plan, self.roots)
                self.notify(plan.summary())
                self.groups = [g for g in self.groups if not g.extras]
                self.show_duplicates()

        self.app.push_screen(
            ConfirmScreen(
                f"{plan.summary().capitalize()} ({size(plan.bytes_freed)})?", [str(p) for p in plan.files]
            ),
            answered,
        )
