"""The Library screen: every GGUF on the machine, grouped by model, with a detail pane."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Key
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, ProgressBar, Static
from textual.worker import Worker, WorkerState

from ...core import settings as settings_mod
from ...core.library import LibraryEntry, Root, active_roots, add_root, all_roots, scan
from ..messages import ScanDone, ScanProgress
from ..widgets.detail_pane import DetailPane
from ..widgets.model_table import COLUMNS, GROUP_PREFIX, ModelTable, arrange, matches
from .add_root import AddRootScreen

SORT_KEYS = [key for key, _ in COLUMNS]


class LibraryScreen(Screen):
    CSS_PATH = "library.tcss"
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="library.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="library.clear_filter"),
        Binding("ctrl+s", "cycle_sort", "Sort", id="library.sort"),
        Binding("ctrl+o", "reverse_sort", "Order", id="library.reverse"),
        Binding("ctrl+r", "rescan", "Rescan", id="library.rescan"),
        Binding("ctrl+a", "add_root", "Add folder", id="library.add_root"),
    ]

    def __init__(self, roots: list[Root] | None = None) -> None:
        super().__init__()
        self._fixed_roots = roots
        self.entries: list[LibraryEntry] = []
        self.sort = "model"
        self.reverse = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="type to filter: name, architecture, quant, store", id="filter", select_on_focus=False
        )
        with Horizontal(id="library-body"):
            with Vertical(id="table-column"):
                yield ModelTable(id="models")
                yield Static(id="empty", classes="hidden")
            yield DetailPane(id="detail")
        with Horizontal(id="status"):
            yield Static("", id="status-text")
            yield ProgressBar(id="scan-progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Library"
        self.query_one(ModelTable).focus()
        self.action_rescan()

    def roots(self) -> list[Root]:
        return self._fixed_roots if self._fixed_roots is not None else active_roots(settings_mod.load())

    # scanning -------------------------------------------------------------------------------------

    def action_rescan(self) -> None:
        self.query_one("#status-text", Static).update("scanning…")
        self.query_one("#scan-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#scan-progress").display = True
        self.scan_worker(self.roots())

    @work(thread=True, exclusive=True, exit_on_error=False, group="scan")
    def scan_worker(self, roots: list[Root]) -> None:
        entries = scan(roots, progress=lambda done, total, _: self.post_message(ScanProgress(done, total)))
        self.post_message(ScanDone(entries))

    @on(ScanProgress)
    def _scan_progress(self, message: ScanProgress) -> None:
        self.query_one("#scan-progress", ProgressBar).update(total=message.total, progress=message.done)

    @on(ScanDone)
    def _scan_done(self, message: ScanDone) -> None:
        self.entries = message.entries
        self.query_one("#scan-progress").display = False
        errors = sum(1 for e in self.entries if e.error)
        total = sum(e.size_bytes for e in self.entries)
        from ...core.format import size

        text = f"{len(self.entries)} models, {size(total)}"
        if errors:
            text += f", {errors} unreadable"
        self.query_one("#status-text", Static).update(text)
        self.refresh_table()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.query_one("#scan-progress").display = False
            self.query_one("#status-text", Static).update(
                Text(f"scan failed: {event.worker.error}", style="bold red")
            )

    # table ----------------------------------------------------------------------------------------

    def visible(self) -> list[LibraryEntry]:
        query = self.query_one("#filter", Input).value.strip()
        return [e for e in self.entries if matches(e, query)] if query else list(self.entries)

    def refresh_table(self) -> None:
        table = self.query_one(ModelTable)
        empty = self.query_one("#empty", Static)
        keep = None
        if table.row_count:
            keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        shown = self.visible()
        table.show(arrange(shown, self.sort, self.reverse), keep)
        nothing = not self.entries
        table.display = not nothing
        empty.set_class(not nothing, "hidden")
        if nothing:
            empty.update(self._empty_text())
            self.query_one(DetailPane).show_message("")
        elif not shown:
            self.query_one(DetailPane).show_message(Text("no model matches the filter", style="dim"))
        else:
            self._show_highlighted()
        arrow = "▼" if self.reverse else "▲"
        for key, label in COLUMNS:
            table.columns[key].label = Text(f"{label} {arrow}" if key == self.sort else f"{label}  ")  # type: ignore[index]
        table.refresh()

    def _empty_text(self) -> Group:
        lines = [Text("No GGUF models found.", style="bold"), Text(""), Text("quanttui looked in:")]
        roots = (
            all_roots(settings_mod.load())
            if self._fixed_roots is None
            else [(r, "active" if r.exists else "missing") for r in self._fixed_roots]
        )
        for root, state in roots:
            lines.append(
                Text(f"  {state:<8} {root.kind:<12} {root.path}", style="" if state == "active" else "dim")
            )
        lines += [Text(""), Text("Press ctrl+a to add a folder, or run: quanttui roots add PATH")]
        return Group(*lines)

    def _show_highlighted(self) -> None:
        table = self.query_one(ModelTable)
        if not table.row_count:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self._show_key(key)

    def _show_key(self, key: str | None) -> None:
        pane = self.query_one(DetailPane)
        if key is None:
            return
        if key.startswith(GROUP_PREFIX):
            group = key[len(GROUP_PREFIX) :]
            members = [e for e in self.visible() if e.group == group]
            if members:
                pane.show_group(members)
            return
        for e in self.entries:
            if e.path == key:
                pane.show_entry(e)
                return

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_key(event.row_key.value)

    @on(DataTable.HeaderSelected)
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key == self.sort:
            self.reverse = not self.reverse
        elif key:
            self.sort, self.reverse = key, key in ("params", "bpw", "size")
        self.refresh_table()

    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self.refresh_table()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.query_one(ModelTable).focus()

    def on_key(self, event: Key) -> None:
        table = self.query_one(ModelTable)
        # Letters and digits always filter; every action sits on a ctrl key or "/".
        if self.focused is table and event.is_printable and event.character and event.character != "/":
            filt = self.query_one("#filter", Input)
            filt.focus()
            filt.insert_text_at_cursor(event.character)
            event.stop()

    # actions --------------------------------------------------------------------------------------

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one(ModelTable).focus()

    def action_cycle_sort(self) -> None:
        self.sort = SORT_KEYS[(SORT_KEYS.index(self.sort) + 1) % len(SORT_KEYS)]
        self.reverse = self.sort in ("params", "bpw", "size")
        self.refresh_table()
        self.notify(f"sorted by {self.sort}", timeout=1.5)

    def action_reverse_sort(self) -> None:
        self.reverse = not self.reverse
        self.refresh_table()

    def action_add_root(self) -> None:
        def added(path: str | None) -> None:
            if not path:
                return
            try:
                with settings_mod.update() as s:
                    root = add_root(s, Path(path))
            except (ValueError, OSError) as e:
                self.notify(str(e), severity="error")
                return
            if self._fixed_roots is not None and root not in self._fixed_roots:
                self._fixed_roots.append(root)
            self.notify(f"added {root.path}")
            self.action_rescan()

        self.app.push_screen(AddRootScreen(), added)
