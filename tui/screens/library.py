"""The Library screen: every GGUF on the machine, grouped by model, with a detail pane and a fit panel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import DescendantFocus, Key
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, ProgressBar, Static
from textual.worker import Worker, WorkerState

from ...core import settings as settings_mod
from ...core.fit import FitError, FitResult, FitSettings, Hardware, estimate, hardware
from ...core.format import size
from ...core.library import LibraryEntry, Root, active_roots, add_root, all_roots, scan
from ...core.organize import OrganizeError, canonical_folder, execute_delete, move, plan_delete, rename
from ...core.paths import models_dir
from ...core.textsafe import clean
from ..messages import OrganizeDone, OrganizeProgress, ScanDone, ScanProgress
from ..safe import safe
from ..widgets.detail_pane import DetailPane
from ..widgets.fit_panel import FitPanel, verdict_cell
from ..widgets.model_table import COLUMNS, GROUP_PREFIX, ModelTable, arrange, matches
from .dialogs import AskScreen, ConfirmScreen

SORT_KEYS = [key for key, _ in COLUMNS]
KV_CYCLE = ("f16", "q8_0", "q4_0")
FILTER_CHARS = set("-_.:")  # with letters and digits these type into the filter; other keys stay free


def load_fit_settings() -> FitSettings:
    saved = settings_mod.load().fit
    try:
        s = FitSettings(**saved)
        s.validate()
        return s
    except (TypeError, FitError):
        return FitSettings()


class LibraryScreen(Screen):
    CSS_PATH = "library.tcss"
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="library.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="library.clear_filter"),
        Binding("ctrl+s", "cycle_sort", "Sort", id="library.sort"),
        Binding("ctrl+o", "reverse_sort", "Order", id="library.reverse"),
        Binding("ctrl+r", "rescan", "Rescan", id="library.rescan"),
        Binding("ctrl+a", "add_root", "Add folder", id="library.add_root"),
        Binding("left_square_bracket", "fit_ctx(0.5)", "ctx−", id="fit.ctx_down"),
        Binding("right_square_bracket", "fit_ctx(2)", "ctx+", id="fit.ctx_up"),
        Binding("left_curly_bracket", "fit_layers(-1)", "layers−", show=False, id="fit.layers_down"),
        Binding("right_curly_bracket", "fit_layers(1)", "layers+", show=False, id="fit.layers_up"),
        Binding("semicolon", "fit_kv", "KV type", id="fit.kv"),
        Binding("space", "mark", "Mark for A/B", id="library.mark"),
        Binding("ctrl+b", "open_ab", "A/B", id="library.ab"),
        Binding("delete", "delete(False)", "Delete", id="organize.delete"),
        Binding(
            "shift+delete", "delete(True)", "Delete permanently", show=False, id="organize.delete_permanent"
        ),
        Binding("ctrl+x", "move", "Move", id="organize.move"),
        Binding("ctrl+n", "rename", "Rename", show=False, id="organize.rename"),
        Binding("ctrl+u", "usage", "Disk usage", id="organize.usage"),
        Binding("apostrophe", "fit_flash_attn", "Flash attn", show=False, id="fit.flash_attn"),
    ]

    def __init__(self, roots: list[Root] | None = None, hw: Hardware | None = None) -> None:
        super().__init__()
        self._fixed_roots = roots
        self._typing_into_filter = False  # a letter moved focus to the filter; it has not arrived yet
        self.entries: list[LibraryEntry] = []
        self.sort = "model"
        self.reverse = False
        self.hw = hw
        self.fit_settings = load_fit_settings()
        self.fits: dict[str, FitResult | None] = {}
        self.marked: list[str] = []  # the first two are A and B; all of them for organize operations

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="type to filter: name, architecture, quant, store", id="filter", select_on_focus=False
        )
        with Horizontal(id="library-body"):
            with Vertical(id="table-column"):
                yield ModelTable(id="models")
                yield Static(id="empty", classes="hidden")
            with Vertical(id="right-column"):
                yield FitPanel(id="fit")
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
        self.query_one("#status-text", Static).update(Text("scanning…"))
        self.query_one("#scan-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#scan-progress").display = True
        self.scan_worker(self.roots(), self.hw)

    @work(thread=True, exclusive=True, exit_on_error=False, group="scan")
    def scan_worker(self, roots: list[Root], hw: Hardware | None) -> None:
        entries = scan(roots, progress=lambda done, total, _: self.post_message(ScanProgress(done, total)))
        self.post_message(ScanDone(entries, hw or hardware()))

    @on(ScanProgress)
    def _scan_progress(self, message: ScanProgress) -> None:
        self.query_one("#scan-progress", ProgressBar).update(total=message.total, progress=message.done)

    @on(ScanDone)
    def _scan_done(self, message: ScanDone) -> None:
        self.entries = message.entries
        self.hw = message.hardware
        self.query_one("#scan-progress").display = False
        errors = sum(1 for e in self.entries if e.error)
        total = sum(e.size_bytes for e in self.entries)
        text = f"{len(self.entries)} models, {size(total)}"
        if errors:
            text += f", {errors} unreadable"
        self.query_one("#status-text", Static).update(Text(text))
        self._compute_fits()
        self.refresh_table()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.query_one("#scan-progress").display = False
            self.query_one("#status-text", Static).update(
                safe(f"scan failed: {event.worker.error}", style="bold red")
            )

    # table ----------------------------------------------------------------------------------------

    def visible(self) -> list[LibraryEntry]:
        query = self.query_one("#filter", Input).value.strip()
        return [e for e in self.entries if matches(e, query)] if query else list(self.entries)

    def refresh_table(self) -> None:
        table = self.query_one(ModelTable)
        empty = self.query_one("#empty", Static)
        keep = self._cursor_key()
        shown = self.visible()
        cells = {path: verdict_cell(r) for path, r in self.fits.items()}
        table.show(arrange(shown, self.sort, self.reverse), cells, keep, marks=self.marked)
        nothing = not self.entries
        was_hidden = not table.display
        table.display = not nothing
        filt = self.query_one("#filter", Input)
        if was_hidden and not nothing and (self.focused is None or (self.focused is filt and not filt.value)):
            table.focus()  # the table was hidden (empty library): focus sat in the filter
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
                safe(f"  {state:<8} {root.kind:<12} {root.path}", style="" if state == "active" else "dim")
            )
        lines += [Text(""), Text("Press ctrl+a to add a folder, or run: quanttui roots add PATH")]
        return Group(*lines)

    def _cursor_key(self) -> str | None:
        """The row key under the table's cursor (a file path or `group:KEY`), None when empty."""
        table = self.query_one(ModelTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def _show_highlighted(self) -> None:
        self._show_key(self._cursor_key())

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
                self._show_fit(e)
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
        # Letters and digits always filter; every action sits on a ctrl key or punctuation.
        char = event.character or ""
        starts = char.isalnum() or char in FILTER_CHARS
        # Focus moves after the keys already queued (a paste, tmux), so those follow the first
        # letter into the filter, spaces included, instead of firing the table's bindings.
        follows = self._typing_into_filter and char == " "
        if self.focused is table and event.is_printable and (starts or follows):
            filt = self.query_one("#filter", Input)
            filt.focus()
            filt.insert_text_at_cursor(char)
            self._typing_into_filter = True
            event.stop()
            event.prevent_default()

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        self._typing_into_filter = False

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

        self.app.push_screen(AskScreen("Add a folder to the library", placeholder="/path/to/models"), added)

    # memory fit -----------------------------------------------------------------------------------

    def _compute_fits(self) -> None:
        """Verdicts for every readable file at the current fit settings (the table's Fit column); run when
        the entries, hardware or settings change, not on every redraw (filtering, sorting, marking)."""
        self.fits = {}
        if self.hw is None:
            return
        for e in self.entries:
            if e.facts:
                try:
                    self.fits[e.path] = estimate(e.facts, self.fit_settings, self.hw, search=False)
                except FitError:
                    self.fits[e.path] = None

    def _show_fit(self, e: LibraryEntry) -> None:
        panel = self.query_one(FitPanel)
        if self.hw is None or not e.facts:
            panel.result, panel.error = None, None
            return
        try:
            panel.result, panel.error = estimate(e.facts, self.fit_settings, self.hw), None
        except FitError as err:
            panel.result, panel.error = None, str(err)

    def _apply_fit(self, s: FitSettings) -> None:
        try:
            s.validate()
        except FitError as err:
            self.notify(str(err), severity="warning")
            return
        self.fit_settings = s
        with settings_mod.update() as saved:
            saved.fit = {k: getattr(s, k) for k in ("n_ctx", "type_k", "type_v", "flash_attn", "gpu_layers")}
        self._compute_fits()
        self.refresh_table()

    def action_fit_ctx(self, factor: float) -> None:
        n = int(self.fit_settings.n_ctx * factor) // 256 * 256
        self._apply_fit(replace(self.fit_settings, n_ctx=min(max(n, 256), 1 << 24)))

    def action_fit_layers(self, step: int) -> None:
        result = self.query_one(FitPanel).result
        full = result.n_layer + 1 if result else 1 << 16
        current = self.fit_settings.gpu_layers
        n = (result.gpu_layers if result else 0) if current in ("auto", "all") else int(current)
        n += step
        layers: int | str = "auto" if n < 0 else "all" if n >= full else n
        self._apply_fit(replace(self.fit_settings, gpu_layers=layers))

    def action_fit_kv(self) -> None:
        s = self.fit_settings
        nxt = KV_CYCLE[(KV_CYCLE.index(s.type_k) + 1) % len(KV_CYCLE)] if s.type_k in KV_CYCLE else "f16"
        # A quantized V cache needs flash attention, so switching to one turns it on.
        self._apply_fit(replace(s, type_k=nxt, type_v=nxt, flash_attn=s.flash_attn or nxt != "f16"))

    def action_fit_flash_attn(self) -> None:
        self._apply_fit(replace(self.fit_settings, flash_attn=not self.fit_settings.flash_attn))

    # A/B ------------------------------------------------------------------------------------------

    def _highlighted_entry(self) -> LibraryEntry | None:
        key = self._cursor_key()
        return next((e for e in self.entries if e.path == key), None)

    def action_mark(self) -> None:
        """Mark or unmark the highlighted file; the first two marks are A and B."""
        e = self._highlighted_entry()
        if e is None:
            return
        if e.path in self.marked:
            self.marked.remove(e.path)
        else:
            self.marked.append(e.path)
        self.refresh_table()
        names = ", ".join(f"{'AB'[i] if i < 2 else '•'} {Path(p).name}" for i, p in enumerate(self.marked))
        self.notify(f"marked {names}" if names else "no file marked", timeout=2)

    def action_open_ab(self) -> None:
        from .ab import ABScreen

        paths = list(self.marked[:2])
        e = self._highlighted_entry()
        if len(paths) == 1 and e is not None and not e.error and e.path not in paths:
            paths.append(e.path)
        if len(paths) != 2:
            self.notify("mark two files with space, then press ctrl+b", severity="warning")
            return
        self.app.push_screen(ABScreen(paths[0], paths[1]))

    # organize -------------------------------------------------------------------------------------

    def _targets(self) -> list[str]:
        if self.marked:
            return list(self.marked)
        e = self._highlighted_entry()
        return [e.path] if e is not None else []

    def action_delete(self, permanent: bool) -> None:
        targets = self._targets()
        if not targets:
            return
        roots = self.roots()
        try:
            plan = plan_delete(targets, roots, permanent=permanent)
        except OrganizeError as err:
            self.notify(str(err), severity="error")
            return
        lines = [str(p) for p in plan.files] + [f"(link) {p}" for p in plan.links]
        title = f"{plan.summary()} ({size(plan.bytes_freed)})?"

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_organize("delete", lambda progress: (execute_delete(plan, roots), plan.summary())[1])

        self.app.push_screen(ConfirmScreen(title[0].upper() + title[1:], lines), answered)

    def action_move(self) -> None:
        targets = self._targets()
        if not targets:
            return
        e = next((x for x in self.entries if x.path == targets[0]), None)
        default = canonical_folder(e.origin, e.group_label, models_dir()) if e else models_dir()
        roots = self.roots()

        def chosen(dest: str | None) -> None:
            if dest:
                self.run_organize(
                    "move",
                    lambda progress: (
                        f"moved {len(move(targets, dest, roots, progress=progress))} files to {dest}"
                    ),
                )

        self.app.push_screen(AskScreen(f"Move {len(targets)} model(s) to the folder", clean(default)), chosen)

    def action_rename(self) -> None:
        e = self._highlighted_entry()
        if e is None or e.error:
            return
        roots = self.roots()
        stem = clean(Path(e.path).name.removesuffix(".gguf"))  # what the box shows is what it returns

        def chosen(name: str | None) -> None:
            if name:
                self.run_organize(
                    "rename", lambda progress: f"renamed to {rename(e.path, name, roots)[0].name}"
                )

        self.app.push_screen(AskScreen("New name", stem), chosen)

    def action_usage(self) -> None:
        from .usage import UsageScreen

        self.app.push_screen(UsageScreen(self.entries, self.roots()))

    def run_organize(self, what: str, job: Callable[[Callable[[int, int], None]], str]) -> None:
        self.query_one("#status-text", Static).update(Text(f"{what}…"))
        self.query_one("#scan-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#scan-progress").display = True
        self.organize_worker(job)

    @work(thread=True, exclusive=True, exit_on_error=False, group="organize")
    def organize_worker(self, job: Callable[[Callable[[int, int], None]], str]) -> None:
        try:
            text = job(lambda done, total: self.post_message(OrganizeProgress(done, total)))
        except (OrganizeError, OSError) as err:
            self.post_message(OrganizeDone("", str(err)))
            return
        self.post_message(OrganizeDone(text))

    @on(OrganizeProgress)
    def _organize_progress(self, message: OrganizeProgress) -> None:
        self.query_one("#scan-progress", ProgressBar).update(total=message.total, progress=message.done)

    @on(OrganizeDone)
    def _organize_done(self, message: OrganizeDone) -> None:
        self.query_one("#scan-progress").display = False
        if message.error:
            self.notify(message.error, severity="error")
        else:
            self.notify(message.text)
            self.marked = []
        self.action_rescan()
