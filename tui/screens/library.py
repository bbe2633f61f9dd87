"""The Library screen: every GGUF on the machine, grouped by model, with a fit panel and a detail pane.

The screen composes widgets that own their behaviour (ModelTable: sorting, filter, marks; FitPanel: fit
settings and their bounds; OperationBar: status and the operation worker) and follows the app's
LibraryState; it holds no library state of its own."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path

from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import DescendantFocus, Key
from textual.screen import Screen
from textual.widgets import Header, Input, Static

from ...core.fit import FitResult, FitSettings, Hardware
from ...core.format import plural, size
from ...core.library import LibraryEntry, Root
from ..safe import safe, safe_path
from ..state import Change, LibraryState, library_state, quanttui_app
from ..tones import tone
from ..widgets.detail_pane import DetailPane
from ..widgets.filter_input import FilterInput, drop_last, types_into_filter
from ..widgets.fit_panel import FitPanel, verdict_cell
from ..widgets.key_footer import KeyFooter
from ..widgets.model_table import GROUP_PREFIX, ModelTable
from ..widgets.operation_bar import OperationBar
from .dialogs import AskScreen
from .organize import OrganizeActions


def on_disk(entries: Iterable[LibraryEntry]) -> int:
    """The bytes the files take on disk, as `quanttui du` counts them: a file reached by several
    names (hard links, the Hugging Face cache's links to its blobs) counts once. A file that cannot be
    looked at now counts the size its scan read."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for e in entries:
        try:
            stats = [os.stat(part) for part in e.parts]
        except (OSError, ValueError):
            total += e.size_bytes
            continue
        for st in stats:
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def summary(state: LibraryState, warning: str = "yellow") -> Text:
    """The status line at rest: files and models counted apart, the disk they take (each file once,
    however many names it has), what could not be read."""
    files = state.entries
    models = len({e.group for e in files})
    text = Text(f"{plural(len(files), 'file')} in {plural(models, 'model')}, {size(on_disk(files))}")
    errors = sum(1 for e in files if e.error)
    if errors:
        text.append(f", {errors} unreadable")
    if state.skipped:
        text.append(
            f", {plural(len(state.skipped), 'folder')} skipped: ", warning
        )
        text.append_text(safe("; ".join(state.skipped), style=warning))
    return text


def more_line(shown: int, matched: int, filtered: bool) -> Text:
    """The line under a table that holds fewer rows than the filter lets through (ROW_LIMIT)."""
    files = "matching files" if filtered else "files"
    return Text(f" showing {shown:,} of {matched:,} {files}: type to narrow", style="italic")


class FitCells(Mapping[str, Text]):
    """The table's Fit cells over the state's verdicts, each made when the table draws its row."""

    def __init__(self, fits: Mapping[str, FitResult | None]) -> None:
        self.fits = fits

    def __getitem__(self, path: str) -> Text:
        return verdict_cell(self.fits[path])

    def __iter__(self) -> Iterator[str]:
        return iter(self.fits)

    def __len__(self) -> int:
        return len(self.fits)


def _quiet(key: str, action: str, description: str, id: str) -> Binding:
    """A priority key that Help and the palette list and the footer leaves out."""
    return Binding(key, action, description, show=False, id=id, priority=True)


class LibraryScreen(OrganizeActions, Screen[None]):
    CSS_PATH = "library.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-medium"), (140, "-wide")]
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="library.filter", priority=True),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="library.clear_filter"),
        Binding("backspace", "filter_back", "Filter: delete last character", show=False, id="library.back"),
        Binding("ctrl+w,ctrl+backspace", "filter_back(True)", "Filter: delete last word", show=False),
        _quiet("ctrl+s", "cycle_sort", "Sort", "library.sort"),
        _quiet("ctrl+o", "reverse_sort", "Reverse order", "library.reverse"),
        _quiet("ctrl+r", "rescan", "Rescan", "library.rescan"),
        _quiet("ctrl+a", "add_root", "Add folder", "library.add_root"),
        _quiet("left_square_bracket", "fit_ctx(0.5)", "Context ÷2", "fit.ctx_down"),
        _quiet("right_square_bracket", "fit_ctx(2)", "Context ×2", "fit.ctx_up"),
        _quiet("left_curly_bracket", "fit_layers(-1)", "GPU layers −1", "fit.layers_down"),
        _quiet("right_curly_bracket", "fit_layers(1)", "GPU layers +1", "fit.layers_up"),
        _quiet("semicolon", "fit_kv", "KV cache type", "fit.kv"),
        _quiet("apostrophe", "fit_flash_attn", "Flash attention", "fit.flash_attn"),
        Binding("space", "mark", "Mark", id="library.mark"),
        Binding("ctrl+b", "open_ab", "A/B", id="library.ab", priority=True),
        Binding("ctrl+k", "quality", "Quality", id="library.quality"),
        Binding("delete", "delete(False)", "Delete", id="organize.delete"),
        Binding(
            "shift+delete", "delete(True)", "Delete permanently", show=False, id="organize.delete_permanent"
        ),
        Binding("ctrl+x", "move", "Move", id="organize.move", priority=True),
        _quiet("ctrl+n", "rename", "Rename", "organize.rename"),
        Binding("ctrl+u", "usage", "Disk usage", id="organize.usage", priority=True),
        _quiet("f2", "toggle_side", "Side pane", "library.side"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._typing_into_filter = False  # a letter moved focus to the filter; it has not arrived yet
        self._fit_cells = FitCells({})

    def compose(self) -> ComposeResult:
        self.state = library_state(self)
        yield Header()
        yield FilterInput(
            placeholder="type to filter: name, architecture, quant, store", id="filter", select_on_focus=False
        )
        with Horizontal(id="library-body"):
            with Vertical(id="table-column"):
                yield ModelTable(id="models")
                yield Static(id="more", classes="hidden")  # past ROW_LIMIT: how many rows are left out
                yield Static(id="empty", classes="hidden")
            with Vertical(id="right-column"):
                yield FitPanel(self.state, id="fit")
                yield DetailPane(id="detail")
        yield OperationBar(id="status")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Library"
        self.state.changed.subscribe(self, self._state_changed)
        self.table.focus()
        if self.state.entries or self.state.scan.running:
            self._state_changed("entries")
        else:
            self.action_rescan()

    # the state's views, for screens and tests that read them ----------------------------------------

    @property
    def table(self) -> ModelTable:
        return self.query_one(ModelTable)

    @property
    def bar(self) -> OperationBar:
        return self.query_one(OperationBar)

    @property
    def marked(self) -> list[str]:
        return list(self.state.marks)

    @property
    def entries(self) -> list[LibraryEntry]:
        return self.state.entries

    @property
    def fit_settings(self) -> FitSettings:
        return self.state.fit_settings

    @property
    def hw(self) -> Hardware | None:
        return self.state.hardware

    def roots(self) -> list[Root]:
        return self.state.roots()

    # following the state --------------------------------------------------------------------------

    def _state_changed(self, what: Change) -> None:
        if what == "scanning":
            scan = self.state.scan
            if scan.error:
                self.bar.idle()
                self.bar.show_summary(safe(scan.error, style="bold red"))
            elif scan.running:
                self.bar.show_progress("scanning…", scan.done, scan.total)
            return
        if what == "marks":
            self.table.set_marks(self.state.marks)
            return
        if what == "fit":
            self.query_one(FitPanel).recompute()
        if what == "entries":
            self.bar.idle()
            self.bar.show_summary(summary(self.state, tone(self, "warning")))
        if self._fit_cells.fits is not self.state.fits:
            self._fit_cells = FitCells(self.state.fits)
        self.table.load(self.state.entries, self._fit_cells, self.state.marks)

    def on_screen_resume(self) -> None:
        if self.state.entries:
            self.table.read_measured()  # an eval or bench in the Quality view may have measured more

    @on(ModelTable.Refilled)
    def _refilled(self, message: ModelTable.Refilled) -> None:
        table, nothing = self.table, not self.state.entries
        was_hidden = not table.display
        table.display = not nothing
        filt = self.query_one(FilterInput)
        if was_hidden and not nothing and (self.focused is None or (self.focused is filt and not filt.value)):
            table.focus()  # the table was hidden (empty library): focus sat in the filter
        empty = self.query_one("#empty", Static)
        empty.set_class(not nothing, "hidden")
        self.set_class(nothing, "-empty")  # no side pane beside nothing: the ways to start get the width
        more = self.query_one("#more", Static)
        more.set_class(message.shown >= message.matched, "hidden")
        if message.shown < message.matched:
            more.update(more_line(message.shown, message.matched, bool(table.query_text)))
        if nothing:
            empty.update(self._empty_text())
            self._show_nothing("")
        elif not message.shown:
            self._show_nothing("no file matches the filter")
        else:
            self._show_key(table.cursor_key())

    def _empty_text(self) -> Group:
        """What an empty library says: where quanttui looked (each folder whole, folded in its own
        column, never wrapped under the words before it) and the ways to get a first model."""
        folders = Table.grid(padding=(0, 1))
        folders.add_column(no_wrap=True)
        folders.add_column(no_wrap=True)
        folders.add_column(overflow="fold")
        for root, state in self.state.known_roots():
            style = "" if state == "active" else "dim"
            folders.add_row(Text(state, style), Text(root.kind, style), safe_path(root.path, style=style))
        ways = Table.grid(padding=(0, 2))
        ways.add_column(no_wrap=True, style="bold")
        ways.add_column(overflow="fold")
        ways.add_row("quanttui demo", "in a shell: a small real model (Gemma 3 270M), its quants, measured")
        ways.add_row("ctrl+f", "the Hub: search Hugging Face and download a GGUF")
        ways.add_row("ctrl+a", "add a folder that holds GGUF files")
        ways.add_row("quanttui roots add PATH", "in a shell, the same")
        return Group(
            Text("No GGUF models found.", style="bold"),
            Text(""),
            Text("quanttui looked in:"),
            Padding(folders, (0, 0, 0, 2)),
            Text(""),
            Text("To get a model:"),
            Padding(ways, (0, 0, 0, 2)),
        )

    def _show_nothing(self, why: str) -> None:
        self.query_one(DetailPane).show_message(Text(why, style="dim"))
        self.query_one(FitPanel).show(None, why or "highlight a file")

    def _show_key(self, key: str | None) -> None:
        if key is None:
            return
        pane, panel = self.query_one(DetailPane), self.query_one(FitPanel)
        if key.startswith(GROUP_PREFIX):
            group = key[len(GROUP_PREFIX) :]
            members = self.table.group_members(group)
            if members:
                pane.show_group(members)
            panel.show(None, "highlight one of this model's files to see its fit")
            return
        e = self.state.entry(key)
        if e is not None:
            pane.show_entry(e)
            panel.show(e)

    @on(ModelTable.RowHighlighted)
    def _row_highlighted(self, event: ModelTable.RowHighlighted) -> None:
        self._show_key(event.row_key.value)

    # the filter -----------------------------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_query(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.table.focus()

    @on(FilterInput.Leave)
    def _filter_left(self, message: FilterInput.Leave) -> None:
        table = self.table
        table.flush()  # the cursor moves over the rows of the query typed
        table.focus()
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + message.step)))

    def on_key(self, event: Key) -> None:
        # Letters and digits always filter; every action sits on a ctrl key or punctuation. Focus
        # moves after the keys already queued (a paste, tmux), so those follow the first letter into
        # the filter, spaces included, instead of firing the table's bindings. They were sent to the
        # table and may reach this screen after the filter has the focus (the filter consumes what is
        # typed into it, so such a key comes from the table): they still go to the filter, in order.
        # With no focus (the table was hidden while the library was empty and is not focused again
        # yet) or with the side pane focused (Tab, to scroll it), letters filter too: whatever has
        # the focus, a letter is never lost.
        char = event.character or ""
        filt = self.query_one(FilterInput)
        typing = self._typing_into_filter
        if (
            (self.focused is not filt or typing)
            and event.is_printable
            and (types_into_filter(char) and char != " " or typing and char == " ")
        ):
            filt.focus()
            filt.insert_text_at_cursor(char)
            self._typing_into_filter = True
            event.stop()
            event.prevent_default()

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        if event.widget is not self.query_one(FilterInput):
            self._typing_into_filter = False  # the keys typed into the filter have all arrived

    # actions --------------------------------------------------------------------------------------

    def action_rescan(self) -> None:
        quanttui_app(self).rescan()

    def action_focus_filter(self) -> None:
        self.query_one(FilterInput).focus()

    def action_filter_back(self, word: bool = False) -> None:
        """Backspace from the table edits the filter, as letters do: its last character (or word) goes."""
        filt = self.query_one(FilterInput)
        filt.value = drop_last(filt.value, word=word)
        filt.cursor_position = len(filt.value)

    def action_clear_filter(self) -> None:
        self.query_one(FilterInput).value = ""
        self.table.focus()

    def action_cycle_sort(self) -> None:
        self.notify(f"sorted by {self.table.cycle_sort()}", timeout=1.5)

    def action_reverse_sort(self) -> None:
        self.table.reverse_sort()

    def action_toggle_side(self) -> None:
        self.toggle_class("-side-toggled")
        self.call_after_refresh(
            lambda: self.table.focus() if self.query_one("#table-column").styles.display != "none" else None
        )

    def action_add_root(self) -> None:
        def added(path: str | None) -> None:
            if not path:
                return
            try:
                root = self.state.add_root(path)
            except (ValueError, OSError) as e:
                self.notify(str(e), severity="error")
                return
            self.notify(f"added {root.path}")
            self.action_rescan()

        self.app.push_screen(AskScreen("Add a folder to the library", placeholder="/path/to/models"), added)

    def action_fit_ctx(self, factor: float) -> None:  # bounded by the highlighted file's trained context
        self.after_typed(partial(self.query_one(FitPanel).change_ctx, factor))

    def action_fit_layers(self, step: int) -> None:
        self.after_typed(partial(self.query_one(FitPanel).change_layers, step))

    def action_fit_kv(self) -> None:
        self.query_one(FitPanel).cycle_kv()

    def action_fit_flash_attn(self) -> None:
        self.query_one(FitPanel).toggle_flash_attn()

    def highlighted_entry(self) -> LibraryEntry | None:
        return self.state.entry(self.table.cursor_key())

    def action_mark(self) -> None:
        """Mark or unmark the highlighted file; the first two marks are A and B."""
        e = self.highlighted_entry()
        if e is None:
            return
        self.state.toggle_mark(e.path)
        names = ", ".join(
            f"{'AB'[i] if i < 2 else '•'} {Path(p).name}" for i, p in enumerate(self.state.marks)
        )
        self.notify(f"marked {names}" if names else "no file marked", timeout=2)

    def action_open_ab(self) -> None:
        self.after_typed(self._open_ab)

    def _open_ab(self) -> None:
        from .ab import ABScreen

        paths = list(self.state.marks[:2])
        e = self.highlighted_entry()
        if len(paths) == 1 and e is not None and not e.error and e.path not in paths:
            paths.append(e.path)
        if len(paths) != 2:
            self.notify("mark two files with space, then press ctrl+b", severity="warning")
            return
        a, b = (self.state.entry(p) or p for p in paths)  # the entries: their facts are read already
        self.app.push_screen(ABScreen(a, b))

    def action_quality(self) -> None:
        """The Quality view of the model on the cursor (its row or any of its files)."""
        from .quality import QualityScreen

        key = self.table.cursor_key()
        e = self.state.entry(key)
        group = key[len(GROUP_PREFIX) :] if key and key.startswith(GROUP_PREFIX) else e.group if e else None
        if group is None:
            self.notify("highlight a model or one of its files, then press ctrl+k", severity="warning")
            return
        self.app.push_screen(QualityScreen(group))

    def operation_finished(self, message: OperationBar.Done) -> None:
        """After a change: marks cleared and a rescan. A refused or failed operation changed nothing
        (organize is all or nothing), so its error stays on the bar."""
        if not message.error:
            self.state.clear_marks()
            self.action_rescan()

    def system_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        for title, help_text, action in (
            ("Rescan library", "Look for new and changed model files", self.action_rescan),
            ("Add folder", "Add a folder to the library roots", self.action_add_root),
            ("Filter models", "Focus the filter box", self.action_focus_filter),
            ("Clear the filter", "Empty the filter box", self.action_clear_filter),
            ("Cycle sort column", "Sort the table by the next column", self.action_cycle_sort),
            ("Reverse sort", "Reverse the table order", self.action_reverse_sort),
            ("Fit: double the context", "Up to the file's trained context", partial(self.action_fit_ctx, 2)),
            ("Fit: halve the context", "Memory fit at half the context", partial(self.action_fit_ctx, 0.5)),
            ("Fit: next KV cache type", "f16, q8_0, q4_0", self.action_fit_kv),
            ("Fit: toggle flash attention", "Flash attention on or off", self.action_fit_flash_attn),
            ("Fit: one more GPU layer", "Offload one more layer", partial(self.action_fit_layers, 1)),
            ("Fit: one GPU layer less", "Offload one layer fewer", partial(self.action_fit_layers, -1)),
            ("Mark file", "Mark the highlighted file (first two: A and B)", self.action_mark),
            ("A/B chat", "Compare the two marked files side by side", self.action_open_ab),
            (
                "Quality view",
                "The highlighted model's quants: eval (KLD against the reference), bench (tok/s), "
                "fit, and the quant advise recommends",
                self.action_quality,
            ),
            ("Side pane", "Show or hide the fit and detail pane", self.action_toggle_side),
        ):
            yield SystemCommand(title, help_text, action)
        yield from self.organize_commands()
