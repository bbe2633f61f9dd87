"""`advise`: one table per model group (size, bpw, fit, measured quality and speed) and a pick.

The rule: the lowest measured KLD (else the highest bpw) among the quants that fit fully on the GPU
at the target context; if none does, the most layers on the GPU (ties: lowest KLD, then highest
bpw); never a quant that does not fit. Quality comes only from cached eval results (one reference,
text and settings for the whole table: the set that covers most quants); tokens/s from cached
bench results, else estimated from a measured sibling by size (generation is memory-bound), marked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fit import FitError, FitSettings, Hardware, estimate
from ..library import Root, active_roots, scan
from ..library.scan import LibraryEntry
from ..paths import cache_dir
from ..settings import load as load_settings
from ..textsafe import clean, clean_path
from . import cache
from .text import QualityError


@dataclass
class QuantRow:
    model: str
    quant: str | None
    size_bytes: int
    bpw: float | None
    fit: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None  # kld_mean, top1_agreement, ppl_ratio from one eval set
    is_reference: bool = False
    tg: float | None = None
    tg_source: str | None = None  # "measured" or "estimated"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        q = self.quality or {}
        return {
            "model": self.model,
            "quant": self.quant,
            "size_bytes": self.size_bytes,
            "bpw": self.bpw,
            "fit": self.fit,
            "kld_mean": q.get("kld_mean"),
            "top1_agreement": q.get("top1_agreement"),
            "ppl_ratio": q.get("ppl_ratio"),
            "tg_tokens_per_second": self.tg,
            "tg_source": self.tg_source,
            "measured": self.quality is not None,
            "reference": self.is_reference,
            **({"error": self.error} if self.error else {}),
        }


@dataclass
class Advice:
    group: str
    ctx: int
    rows: list[QuantRow]
    recommended: str | None = None
    reason: str = ""
    reference: str | None = None
    eval_settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "ctx": self.ctx,
            "recommended": self.recommended,
            "reason": self.reason,
            "reference": self.reference,
            "eval": self.eval_settings or None,
            "quants": [r.to_dict() for r in self.rows],
        }


def _members(target: str) -> tuple[str, list[LibraryEntry]]:
    """The group `target` names (a file's group, or a group key or label) and its files."""
    entries = scan(active_roots(load_settings()))
    if os.path.isfile(target):
        real = os.path.realpath(target)
        mine = [e for e in entries if os.path.realpath(e.path) == real]
        if not mine:  # outside the library: its own folder is the group's world
            folder = Root(Path(real).parent, "folder", False)
            entries = scan([folder], index_file=cache_dir() / "quality" / "advise-index.json")
            mine = [e for e in entries if os.path.realpath(e.path) == real]
        if mine:
            return mine[0].group_label, [e for e in entries if e.group == mine[0].group]
        raise QualityError(f"{clean_path(target)}: not a model file")
    wanted = target.strip().lower()
    found = [e for e in entries if wanted in (e.group.lower(), e.group_label.lower())]
    if not found:
        raise QualityError(f"no model file or group named {clean(target)!r} (see quanttui ls)")
    return found[0].group_label, [e for e in entries if e.group == found[0].group]


def _eval_set(paths: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The cached eval results of one (reference, text, ctx, chunks) that covers most of `paths`."""
    sets: dict[tuple[Any, ...], dict[str, Any]] = {}
    for path in paths:
        for r in cache.measured_evals(path):
            ref = r.get("reference") or {}
            k = (ref.get("path"), r.get("text_sha256"), r.get("ctx"), r.get("chunks"))
            entry = sets.setdefault(k, {"rows": {}, "time": 0.0, "record": r})
            entry["rows"].setdefault(path, r["result"])
            entry["time"] = max(entry["time"], float(r.get("time") or 0))
    if not sets:
        return {}, {}
    best = max(sets.values(), key=lambda s: (len(s["rows"]), s["time"]))
    r = best["record"]
    about = {
        "reference": (r.get("reference") or {}).get("path"),
        "text": r.get("text"),
        "ctx": r.get("ctx"),
        "chunks": r.get("chunks"),
    }
    return best["rows"], about


def _fit(facts: dict[str, Any], ctx: int, hw: Hardware) -> dict[str, Any]:
    res = estimate(facts, FitSettings(n_ctx=ctx), hw, search=False)
    return {
        "verdict": res.verdict,
        "verdict_code": res.verdict_code,
        "fully_on_gpu": res.verdict_code == "gpu",
        "gpu_layers": res.gpu_layers,
        "layers": res.n_layer + 1,
    }


def _speeds(rows: list[QuantRow]) -> None:
    """Measured tg where cached; else scaled from the nearest-size measured sibling, marked estimated."""
    for row in rows:
        rec = cache.measured_bench(row.model)
        if rec is not None:
            row.tg, row.tg_source = rec["result"].get("tg_tokens_per_second"), "measured"
    measured = [r for r in rows if r.tg_source == "measured" and r.tg and r.size_bytes]
    for row in rows:
        if row.tg_source is None and measured and row.size_bytes:
            near = min(measured, key=lambda m: abs(m.size_bytes - row.size_bytes))
            row.tg, row.tg_source = near.tg * near.size_bytes / row.size_bytes, "estimated"


def _pick(rows: list[QuantRow], ctx: int) -> tuple[QuantRow | None, str]:
    fits = [r for r in rows if r.fit and r.fit["verdict_code"] != "no_fit"]
    if not fits:
        return None, f"none of the quants fits at context {ctx}"

    def kld(r: QuantRow) -> float:
        return r.quality["kld_mean"] if r.quality and r.quality.get("kld_mean") is not None else float("inf")

    full = [r for r in fits if r.fit["fully_on_gpu"]]
    where = f"the {len(full)} quant{'s' if len(full) != 1 else ''} that fit fully on the GPU at context {ctx}"
    if not full:
        most = max(r.fit["gpu_layers"] for r in fits)
        full = [r for r in fits if r.fit["gpu_layers"] == most]
        where = (
            f"the most layers on the GPU ({most}) at context {ctx}"
            if most
            else f"the quants that fit in RAM at context {ctx} (none fits on the GPU)"
        )
    measured = [r for r in full if kld(r) < float("inf")]
    if measured:
        best = min(measured, key=lambda r: (kld(r), -(r.bpw or 0)))
        return best, f"lowest measured KLD ({kld(best):.4f}) among {where}"
    best = max(full, key=lambda r: r.bpw or 0)
    return best, f"highest bits per weight ({best.bpw or 0:.2f}; no KLD measured) among {where}"


def advise(target: str, ctx: int, hw: Hardware) -> Advice:
    """The table and the pick for the group of `target` at context `ctx` on `hw`."""
    label, members = _members(target)
    rows: list[QuantRow] = []
    for e in members:
        row = QuantRow(e.path, e.quant, e.size_bytes, e.fact("bpw"), error=e.error)
        if e.facts:
            try:
                row.fit = _fit(e.facts, ctx, hw)
            except (FitError, ValueError, TypeError, KeyError) as err:
                row.error = f"fit: {clean(str(err))}"
        rows.append(row)
    return advise_rows(label, rows, ctx)


def advise_rows(label: str, rows: list[QuantRow], ctx: int) -> Advice:
    """The pick among `rows` (each with its fit verdict or error already set): measured quality and
    speed read from the cache, the reference marked, rows from most to fewest bits per weight."""
    quality, about = _eval_set([r.model for r in rows])
    ref = about.get("reference")
    for row in rows:
        row.quality = quality.get(row.model)
        if ref and os.path.realpath(row.model) == ref:
            row.is_reference = True
            row.quality = row.quality or {"kld_mean": 0.0, "top1_agreement": 1.0, "ppl_ratio": 1.0}
    _speeds(rows)
    rows.sort(key=lambda r: -(r.bpw or 0))
    best, reason = _pick(rows, ctx)
    return Advice(label, ctx, rows, best.model if best else None, reason, ref, about)
