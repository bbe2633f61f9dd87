"""The quanttui Textual app, built by one factory for the CLI and the tests."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from ..core import settings as settings_mod
from ..core.library import Root
from ..themes import THEMES, other_theme, register_themes
from .screens.library import LibraryScreen


class QuantApp(App):
    TITLE = "quanttui"
    BINDINGS = [
        Binding("ctrl+t", "toggle_theme", "Theme", id="app.toggle_theme"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
    ]

    def __init__(self, roots: list[Root] | None = None) -> None:
        super().__init__()
        self._roots = roots

    def on_mount(self) -> None:
        register_themes(self)
        s = settings_mod.load()
        self.theme = s.theme if s.theme in self.available_themes else THEMES[0].name
        if s.load_error:
            self.notify(s.load_error, severity="warning")
        self.push_screen(LibraryScreen(self._roots))

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

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Toggle dark/light theme", "Switch between quanttui's two themes", self.action_toggle_theme
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


def create_app(roots: list[Root] | None = None) -> QuantApp:
    """The app the CLI runs and the tests drive; `roots` overrides the configured library roots."""
    return QuantApp(roots)


def run_app() -> int:
    create_app().run()
    return 0
