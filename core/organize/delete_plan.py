"""What a delete touches, computed and checked whole before anything is touched.

- HF cache: the snapshot links for the file in every revision, then revisions left empty (and the
  refs that name them), then the blob; a repo left with no snapshot goes entirely, so
  `huggingface_hub.scan_cache_dir()` and llama.cpp still agree afterwards.
- Ollama: the manifests naming the model, then only the blobs no remaining manifest uses; layer
  digests that are not `sha256:` + 64 hex are ignored and never become paths.
Every path of the plan (data, links, refs, manifests, folders) passes the path gate before the plan
is returned, so a companion that leads outside the roots refuses the whole delete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import format as fmt
from ..library.discover import ollama_manifests, read_small
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
        how = "permanently delete" if self.permanent else "move to the trash"
        n = len(self.files)
        return f"{how} {fmt.plural(n, 'file')}, freeing {self.bytes_freed:,} bytes"

    def done_text(self) -> str:
        """What happened, once it has: the line shown after a delete (summary() asks before it)."""
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


def _plan_hf(path: Path, root: Root, unit: DeleteUnit) -> None:
    repo, _, rel = _hf_repo_dir(path, root)
    names = [p.name for p in split_parts(path)[0]]
    rel_dir = str(Path(rel).parent)
    files = {str(Path(rel_dir, n)) if rel_dir != "." else n for n in names}
    snapshots = repo / "snapshots"
    revs = sorted(snapshots.iterdir())
    blobs = {os.path.realpath(rev / f) for rev in revs for f in files if (rev / f).exists()}
    left: dict[str, int] = {}
    for rev in revs:
        remaining = 0
        for p in rev.rglob("*"):
            if p.is_dir():
                continue
            if os.path.realpath(p) in blobs:
                unit.links.append(p)
            else:
                remaining += 1
        left[rev.name] = remaining
    unit.files += [Path(b) for b in sorted(blobs)]
    gone = {rev for rev, n in left.items() if n == 0}
    if gone == set(left):
        unit.dirs.append(repo)  # nothing left in any revision: the repo goes whole
        return
    unit.dirs += [snapshots / rev for rev in sorted(gone)]
    ref_dir = repo / "refs"
    if ref_dir.is_dir():
        unit.refs += [r for r in ref_dir.rglob("*") if r.is_file() and (read_small(r) or "").strip() in gone]


def _layer_blobs(manifest: Path) -> set[str] | None:
    """The blob names (`sha256-HEX`) a manifest uses; malformed digests are left out, an unreadable
    or malformed manifest gives None."""
    text = read_small(manifest)
    try:
        data = json.loads(text) if text is not None else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    layers = data.get("layers", [])
    layers = [*(layers if isinstance(layers, list) else []), data.get("config")]
    digests = (layer.get("digest") for layer in layers if isinstance(layer, dict))
    return {d.replace(":", "-") for d in digests if valid_ollama_digest(d)}


def _plan_ollama(path: Path, root: Root, unit: DeleteUnit) -> None:
    usage = ollama_manifests(root.path)
    names = usage.get(path) or usage.get(Path(os.path.abspath(path)))
    if not names or not valid_ollama_digest(path.name):
        raise OrganizeError(f"{clean_path(path)}: no Ollama manifest names this blob")
    keep_blobs: set[str] = set()
    drop_blobs: set[str] = set()
    for m in sorted(p for p in (root.path / "manifests").rglob("*") if p.is_file()):
        digests = _layer_blobs(m)
        if digests is None:
            continue
        if path.name in digests:
            unit.manifests.append(m)
            drop_blobs |= digests
        else:
            keep_blobs |= digests
    for digest in sorted(drop_blobs - keep_blobs):
        blob = root.path / "blobs" / digest
        if blob.is_file():
            unit.files.append(blob)


def plan_delete(paths: Iterable[str | Path], roots: list[Root], *, permanent: bool = False) -> DeletePlan:
    """What deleting `paths` would remove and free, every path through the gate. Raises OrganizeError
    before touching anything."""
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
        for part in parts:
            pid = in_use(part)
            if pid:
                raise OrganizeError(
                    f"{clean_path(part)}: open in a running A/B session (process {pid}); close it first"
                )
        plan.targets.append(str(path))
        unit = DeleteUnit(path.name)
        try:
            if root.kind == "huggingface":
                _plan_hf(path, root, unit)
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
    for p in plan.files + plan.links:
        if not os.access(p.parent, os.W_OK):
            raise OrganizeError(f"{clean_path(p.parent)}: no permission to remove files here")
    return plan


def check_plan(plan: DeletePlan, roots: list[Root]) -> None:
    """The whole plan through the gate: every path where it sits, and the data where it really is."""
    gate(plan.all_paths(), roots, follow=False)
    gate(plan.files, roots, follow=True)
