"""Search GGUF repos and list a repo's quant ladder (split parts summed, one row per variant)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from ..library.groups import quant_from_name
from ..modelfile.split import parse_split_name
from .client import api, call

SORTS = {"downloads": "downloads", "likes": "likes", "recent": "last_modified"}


@dataclass
class RepoHit:
    repo: str
    downloads: int | None
    likes: int | None
    last_modified: str | None
    parameters: int | None
    architecture: str | None
    context_length: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def search(query: str, sort: str = "downloads", limit: int = 30) -> list[RepoHit]:
    """GGUF model repos matching `query` (sort: downloads, likes or recent)."""
    expand = ["downloads", "likes", "gguf", "tags", "lastModified"]

    def run() -> list[RepoHit]:
        out = []
        for m in api().list_models(
            filter="gguf", search=query or None, sort=SORTS[sort], limit=limit, expand=expand
        ):
            g = m.gguf or {}
            modified = (
                m.last_modified.isoformat() if isinstance(m.last_modified, dt.datetime) else m.last_modified
            )
            out.append(
                RepoHit(
                    m.id,
                    m.downloads,
                    m.likes,
                    modified,
                    g.get("total"),
                    g.get("architecture"),
                    g.get("context_length"),
                )
            )
        return out

    return call(f"search {query!r}", run)


@dataclass
class RemoteFile:
    name: str
    size: int
    sha256: str | None


@dataclass
class Variant:
    """One quant of a repo: a single file or a whole split set."""

    label: str
    files: list[RemoteFile]
    missing: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def first(self) -> str:
        return self.files[0].name

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "size": self.size,
            "files": [asdict(f) for f in self.files],
            "missing": self.missing,
        }


@dataclass
class RepoListing:
    repo: str
    revision: str
    variants: list[Variant]

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "revision": self.revision,
            "variants": [v.to_dict() for v in self.variants],
        }


def repo_variants(repo: str, revision: str = "main") -> RepoListing:
    """Every GGUF in the repo as quant variants, with sizes and SHA-256 from the Hub's file metadata."""
    info = call(repo, lambda: api().model_info(repo, revision=revision, files_metadata=True))
    sets: dict[tuple[str, int], dict[int, RemoteFile]] = {}
    singles: list[Variant] = []
    for s in info.siblings or []:
        name = s.rfilename
        if not name.lower().endswith(".gguf"):
            continue
        f = RemoteFile(name, int(s.size or (s.lfs.size if s.lfs else 0)), s.lfs.sha256 if s.lfs else None)
        sn = parse_split_name(name.rsplit("/", 1)[-1])
        if sn is None:
            singles.append(Variant(quant_from_name(name) or name.rsplit("/", 1)[-1], [f]))
        else:
            folder = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
            sets.setdefault((folder + sn.stem, sn.count), {})[sn.number] = f
    for (stem, count), parts in sets.items():
        files = [parts[i] for i in sorted(parts)]
        missing = [f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1) if i not in parts]
        base = stem.rsplit("/", 1)[-1]
        singles.append(Variant(quant_from_name(base) or base, files, missing))
    singles.sort(key=lambda v: -v.size)
    return RepoListing(repo, info.sha or revision, singles)
