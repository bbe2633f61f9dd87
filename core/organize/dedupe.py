"""Find identical GGUFs across the roots (size first, then SHA-256 computed once and cached) and
reclaim the space: delete the extras, or replace them with hard links on the same filesystem."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import pathgate
from ..library.roots import Root
from ..paths import cache_dir
from ..textsafe import clean_path
from .journal import Journal, failpoint, fsync_dir
from .move import sha256_file
from .safety import OrganizeError, gate, in_use, log_operation

Progress = Callable[[int, int], None]
# The temporary hard link beside an extra: `.NAME.link-PID`, renamed over NAME.
TEMP_PREFIX, TEMP_MARK = ".", ".link-"


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
    kept copy and every extra (where it sits and what it points to) pass the path gate first. Each
    link is made under a temporary name beside the extra and renamed over it; a journal names that
    temporary link first, so a kill in between leaves nothing behind after the next start."""
    paths = [group.keep, *group.extras]
    gate(paths, roots, follow=False)
    gate(paths, roots, follow=True)
    keep_real = Path(os.path.realpath(group.keep))
    keep_st = keep_real.stat()
    journal = Journal("dedupe", {"keep": str(keep_real), "keep_id": [keep_st.st_dev, keep_st.st_ino]})
    linked = []
    try:
        for extra in group.extras:
            real = Path(os.path.realpath(extra))
            if in_use(real):
                raise OrganizeError(f"{clean_path(extra)}: open in a running A/B session; close it first")
            if real.stat().st_dev != keep_st.st_dev:
                continue  # hard links cannot cross filesystems; this extra stays a copy
            if sha256_file(real) != group.sha256:
                raise OrganizeError(f"{clean_path(extra)}: changed since it was hashed; rerun dedupe")
            tmp = real.with_name(f"{TEMP_PREFIX}{real.name}{TEMP_MARK}{os.getpid()}")
            tmp.unlink(missing_ok=True)
            journal.save(extra=str(real), tmp=str(tmp))
            failpoint("dedupe:journaled")
            os.link(keep_real, tmp)
            failpoint("dedupe:linked")
            os.replace(tmp, real)
            failpoint("dedupe:replaced")
            linked.append(extra)
    except BaseException:
        # A link made but not renamed goes and the extra stays a copy; if that fails too, the journal
        # stays and the next start removes it.
        with contextlib.suppress(OSError):
            recover_dedupe(journal.data)
            journal.close()
        raise
    journal.close()
    log_operation("dedupe-link", keep=str(group.keep), linked=[str(p) for p in linked])
    return linked


def recover_dedupe(data: dict[str, Any]) -> list[str]:
    """Remove the temporary link an interrupted dedupe left beside an extra, which then stays a copy.
    Only a file of the temporary name, in the extra's folder, that is the kept copy's own inode is
    removed; anything else there is left in place and named."""
    tmp_name, extra_name = data.get("tmp"), data.get("extra")
    if not isinstance(tmp_name, str) or not isinstance(extra_name, str):
        return []  # stopped before its first link
    tmp, extra = Path(tmp_name), Path(extra_name)
    try:
        pathgate.check(tmp, [extra.parent], follow=False)
        ok = tmp.name.startswith(f"{TEMP_PREFIX}{extra.name}{TEMP_MARK}")
    except pathgate.PathRefused:
        ok = False
    try:
        st = os.lstat(tmp)
    except FileNotFoundError:
        return [f"the interrupted dedupe of {clean_path(extra)} had left nothing behind"]
    keep_id = data.get("keep_id")
    if not ok or not stat.S_ISREG(st.st_mode) or [st.st_dev, st.st_ino] != keep_id:
        return [f"{clean_path(tmp)}: not the link an interrupted dedupe made; left in place"]
    tmp.unlink()
    fsync_dir(tmp.parent)
    return [
        f"rolled back the interrupted dedupe of {clean_path(extra)}: removed its temporary link; "
        "it stays a copy"
    ]
