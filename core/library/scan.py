"""Incremental library scan: headers are parsed once and cached by (path, size, mtime) per part."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..modelfile import GGUFError, inspect_file
from ..modelfile.checks import facts_problem
from ..modelfile.split import shared_listings
from ..paths import cache_dir
from ..safeopen import read_text_bounded
from ..textsafe import clean
from .discover import Candidate, discover
from .groups import group_of, quant_from_name
from .roots import Root

# Bump when the facts written to the index change shape, so stale entries are re-read.
INDEX_VERSION = 8
MAX_INDEX_BYTES = 1 << 30  # the index of a very large library; past it the index is built again
Progress = Callable[[int, int, str], None]


@dataclass
class LibraryEntry:
    """One model in the library (a split set counts once), with its facts or the error reading it."""

    path: str
    parts: list[str]
    missing: list[str]
    root: str
    store: str
    size_bytes: int
    origin: dict[str, str]
    facts: dict[str, Any] | None
    error: str | None
    group: str = ""
    group_label: str = ""
    cached: bool = field(default=False, compare=False)
    part_count: int = 1  # parts the set's names claim; `missing` names the absent ones only while few

    @property
    def name(self) -> str:
        if self.origin.get("ollama"):
            return self.origin["ollama"]
        return Path(self.path).name

    @property
    def quant(self) -> str | None:
        if self.facts and self.facts.get("file_type"):
            quant: str = self.facts["file_type"]
            return quant
        return quant_from_name(Path(self.path).name)

    def fact(self, key: str) -> Any:
        return self.facts.get(key) if self.facts else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("cached")
        d["name"] = self.name
        d["quant"] = self.quant
        return d


def index_path() -> Path:
    return cache_dir() / "library-index.json"


def _load_index(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_text_bounded(path, MAX_INDEX_BYTES))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def _save_index(path: Path, entries: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".index-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"version": INDEX_VERSION, "entries": entries}, fh, separators=(",", ":"))
    os.replace(tmp, path)


def _signature(c: Candidate) -> list[Any] | None:
    sig: list[Any] = []
    for part in c.parts:
        try:
            st = part.stat()
        except OSError:
            return None
        sig.append([st.st_size, st.st_mtime_ns])
    return [sig, c.missing]


def _usable(cached: Any, sig: list[Any]) -> bool:
    """Whether an index entry matches the file and has the shape scan writes (the file can be edited)."""
    if not isinstance(cached, dict) or cached.get("sig") != sig:
        return False
    facts, error = cached.get("facts"), cached.get("error")
    if error is not None:
        return facts is None and isinstance(error, str) and "\n" not in error
    return facts is not None and facts_problem(facts) is None


def read_facts(path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """Facts for the index (no per-tensor rows) or the one-line error that stopped the reader."""
    try:
        return inspect_file(path).to_dict(), None
    except GGUFError as e:
        return None, str(e)
    except OSError as e:
        return None, f"cannot read: {e.strerror or e}"
    except (ValueError, TypeError, ArithmeticError, LookupError, RecursionError) as e:
        # The checks in modelfile should leave nothing for this; if one slips, it is still this file's row.
        return None, clean(f"cannot read its header: {type(e).__name__}: {e}")


def scan(
    roots: Iterable[Root],
    *,
    index_file: Path | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    skipped: list[str] | None = None,
) -> list[LibraryEntry]:
    """Every model under `roots`, reusing cached facts for files whose size and mtime are unchanged.

    Folders that could not be read or searched are appended to `skipped`, one line each.
    """
    index_file = index_file or index_path()
    old = _load_index(index_file)
    found: list[tuple[Root, Candidate]] = []
    seen: set[str] = set()
    for root in roots:
        for cand in discover(root, skipped):
            real = os.path.realpath(cand.path)
            if real not in seen:
                seen.add(real)
                found.append((root, cand))
    with shared_listings():  # a folder of split sets is listed once, not once per set
        entries, new = _read_all(found, old, progress, should_stop)
    if new != old:
        # A read-only cache dir costs speed next time, never correctness.
        with contextlib.suppress(OSError):
            _save_index(index_file, new)
    return sort_entries(entries)


def _read_all(
    found: list[tuple[Root, Candidate]],
    old: dict[str, Any],
    progress: Progress | None,
    should_stop: Callable[[], bool] | None,
) -> tuple[list[LibraryEntry], dict[str, Any]]:
    """The entries of `found`, facts from the index `old` where still valid; and the new index."""
    new: dict[str, Any] = {}
    entries: list[LibraryEntry] = []
    total = len(found)
    for i, (root, cand) in enumerate(found):
        if should_stop and should_stop():
            break
        key = str(cand.path)
        sig = _signature(cand)
        if sig is None:
            continue
        hit = _usable(old.get(key), sig)
        if hit:
            facts, error = old[key]["facts"], old[key]["error"]
        else:
            facts, error = read_facts(cand.path)
        new[key] = {"sig": sig, "facts": facts, "error": error}
        gkey, glabel = group_of(facts, cand.path.name, cand.origin, cand.path.parent.name)
        entries.append(
            LibraryEntry(
                path=key,
                parts=[str(p) for p in cand.parts],
                missing=cand.missing,
                root=str(root.path),
                store=root.kind,
                size_bytes=sum(s for s, _ in sig[0]),
                origin=cand.origin,
                facts=facts,
                error=error,
                group=gkey,
                group_label=glabel,
                cached=hit,
                part_count=cand.count,
            )
        )
        if progress:
            progress(i + 1, total, key)
    return entries, new


def sort_entries(entries: list[LibraryEntry]) -> list[LibraryEntry]:
    """Groups alphabetically, quants within a group from most to fewest bits per weight."""
    return sorted(entries, key=lambda e: (e.group_label.lower(), e.group, -(e.fact("bpw") or 0), e.path))
