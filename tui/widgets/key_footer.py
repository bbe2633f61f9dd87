"""A footer that always starts with Quit and Help, so they show at any width; the screen's keys follow
and the rest of the app's keys come last (every key is on the help screen and in the palette)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

FIRST = ("quit", "help")


class KeyFooter(Footer):
    """Footer whose keys are reordered: quit and help first, then the screen's, then the app's others."""

    def compose(self) -> Iterable[Widget]:
        items = list(super().compose())
        app_actions = {b.action for bs in self.app._bindings.key_to_bindings.values() for b in bs}

        def rank(w: Widget) -> int:
            action = w.action if isinstance(w, FooterKey) else ""
            if action in FIRST:
                return FIRST.index(action)
            if "-command-palette" in w.classes:
                return 4
            return 3 if action in app_actions else 2

        yield from sorted(items, key=rank)
