"""Move and rename models within the library roots; a split set moves together and keeps its naming.

On one filesystem every file is renamed (atomic). Across filesystems each file is copied to a hidden
`.NAME.partial`, flushed, checked (size and SHA-256), renamed into place, and only then is the source
removed: an interruption leaves the old file or the new one complete, never neither.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ..library.roots import Root
from ..modelfile.split import parse_split_name, split_parts
from .safety import OrganizeError, in_use, log_operation, root_of

Progress = Callable[[int, int], None]
CHUNK = 8 << 20
MANAGED = ("huggingface", "ollama")


def sha256_file(path: Path, progress: Progress | None = None, done: int = 0, total: int = 0) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return h.hexdigest()


def _sources(paths: Iterable[str | Path], roots: list[Root]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise OrganizeError(f"{path}: no such file")
        root = root_of(path, roots)
        if root.kind in MANAGED:
            raise OrganizeError(f"{path}: files in the {root.kind} store are managed by that tool; not moved")
        parts, missing = split_parts(path)
        if missing:
            raise OrganizeError(f"{path}: split set is missing {', '.join(missing)}; not moved")
        for part in parts:
            if part.is_symlink():
                raise OrganizeError(f"{part}: a symlink; move its target instead")
            if in_use(part):
                raise OrganizeError(f"{part}: open in a running A/B session; close it first")
            if part not in out:
                out.append(part)
    return out


def partial_path(dst: Path) -> Path:
    """Where a file is written before it is complete: hidden beside it, so it never shows as a model
    (copies here, downloads in core/hub)."""
    return dst.with_name(f".{dst.name}.partial")


def _copy_verified(src: Path, dst: Path, progress: Progress | None, done: int, total: int) -> int:
    partial = partial_path(dst)
    h = hashlib.sha256()
    with open(src, "rb") as fi, open(partial, "wb") as fo:
        while chunk := fi.read(CHUNK):
            fo.write(chunk)
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
        fo.flush()
        os.fsync(fo.fileno())
    if partial.stat().st_size != src.stat().st_size or sha256_file(partial) != h.hexdigest():
        partial.unlink(missing_ok=True)
        raise OrganizeError(f"{dst}: the copy does not match {src}; source kept")
    os.replace(partial, dst)
    return done


def move(
    paths: Iterable[str | Path],
    dest: str | Path,
    roots: list[Root],
    *,
    progress: Progress | None = None,
    force_copy: bool = False,
) -> list[Path]:
    """Move files (split sets whole) into the folder `dest`, which must be inside a root."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root_of(dest, roots)
    sources = _sources(paths, roots)
    targets = [dest / s.name for s in sources]
    for s, t in zip(sources, targets, strict=True):
        if t.exists() and not os.path.samefile(s, t):
            raise OrganizeError(f"{t}: already exists; nothing moved")
    return _transfer(sources, targets, progress, force_copy, op="move")


def rename(path: str | Path, new_name: str, roots: list[Root]) -> list[Path]:
    """Rename a model in place; a split set gets the new stem on every part (`NEW-0000k-of-0000n.gguf`)."""
    path = Path(path)
    if "/" in new_name or os.sep in new_name or not new_name.strip():
        raise OrganizeError(f"{new_name!r}: a new name, not a path")
    sources = _sources([path], roots)
    stem = new_name.removesuffix(".gguf")
    sn = parse_split_name(sources[0].name)
    if sn is None:
        targets = [path.with_name(f"{stem}.gguf")]
    else:
        targets = [
            p.with_name(f"{stem}-{parse_split_name(p.name).number:05d}-of-{sn.count:05d}.gguf")  # type: ignore[union-attr]
            for p in sources
        ]
    for t in targets:
        if t.exists():
            raise OrganizeError(f"{t}: already exists; nothing renamed")
    return _transfer(sources, targets, None, False, op="rename")


def _transfer(
    sources: list[Path], targets: list[Path], progress: Progress | None, force_copy: bool, op: str
) -> list[Path]:
    same_fs = all(s.stat().st_dev == t.parent.stat().st_dev for s, t in zip(sources, targets, strict=True))
    if same_fs and not force_copy:
        done: list[tuple[Path, Path]] = []
        try:
            for s, t in zip(sources, targets, strict=True):
                os.rename(s, t)
                done.append((s, t))
        except OSError as e:
            for s, t in reversed(done):
                os.rename(t, s)
            raise OrganizeError(f"{op} failed ({e}); nothing moved") from None
    else:
        total = sum(s.stat().st_size for s in sources)
        copied, made = 0, []
        try:
            for s, t in zip(sources, targets, strict=True):
                copied = _copy_verified(s, t, progress, copied, total)
                made.append(t)
        except OSError as e:  # a full disk, a quota: the sources stay, the copies go
            for t in [*made, *(partial_path(t) for t in targets)]:
                t.unlink(missing_ok=True)
            raise OrganizeError(f"{op} failed ({e.strerror or e}); nothing moved") from None
        for s in sources:  # every copy is complete and verified before any source goes
            s.unlink()
    log_operation(
        op,
        sources=[str(s) for s in sources],
        targets=[str(t) for t in targets],
        copied=not same_fs or force_copy,
    )
    return targets


def canonical_folder(origin: dict[str, str], group_label: str, top: Path) -> Path:
    """`OWNER/REPO` under `top` when the origin is known, else a folder named for the model."""
    repo = origin.get("hf_repo")
    if repo and "/" in repo:
        return top / repo
    safe = "".join(c if c.isalnum() or c in "-_. " else "_" for c in group_label).strip() or "unsorted"
    return top / safe
