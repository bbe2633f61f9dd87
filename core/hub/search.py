"""Search GGUF repos and list a repo's quant ladder (split parts summed, one row per variant).

Answers are read as untrusted JSON: values of the wrong type become None, and a file whose name,
size or SHA-256 is unusable is left out of the ladder and listed as refused, with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

from ..library.groups import quant_from_name
from ..modelfile.split import SplitName, missing_parts, parse_split_name
from ..textsafe import clean
from . import names
from .client import HubError, call, get_json

SORTS = {"downloads": "downloads", "likes": "likes", "recent": "lastModified"}
EXPAND = ["downloads", "likes", "gguf", "tags", "lastModified"]


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass
class RepoHit:
    """One search result. `repo` is the id exactly as the Hub sent it: show it through textsafe."""

    repo: str
    downloads: int | None
    likes: int | None
    last_modified: str | None
    parameters: int | None
    architecture: str | None
    context_length: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hit(m: object) -> RepoHit | None:
    m = _dict(m)
    repo = _str(m.get("id")) or _str(m.get("modelId"))
    if not repo:
        return None
    g = _dict(m.get("gguf"))
    return RepoHit(
        repo,
        _int(m.get("downloads")),
        _int(m.get("likes")),
        _str(m.get("lastModified")),
        _int(g.get("total")),
        _str(g.get("architecture")),
        _int(g.get("context_length")),
    )


def search(query: str, sort: str = "downloads", limit: int = 30) -> list[RepoHit]:
    """GGUF model repos matching `query` (sort: downloads, likes or recent): one request, no retries."""
    params: list[tuple[str, Any]] = [("filter", "gguf"), ("sort", SORTS[sort]), ("limit", limit)]
    params += [("expand", e) for e in EXPAND]
    if query:
        params.append(("search", query))

    def run() -> list[RepoHit]:
        answer = get_json("/api/models", params)
        if not isinstance(answer, list):
            raise TypeError("not a list")
        return [h for h in map(_hit, answer[:limit]) if h is not None]

    return call(f"search {query!r}", run)


@dataclass
class RemoteFile:
    name: str
    size: int
    sha256: str | None


@dataclass
class Refused:
    """A file the repo lists that quanttui will not download: its exact name and the one-line reason."""

    name: object
    reason: str


@dataclass
class Variant:
    """One quant of a repo: a single file or a whole split set."""

    label: str
    files: list[RemoteFile]
    missing: list[str] = field(default_factory=list)  # see modelfile.split.missing_parts
    count: int = 1  # parts the names claim

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
            "count": self.count,
        }


@dataclass
class RepoListing:
    repo: str
    revision: str
    variants: list[Variant]
    refused: list[Refused] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "revision": self.revision,
            "variants": [v.to_dict() for v in self.variants],
            "refused": [asdict(r) for r in self.refused],
        }


def _remote_file(s: object) -> RemoteFile | Refused | None:
    """A sibling entry as a RemoteFile; Refused when it names a GGUF quanttui will not write; None
    when it is not a GGUF at all."""
    s = _dict(s)
    name = s.get("rfilename")
    if not isinstance(name, str):
        return Refused(name, "a file entry without a usable name") if name is not None else None
    if not name.lower().endswith(".gguf"):
        return None
    try:
        names.file_name(name)
    except HubError as e:
        return Refused(name, str(e))
    lfs = _dict(s.get("lfs"))
    size = _int(s.get("size"))
    size = size if size is not None else _int(lfs.get("size"))
    if size is None or size <= 0:
        return Refused(name, f"{clean(name)}: no usable size listed")
    sha = lfs.get("sha256")
    if sha is not None and names.sha256(sha) is None:
        return Refused(name, f"{clean(name)}: the listed SHA-256 is not one")
    return RemoteFile(name, size, sha)


def repo_variants(repo: str, revision: str = "main") -> RepoListing:
    """Every GGUF in the repo as quant variants, with sizes and SHA-256 from the Hub's file metadata."""
    names.repo_id(repo)
    names.revision(revision)
    path = f"/api/models/{repo}/revision/{quote(revision, safe='')}"
    info = call(repo, lambda: get_json(path, {"blobs": True}))
    if not isinstance(info, dict):
        raise HubError(f"{repo}: the Hub answered something unreadable (not an object)")
    siblings = info.get("siblings")
    sets: dict[tuple[str, int], dict[int, RemoteFile]] = {}
    singles: list[Variant] = []
    refused: list[Refused] = []
    seen: set[str] = set()
    for s in siblings if isinstance(siblings, list) else []:
        f = _remote_file(s)
        if f is None:
            continue
        if isinstance(f, Refused):
            refused.append(f)
            continue
        if f.name in seen:
            refused.append(Refused(f.name, f"{clean(f.name)}: listed twice"))
            continue
        seen.add(f.name)
        name = f.name
        sn = parse_split_name(name.rsplit("/", 1)[-1])
        if sn is None:
            singles.append(Variant(quant_from_name(name) or name.rsplit("/", 1)[-1], [f]))
        else:
            folder = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
            sets.setdefault((folder + sn.stem, sn.count), {})[sn.number] = f
    for (stem, count), parts in sets.items():
        files = [parts[i] for i in sorted(parts)]
        missing = missing_parts(SplitName(stem, 1, count), parts.keys())  # never `count` names
        base = stem.rsplit("/", 1)[-1]
        singles.append(Variant(quant_from_name(base) or base, files, missing, count))
    singles.sort(key=lambda v: -v.size)
    return RepoListing(repo, names.commit(info.get("sha")) or revision, singles, refused)
