"""Find model files under a root, in the layout of the tool that owns it.

HF cache: `models--OWNER--REPO/snapshots/REV/FILE` links into `blobs/`. Ollama: manifests under
`manifests/REGISTRY/NAMESPACE/MODEL/TAG` name `blobs/sha256-HEX` layers. Everything else: `*.gguf`.
Split parts are gathered into one candidate per set, at a cost that follows the parts found (a name's
`-of-99999` is not a list of 99,999 names). Nothing outside a store is listed as one of its
models (a snapshot link or an Ollama digest that leads out is skipped), symlinked folders are not
entered, and a folder that cannot be read or searched is skipped (and reported), never fatal.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..modelfile.split import missing_parts, parse_split_name
from ..pathgate import inside, valid_ollama_digest
from ..safeopen import read_bounded
from ..textsafe import clean_path
from .roots import Root

OLLAMA_MODEL_MEDIA = "application/vnd.ollama.image.model"
MAX_SMALL_FILE = 1 << 20  # manifests and refs are a few KB; anything larger is not one


@dataclass
class Candidate:
    """One model to index: its main path, all part files, and where it came from."""

    path: Path
    parts: list[Path]
    missing: list[str] = field(default_factory=list)  # see modelfile.split.missing_parts
    origin: dict[str, str] = field(default_factory=dict)
    count: int = 1  # how many parts the set's names claim (1 for a file that is not split)


def discover(root: Root, skipped: list[str] | None = None) -> Iterator[Candidate]:
    """The models under `root`; folders that cannot be read are appended to `skipped` (one line each)."""
    skipped = skipped if skipped is not None else []
    if root.kind == "huggingface":
        yield from _hf_cache(root.path, skipped)
    elif root.kind == "ollama":
        yield from _ollama(root.path, skipped)
    else:
        yield from _gather_splits(_walk_gguf(root.path, skipped), {})


def _regular_file(path: Path) -> bool:
    """Whether `path` (followed) is a regular file; False for anything that cannot be stat'ed."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _is_dir(path: Path, skipped: list[str] | None = None, *, follow: bool = True) -> bool:
    """Whether `path` is a folder (with follow=False: a real one, not a link to one); one that cannot
    be reached is reported in `skipped`."""
    try:
        return stat.S_ISDIR(os.stat(path, follow_symlinks=follow).st_mode)
    except PermissionError as e:
        if skipped is not None:
            skipped.append(f"{clean_path(path)}: skipped ({e.strerror or e})")
        return False
    except (OSError, ValueError):
        return False


def _listdir(folder: Path, skipped: list[str]) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as e:
        skipped.append(f"{clean_path(folder)}: skipped ({e.strerror or e})")
        return []


def read_small(path: Path) -> str | None:
    """The text of a small regular file (a manifest, a ref); None when it is not one or cannot be read."""
    if not _regular_file(path):
        return None
    try:
        data = read_bounded(path, MAX_SMALL_FILE)  # a FIFO or device is refused, never opened to block
    except OSError:
        return None
    return data.decode("utf-8", errors="replace")


def _walk_gguf(top: Path, skipped: list[str]) -> Iterator[Path]:
    def report(e: OSError) -> None:
        skipped.append(f"{clean_path(e.filename or top)}: skipped ({e.strerror or e})")

    for dirpath, dirnames, filenames in os.walk(top, onerror=report, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        denied = False
        for name in sorted(filenames):
            if not name.lower().endswith(".gguf") or name.startswith("."):
                continue
            path = Path(dirpath, name)
            try:
                st = os.stat(path)
            except PermissionError:
                denied = True  # a folder that can be read but not searched
                continue
            except (OSError, ValueError):
                continue
            if stat.S_ISREG(st.st_mode):
                yield path
        if denied:
            skipped.append(f"{clean_path(dirpath)}: skipped (Permission denied)")


def _gather_splits(paths: Iterator[Path], origins: dict[Path, dict[str, str]]) -> Iterator[Candidate]:
    sets: dict[tuple[Path, str, int], dict[int, Path]] = {}
    for path in paths:
        sn = parse_split_name(path.name)
        if sn is None:
            yield Candidate(path, [path], origin=origins.get(path, {}))
        else:
            found = sets.setdefault((path.parent, sn.stem, sn.count), {})
            if sn.number not in found or path.name == sn.part_name(sn.number):  # as split_parts picks
                found[sn.number] = path
    for (_parent, _stem, count), found in sorted(sets.items(), key=lambda kv: str(kv[0][0] / kv[0][1])):
        first = found[min(found)]
        sn = parse_split_name(first.name)
        assert sn is not None
        missing = missing_parts(sn, found.keys())  # named while few, else counted: never `count` names
        parts = [found[i] for i in sorted(found)]
        yield Candidate(first, parts, missing, origin=origins.get(first, {}), count=count)


def _hf_cache(hub: Path, skipped: list[str]) -> Iterator[Candidate]:
    """Files of every snapshot; a blob shared by several revisions is listed once (newest ref first).
    A snapshot file (or revision folder) that resolves outside the cache is not listed."""
    if not _is_dir(hub):
        return
    real_hub = os.path.realpath(hub)
    for repo_dir in _listdir(hub, skipped):
        if not repo_dir.name.startswith("models--") or not _is_dir(repo_dir, skipped, follow=False):
            continue
        repo_id = repo_dir.name[len("models--") :].replace("--", "/")
        refs = _hf_refs(repo_dir)
        snapshots = repo_dir / "snapshots"
        if not _is_dir(snapshots, skipped, follow=False):
            continue
        revs = [r for r in _listdir(snapshots, skipped) if _is_dir(r, skipped, follow=False)]
        revs.sort(key=lambda p: (p.name not in refs.values(), p.name))
        seen_blobs: set[str] = set()
        origins: dict[Path, dict[str, str]] = {}
        paths: list[Path] = []
        for rev in revs:
            for path in _walk_gguf(rev, skipped):
                real = os.path.realpath(path)
                if real in seen_blobs or not inside(real, real_hub):
                    continue
                seen_blobs.add(real)
                paths.append(path)
                origins[path] = {
                    "hf_repo": repo_id,
                    "revision": rev.name,
                    "file": path.relative_to(rev).as_posix(),
                }
        yield from _gather_splits(iter(paths), origins)


def _hf_refs(repo_dir: Path) -> dict[str, str]:
    refs: dict[str, str] = {}
    ref_dir = repo_dir / "refs"
    if _is_dir(ref_dir, follow=False):
        for ref in _walk_files(ref_dir):
            text = read_small(ref)
            if text is not None:
                refs[ref.relative_to(ref_dir).as_posix()] = text.strip()
    return refs


def _walk_files(top: Path, skipped: list[str] | None = None) -> Iterator[Path]:
    """Regular files under `top`, symlinked folders not entered, unreadable folders skipped."""
    errors: list[str] = skipped if skipped is not None else []

    def report(e: OSError) -> None:
        errors.append(f"{clean_path(e.filename or top)}: skipped ({e.strerror or e})")

    for dirpath, _dirnames, filenames in os.walk(top, onerror=report, followlinks=False):
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if _regular_file(path):
                yield path


def ollama_manifests(models: Path, skipped: list[str] | None = None) -> dict[Path, list[str]]:
    """Map each model blob to the `name:tag`s whose manifests use it; a layer whose digest is not
    `sha256:` + 64 hex is malformed and ignored (it never becomes a path)."""
    blobs: dict[Path, list[str]] = {}
    manifests = models / "manifests"
    if not _is_dir(manifests, skipped, follow=False):
        return blobs
    for manifest in sorted(_walk_files(manifests, skipped)):
        text = read_small(manifest)
        try:
            data = json.loads(text) if text is not None else None
        except ValueError:
            continue
        layers = data.get("layers", []) if isinstance(data, dict) else []
        parts = manifest.relative_to(manifests).parts
        if len(parts) < 3:
            continue
        registry, *path_parts, tag = parts
        name = "/".join(path_parts)
        if registry == "registry.ollama.ai" and name.startswith("library/"):
            name = name[len("library/") :]
        elif registry != "registry.ollama.ai":
            name = f"{registry}/{name}"
        for layer in layers if isinstance(layers, list) else []:
            if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_MEDIA:
                digest = layer.get("digest")
                if valid_ollama_digest(digest):
                    blob = models / "blobs" / str(digest).replace(":", "-")
                    blobs.setdefault(blob, []).append(f"{name}:{tag}")
    return blobs


def _ollama(models: Path, skipped: list[str]) -> Iterator[Candidate]:
    real_models = os.path.realpath(models)
    for blob, names in ollama_manifests(models, skipped).items():
        if _regular_file(blob) and inside(os.path.realpath(blob), real_models):
            yield Candidate(blob, [blob], origin={"ollama": ", ".join(sorted(names))})
