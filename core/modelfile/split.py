"""Split GGUF sets: `NAME-00001-of-00003.gguf`, with `split.*` keys inside each part."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


@dataclass(frozen=True)
class SplitName:
    """What a part's file name says: the shared stem, this part (1-based) and the part count."""

    stem: str
    number: int
    count: int

    def part_name(self, number: int) -> str:
        return f"{self.stem}-{number:05d}-of-{self.count:05d}.gguf"


def parse_split_name(name: str) -> SplitName | None:
    m = SPLIT_RE.match(name)
    if not m:
        return None
    number, count = int(m["no"]), int(m["count"])
    if count < 1 or not 1 <= number <= count:
        return None
    return SplitName(m["stem"], number, count)


def split_parts(path: Path) -> tuple[list[Path], list[str]]:
    """All parts of the set `path` belongs to, in order, and the names of the missing ones."""
    sn = parse_split_name(path.name)
    if sn is None:
        return [path], []
    present, missing = [], []
    for i in range(1, sn.count + 1):
        part = path.with_name(sn.part_name(i))
        (present if part.exists() else missing).append(part if part.exists() else part.name)
    return present, missing
