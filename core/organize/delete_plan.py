"""What a delete touches, computed and checked whole before anything is touched.

- HF cache: a snapshot file is its blob (the content `quanttui ls` lists once). `rm` removes that
  content: every snapshot link to the blob in every revision, then revisions left empty (and the refs
  that name them), then the blob; a repo left with no snapshot goes entirely, so
  `huggingface_hub.scan_cache_dir()` and llama.cpp still agree afterwards. Another revision's file of
  the same name with other content is another blob, never part of it. With `only_revision` (dedupe:
  the content is kept elsewhere) only the named revision's link goes, and the blob only when no link
  in any revision still points to it.
- Ollama: the manifests naming the model, then only the blobs no remaining manifest uses; layer
  digests that are not `sha256:` + 64 hex are ignored and never become paths. A manifest that cannot
  be read (too big, not a regular file, not JSON) might use any blob, so it refuses the delete.
Every path of the plan (data, links, refs, manifests, folders) passes the path gate before the plan
is returned, so a companion that leads outside the roots refuses the whole delete; no file of the
plan may be loaded by an A/B session.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import format as fmt
from .. import safeopen
from ..library.discover import MAX_SMALL_FILE, ollama_manifests, read_small
from ..library.roots import Root
from ..modelfile.split import split_parts
from ..pathgate import valid_ollama_digest
from ..textsafe import clean_path
from .safety import OrganizeError, gate, in_use, root_of


@dataclass
class DeleteUnit:
    """One set (a file, a split set, an HF file's blobs, an Ollama model's blobs) with its companions:
    removed or trashed whole or not at all."""

    label: str
    files: list[Path] = field(default_factory=list)  # data: trashed, or removed with --permanent
    links: list[Path] = field(default_factory=list)  # HF snapshot links, links inside a root: removed
    refs: list[Path] = field(default_factory=list)  # HF refs naming a revision that goes away
    manifests: list[Path] = field(default_factory=list)  # Ollama manifests
    dirs: list[Path] = field(default_factory=list)  # folders left empty (snapshots, whole repos)


@dataclass
class DeletePlan:
    """Everything a delete will touch, computed before anything is touched."""

    targets: list[str] = field(default_factory=list)
    units: list[DeleteUnit] = field(default_factory=list)
    bytes_freed: int = 0
    permanent: bool = False

    def _all(self, kind: str) -> list[Path]:
        return [p for u in self.units for p in getattr(u, kind)]

    @property
    def files(self) -> list[Path]:
        return self._all("files")

    @property
    def links(self) -> list[Path]:
        return self._all("links")

    @property
    def refs(self) -> list[Path]:
        return self._all("refs")

    @property
    def manifests(self) -> list[Path]:
        return self._all("manifests")

    @property
    def dirs(self) -> list[Path]:
        return self._all("dirs")

    def summary(self) -> str:
        if not self.files and self.links:  # links only (their data is kept elsewhere): nothing to trash
            return f"remove {fmt.plural(len(self.links), 'link')} (the data stays), freeing 0 bytes"
        how = "permanently delete" if self.permanent else "move to the trash"
        n = len(self.files)
        return f"{how} {fmt.plural(n, 'file')}, freeing {self.bytes_freed:,} bytes"

    def done_text(self) -> str:
        """What happened, once it has: the line shown after a delete (summary() asks before it)."""
        if not self.files and self.links:
            return f"removed {fmt.plural(len(self.links), 'link')}; the data stays"
        how = "permanently deleted" if self.permanent else "moved to the trash"
        n = len(self.files)
        return f"{how} {fmt.plural(n, 'file')}, freed {fmt.size(self.bytes_freed)}"

    def all_paths(self) -> list[Path]:
        return [*self.files, *self.links, *self.refs, *self.manifests, *self.dirs]


def _freed(path: Path) -> int:
    st = path.stat()
    return st.st_size if st.st_nlink <= 1 else 0  # another hard link keeps the data


def _hf_repo_dir(path: Path, root: Root) -> tuple[Path, str, str]:
    """(models--OWNER--REPO dir, revision, file relative to the snapshot) of a snapshot path."""
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root.path)).parts
    except ValueError:
        rel = ()
    if len(rel) < 4 or not rel[0].startswith("models--") or rel[1] != "snapshots":
        raise OrganizeError(f"{clean_path(path)}: not a file of a Hugging Face cache snapshot")
    return Path(root.path, rel[0]), rel[2], "/".join(rel[3:])


def _plan_hf(path: Path, root: Root, unit: DeleteUnit, *, only_revision: bool) -> None:
    repo, rev_name, rel = _hf_repo_dir(path, root)
    snapshots = repo / "snapshots"
    rel_dir = Path(rev_name, rel).parent
    targets = {snapshots / rel_dir / p.name for p in split_parts(path)[0]}
    targets = {t for t in targets if os.path.lexists(t)}
    blobs = {os.path.realpath(t) for t in targets}  # the content asked for, and nothing else
    # A blob another repo's snapshot links to (a cache put together by hand, or by a tool that shares
    # blobs) is that repo's data too: only the links go.
    still_used: set[str] = _linked_from_other_repos(repo, root, blobs)
    left: dict[str, int] = {}
    for rev in sorted(snapshots.iterdir()):
        remaining = 0
        for p in rev.rglob("*"):
            if p.is_dir():
                continue
            real = os.path.realpath(p)
            if p in targets or (real in blobs and not only_revision):
                unit.links.append(p)
                continue
            remaining += 1
            if real in blobs:
                still_used.add(real)  # another revision's link to it stays, so the blob stays
        left[rev.name] = remaining
    unit.files += [Path(b) for b in sorted(blobs - still_used)]
    gone = {rev for rev, n in left.items() if n == 0}
    if gone == set(left):
        unit.dirs.append(repo)  # nothing left in any revision: the repo goes whole
        return
    unit.dirs += [snapshots / rev for rev in sorted(gone)]
    ref_dir = repo / "refs"
    if ref_dir.is_dir():
        unit.refs += [r for r in ref_dir.rglob("*") if r.is_file() and (read_small(r) or "").strip() in gone]


def _linked_from_other_repos(repo: Path, root: Root, blobs: set[str]) -> set[str]:
    """The blobs of `blobs` that a snapshot of another repo of the cache links to (a cache put together
    by hand or by a tool that shares blobs): those stay, whatever this delete removes."""
    used: set[str] = set()
    if not blobs:
        return used
    for other in sorted(Path(root.path).iterdir()):
        snaps = other / "snapshots"
        if other.name == repo.name or other.is_symlink() or not snaps.is_dir() or snaps.is_symlink():
            continue
        for p in snaps.rglob("*"):
            if os.path.realpath(p) in blobs:
                used.add(os.path.realpath(p))
    return used


MANIFEST_DEPTH = 3  # REGISTRY/NAMESPACE/MODEL/TAG (discover also lists REGISTRY/MODEL/TAG)


class _Unreadable(Exception):
    """A manifest (or a folder of them) whose layers cannot be known; str() is the reason."""


def _read_manifest(manifest: Path) -> set[str]:
    """The blob names (`sha256-HEX`) a manifest uses; malformed digests are left out (they name no
    blob). _Unreadable when it is not a regular file of at most 1 MiB holding a JSON object (read
    through safeopen: a FIFO or a device is never read, and nothing blocks)."""
    try:
        raw = safeopen.read_bounded(manifest, MAX_SMALL_FILE)
    except OSError as e:  # safeopen.UnsafeFileError too: not a regular file, or over the limit
        raise _Unreadable(e.strerror or str(e)) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise _Unreadable("not JSON") from None
    if not isinstance(data, dict):
        raise _Unreadable("not a JSON object")
    layers = data.get("layers", [])
    if not isinstance(layers, list):
        raise _Unreadable("its layers are not a list")
    digests = (layer.get("digest") for layer in [*layers, data.get("config")] if isinstance(layer, dict))
    return {d.replace(":", "-") for d in digests if valid_ollama_digest(d)}


def _manifests(top: Path) -> dict[Path, set[str]]:
    """Every manifest under `top` with the blobs it uses. An entry where Ollama or discover looks for
    one (a name not starting with `.`, at least MANIFEST_DEPTH deep, not a real folder) must be read,
    else _Unreadable names it; so must a linked folder anywhere (it is not entered, and may hold
    manifests). Anything else counts only when it reads as a manifest."""
    found: dict[Path, set[str]] = {}
    if not os.path.isdir(top):
        return found
    for dirpath, dirnames, filenames in os.walk(top, onerror=_unreadable_folder, followlinks=False):
        depth = len(Path(dirpath).relative_to(top).parts) + 1
        links = {d for d in dirnames if os.path.islink(os.path.join(dirpath, d))}
        for name in sorted([*filenames, *links]):
            path = Path(dirpath, name)
            try:
                found[path] = _read_manifest(path)
            except _Unreadable as e:
                if not name.startswith(".") and (depth >= MANIFEST_DEPTH or name in links):
                    raise _Unreadable(f"{clean_path(path)}: cannot read this Ollama manifest ({e})") from None
    return found


def _unreadable_folder(e: OSError) -> None:
    where = clean_path(e.filename or "")
    raise _Unreadable(f"{where}: cannot read this folder of Ollama manifests ({e.strerror or e})")


def _plan_ollama(path: Path, root: Root, unit: DeleteUnit) -> None:
    usage = ollama_manifests(root.path)
    names = usage.get(path) or usage.get(Path(os.path.abspath(path)))
    if not names or not valid_ollama_digest(path.name):
        raise OrganizeError(f"{clean_path(path)}: no Ollama manifest names this blob")
    try:
        manifests = _manifests(root.path / "manifests")
    except _Unreadable as e:
        raise OrganizeError(
            f"{e}; it may use the blobs this delete would remove, so nothing was deleted"
        ) from None
    keep_blobs: set[str] = set()
    drop_blobs: set[str] = set()
    for m, digests in sorted(manifests.items()):
        if path.name in digests:
            unit.manifests.append(m)
            drop_blobs |= digests
        else:
            keep_blobs |= digests
    for digest in sorted(drop_blobs - keep_blobs):
        blob = root.path / "blobs" / digest
        if blob.is_file():
            unit.files.append(blob)


def plan_delete(
    paths: Iterable[str | Path], roots: list[Root], *, permanent: bool = False, only_revision: bool = False
) -> DeletePlan:
    """What deleting `paths` would remove and free, every path through the gate. Raises OrganizeError
    before touching anything. With `only_revision`, a Hugging Face snapshot file goes from its own
    revision only (see the module docstring): what dedupe asks for, whose content is kept elsewhere."""
    plan = DeletePlan(permanent=permanent)
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not os.path.lexists(path):
            raise OrganizeError(f"{clean_path(path)}: no such file")
        root = root_of(path, roots, follow=False)
        if root.kind in ("huggingface", "ollama") or not path.is_symlink():
            root_of(path, roots)  # the data itself must be inside too; a plain link only goes itself
        parts = split_parts(path)[0] if root.kind not in ("huggingface", "ollama") else [path]
        _refuse_in_use(parts)
        plan.targets.append(str(path))
        unit = DeleteUnit(path.name)
        try:
            if root.kind == "huggingface":
                _plan_hf(path, root, unit, only_revision=only_revision)
            elif root.kind == "ollama":
                _plan_ollama(path, root, unit)
            else:
                for part in parts:
                    (unit.links if part.is_symlink() else unit.files).append(part)
        except OSError as e:
            raise OrganizeError(f"{clean_path(path)}: cannot plan the delete ({e.strerror or e})") from None
        for kind in ("files", "links", "refs", "manifests", "dirs"):
            fresh = [p for p in getattr(unit, kind) if p not in seen]
            seen.update(fresh)
            setattr(unit, kind, fresh)
        if unit.files or unit.links:
            plan.units.append(unit)
            try:
                plan.bytes_freed += sum(_freed(f) for f in unit.files)
            except OSError as e:
                raise OrganizeError(
                    f"{clean_path(path)}: cannot plan the delete ({e.strerror or e})"
                ) from None
    check_plan(plan, roots)
    _refuse_in_use(plan.files)  # a blob another revision or model links is loaded under that name
    for p in plan.files + plan.links:
        if not os.access(p.parent, os.W_OK):
            raise OrganizeError(f"{clean_path(p.parent)}: no permission to remove files here")
    return plan


def _refuse_in_use(paths: Iterable[Path]) -> None:
    for p in paths:
        pid = in_use(p)
        if pid:
            raise OrganizeError(
                f"{clean_path(p)}: open in a running A/B session (process {pid}); close it first"
            )


def check_plan(plan: DeletePlan, roots: list[Root]) -> None:
    """The whole plan through the gate: every path where it sits, and the data where it really is."""
    gate(plan.all_paths(), roots, follow=False)
    gate(plan.files, roots, follow=True)
