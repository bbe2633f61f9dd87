"""Messages that workers post to the screens; progress messages coalesce so a fast scan never floods."""

from __future__ import annotations

from textual.message import Message

from ..core.fit import Hardware
from ..core.library import LibraryEntry


class ScanProgress(Message):
    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done = done
        self.total = total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ScanProgress)


class ScanDone(Message):
    def __init__(self, entries: list[LibraryEntry], hardware: Hardware) -> None:
        super().__init__()
        self.entries = entries
        self.hardware = hardware
