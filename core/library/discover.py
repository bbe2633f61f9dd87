"""Find model files under a root, in the layout of the tool that owns it.

HF cache: `models--OWNER--REPO/snapshots/REV/FILE` links into `blobs/`. Ollama: manifests under
`manifests/REGISTRY/NAMESPACE/MODEL/TAG` name `blobs/sha256-HEX` layers. Everything else: `*.gguf`.
Split parts are gathered into one candidate per set.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..modelfile.split import parse_split_name
from .roots import Root

OLLAMA_MODEL_MEDIA = "application/vnd.ollama.image.model"


@dataclass
class Candidate:
    """One model to index: its main path, all part files, and where it came from."""

    path: Path
    parts: list[Path]
    missing: list[str] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)


def discover(root: Root) -> Iterator[Candidate]:
    if root.kind == "huggingface":
        yield from _hf_cache(root.path)
    elif root.kind == "ollama":
        yield from _ollama(root.path)
    else:
        yield from _gather_splits(_walk_gguf(root.path), {})


def _walk_gguf(top: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.lower().endswith(".gguf") and not name.startswith("."):
                path = Path(dirpath, name)
                if path.is_file():
                    yield path


def _gather_splits(paths: Iterator[Path], origins: dict[Path, dict[str, str]]) -> Iterator[Candidate]:
    sets: dict[tuple[Path, str, int], dict[int, Path]] = {}
    for path in paths:
        sn = parse_split_name(path.name)
        if sn is None:
            yield Candidate(path, [path], origin=origins.get(path, {}))
        else:
            sets.setdefault((path.parent, sn.stem, sn.count), {})[sn.number] = path
    for (_parent, _stem, count), found in sorted(sets.items(), key=lambda kv: str(kv[0][0] / kv[0][1])):
        first = found[min(found)]
        sn = parse_split_name(first.name)
        assert sn is not None
        missing = [sn.part_name(i) for i in range(1, count + 1) if i not in found]
        parts = [found[i] for i in sorted(found)]
        yield Candidate(first, parts, missing, origin=origins.get(first, {}))


def _hf_cache(hub: Path) -> Iterator[Candidate]:
    """Files of every snapshot; a blob shared by several revisions is listed once (newest ref first)."""
    try:
        repos = sorted(hub.iterdir())
    except OSError:
        return
    for repo_dir in repos:
        if not repo_dir.name.startswith("models--"):
            continue
        repo_id = repo_dir.name[len("models--") :].replace("--", "/")
        refs = _hf_refs(repo_dir)
        snapshots = repo_dir / "snapshots"
        if not snapshots.is_dir():
            continue
        revs = sorted(snapshots.iterdir(), key=lambda p: (p.name not in refs.values(), p.name))
        seen_blobs: set[str] = set()
        origins: dict[Path, dict[str, str]] = {}
        paths: list[Path] = []
        for rev in revs:
            for path in _walk_gguf(rev):
                real = os.path.realpath(path)
                if real in seen_blobs or not os.path.isfile(real):
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
    if ref_dir.is_dir():
        for ref in ref_dir.rglob("*"):
            if ref.is_file():
                with contextlib.suppress(OSError):
                    refs[ref.relative_to(ref_dir).as_posix()] = ref.read_text().strip()
    return refs


def ollama_manifests(models: Path) -> dict[Path, list[str]]:
    """Map each model blob to the `name:tag`s whose manifests use it."""
    blobs: dict[Path, list[str]] = {}
    manifests = models / "manifests"
    if not manifests.is_dir():
        return blobs
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            layers = data.get("layers", [])
        except (OSError, ValueError, AttributeError):
            continue
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
                digest = str(layer.get("digest", "")).replace(":", "-")
                blobs.setdefault(models / "blobs" / digest, []).append(f"{name}:{tag}")
    return blobs


def _ollama(models: Path) -> Iterator[Candidate]:
    for blob, names in ollama_manifests(models).items():
        if blob.is_file():
            yield Candidate(blob, [blob], origin={"ollama": ", ".join(sorted(names))})
