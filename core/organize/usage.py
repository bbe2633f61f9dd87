"""Disk usage per root, per model group and per quant, counting hard-linked data once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..library import LibraryEntry


@dataclass
class Usage:
    roots: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    quants: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def to_dict(self) -> dict[str, Any]:
        order = lambda d: dict(sorted(d.items(), key=lambda kv: -kv[1]))  # noqa: E731
        return {
            "total": self.total,
            "roots": order(self.roots),
            "groups": order(self.groups),
            "quants": order(self.quants),
        }


def disk_usage(entries: list[LibraryEntry]) -> Usage:
    u = Usage()
    seen: set[tuple[int, int]] = set()
    for e in entries:
        size = 0
        for part in e.parts:
            try:
                st = os.stat(part)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:  # one copy of hard-linked or shared blobs
                seen.add((st.st_dev, st.st_ino))
                size += st.st_size
        u.total += size
        u.roots[e.root] = u.roots.get(e.root, 0) + size
        u.groups[e.group_label] = u.groups.get(e.group_label, 0) + size
        quant = e.quant or "?"
        u.quants[quant] = u.quants.get(quant, 0) + size
    return u
