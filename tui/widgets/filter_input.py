"""The Library's filter box: letters, digits, `-_.:` and spaces type into it; every other key (the
screen's punctuation actions, Up and Down) is passed on, so the screen's keys work while it has focus."""

from __future__ import annotations

import re
from dataclasses import dataclass

from textual.binding import Binding
from textual.events import Key
from textual.message import Message
from textual.widgets import Input

FILTER_CHARS = frozenset("-_.: ")


def types_into_filter(char: str | None) -> bool:
    """Whether a typed character belongs to a filter query (letters, digits, `-_.:` and space)."""
    return char is not None and len(char) == 1 and (char.isalnum() or char in FILTER_CHARS)


def drop_last(query: str, *, word: bool = False) -> str:
    """`query` less its last character, or with `word` its last word and the spaces after it."""
    return re.sub(r"\S*\s*$", "", query, count=1) if word else query[:-1]


class FilterInput(Input):
    """An Input that consumes only the characters a filter query holds; Down and Up leave it for the
    table (posting `Leave`), so arrow keys never stop at the box."""

    BINDINGS = [
        Binding("down", "leave(1)", "Table", show=False, id="filter.down"),
        Binding("up", "leave(-1)", "Table", show=False, id="filter.up"),
        Binding("ctrl+backspace", "delete_left_word", "Delete word left", show=False, id="filter.back_word"),
    ]

    @dataclass
    class Leave(Message):
        """Focus should move to the table, then its cursor by `step` rows."""

        step: int

    def check_consume_key(self, key: str, character: str | None) -> bool:
        return types_into_filter(character)

    async def _on_key(self, event: Key) -> None:
        if event.is_printable and not types_into_filter(event.character):
            return  # the screen's punctuation keys (`]`, `;`, `?`...) bubble to its bindings
        await super()._on_key(event)

    def action_leave(self, step: int) -> None:
        self.post_message(self.Leave(step))
