"""Disk usage per root, per model group and per quant, counting hard-linked data once and only the
bytes that live inside the roots: a link planted in a root that points outside them counts 0 bytes
(deleting it frees nothing) and is listed on its own with the size of what it points to."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import pathgate
from ..library import LibraryEntry
from ..library.roots import Root


@dataclass
class OutsideLink:
    """A model file in a root whose data lies outside every root (a symlink, or a file under a linked
    folder): `size` is what it points to, not counted in any total."""

    path: str
    target: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "target": self.target, "size": self.size}


@dataclass
class Usage:
    """Bytes inside the roots per root, model group and quant; `outside_links` are the files left out."""

    roots: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    quants: dict[str, int] = field(default_factory=dict)
    total: int = 0
    outside_links: list[OutsideLink] = field(default_factory=list)

    @property
    def outside_bytes(self) -> int:
        """What the links out of the roots point to, each file once (none of it is in `total`)."""
        return sum({link.target: link.size for link in self.outside_links}.values())

    def to_dict(self) -> dict[str, Any]:
        def order(d: dict[str, int]) -> dict[str, int]:
            return dict(sorted(d.items(), key=lambda kv: -kv[1]))

        return {
            "total": self.total,
            "roots": order(self.roots),
            "groups": order(self.groups),
            "quants": order(self.quants),
            "outside_links": [link.to_dict() for link in self.outside_links],
        }


def disk_usage(entries: list[LibraryEntry], roots: Iterable[Root] | None = None) -> Usage:
    """Sum each entry's parts into its root, group and quant. A part whose real location (every
    symlink resolved) is outside all of `roots` and the entries' own roots adds nothing and is listed
    in `outside_links`."""
    tops = {os.path.realpath(r.path) for r in roots} if roots is not None else set()
    tops |= {os.path.realpath(e.root) for e in entries if e.root}
    u = Usage()
    seen: set[tuple[int, int]] = set()
    for e in entries:
        size = 0
        for part in e.parts:
            try:
                real = os.path.realpath(part)
                st = os.stat(real)
            except (OSError, ValueError):
                continue
            if not any(pathgate.inside(real, top) for top in tops):
                u.outside_links.append(OutsideLink(str(part), real, st.st_size))
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
