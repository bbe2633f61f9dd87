"""Move and rename models within the library roots; a split set moves together and keeps its naming.

The destination, every source and every target pass the path gate before the first folder is made.
On one filesystem every file is renamed (atomic). Across filesystems each file is copied to a hidden
`.NAME.partial`, flushed, checked (size and SHA-256), renamed into place, and only then are the
sources removed. The operation is journaled (journal.py): after a kill, `recover_move` puts a set
back where it was, or, once every copy was complete, finishes removing the sources; a set never ends
split across two folders.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import pathgate
from ..library.roots import Root
from ..modelfile.split import parse_split_name, split_parts
from ..safeopen import open_regular
from ..textsafe import clean, clean_path
from .journal import ROOTS, Journal, failpoint, move_no_replace, root_paths
from .safety import OrganizeError, gate, in_use, log_operation, root_of

Progress = Callable[[int, int], None]
CHUNK = 8 << 20
MANAGED = ("huggingface", "ollama")


def sha256_file(path: Path, progress: Progress | None = None, done: int = 0, total: int = 0) -> str:
    h = hashlib.sha256()
    with open_regular(path) as fh:  # never blocks on a FIFO swapped in for a file
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
        if not os.path.isfile(path):
            raise OrganizeError(f"{clean_path(path)}: no such file")
        root = root_of(path, roots)
        if root.kind in MANAGED:
            raise OrganizeError(
                f"{clean_path(path)}: files in the {root.kind} store are managed by that tool; not moved"
            )
        parts, missing = split_parts(path)
        if missing:
            raise OrganizeError(
                f"{clean_path(path)}: split set is missing {clean(', '.join(missing))}; not moved"
            )
        for part in parts:
            if part.is_symlink():
                raise OrganizeError(f"{clean_path(part)}: a symlink; move its target instead")
            if in_use(part):
                raise OrganizeError(f"{clean_path(part)}: open in a running A/B session; close it first")
            if part not in out:
                out.append(part)
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samestat(os.lstat(a), os.lstat(b))
    except OSError:
        return False


def partial_path(dst: Path) -> Path:
    """Where a file is written before it is complete: hidden beside it, so it never shows as a model
    (copies here, downloads in core/hub)."""
    return dst.with_name(f".{dst.name}.partial")


def _copy_verified(src: Path, dst: Path, progress: Progress | None, done: int, total: int) -> int:
    partial = partial_path(dst)
    h = hashlib.sha256()
    # O_EXCL | O_NOFOLLOW: never write through a link (or into a file) planted at the partial's name
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        out = os.open(partial, flags, 0o644)
    except FileExistsError:
        raise OrganizeError(
            f"{clean_path(partial)}: already exists (a download or copy under way?); nothing moved"
        ) from None
    with open_regular(src) as fi, os.fdopen(out, "wb") as fo:
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
        raise OrganizeError(f"{clean_path(dst)}: the copy does not match {clean_path(src)}; source kept")
    try:
        move_no_replace(partial, dst)  # a file that appeared at `dst` since the check is never replaced
    except FileExistsError:
        partial.unlink(missing_ok=True)
        raise OrganizeError(f"{clean_path(dst)}: appeared while moving; nothing moved") from None
    return done


def _missing_dirs(dest: Path) -> list[Path]:
    """The folders `mkdir -p dest` would create, outermost first."""
    made: list[Path] = []
    p = Path(os.path.abspath(dest))
    while not os.path.lexists(p) and p != p.parent:
        made.append(p)
        p = p.parent
    return made[::-1]


def move(
    paths: Iterable[str | Path],
    dest: str | Path,
    roots: list[Root],
    *,
    progress: Progress | None = None,
    force_copy: bool = False,
) -> list[Path]:
    """Move files (split sets whole) into the folder `dest`, which must be inside a root; every path
    is checked before any folder is made."""
    dest = Path(dest)
    gate([dest], roots, follow=True)
    sources = _sources(paths, roots)
    targets = [dest / s.name for s in sources]
    _check_targets(sources, targets, roots, "moved")
    made = _missing_dirs(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OrganizeError(
            f"{clean_path(dest)}: cannot create the folder ({clean(e.strerror or e)})"
        ) from None
    return _transfer(sources, targets, progress, force_copy, op="move", made=made, roots=roots)


def _check_targets(sources: list[Path], targets: list[Path], roots: list[Root], verb: str) -> None:
    gate(targets, roots, follow=False)
    gate(targets, roots, follow=True)
    seen: dict[str, Path] = {}
    for s, t in zip(sources, targets, strict=True):
        other = seen.setdefault(os.path.abspath(t), s)
        if other is not s:  # two sources, one target: the second would replace the first
            raise OrganizeError(
                f"{clean_path(other)} and {clean_path(s)} would both become {clean_path(t)}; nothing {verb}"
            )
        if os.path.lexists(t) and os.path.abspath(s) != os.path.abspath(t):
            raise OrganizeError(f"{clean_path(t)}: already exists; nothing {verb}")


def valid_new_name(new_name: str) -> str:
    """A new file name for rename: one plain name (no folder, `..`, control or bidi characters)."""
    if not isinstance(new_name, str) or "/" in new_name or os.sep in new_name or not new_name.strip():
        raise OrganizeError(f"{clean(repr(new_name))}: a new name, not a path")
    try:
        return pathgate.safe_relpath(new_name)
    except pathgate.PathRefused as e:
        raise OrganizeError(str(e)) from None


def rename(path: str | Path, new_name: str, roots: list[Root]) -> list[Path]:
    """Rename a model in place; a split set gets the new stem on every part (`NEW-0000k-of-0000n.gguf`)."""
    path = Path(path)
    stem = valid_new_name(new_name).removesuffix(".gguf")
    sources = _sources([path], roots)
    sn = parse_split_name(sources[0].name)
    if sn is None:
        targets = [path.with_name(f"{stem}.gguf")]
    else:
        targets = [
            p.with_name(f"{stem}-{parse_split_name(p.name).number:05d}-of-{sn.count:05d}.gguf")  # type: ignore[union-attr]
            for p in sources
        ]
    if all(os.path.abspath(s) == os.path.abspath(t) for s, t in zip(sources, targets, strict=True)):
        # Nothing to do, and nothing to journal or log: said as a refusal so no caller reports a rename.
        raise OrganizeError(f"{clean_path(path.name)} already has that name; nothing changed")
    _check_targets(sources, targets, roots, "renamed")
    return _transfer(sources, targets, None, False, op="rename", made=[], roots=roots)


def _transfer(
    sources: list[Path],
    targets: list[Path],
    progress: Progress | None,
    force_copy: bool,
    op: str,
    made: list[Path],
    roots: list[Root] | None = None,
) -> list[Path]:
    pairs = [
        (s, t) for s, t in zip(sources, targets, strict=True) if os.path.abspath(s) != os.path.abspath(t)
    ]
    if not pairs:  # every file is already where it would go: no journal, nothing in the log
        return targets
    same_fs = all(s.stat().st_dev == t.parent.stat().st_dev for s, t in pairs)
    copy = force_copy or not same_fs
    journal = Journal(
        "move",
        {
            "what": op,
            "mode": "copy" if copy else "rename",
            "state": "moving",
            "pairs": [[str(s), str(t)] for s, t in pairs],
            "made": [str(d) for d in made],
            **({ROOTS: root_paths(roots)} if roots is not None else {}),
        },
    )
    try:
        journal.save()
    except OSError as e:
        raise OrganizeError(f"cannot write the organize journal ({clean(e)}); nothing moved") from None
    try:
        if copy:
            _copy_all(pairs, progress, journal)
        else:
            for i, (s, t) in enumerate(pairs, 1):
                try:  # never os.rename: it would replace a file that appeared at `t` since the check
                    move_no_replace(s, t, f"move:linked:{i}", journal.data.get(ROOTS))
                except FileExistsError:
                    raise OrganizeError(f"{clean_path(t)}: appeared while moving; nothing moved") from None
                failpoint(f"move:renamed:{i}")
    except (OSError, OrganizeError) as e:
        committed = journal.data["state"] == "copied"
        try:
            recover_move(journal.data)
        except OSError as again:  # the journal stays: the next start finishes or undoes it
            raise OrganizeError(
                f"{op} stopped part-way ({clean(again.strerror or again)}); quanttui completes or undoes it"
                " at its next start"
            ) from None
        journal.close()
        if isinstance(e, OrganizeError):
            raise
        if not committed:
            raise OrganizeError(f"{op} failed ({clean(e.strerror or e)}); nothing moved") from None
    journal.close()
    log_operation(op, sources=[str(s) for s, _ in pairs], targets=[str(t) for _, t in pairs], copied=copy)
    return targets


def _copy_all(pairs: list[tuple[Path, Path]], progress: Progress | None, journal: Journal) -> None:
    """Copy every file, then (the commit point, journaled) remove every source."""
    total = sum(s.stat().st_size for s, _ in pairs)
    copied = 0
    for i, (s, t) in enumerate(pairs, 1):
        copied = _copy_verified(s, t, progress, copied, total)
        failpoint(f"move:copied:{i}")
    journal.save(state="copied")
    failpoint("move:committed")
    for i, (s, _) in enumerate(pairs, 1):  # every copy is complete and verified before any source goes
        s.unlink()
        failpoint(f"move:removed:{i}")


def _tops(data: dict[str, Any]) -> list[str] | None:
    roots = data.get(ROOTS)
    return roots if isinstance(roots, list) and roots and all(isinstance(r, str) for r in roots) else None


def recover_move(data: dict[str, Any]) -> list[str]:
    """Put an interrupted move back where it was, or finish removing the sources once every copy was
    complete; one line saying which."""
    pairs = [(Path(s), Path(t)) for s, t in data.get("pairs", [])]
    if data.get("mode") == "copy" and data.get("state") == "copied":
        for s, t in pairs:
            if t.is_file():
                s.unlink(missing_ok=True)
        return [f"completed the interrupted {data.get('what', 'move')} of {len(pairs)} file(s)"]
    for s, t in reversed(pairs):
        partial_path(t).unlink(missing_ok=True)
        if data.get("mode") == "copy":
            if s.is_file() and os.path.lexists(t):
                t.unlink()  # a copy of a source still complete where it was
        elif os.path.lexists(t) and not os.path.lexists(s):
            move_no_replace(t, s, tops=_tops(data))
        elif os.path.lexists(t) and _same_file(s, t):
            t.unlink()  # killed between the link to `t` and the unlink of `s`: `s` is still whole
    for d in reversed([Path(p) for p in data.get("made", [])]):
        try:
            d.rmdir()
        except OSError:
            break
    what = data.get("what", "move")
    return [f"rolled back the interrupted {what} of {len(pairs)} file(s): each is where it was before"]


def canonical_folder(origin: dict[str, str], group_label: str, top: Path) -> Path:
    """`OWNER/REPO` under `top` when the origin is a plain repo id, else a folder named for the model."""
    repo = origin.get("hf_repo")
    if isinstance(repo, str) and repo.count("/") == 1:
        try:
            return top / pathgate.safe_relpath(repo)
        except pathgate.PathRefused:
            pass
    safe = (
        "".join(c if c.isalnum() or c in "-_. " else "_" for c in str(group_label)).strip(" .") or "unsorted"
    )
    return top / safe
