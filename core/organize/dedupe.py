"""Find identical GGUFs across the roots (size first, then SHA-256 computed once and cached) and
reclaim the space: delete the extras, or replace them with hard links on the same filesystem."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import pathgate
from ..library.roots import Root
from ..paths import cache_dir
from ..textsafe import clean_path
from .move import sha256_file
from .safety import OrganizeError, gate, in_use, log_operation

Progress = Callable[[int, int], None]


@dataclass
class DuplicateGroup:
    """Files with the same content; `keep` stays, `extras` are what dedupe reclaims."""

    sha256: str
    size: int
    keep: Path
    extras: list[Path] = field(default_factory=list)
    linked: list[Path] = field(default_factory=list)  # already hard links to `keep`: nothing to reclaim

    @property
    def reclaimable(self) -> int:
        return self.size * len(self.extras)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "keep": str(self.keep),
            "extras": [str(p) for p in self.extras],
            "linked": [str(p) for p in self.linked],
            "reclaimable": self.reclaimable,
        }


def _hash_cache_path() -> Path:
    return cache_dir() / "hashes.json"


def _load_hashes() -> dict[str, Any]:
    try:
        data = json.loads(_hash_cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_hashes(data: dict[str, Any]) -> None:
    path = _hash_cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def cached_sha256(
    path: Path, cache: dict[str, Any], progress: Progress | None = None, done: int = 0, total: int = 0
) -> str:
    """SHA-256 of a file, reused while its (size, mtime) are unchanged."""
    real = os.path.realpath(path)
    st = os.stat(real)
    sig = [st.st_size, st.st_mtime_ns]
    hit = cache.get(real)
    if isinstance(hit, dict) and hit.get("sig") == sig:
        return str(hit["sha256"])
    digest = sha256_file(Path(real), progress, done, total)
    cache[real] = {"sig": sig, "sha256": digest}
    return digest


def find_duplicates(
    files: Iterable[str | Path], progress: Progress | None = None, roots: Iterable[Root] | None = None
) -> list[DuplicateGroup]:
    """Groups of identical files; only files sharing a size are hashed. With `roots`, a file whose data
    lies outside them (a link planted in a root) is left out: it frees nothing and may not be changed."""
    tops = [os.path.realpath(r.path) for r in roots] if roots is not None else None
    by_size: dict[int, list[Path]] = {}
    seen: set[str] = set()
    for f in files:
        real = os.path.realpath(f)
        if real in seen or not os.path.isfile(real):
            continue
        if tops is not None and not any(pathgate.inside(real, t) for t in tops):
            continue
        seen.add(real)
        by_size.setdefault(os.path.getsize(real), []).append(Path(f))
    candidates = [group for group in by_size.values() if len(group) > 1]
    total = sum(os.path.getsize(p) for g in candidates for p in g)
    cache = _load_hashes()
    done = 0
    by_hash: dict[str, list[Path]] = {}
    for group in candidates:
        for p in group:
            by_hash.setdefault(cached_sha256(p, cache, progress, done, total), []).append(p)
            done += os.path.getsize(p)
    _save_hashes(cache)
    out = []
    for digest, paths in by_hash.items():
        if len(paths) < 2:
            continue
        paths.sort(key=lambda p: (os.stat(p).st_mtime_ns, str(p)))
        keep, inode = paths[0], os.stat(os.path.realpath(paths[0])).st_ino
        g = DuplicateGroup(digest, os.path.getsize(keep), keep)
        for p in paths[1:]:
            (g.linked if os.stat(os.path.realpath(p)).st_ino == inode else g.extras).append(p)
        out.append(g)
    return sorted(out, key=lambda g: -g.reclaimable)


def link_extras(group: DuplicateGroup, roots: list[Root]) -> list[Path]:
    """Replace each extra with a hard link to `keep` (same filesystem only), atomically per file; the
    kept copy and every extra (where it sits and what it points to) pass the path gate first."""
    paths = [group.keep, *group.extras]
    gate(paths, roots, follow=False)
    gate(paths, roots, follow=True)
    keep_real = Path(os.path.realpath(group.keep))
    linked = []
    for extra in group.extras:
        real = Path(os.path.realpath(extra))
        if in_use(real):
            raise OrganizeError(f"{clean_path(extra)}: open in a running A/B session; close it first")
        if real.stat().st_dev != keep_real.stat().st_dev:
            continue  # hard links cannot cross filesystems; this extra stays a copy
        if sha256_file(real) != group.sha256:
            raise OrganizeError(f"{clean_path(extra)}: changed since it was hashed; rerun dedupe")
        tmp = real.with_name(f".{real.name}.link-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        os.link(keep_real, tmp)
        os.replace(tmp, real)
        linked.append(extra)
    log_operation("dedupe-link", keep=str(group.keep), linked=[str(p) for p in linked])
    return linked
