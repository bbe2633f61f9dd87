"""Split GGUF sets: `NAME-00001-of-00003.gguf`, with `split.*` keys inside each part.

The count in a name is a claim from whoever named the file: `-of-99999` costs nothing beyond the parts
that are really there. Parts are found by listing the folder (not by trying every number up to the
count), and missing parts are named only while they are few; past MAX_NAMED_MISSING they are one
line that counts them ("99,998 parts (1 of 99,999 present)").
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Collection, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
MAX_NAMED_MISSING = 8  # missing parts named one by one up to this many; more are counted instead

# Folder listings shared while a scan runs (see `shared_listings`); None: each call lists afresh.
_listings: ContextVar[dict[str, frozenset[str]] | None] = ContextVar("split_listings", default=None)


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


def missing_parts(sn: SplitName, present: Collection[int]) -> list[str]:
    """The missing parts of `sn`'s set, given the part numbers present: their names while there are at
    most MAX_NAMED_MISSING, else one line that counts them. Work follows `present`, not `sn.count`."""
    n_missing = sn.count - len(present)
    if n_missing <= 0:
        return []
    if n_missing > MAX_NAMED_MISSING:
        return [f"{n_missing:,} parts ({len(present):,} of {sn.count:,} present)"]
    return [sn.part_name(i) for i in range(1, sn.count + 1) if i not in present]  # count <= present + 8


@contextlib.contextmanager
def shared_listings() -> Iterator[None]:
    """Within this block (one scan, in this thread), each folder is listed once for every split set
    in it, so N split names in one folder cost N, not N squared."""
    token = _listings.set({})
    try:
        yield
    finally:
        _listings.reset(token)


def _listing(folder: Path) -> frozenset[str]:
    cache = _listings.get()
    key = str(folder)
    if cache is not None and key in cache:
        return cache[key]
    try:
        with os.scandir(folder) as it:
            names = frozenset(e.name for e in it)
    except OSError:
        names = frozenset()
    if cache is not None:
        cache[key] = names
    return names


def split_parts(path: Path) -> tuple[list[Path], list[str]]:
    """All parts of the set `path` belongs to that exist, in order, and the missing ones (see
    missing_parts). Parts are the folder's entries whose names parse to the same stem and count; where
    two spellings claim one number (`-OF-`, `.GGUF`), the canonical one is taken."""
    sn = parse_split_name(path.name)
    if sn is None:
        return [path], []
    found: dict[int, str] = {}
    for name in sorted(_listing(path.parent)):
        other = parse_split_name(name)
        if other is None or other.stem != sn.stem or other.count != sn.count:
            continue
        if other.number not in found or name == sn.part_name(other.number):
            found[other.number] = name
    found.setdefault(sn.number, path.name)  # the file asked about, where the listing did not show it
    present = [path.with_name(found[i]) for i in sorted(found)]
    present = [p for p in present if p.exists()]
    numbers = {parse_split_name(p.name).number for p in present}  # type: ignore[union-attr]
    return present, missing_parts(sn, numbers)
