"""Find identical GGUFs across the roots (size first, then SHA-256 computed once and cached) and
reclaim the space: delete the extras, or replace them with hard links on the same filesystem.

Dedupe decides per model, never per file: a split set is a duplicate of another only when the whole
set is, part for part (a set with one part differing, or a part missing, is no one's duplicate), and
the set kept stays whole. A delete expands every file to its set (and an HF file to its companions),
so deciding per part could mark a part of each of two sets as the extra and the delete would take
both sets, every copy. `plan_delete_extras` checks that the delete of the extras leaves every kept
copy and takes no model data dedupe did not choose, before anything is touched.

Linking stays consistent with this: each part of an extra set becomes a hard link to the kept set's
same part under its own name, so every set keeps all its files (see `link_extras`).
"""

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
from ..modelfile.split import parse_split_name
from ..paths import cache_dir
from ..safeopen import open_regular
from ..textsafe import clean_path
from .delete_plan import DeletePlan, plan_delete
from .journal import ROOTS, Journal, bounded_name, failpoint, fsync_dir, root_paths
from .move import sha256_file
from .safety import OrganizeError, gate, in_use, log_operation

Progress = Callable[[int, int], None]
# The temporary hard link beside an extra: `.NAME.link-PID`, renamed over NAME.
TEMP_PREFIX, TEMP_MARK = ".", ".link-"


@dataclass
class DuplicateGroup:
    """One file's copies: `keep` stays, `extras` are what dedupe reclaims. For a split set there is one
    group per part (`part` of `parts`), and the groups of one set list the same sets in the same order:
    the kept set's parts are every group's `keep`, each extra set has its part in every group."""

    sha256: str
    size: int
    keep: Path
    extras: list[Path] = field(default_factory=list)
    linked: list[Path] = field(default_factory=list)  # already hard links to `keep`: nothing to reclaim
    part: int = 1
    parts: int = 1

    @property
    def reclaimable(self) -> int:
        return self.size * len(self.extras)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "part": self.part,
            "parts": self.parts,
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


@dataclass
class _Model:
    """One model as a delete or a move sees it: a file, or a split set's parts by position (None where
    a part is missing), with what each part really is."""

    paths: list[Path | None]
    reals: list[str | None]
    ids: list[tuple[int, int] | None]
    sizes: tuple[int, ...]  # -1 for a missing part
    mtime: int  # of its oldest part: the oldest model is the one kept
    hashes: tuple[str | None, ...] = ()

    @property
    def present(self) -> list[Path]:
        return [p for p in self.paths if p is not None]


def _slots(path: Path) -> list[Path]:
    """Where the parts of the model `path` belongs to are, in order: the file itself, or every name of
    its split set (the same names a delete or a move takes)."""
    sn = parse_split_name(path.name)
    return [path] if sn is None else [path.with_name(sn.part_name(i)) for i in range(1, sn.count + 1)]


def _model_of(slots: list[Path], tops: list[str] | None) -> _Model | None:
    """The model whose parts sit at `slots`; None when a part is not a regular file or (with `tops`)
    its data lies outside the roots."""
    model = _Model([p if p.exists() else None for p in slots], [], [], (), 0)
    sizes, mtimes = [], []
    for p in model.paths:
        if p is None:
            model.reals.append(None)
            model.ids.append(None)
            sizes.append(-1)
            continue
        real = os.path.realpath(p)
        if tops is not None and not any(pathgate.inside(real, t) for t in tops):
            return None
        try:
            st, mtime = os.stat(real), os.stat(p).st_mtime_ns
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        model.reals.append(real)
        model.ids.append((st.st_dev, st.st_ino))
        sizes.append(st.st_size)
        mtimes.append(mtime)
    if not mtimes:
        return None
    model.sizes, model.mtime = tuple(sizes), min(mtimes)
    return model


def _models(files: Iterable[str | Path], tops: list[str] | None) -> list[_Model]:
    """Each model of `files` once. A model sharing a file with one already taken (HF revisions linking
    the same blobs, a link to another model's part) is the same data and left out; one that shares
    only some of its files is left out too, so no delete of one can take what the other keeps."""
    out: list[_Model] = []
    claimed: set[str] = set()
    seen: set[tuple[str, ...]] = set()
    for f in files:
        slots = _slots(Path(f))
        key = tuple(os.path.abspath(p) for p in slots)
        if key in seen:
            continue
        seen.add(key)
        model = _model_of(slots, tops)
        if model is None:
            continue
        reals = [r for r in model.reals if r is not None]
        if len(set(reals)) != len(reals) or claimed.intersection(reals):
            continue
        claimed.update(reals)
        out.append(model)
    return out


def _is_model_data(path: str | Path) -> bool:
    """Whether a file holds model data (a GGUF); a file that cannot be read counts as data."""
    try:
        with open_regular(path) as fh:
            return fh.read(4) == b"GGUF"
    except OSError:
        return True


def _takes_more(model: _Model, roots: list[Root]) -> bool:
    """Whether deleting this model would also take model data that is not its own (an Ollama model
    whose layers hold another GGUF, or an HF file whose delete reaches namesakes in other revisions,
    as delete plans once did). Such a model is kept first and never an extra: its delete is asked of
    the same `plan_delete` the delete of the extras uses."""
    try:
        plan = plan_delete(model.present[:1], roots)
    except OrganizeError:
        return False  # a delete of it is refused anyway, and says why
    own = set(model.reals)
    return any(os.path.realpath(f) not in own and _is_model_data(f) for f in plan.files)


def find_duplicates(
    files: Iterable[str | Path], progress: Progress | None = None, roots: Iterable[Root] | None = None
) -> list[DuplicateGroup]:
    """Groups of identical files, decided per model: the parts of the kept set are kept together and
    each extra set is an extra whole. Only models whose sizes match another's are hashed. With `roots`,
    a model with data outside them (a link planted in a root) is left out: it frees nothing and may not
    be changed; so is, as an extra, one whose delete would take more than itself."""
    roots = list(roots) if roots is not None else None
    tops = [os.path.realpath(r.path) for r in roots] if roots is not None else None
    by_sizes: dict[tuple[int, ...], list[_Model]] = {}
    for model in _models(files, tops):
        by_sizes.setdefault(model.sizes, []).append(model)
    candidates = [m for group in by_sizes.values() if len(group) > 1 for m in group]
    total = sum(s for m in candidates for s in m.sizes if s > 0)
    cache = _load_hashes()
    done = 0
    by_content: dict[tuple[Any, ...], list[_Model]] = {}
    for model in candidates:
        hashes = []
        for p, size in zip(model.paths, model.sizes, strict=True):
            hashes.append(cached_sha256(p, cache, progress, done, total) if p is not None else None)
            done += max(size, 0)
        model.hashes = tuple(hashes)
        by_content.setdefault((model.sizes, model.hashes), []).append(model)
    _save_hashes(cache)
    out: list[list[DuplicateGroup]] = []
    for same in by_content.values():
        if len(same) > 1:
            groups = _decide(same, roots)
            if groups:
                out.append(groups)
    out.sort(key=lambda gs: -sum(g.reclaimable for g in gs))
    return [g for gs in out for g in gs]


def _decide(same: list[_Model], roots: list[Root] | None) -> list[DuplicateGroup]:
    """Keep the oldest of identical models (one whose delete would take more is kept first) and make
    the others extras whole, or linked where every part already is the kept part's inode."""
    more = {id(m): roots is not None and _takes_more(m, roots) for m in same}
    same.sort(key=lambda m: (not more[id(m)], m.mtime, str(m.present[0])))
    keep, rest = same[0], [m for m in same[1:] if not more[id(m)]]
    whole = [m for m in rest if m.ids == keep.ids]
    extra = [m for m in rest if m.ids != keep.ids]
    if not extra and not whole:
        return []
    groups = []
    n = len(keep.paths)
    for i, kept in enumerate(keep.paths):
        if kept is None:
            continue
        g = DuplicateGroup(str(keep.hashes[i]), keep.sizes[i], kept, part=i + 1, parts=n)
        for m in extra:  # a part of an extra set that already is the kept inode frees nothing
            (g.linked if m.ids[i] == keep.ids[i] else g.extras).append(m.paths[i])  # type: ignore[arg-type]
        g.linked += [m.paths[i] for m in whole]  # type: ignore[misc]
        groups.append(g)
    return groups


def check_extras_plan(plan: DeletePlan, groups: list[DuplicateGroup]) -> None:
    """Refuse (OrganizeError, one line, nothing touched) a delete of dedupe's extras that would take a
    kept copy, or model data that is not one of the duplicates found: a delete expands a file to its
    set (and an HF or Ollama file to its companions), and after it every content found must still have
    its kept copy, and nothing else may go. Call it on every plan made from `extras`."""
    gone_real = {os.path.realpath(p) for p in plan.files}
    gone_name = {os.path.abspath(p) for p in [*plan.files, *plan.links]}
    gone_dirs = {os.path.realpath(d) for d in plan.dirs} | {os.path.abspath(d) for d in plan.dirs}
    for g in groups:
        name, real = os.path.abspath(g.keep), os.path.realpath(g.keep)
        if (
            real in gone_real
            or name in gone_name
            or any(pathgate.inside(p, d) for p in (name, real) for d in gone_dirs)
        ):
            raise OrganizeError(
                f"{clean_path(g.keep)}: the delete of the extras would remove this kept copy; "
                "nothing was deleted"
            )
    found = {os.path.realpath(p) for g in groups for p in [*g.extras, *g.linked]}
    for f in plan.files:
        if os.path.realpath(f) not in found and _is_model_data(f):
            raise OrganizeError(
                f"{clean_path(f)}: the delete of the extras would also remove this file, which is not a "
                "duplicate dedupe found; nothing was deleted"
            )


def plan_delete_extras(
    groups: list[DuplicateGroup], roots: list[Root], *, permanent: bool = False
) -> DeletePlan:
    """The delete of every extra (each set whole), checked by `check_extras_plan` before it is returned.
    A Hugging Face extra goes from its own revision only: another revision's file is the user's."""
    extras = [p for g in groups for p in g.extras]
    plan = plan_delete(extras, roots, permanent=permanent, only_revision=True)
    check_extras_plan(plan, groups)
    return plan


def link_extras(group: DuplicateGroup, roots: list[Root]) -> list[Path]:
    """Replace each extra with a hard link to `keep` (same filesystem only), atomically per file; the
    kept copy and every extra (where it sits and what it points to) pass the path gate first. Each
    link is made under a temporary name beside the extra and renamed over it; a journal names that
    temporary link first, so a kill in between leaves nothing behind after the next start.

    Split sets stay whole: a group is one part, so each extra set's part becomes a link to the kept
    set's same part (same bytes, checked again here) under its own name. Every set keeps all its names
    and loads as before, whichever of its parts were linked (a part on another filesystem, or one left
    after a refusal part-way, stays an identical copy); nothing is removed, so no copy can be lost."""
    paths = [group.keep, *group.extras]
    gate(paths, roots, follow=False)
    gate(paths, roots, follow=True)
    keep_real = Path(os.path.realpath(group.keep))
    keep_st = keep_real.stat()
    journal = Journal(
        "dedupe",
        {"keep": str(keep_real), "keep_id": [keep_st.st_dev, keep_st.st_ino], ROOTS: root_paths(roots)},
    )
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
            tmp = real.with_name(f"{TEMP_PREFIX}{bounded_name(real.name)}{TEMP_MARK}{os.getpid()}")
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
        ok = tmp.name.startswith(f"{TEMP_PREFIX}{bounded_name(extra.name)}{TEMP_MARK}")
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
