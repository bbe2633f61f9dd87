"""`advise`: one table per model group (size, bpw, fit, measured quality and speed) and a pick.

The rule: the lowest measured KLD (else the highest bpw) among the quants that fit fully on the GPU
at the target context; if none does, the most layers on the GPU (ties: lowest KLD, then highest
bpw); never a quant that does not fit. Quality comes only from cached eval results (one reference,
text and settings for the whole table: the set that covers most quants); tokens/s from cached
bench results, else estimated from a measured sibling by size (generation is memory-bound), marked.
For a Hub repo (`hf:OWNER/REPO`) sizes and fit come from the remote headers and quality only as
what the quant type typically loses (typical.py, llama.cpp's published figures), never as measured.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import format as fmt
from ..errors import QuanttuiError
from ..fit import FitError, FitSettings, Hardware, estimate
from ..hub import HubError, parse_hf_path, remote_facts, repo_variants
from ..hub import names as hub_names
from ..hub.search import Variant
from ..library import Root, active_roots, scan
from ..library.scan import LibraryEntry
from ..paths import cache_dir
from ..settings import load as load_settings
from ..textsafe import clean, clean_path
from . import cache, typical
from .text import QualityError

HF_REPO = re.compile(r"^hf:(?P<repo>[^/@]+/[^/@]+)(?:@(?P<rev>.+))?$")
HEADER_READERS = 4  # remote headers read at once


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
    typical: dict[str, Any] | None = None  # what the quant type typically loses (typical.py), not measured

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
            "typical": self.typical,
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
    hub: dict[str, Any] | None = None  # for hf:OWNER/REPO: repo, revision, refused files, typical source

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "ctx": self.ctx,
            "recommended": self.recommended,
            "reason": self.reason,
            "reference": self.reference,
            "eval": self.eval_settings or None,
            **({"hub": self.hub} if self.hub is not None else {}),
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


def _measured_kld(r: QuantRow) -> float:
    return r.quality["kld_mean"] if r.quality and r.quality.get("kld_mean") is not None else float("inf")


def _typical_kld(r: QuantRow) -> float:
    return r.typical["kld_mean"] if r.typical and r.typical.get("kld_mean") is not None else float("inf")


def _pick(rows: list[QuantRow], ctx: int, hub: bool = False) -> tuple[QuantRow | None, str]:
    """The recommended row and why; with `hub`, by the quant type's typical KLD, said so."""
    fits = [r for r in rows if r.fit and r.fit["verdict_code"] != "no_fit"]
    if not fits:
        return None, f"none of the quants fits at context {ctx}"
    kld = _typical_kld if hub else _measured_kld

    full = [r for r in fits if r.fit["fully_on_gpu"]]
    where = f"the {fmt.plural(len(full), 'quant')} that fit fully on the GPU at context {ctx}"
    if not full:
        most = max(r.fit["gpu_layers"] for r in fits)
        full = [r for r in fits if r.fit["gpu_layers"] == most]
        where = (
            f"the most layers on the GPU ({most}) at context {ctx}"
            if most
            else f"the quants that fit in RAM at context {ctx} (none fits on the GPU)"
        )
    known = [r for r in full if kld(r) < float("inf")]
    if known and hub:
        best = min(known, key=lambda r: (kld(r), -(r.bpw or 0)))
        model = (best.typical or {}).get("model")
        return best, (
            f"lowest typical KLD for its quant type ({kld(best):.4f}, llama.cpp's figure for {model}; "
            f"typical, not measured on this model) among {where}"
        )
    if known:
        # The reference is the yardstick (KLD 0 by definition): the pick is among the other quants.
        quants = [r for r in known if not r.is_reference]
        best = min(quants or known, key=lambda r: (kld(r), -(r.bpw or 0)))
        also = "; the reference itself fits too" if quants and any(r.is_reference for r in full) else ""
        return best, f"lowest measured KLD, {kld(best):.4f}, among {where}{also}"
    best = max(full, key=lambda r: r.bpw or 0)
    none = "no typical KLD listed for these quant types, nothing measured" if hub else "no KLD measured"
    return best, f"highest bits per weight ({best.bpw or 0:.2f}; {none}) among {where}"


def advise(target: str, ctx: int, hw: Hardware) -> Advice:
    """The table and the pick for the group of `target` at context `ctx` on `hw` (a Hub repo for
    `hf:OWNER/REPO`)."""
    if target.startswith("hf:"):
        return advise_hub(target, ctx, hw)
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


def _hub_target(target: str) -> tuple[str, str]:
    """(repo, revision) of hf:OWNER/REPO[@REV] or hf:OWNER/REPO/FILE[@REV] (its repo)."""
    m = HF_REPO.match(target)
    if m:
        return hub_names.repo_id(m["repo"]), hub_names.revision(m["rev"] or "main")
    try:
        repo, _, rev = parse_hf_path(target)
    except hub_names.NameRefused:
        raise
    except HubError:
        raise HubError(f"{clean(target)}: expected hf:OWNER/REPO (optionally @REVISION)") from None
    return repo, rev


def _hub_row(repo: str, revision: str, v: Variant, ctx: int, hw: Hardware) -> QuantRow:
    """One variant's row: size from the listing, facts and fit from its remote headers (range reads),
    the typical figures of its quant type (the header's file type, else the name's); an error row
    when its headers cannot be read."""
    row = QuantRow(f"hf:{repo}/{v.first}", v.label, v.size, None)
    if v.missing:
        row.error = f"split set incomplete: {v.count - len(v.files)} part(s) not listed"
        row.typical = typical.typical_for(v.label)
        return row
    try:
        facts = remote_facts(repo, v.first, revision, [f.name for f in v.files], [f.size for f in v.files])
        d = facts.to_dict()
        row.bpw = facts.bpw
        row.typical = typical.typical_for(facts.file_type or v.label, facts.imatrix is not None)
        row.fit = _fit(d, ctx, hw)
    except (QuanttuiError, ValueError, TypeError, KeyError) as err:
        row.typical = row.typical or typical.typical_for(v.label)
        row.error = clean(str(err))
    return row


def advise_hub(target: str, ctx: int, hw: Hardware) -> Advice:
    """The table and the pick for a Hub repo: sizes, bpw and fit from the remote headers (never a
    whole file), quality only as what each quant type typically loses, with its source."""
    try:
        repo, revision = _hub_target(target)
        listing = repo_variants(repo, revision)
    except HubError as e:
        raise QualityError(str(e)) from None
    with ThreadPoolExecutor(HEADER_READERS, thread_name_prefix="advise-hub") as pool:
        rows = list(pool.map(lambda v: _hub_row(repo, listing.revision, v, ctx, hw), listing.variants))
    rows.sort(key=lambda r: (r.bpw is None, -(r.bpw or 0), -r.size_bytes))
    best, reason = _pick(rows, ctx, hub=True)
    if not rows:
        reason = "the repo lists no GGUF file quanttui can read"
    hub = {
        "repo": repo,
        "revision": listing.revision,
        "refused": [{"name": r.name, "reason": r.reason} for r in listing.refused],
        "typical_source": typical.source(),
    }
    return Advice(f"hf:{repo}", ctx, rows, best.model if best else None, reason, None, {}, hub)
