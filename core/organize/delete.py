"""Delete models: to the trash by default, whole split sets, and managed stores the way they expect.

- HF cache: the snapshot links for the file in every revision, then revisions left empty (and the
  refs that name them), then the blob; a repo left with no snapshot goes entirely, so
  `huggingface_hub.scan_cache_dir()` and llama.cpp still agree afterwards.
- Ollama: the manifests naming the model, then only the blobs no remaining manifest uses.
- Permanent deletes first move every file into one staging folder in the same root (atomic renames,
  undone on failure), so a set is never left half-deleted.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from send2trash import send2trash

from ..library.discover import ollama_manifests
from ..library.roots import Root
from ..modelfile.split import split_parts
from .safety import OrganizeError, in_use, log_operation, root_of


@dataclass
class DeletePlan:
    """Everything a delete will touch, computed before anything is touched."""

    targets: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # data: trashed, or removed with --permanent
    links: list[Path] = field(default_factory=list)  # HF snapshot links, removed
    refs: list[Path] = field(default_factory=list)  # HF refs naming a revision that goes away
    dirs: list[Path] = field(default_factory=list)  # folders left empty (snapshots, whole repos)
    manifests: list[Path] = field(default_factory=list)  # Ollama manifests
    bytes_freed: int = 0
    permanent: bool = False

    def summary(self) -> str:
        how = "permanently delete" if self.permanent else "move to the trash"
        n = len(self.files)
        return f"{how} {n} file{'s' if n != 1 else ''}, freeing {self.bytes_freed:,} bytes"

    def all_paths(self) -> list[Path]:
        return [*self.files, *self.links, *self.refs, *self.manifests, *self.dirs]


def _freed(path: Path) -> int:
    st = path.stat()
    return st.st_size if st.st_nlink <= 1 else 0  # another hard link keeps the data


def _hf_repo_dir(path: Path, root: Root) -> tuple[Path, str, str]:
    """(models--OWNER--REPO dir, revision, file relative to the snapshot) of a snapshot path."""
    rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root.path)).parts
    if len(rel) < 4 or not rel[0].startswith("models--") or rel[1] != "snapshots":
        raise OrganizeError(f"{path}: not a file of a Hugging Face cache snapshot")
    return Path(root.path, rel[0]), rel[2], "/".join(rel[3:])


def _plan_hf(path: Path, root: Root, plan: DeletePlan) -> None:
    repo, _, rel = _hf_repo_dir(path, root)
    names = [p.name for p in split_parts(path)[0]]
    rel_dir = str(Path(rel).parent)
    files = {str(Path(rel_dir, n)) if rel_dir != "." else n for n in names}
    snapshots = repo / "snapshots"
    blobs = {
        os.path.realpath(snapshots / rev.name / f)
        for rev in snapshots.iterdir()
        for f in files
        if (snapshots / rev.name / f).exists()
    }
    left: dict[str, int] = {}
    for rev in snapshots.iterdir():
        remaining = 0
        for p in rev.rglob("*"):
            if p.is_dir():
                continue
            if os.path.realpath(p) in blobs:
                plan.links.append(p)
            else:
                remaining += 1
        left[rev.name] = remaining
    for blob in sorted(blobs):
        plan.files.append(Path(blob))
        plan.bytes_freed += _freed(Path(blob))
    gone = {rev for rev, n in left.items() if n == 0}
    if gone == set(left):
        plan.dirs.append(repo)  # nothing left in any revision: the repo goes whole
        return
    plan.dirs += [snapshots / rev for rev in sorted(gone)]
    ref_dir = repo / "refs"
    if ref_dir.is_dir():
        plan.refs += [r for r in ref_dir.rglob("*") if r.is_file() and r.read_text().strip() in gone]


def _plan_ollama(path: Path, root: Root, plan: DeletePlan) -> None:
    import json

    usage = ollama_manifests(root.path)
    names = usage.get(path) or usage.get(Path(os.path.abspath(path)))
    if not names:
        raise OrganizeError(f"{path}: no Ollama manifest names this blob")
    manifests_dir = root.path / "manifests"
    keep_blobs: set[str] = set()
    drop_blobs: set[str] = set()
    for m in (p for p in manifests_dir.rglob("*") if p.is_file()):
        try:
            data = json.loads(m.read_text())
            layers = [*data.get("layers", []), data.get("config", {})]
        except (OSError, ValueError, AttributeError, TypeError):
            continue
        digests = {
            str(layer.get("digest", "")).replace(":", "-") for layer in layers if isinstance(layer, dict)
        }
        if path.name in digests:
            plan.manifests.append(m)
            drop_blobs |= digests
        else:
            keep_blobs |= digests
    for digest in sorted(drop_blobs - keep_blobs):
        blob = root.path / "blobs" / digest
        if digest and blob.is_file() and blob not in plan.files:
            plan.files.append(blob)
            plan.bytes_freed += _freed(blob)


def plan_delete(paths: Iterable[str | Path], roots: list[Root], *, permanent: bool = False) -> DeletePlan:
    """What deleting `paths` would remove and free. Raises OrganizeError before touching anything."""
    plan = DeletePlan(permanent=permanent)
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise OrganizeError(f"{path}: no such file")
        root = root_of(path, roots)
        parts = split_parts(path)[0] if root.kind not in ("huggingface", "ollama") else [path]
        for part in parts:
            pid = in_use(part)
            if pid:
                raise OrganizeError(f"{part}: open in a running A/B session (process {pid}); close it first")
        plan.targets.append(str(path))
        if root.kind == "huggingface":
            _plan_hf(path, root, plan)
        elif root.kind == "ollama":
            _plan_ollama(path, root, plan)
        else:
            for part in parts:
                if part.is_symlink():
                    plan.links.append(part)  # a link inside the root: remove the link, never its target
                elif part not in plan.files:
                    plan.files.append(part)
                    plan.bytes_freed += _freed(part)
    for p in plan.files + plan.links:
        if not os.access(p.parent, os.W_OK):
            raise OrganizeError(f"{p.parent}: no permission to remove files here")
    return plan


def execute_delete(plan: DeletePlan, roots: list[Root]) -> None:
    """Carry out a plan: links and refs first, then the data, so an interruption leaves no dangling link."""
    for p in plan.links + plan.refs + plan.manifests:
        p.unlink(missing_ok=True)
    if plan.permanent:
        _remove_permanently(plan.files, roots)
    else:
        for f in plan.files:
            try:
                send2trash(str(f))
            except Exception as e:  # send2trash raises its own TrashPermissionError and OSErrors
                log_operation("delete", files=[str(x) for x in plan.files], failed_at=str(f), error=str(e))
                raise OrganizeError(f"{f}: could not move to the trash ({e}); use --permanent") from None
    for d in plan.dirs:
        shutil.rmtree(d, ignore_errors=True)
    log_operation(
        "delete",
        permanent=plan.permanent,
        targets=plan.targets,
        files=[str(f) for f in plan.files],
        bytes_freed=plan.bytes_freed,
    )


def _remove_permanently(files: list[Path], roots: list[Root]) -> None:
    """Rename every file into a staging folder of its root, undoing all renames if one fails."""
    moved: list[tuple[Path, Path]] = []
    staging: dict[str, Path] = {}
    try:
        for f in files:
            root = root_of(f, roots)
            stage = staging.setdefault(str(root.path), Path(root.path, f".quanttui-deleting-{os.getpid()}"))
            stage.mkdir(exist_ok=True)
            target = stage / f"{len(moved)}-{f.name}"
            os.rename(f, target)
            moved.append((f, target))
    except OSError as e:
        for original, target in reversed(moved):
            os.rename(target, original)
        for stage in staging.values():
            shutil.rmtree(stage, ignore_errors=True)
        raise OrganizeError(f"could not remove {len(files)} files ({e}); nothing was deleted") from None
    for stage in staging.values():
        shutil.rmtree(stage, ignore_errors=True)
