"""The Library's organize actions (delete, move, rename, disk usage): which files they act on, the
dialogs that name those files, and the jobs the operation bar runs off the UI thread."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import SystemCommand

from ...core.format import plural
from ...core.organize import canonical_folder, move, rename
from ...core.textsafe import clean
from ..widgets.operation_bar import OperationBar, Report
from .dialogs import AskScreen, confirm_delete
from .usage import UsageScreen

if TYPE_CHECKING:
    from textual.app import App
    from textual.notifications import SeverityLevel
    from textual.widget import Widget

    from ...core.library import LibraryEntry
    from ..state import LibraryState
    from ..widgets.model_table import ModelTable


class OrganizeActions:
    """Mixed into the Library screen. The files an action touches: the marked files the filter shows,
    or the highlighted file when no shown file is marked; marks hidden by the filter are never touched
    and the dialog says so."""

    state: LibraryState

    if TYPE_CHECKING:  # provided by the screen this is mixed into
        app: App[Any]
        focused: Widget | None

        @property
        def table(self) -> ModelTable: ...
        @property
        def bar(self) -> OperationBar: ...
        def highlighted_entry(self) -> LibraryEntry | None: ...
        def operation_finished(self, message: OperationBar.Done) -> None: ...
        def notify(
            self,
            message: str,
            *,
            title: str = "",
            severity: SeverityLevel = "information",
            timeout: float | None = None,
            markup: bool = True,
        ) -> None: ...

    def after_typed(self, action: Callable[[], None]) -> None:
        """Run a priority key's `action` after the keys already on their way to the focused widget:
        a priority key is handled as it arrives, ahead of them, so typed fast ("down space ctrl+b")
        it would act on the cursor and marks as they were before those keys. Such a key bubbles from
        the focused widget up to the app, where its binding runs: `action` follows it hop by hop."""
        chain = list(self.focused.ancestors_with_self) if self.focused is not None else []

        def hop(at: int) -> None:
            if at == len(chain) or not chain[at].call_later(hop, at + 1):
                action()

        hop(0)

    def targets(self) -> tuple[list[str], int]:
        """The files to act on and how many marked files the filter hides (left alone)."""
        shown = {e.path for e in self.table.visible_entries()}
        marked = [p for p in self.state.marks if p in shown]
        hidden = len(self.state.marks) - len(marked)
        if marked:
            return marked, hidden
        e = self.highlighted_entry()
        if e is not None:  # the row named is the row in view, highlighted, wherever the focus is
            self.table.move_cursor(row=self.table.cursor_row, scroll=True)
        return ([e.path] if e is not None else []), hidden

    @staticmethod
    def _hidden_note(hidden: int) -> list[str]:
        if not hidden:
            return []
        return ["", f"({plural(hidden, 'marked file')} hidden by the filter: left alone)"]

    def action_delete(self, permanent: bool) -> None:
        targets, hidden = self.targets()
        if not targets:
            self.notify("highlight a file, or mark files with space, first", timeout=2)
            return
        confirm_delete(
            self.bar, "delete", targets, self.state.roots(), self.operation_finished,
            permanent=permanent, note=self._hidden_note(hidden),
        )  # fmt: skip

    def _suggested_folder(self, first: LibraryEntry | None) -> Path | None:
        """Where a move is suggested to go: OWNER/REPO or the model's name under quanttui's models folder
        when a move may go there, else under the first file's own root."""
        if first is None:
            return None
        top = self.state.models_home() or Path(first.root)
        return canonical_folder(first.origin, first.group_label, top)

    def action_move(self) -> None:
        self.after_typed(self._move)

    def _move(self) -> None:
        targets, hidden = self.targets()
        if not targets:
            self.notify("highlight a file, or mark files with space, first", timeout=2)
            return
        suggested = self._suggested_folder(self.state.entry(targets[0]))
        roots = self.state.move_roots()
        count = plural(len(targets), "file")

        def chosen(dest: str | None) -> None:
            if not dest:
                return

            def job(progress: Report) -> str:
                moved = move(targets, dest, roots, progress=progress)
                return f"moved {plural(len(moved), 'file')} to {clean(dest)}"

            self.bar.start("move", job, self.operation_finished)

        question = f"Move {count} to the folder"
        value = clean(suggested) if suggested is not None else ""
        dialog = AskScreen(question, value, lines=targets + self._hidden_note(hidden))
        self.app.push_screen(dialog, chosen)

    def action_rename(self) -> None:
        self.after_typed(self._rename)

    def _rename(self) -> None:
        e = self.highlighted_entry()
        if e is None or e.error:
            return
        roots = self.state.roots()
        stem = clean(Path(e.path).name.removesuffix(".gguf"))  # what the box shows is what it returns

        def chosen(name: str | None) -> None:
            if name:
                self.bar.start(
                    "rename",
                    lambda progress: f"renamed to {rename(e.path, name, roots)[0].name}",
                    self.operation_finished,
                )

        self.app.push_screen(AskScreen("New name", stem, lines=[e.path]), chosen)

    def action_usage(self) -> None:
        self.app.push_screen(UsageScreen())

    def organize_commands(self) -> Iterable[SystemCommand]:
        """Marking, A/B and the organize operations as palette commands."""
        shown = "Marked files the filter shows, or the highlighted one"
        yield SystemCommand("Delete to trash", shown, partial(self.action_delete, False))
        yield SystemCommand("Delete permanently", shown, partial(self.action_delete, True))
        yield SystemCommand("Move to folder", f"{shown}; split sets whole", self.action_move)
        yield SystemCommand("Rename", "The highlighted file (every part of a split set)", self.action_rename)
        yield SystemCommand("Disk usage and duplicates", "Per root, model and quant", self.action_usage)
