"""Hub screens: search GGUF repos, a repo's quant ladder before downloading, and a tensor-type diff.

Hub calls run in daemon threads that the screens' workers wait on (see `_detached`), so a Hub that
drips or stalls never holds up leaving a screen or quitting the app.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Static
from textual.worker import Worker, get_current_worker

from ...core import format as fmt
from ...core.fit import FitError, FitSettings, Hardware, estimate, hardware
from ...core.hub import HubError, RepoHit, RepoListing, Variant, remote_facts, repo_variants, search
from ...core.hub.guard import cancel_on, cancelled
from ...core.library import LibraryEntry
from ...core.library.groups import quant_from_name
from ...core.report import inspect_text
from ..safe import safe
from ..state import LibraryState, library_state, quanttui_app
from ..widgets.fit_panel import verdict_cell
from ..widgets.key_footer import KeyFooter
from ..widgets.safe_table import SafeTable

SORTS = ("downloads", "likes", "recent")


class HubScreen(Screen[None]):
    """Search box and results; Enter on a result opens its quant ladder."""

    @dataclass
    class SearchDone(Message):
        """A search's hits, or the one line saying why there are none."""

        worker: Worker[None]
        hits: list[RepoHit]
        error: str | None = None

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="hub.back"),
        Binding("ctrl+s", "cycle_sort", "Sort", id="hub.sort"),
        Binding("ctrl+r", "retry", "Search again", id="hub.retry"),
    ]
    DEFAULT_CSS = (
        "#hub-status { height: auto; padding: 0 1; color: $text-muted; } #hub-query { margin: 0 1; }"
    )

    def __init__(self) -> None:
        super().__init__()
        self.sort = "downloads"
        self.query_text = ""  # the last search sent
        self._search: Worker[None] | None = None  # the last search; answers of earlier ones are dropped

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="search Hugging Face for GGUF models, Enter to search", id="hub-query")
        yield Static("", id="hub-status")
        yield SafeTable(id="hub-results", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Hub"
        table = self.query_one(DataTable)
        for key, label in (
            ("repo", "Repository"),
            ("downloads", "Downloads"),
            ("likes", "Likes"),
            ("params", "Params"),
            ("arch", "Arch"),
            ("modified", "Modified"),
        ):
            table.add_column(label, key=key)
        self.query_one(Input).focus()

    @on(Input.Submitted, "#hub-query")
    def _submit(self, event: Input.Submitted) -> None:
        self.run_search(event.value.strip())

    def run_search(self, query: str) -> None:
        self.query_text = query
        what = f"{query!r}" if query else "every GGUF repository"
        self.query_one("#hub-status", Static).update(safe(f"searching {what} by {self.sort}…"))
        self._search = self.search_worker(query, self.sort)

    @work(thread=True, exclusive=True, exit_on_error=False, group="hub-search")
    def search_worker(self, query: str, sort: str) -> None:
        worker: Worker[None] = get_current_worker()

        def body() -> None:
            try:
                self.post_message(self.SearchDone(worker, search(query, sort)))
            except HubError as e:  # a cancelled one too: its worker is no longer the shown search's
                self.post_message(self.SearchDone(worker, [], str(e)))

        _detached(body)

    @on(SearchDone)
    def _search_done(self, message: SearchDone) -> None:
        if message.worker is not self._search:
            return  # the answer to a search made before the last one
        status = self.query_one("#hub-status", Static)
        if message.error:
            status.update(error_text(message.error, "Enter or ctrl+r searches again"))
            return
        table = self.query_one(DataTable)
        table.clear()
        for h in message.hits:
            table.add_row(
                h.repo,
                f"{h.downloads or 0:,}",
                str(h.likes or 0),
                fmt.params(h.parameters),
                h.architecture or "?",
                (h.last_modified or "")[:10],
                key=h.repo,
            )
        n = table.row_count
        found = f"{n} repositories, sorted by {self.sort}; Enter opens one"
        status.update(Text(found if n else "no GGUF repositories found"))
        if n:
            table.focus()

    @on(DataTable.RowSelected, "#hub-results")
    def _open(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(RepoScreen(str(event.row_key.value)))

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.run_search(self.query_one(Input).value.strip())

    def action_retry(self) -> None:
        self.run_search(self.query_one(Input).value.strip() or self.query_text)


def _detached(body: Callable[[], None]) -> None:
    """Run `body` (Hub calls that post their own results) in a daemon thread and wait for it in this
    thread worker, watching the worker's cancel (a newer search, the screen closed, the app quitting):
    the Hub calls stop on the worker's cancelled_event (cancel_on) and the worker returns at once.
    Textual joins its worker threads when the app exits, so a worker must never wait on the Hub itself."""
    worker = get_current_worker()
    failed: list[BaseException] = []

    def run() -> None:
        with cancel_on(worker.cancelled_event):
            try:
                body()
            except Exception as e:  # noqa: BLE001 - raised again in the worker, which reports it
                failed.append(e)

    thread = threading.Thread(target=run, name="hub-call", daemon=True)
    thread.start()
    while thread.is_alive():
        if worker.cancelled_event.is_set():
            return
        thread.join(0.1)
    if failed:
        raise failed[0]


def error_text(error: str, retry: str) -> Text:
    """A Hub failure as one line (core says "offline?" where the Hub cannot be reached), then how to
    try again."""
    return safe(error, style="bold red") + Text(f"; {retry}")


def _library(screen: Screen[Any]) -> LibraryState | None:
    """The app's library state (entries, fit settings, hardware), shared with the Library screen."""
    try:
        return library_state(screen)
    except RuntimeError:  # a test app without one
        return None


def _library_entries(screen: Screen[Any]) -> list[LibraryEntry]:
    lib = _library(screen)
    return list(lib.entries) if lib else []


def _fit_settings(screen: Screen[Any]) -> FitSettings:
    lib = _library(screen)
    return lib.fit_settings if lib else FitSettings()


class RepoScreen(Screen[None]):
    """Every quant of a repo with size, true bpw, imatrix and fit verdict, read from remote headers."""

    @dataclass
    class ListingRead(Message):
        """The repo's quants, or the one line saying why they could not be listed."""

        worker: Worker[None]
        listing: RepoListing | None
        error: str | None = None

    @dataclass
    class FactsRead(Message):
        """The header facts of one variant (keyed by its first file), or why they could not be read."""

        worker: Worker[None]
        key: str
        facts: dict[str, Any] | None
        error: str | None = None

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="repo.back"),
        Binding("d", "download", "Download", id="repo.download"),
        Binding("m", "mark", "Mark for diff", id="repo.mark"),
        Binding("x", "diff", "Diff marked", id="repo.diff"),
        Binding("r", "retry", "Reload", id="repo.retry"),
    ]
    DEFAULT_CSS = """
    #repo-status { height: auto; padding: 0 1; color: $text-muted; }
    #repo-body { height: 1fr; }
    #variants { width: 3fr; }
    #variant-detail { width: 2fr; border-left: vkey $panel; padding: 0 1; }
    RepoScreen.narrow #repo-body { layout: vertical; }
    RepoScreen.narrow #variants { width: 1fr; height: 3fr; }
    RepoScreen.narrow #variant-detail { width: 1fr; height: 2fr; border-left: none; border-top: hkey $panel; }
    """
    NARROW = 120  # below this many columns the facts go under the table, not beside it

    def __init__(self, repo: str) -> None:
        super().__init__()
        self.repo = repo
        self.listing: RepoListing | None = None
        self.facts: dict[str, dict[str, Any]] = {}
        self.marked: list[str] = []
        self.hw: Hardware | None = None
        self._load: Worker[None] | None = None  # the last load; messages of an earlier one are dropped

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(safe(f"{self.repo}: loading…"), id="repo-status")
        with Horizontal(id="repo-body"):
            yield SafeTable(id="variants", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="variant-detail"):
                yield Static("", id="variant-facts")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = self.repo
        table = self.query_one(DataTable)
        for key, label in (
            ("quant", "Quant"),
            ("size", "Size"),
            ("files", "Files"),
            ("bpw", "BPW"),
            ("imatrix", "imatrix"),
            ("fit", "Fit"),
            ("local", "In library"),
        ):
            table.add_column(label, key=key)
        lib = _library(self)
        self.hw = lib.hardware if lib is not None else None  # read here, on the UI thread
        self.load()

    def on_resize(self) -> None:
        self.set_class(self.size.width < self.NARROW, "narrow")

    def action_retry(self) -> None:
        """Read the listing again after it failed (a listing already shown stays)."""
        if self.listing is None:
            self.query_one("#repo-status", Static).update(safe(f"{self.repo}: loading…"))
            self.load()

    def load(self) -> None:
        self._load = self.load_worker()

    @work(thread=True, exclusive=True, exit_on_error=False, group="repo")
    def load_worker(self) -> None:
        worker: Worker[None] = get_current_worker()
        _detached(lambda: self._read(worker))

    def _read(self, worker: Worker[None]) -> None:
        """The listing, then each variant's header (in a daemon thread: see _detached)."""
        try:
            listing = repo_variants(self.repo)
        except HubError as e:
            self.post_message(self.ListingRead(worker, None, str(e)))
            return
        self.hw = self.hw or hardware()
        self.post_message(self.ListingRead(worker, listing))
        for v in listing.variants:  # headers one by one; cached on disk, so a reopen is instant
            try:
                facts = remote_facts(
                    self.repo, v.first, listing.revision, [f.name for f in v.files], [f.size for f in v.files]
                ).to_dict(tensors=True)
                self.post_message(self.FactsRead(worker, v.first, facts))
            except HubError as e:
                if cancelled():
                    return  # the screen is gone or loads again: nothing more to read
                self.post_message(self.FactsRead(worker, v.first, None, str(e)))

    def _in_library(self, v: Variant) -> bool:
        names = {(e.name, e.size_bytes) for e in _library_entries(self)}
        return (v.first.rsplit("/", 1)[-1], v.size) in names

    @on(ListingRead)
    def _listing_read(self, message: ListingRead) -> None:
        if message.worker is not self._load:
            return  # a load that was cancelled or followed by another
        status = self.query_one("#repo-status", Static)
        table = self.query_one(DataTable)
        if message.listing is None:
            status.update(error_text(message.error or "no listing", "r tries again, Esc goes back"))
            return
        self.listing = listing = message.listing
        for v in listing.variants:
            table.add_row(
                v.label,
                fmt.size(v.size),
                str(len(v.files)),
                "…",
                "…",
                "…",
                "yes" if self._in_library(v) else "",
                key=v.first,
            )
        line = safe(
            f"{self.repo} @ {listing.revision[:12]}: {len(listing.variants)} quants; "
            "d downloads, m marks two for a diff, x shows it"
        )
        refused = listing.refused
        if refused:
            n = len(refused)
            line += safe(f"\n{fmt.plural(n, 'file')} refused: ", style="bold red")
            line += safe("; ".join(r.reason for r in refused[:3]) + ("; …" if n > 3 else ""))
        status.update(line)
        table.focus()

    @on(FactsRead)
    def _facts_read(self, message: FactsRead) -> None:
        if message.worker is not self._load:
            return
        table = self.query_one(DataTable)
        if message.facts is None:
            table.update_cell(message.key, "bpw", Text("error", style="red"), update_width=True)
            self.facts[message.key] = {"error": message.error}
            return
        f = message.facts
        self.facts[message.key] = f
        label = (
            next((v.label for v in self.listing.variants if v.first == message.key), "")
            if self.listing
            else ""
        )
        header = f.get("file_type")
        if header and quant_from_name(f"x-{label}") and label.upper() != header.upper():
            # The file name says one quant, the header another: show both, flagged.
            table.update_cell(
                message.key, "quant", safe(f"{label} (header: {header})", style="bold red"), update_width=True
            )
        table.update_cell(message.key, "bpw", f"{f['bpw']:.2f}" if f.get("bpw") else "?", update_width=True)
        table.update_cell(message.key, "imatrix", "yes" if f.get("imatrix") else "-", update_width=True)
        if self.hw is not None:
            try:
                result = estimate(f, _fit_settings(self), self.hw, search=False)
                table.update_cell(message.key, "fit", verdict_cell(result), update_width=True)
            except FitError:
                table.update_cell(message.key, "fit", "?")
        self._show_highlighted()

    def _highlighted(self) -> Variant | None:
        table = self.query_one(DataTable)
        if not table.row_count or self.listing is None:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((v for v in self.listing.variants if v.first == key), None)

    def _show_highlighted(self) -> None:
        v = self._highlighted()
        out = self.query_one("#variant-facts", Static)
        if v is None:
            return
        f = self.facts.get(v.first)
        if f is None:
            out.update(safe(f"{v.label}: reading the header…"))
        elif "error" in f:
            out.update(safe(f"{v.label}: {f['error']}", style="bold red"))
        else:
            out.update(safe(inspect_text(f), multiline=True))

    @on(DataTable.RowHighlighted, "#variants")
    def _highlight(self) -> None:
        self._show_highlighted()

    def action_download(self) -> None:
        v = self._highlighted()
        if v is not None and self.listing is not None:
            quanttui_app(self).enqueue_download(self.repo, v, self.listing.revision)

    def action_mark(self) -> None:
        v = self._highlighted()
        if v is None:
            return
        self.marked = (
            [k for k in self.marked if k != v.first]
            if v.first in self.marked
            else [*self.marked, v.first][-2:]
        )
        self.notify(
            "marked for diff: " + ", ".join(self.marked) if self.marked else "no variant marked", timeout=2
        )

    def action_diff(self) -> None:
        if len(self.marked) != 2 or not all("tensors" in self.facts.get(k, {}) for k in self.marked):
            self.notify("mark two variants whose headers are read (m), then press x", severity="warning")
            return
        self.app.push_screen(DiffScreen(*(self.facts[k] for k in self.marked)))


def tensor_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(tensor, type in A, type in B) for every tensor, in A's order then B's extras."""
    ta = {t["name"]: t["type"] for t in a.get("tensors", [])}
    tb = {t["name"]: t["type"] for t in b.get("tensors", [])}
    names = list(ta) + [n for n in tb if n not in ta]
    return [(n, ta.get(n, "-"), tb.get(n, "-")) for n in names]


class DiffScreen(Screen[None]):
    """Which tensors got which type in two variants: what a label like Q4_K_M actually changed."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="diff.back")]

    def __init__(self, a: dict[str, Any], b: dict[str, Any]) -> None:
        super().__init__()
        self.a, self.b = a, b

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="diff-summary")
        yield SafeTable(id="diff", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        la, lb = self.a.get("file_type") or "A", self.b.get("file_type") or "B"
        self.sub_title = f"{la} vs {lb}"
        rows = tensor_diff(self.a, self.b)
        changed = sum(1 for _, x, y in rows if x != y)
        self.query_one("#diff-summary", Static).update(
            safe(
                f" {la} ({self.a.get('bpw') or 0:.2f} bpw) vs {lb} ({self.b.get('bpw') or 0:.2f} bpw): "
                f"{changed} of {len(rows)} tensors differ in type"
            )
        )
        table = self.query_one(DataTable)
        table.add_columns("tensor", la, lb)
        for name, x, y in rows:
            style = "bold yellow" if x != y else "dim"
            table.add_row(name, safe(x, style=style), safe(y, style=style))
