"""Disk usage: a bar per root and per model group, and the duplicates that could be reclaimed."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ...core.format import plural, size
from ...core.organize import (
    DuplicateGroup,
    Usage,
    disk_usage,
    find_duplicates,
    link_extras,
)
from ...core.organize.dedupe import plan_delete_extras
from ...core.report import bar
from ..safe import safe
from ..state import library_state, quanttui_app
from ..tones import tone
from ..widgets.key_footer import KeyFooter
from ..widgets.operation_bar import OperationBar, Report
from .dialogs import ConfirmScreen, confirm_delete


def bars(title: str, sizes: dict[str, int], limit: int = 15) -> Table:
    t = Table(title=Text(title), title_justify="left", box=None, padding=(0, 1))
    t.add_column("size", justify="right", no_wrap=True)
    t.add_column("", no_wrap=True)
    t.add_column(title.split()[-1])
    top = max(sizes.values(), default=0)
    for name, n in list(sizes.items())[:limit]:
        t.add_row(Text(size(n)), Text(bar(n, top, 30), style="cyan"), safe(name))
    return t


class UsageScreen(Screen[None]):
    """Sizes from the library state; hashing runs in a worker, and linking or trashing the extras runs
    as one operation of the operation bar, so a failure is one line, never the app's end."""

    @dataclass
    class HashProgress(Message):
        """Bytes hashed so far while looking for duplicates; a newer one replaces an unhandled older one."""

        worker: Worker[None]
        done: int
        total: int

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, UsageScreen.HashProgress)

    @dataclass
    class DuplicatesFound(Message):
        """The duplicate groups the hashing worker found."""

        worker: Worker[None]
        groups: list[DuplicateGroup]

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="usage.back"),
        Binding("l", "link", "Hard-link duplicates", id="usage.link"),
        Binding("x", "delete_extras", "Trash duplicates", id="usage.delete"),
    ]
    DEFAULT_CSS = "#usage-body { padding: 0 1; } #dupes { margin-top: 1; }"

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[DuplicateGroup] = []
        self._hash: Worker[None] | None = None  # the last hashing; results of an earlier one are dropped

    def compose(self) -> ComposeResult:
        self.state = library_state(self)
        yield Header()
        with VerticalScroll(id="usage-body"):
            yield Static(id="usage")
            yield Static(Text("looking for duplicates…"), id="dupes")
        yield OperationBar(id="usage-status")
        yield KeyFooter()

    @property
    def bar(self) -> OperationBar:
        return self.query_one(OperationBar)

    def on_mount(self) -> None:
        self.sub_title = "Disk usage"
        self.state.changed.subscribe(self, self._state_changed)
        self.show_usage()
        self.rehash()

    def _state_changed(self, what: str) -> None:
        """A rescan (after a link, a trash, a download) changes what the files take: the sizes and the
        duplicates are worked out again, never left as they were."""
        if what == "entries":
            self.show_usage()
            if self.bar.running is None:
                self.rehash()

    def show_usage(self) -> None:
        entries = self.state.entries
        usage = disk_usage(entries, self.state.roots())
        u = usage.to_dict()
        models = len({e.group for e in entries})
        total = f"total {size(u['total'])} in {plural(len(entries), 'file')} of {plural(models, 'model')}"
        self.query_one("#usage", Static).update(
            Group(
                Text(total, style="bold"),
                *self.outside_lines(usage),
                bars("by root", u["roots"]),
                bars("by model", u["groups"]),
                bars("by quant", u["quants"]),
            )
        )

    def outside_lines(self, usage: Usage, limit: int = 10) -> list[Text]:
        """How many files in the roots are links to data outside them (counted as 0 bytes), and which."""
        links = usage.outside_links
        if not links:
            return []
        n = len(links)
        lines = [
            Text(
                f"{n} link{'s to files' if n != 1 else ' to a file'} outside the roots, not counted "
                f"({size(usage.outside_bytes)} there; deleting a link frees nothing)",
                style=tone(self, "warning"),
            )
        ]
        for link in links[:limit]:
            line = Text("  link  ", style="dim")
            line.append_text(safe(link.path))
            line.append(" → ", style="dim")
            line.append_text(safe(link.target))
            line.append(f"  [{size(link.size)}]", style="dim")
            lines.append(line)
        if n > limit:
            lines.append(Text(f"  and {n - limit} more", style="dim"))
        return lines

    def rehash(self) -> None:
        self.bar.show_progress("hashing to find duplicates…")
        self._hash = self.hash_worker()

    @work(thread=True, exclusive=True, exit_on_error=False, group="dedupe")
    def hash_worker(self) -> None:
        worker: Worker[None] = get_current_worker()
        files = [part for e in self.state.entries if not e.error for part in e.parts]

        def progress(done: int, total: int) -> None:
            self.post_message(self.HashProgress(worker, done, total))

        groups = find_duplicates(files, progress, self.state.roots())
        self.post_message(self.DuplicatesFound(worker, groups))

    @on(HashProgress)
    def _progress(self, message: HashProgress) -> None:
        if message.worker is self._hash and self.bar.running is None:
            self.bar.show_progress("hashing to find duplicates…", message.done, message.total)

    @on(DuplicatesFound)
    def _found(self, message: DuplicatesFound) -> None:
        if message.worker is not self._hash:
            return  # a hashing that was cancelled or followed by another
        self.groups = message.groups
        self.bar.idle()
        self.show_duplicates()

    @on(Worker.StateChanged)
    def _hash_failed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "dedupe" and event.state == WorkerState.ERROR:
            self.bar.idle()
            self.bar.show_summary(safe(f"finding duplicates failed: {event.worker.error}", style="bold red"))
            self.query_one("#dupes", Static).update(Text("duplicates unknown", style="dim"))

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
            lines.append(safe(f"  keep   {g.keep}", style=tone(self, "success")))
            lines += [safe(f"  extra  {p}", style=tone(self, "warning")) for p in g.extras]
            lines += [safe(f"  linked {p}", style="dim") for p in g.linked]
        self.query_one("#dupes", Static).update(Group(*lines))

    def _extras(self) -> list[str]:
        return [str(p) for g in self.groups for p in g.extras]

    def _finished(self, message: OperationBar.Done) -> None:
        """After a link or trash: look again, and have the Library rescan; a failure changed nothing
        and its error stays on the bar."""
        if not message.error:
            quanttui_app(self).rescan()  # its new entries show the sizes and look for duplicates again

    def action_link(self) -> None:
        if not self._extras():
            return
        groups, roots = list(self.groups), self.state.roots()

        def job(progress: Report) -> str:
            n = sum(len(link_extras(g, roots)) for g in groups)
            return f"{plural(n, 'file')} are now hard links to the kept copy"

        def answered(yes: bool | None) -> None:
            if yes:
                self.bar.start("link", job, self._finished)

        self.app.push_screen(
            ConfirmScreen("Replace these with hard links to the kept copy?", self._extras()), answered
        )

    def action_delete_extras(self) -> None:
        if not self._extras():
            return
        groups, roots = list(self.groups), self.state.roots()
        confirm_delete(
            self.bar,
            "trash duplicates",
            self._extras(),
            roots,
            self._finished,
            planner=lambda: plan_delete_extras(groups, roots),
        )
