"""Messages that workers post to the screens; progress messages coalesce so a fast scan never floods."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from ..core.fit import Hardware
from ..core.library import LibraryEntry


@dataclass
class ScanProgress(Message):
    """Files read so far by the library scan; a newer one replaces an unhandled older one."""

    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ScanProgress)


@dataclass
class ScanDone(Message):
    """A finished scan: its entries, the hardware, the folders it could not read, and the worker that
    ran it (a result of a cancelled or superseded scan is dropped)."""

    entries: list[LibraryEntry]
    hardware: Hardware
    skipped: list[str]
    worker: object


class ABLoaded(Message):
    """The A/B session is ready (each side may still carry its own load error)."""

    def __init__(self, session: object) -> None:
        super().__init__()
        self.session = session


class ABStatus(Message):
    """What the A/B engine is doing before it can answer, such as loading one side's model."""

    def __init__(self, what: str, side: str) -> None:
        super().__init__()
        self.what = what
        self.side = side


class ABToken(Message):
    """A side's answer so far; a newer one for the same side replaces an unhandled older one."""

    def __init__(self, side: str, n_tokens: int, text: str) -> None:
        super().__init__()
        self.side = side
        self.n_tokens = n_tokens
        self.text = text

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ABToken) and message.side == self.side


class ABTurnDone(Message):
    def __init__(self, turn: object, cancelled: bool) -> None:
        super().__init__()
        self.turn = turn
        self.cancelled = cancelled


@dataclass
class OperationProgress(Message):
    """Bytes copied or hashed so far by the running operation of an operation bar."""

    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OperationProgress)


@dataclass
class OperationDone(Message):
    """An operation's end: its name, the line to show, or the one-line error that stopped it."""

    name: str
    text: str
    error: str | None = None


@dataclass
class DuplicatesFound(Message):
    """The duplicate groups the hashing worker found (a list of core.organize.DuplicateGroup)."""

    groups: list[Any]


class HubResult(Message):
    """A Hub worker's answer (search hits, a repo listing, remote facts) or its one-line error."""

    def __init__(self, kind: str, data: object = None, error: str | None = None, key: str = "") -> None:
        super().__init__()
        self.kind = kind
        self.data = data
        self.error = error
        self.key = key


class DownloadUpdate(Message):
    """A queued download's progress or end; newer progress for the same job replaces older."""

    def __init__(self, job_id: int, done: int, total: int, status: str, error: str | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.done = done
        self.total = total
        self.status = status
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, DownloadUpdate)
            and message.job_id == self.job_id
            and message.status == self.status == "downloading"
        )
