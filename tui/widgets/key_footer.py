"""A footer that always starts with Quit and Help, so they show at any width; the screen's keys follow
and the rest of the app's keys come last (every key is on the help screen and in the palette). Keys
that do not fit the width are left out whole, least important first, never drawn cut in half."""

from __future__ import annotations

from collections.abc import Iterable

from textual.events import Resize
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

FIRST = ("quit", "help")


def keep_fitting(widths: list[int], available: int, always: int = len(FIRST)) -> int:
    """How many of the ranked items, taken in order, fit in `available` cells: the first `always`
    always stay, and an item shows only when every more important one does."""
    used, kept = 0, 0
    for i, w in enumerate(widths):
        if used + w > available and i >= always:
            break
        used += w
        kept += 1
    return kept


class KeyFooter(Footer):
    """Footer whose keys are reordered (quit and help first, then the screen's, then the app's others,
    the command palette's last) and trimmed from the end to the footer's width."""

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

    async def recompose(self) -> None:
        await super().recompose()
        self.fit_width()

    def on_resize(self, event: Resize) -> None:
        self.fit_width()

    def item_width(self, item: Widget) -> int:
        """The cells `item` takes in the footer: content, padding, border and margin."""
        content = item.get_content_width(self.size, self.app.size)
        return content + item.styles.gutter.width + item.styles.margin.width

    def fit_width(self) -> None:
        """Show the longest run of ranked keys that fits the footer's width; hide the rest."""
        items = list(self.children)
        if not items or not self.size.width:
            return
        widths = [self.item_width(w) for w in items]
        kept = keep_fitting(widths, self.size.width)
        for i, w in enumerate(items):
            w.display = i < kept
