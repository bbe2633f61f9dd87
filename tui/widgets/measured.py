"""The Library's KLD and tok/s cells, from the eval and bench results quanttui has cached.

Every cached record is read once per call (not once per file), so a large library costs one pass over
the cache; run it off the UI thread. Within a model group, KLD comes from one eval set (one reference,
text, ctx and chunks: the set that covers most of the group, newest on a tie), as `quanttui advise`
chooses it, so the figures of a group compare with each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.message import Message

from ...core.library import LibraryEntry
from ...core.quality import cache


@dataclass
class MeasuredRead(Message):
    """The measured cells of the library's files: path -> (KLD cell, tok/s cell)."""

    cells: dict[str, tuple[Text, Text]]


def _records(kind: str) -> list[dict[str, Any]]:
    folder = cache.folder(kind)
    if not folder.is_dir():
        return []
    out = []
    for f in sorted(folder.glob("*.json")):
        record = cache.load(kind, f.stem)
        if record is not None:
            out.append(record)
    return out


def _ident(record: Any) -> tuple[Any, ...] | None:
    if not isinstance(record, dict):
        return None
    return record.get("path"), record.get("size"), record.get("mtime_ns")


def measured_cells(entries: list[LibraryEntry]) -> dict[str, tuple[Text, Text]]:
    """KLD and generation tok/s for every entry that has them; entries without either are left out."""
    evals: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in _records("eval"):
        evals.setdefault(_ident(r.get("candidate")), []).append(r)  # type: ignore[arg-type]
    benches: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in _records("bench"):
        k = _ident(r.get("model"))
        if k is not None and float(r.get("time") or 0) >= float(benches.get(k, {}).get("time") or 0):
            benches[k] = r
    idents: dict[str, tuple[Any, ...]] = {}
    for e in entries:
        try:
            i = cache.identity(e.path)
        except OSError:
            continue
        idents[e.path] = (i["path"], i["size"], i["mtime_ns"])
    kld: dict[str, Text] = {}
    groups: dict[str, list[LibraryEntry]] = {}
    for e in entries:
        groups.setdefault(e.group, []).append(e)
    for members in groups.values():
        kld.update(_group_kld(members, idents, evals))
    out: dict[str, tuple[Text, Text]] = {}
    for e in entries:
        b = benches.get(idents.get(e.path, ()))
        tg = b["result"].get("tg_tokens_per_second") if b else None
        tg_cell = Text(f"{tg:.1f}", justify="right") if isinstance(tg, (int, float)) else Text("")
        if e.path in kld or tg_cell.plain:
            out[e.path] = (kld.get(e.path, Text("")), tg_cell)
    return out


def _group_kld(
    members: list[LibraryEntry],
    idents: dict[str, tuple[Any, ...]],
    evals: dict[tuple[Any, ...], list[dict[str, Any]]],
) -> dict[str, Text]:
    sets: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in members:
        for r in evals.get(idents.get(e.path, ()), []):
            k = ((r.get("reference") or {}).get("path"), r.get("text_sha256"), r.get("ctx"), r.get("chunks"))
            s = sets.setdefault(k, {"rows": {}, "time": 0.0})
            old = s["rows"].get(e.path)
            if old is None or float(r.get("time") or 0) > float(old.get("time") or 0):
                s["rows"][e.path] = r
            s["time"] = max(s["time"], float(r.get("time") or 0))
    if not sets:
        return {}
    ref_path, *_ = best_key = max(sets, key=lambda k: (len(sets[k]["rows"]), sets[k]["time"]))
    out: dict[str, Text] = {}
    for path, r in sets[best_key]["rows"].items():
        v = r["result"].get("kld_mean")
        if isinstance(v, (int, float)):
            out[path] = Text(f"{v:.4f}" if v < 10 else f"{v:.1f}", justify="right")
    for e in members:
        if idents.get(e.path, (None,))[0] == ref_path:
            out[e.path] = Text("ref", style="dim", justify="right")
    return out
