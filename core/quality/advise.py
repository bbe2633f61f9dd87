"""`advise`: one table per model group (size, bpw, fit, measured quality and speed) and a pick.

The rule, within a quality budget (measured KLD <= MAX_KLD, `--max-kld`): the lowest measured KLD
among the quants within the budget that fit fully on the GPU at the target context, or, where
several of those are alike (each within the other's KLD by their combined "±"), the smallest of
those alike; with no GPU, or none within the budget fitting fully on it, the smallest (fastest:
generation is memory-bound) quant within the budget that fits. Never a quant that does not fit,
never one over the budget (then there is no pick, and the reason names the lowest KLD and the
--max-kld that would allow it), never the reference nor a byte-identical copy of it (same content
identity: KLD 0 by definition, it is the yardstick), and never an unmeasured quant: with nothing
measured there is no pick, and the reason says what to measure. Quality comes only from eval
records of one settings set for the whole table (records.eval_view: the set that covers most
quants, newest on a tie); tokens/s from idle bench records, shown only where the record's device
(CPU, GPU, both) is the one the fit verdict plans for, else estimated from an idle measured
sibling on the same device by size (generation is memory-bound), marked. A busy record is shown
only where no idle one exists, marked.
For a Hub repo (`hf:OWNER/REPO`) sizes and fit come from the remote headers and quality only as
what the quant type typically loses (typical.py, llama.cpp's published figures), never as measured.
"""

from __future__ import annotations

import math
import os
import re
import shlex
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
from . import records, typical
from .text import QualityError

MAX_KLD = 0.05  # the default quality budget: mean KLD against the reference
NOISY_CV = 0.10  # a bench whose tg runs spread more than this (stddev / mean) is marked noisy
HF_REPO = re.compile(r"^hf:(?P<repo>[^/@]+/[^/@]+)(?:@(?P<rev>.+))?$")
HEADER_READERS = 4  # remote headers read at once


@dataclass
class QuantRow:
    model: str
    quant: str | None
    size_bytes: int
    bpw: float | None
    fit: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None  # kld_mean, top1_agreement, ppl_ratio (and ±) from one eval set
    is_reference: bool = False  # the reference, or a byte-identical copy of it (same content)
    tg: float | None = None
    tg_source: str | None = None  # "measured" or "estimated"
    error: str | None = None
    typical: dict[str, Any] | None = None  # what the quant type typically loses (typical.py), not measured
    quality_record: records.Measurement | None = None  # when and under what the quality was measured
    tg_record: records.Measurement | None = None  # the bench record tg comes from (or is scaled from)
    tg_note: str | None = None  # why a measured speed is not shown (another device)
    content: str | None = None  # records.content_id
    reference_eval: dict[str, Any] | None = None  # for the reference: the eval set it is the yardstick of

    @property
    def tg_busy(self) -> bool:
        return self.tg_source == "measured" and self.tg_record is not None and self.tg_record.busy

    def eval_settings(self) -> dict[str, Any] | None:
        """The eval settings this row's KLD was measured under: ctx, chunks, tokens, text_sha256."""
        qr = self.quality_record
        if qr is not None:
            return eval_entry(qr.settings, qr.conditions.get("tokens"))
        return self.reference_eval  # the reference's: the set it is the yardstick of

    def bench_entry(self) -> dict[str, Any] | None:
        """The bench record the speed shown comes from: when, its "±" and whether it is noisy (busy,
        or runs spread more than NOISY_CV of their mean); None when no speed is shown."""
        tr = self.tg_record if self.tg is not None else None
        if tr is None:
            return None
        noisy, why = noisy_bench(tr)
        v = tr.values
        return {
            "source": self.tg_source,
            "device": tr.device,
            "measured_at": tr.measured_at,
            "tg_tokens_per_second": v.get("tg_tokens_per_second"),
            "tg_stddev": v.get("tg_stdev"),
            "pp_tokens_per_second": v.get("pp_tokens_per_second"),
            "pp_stddev": v.get("pp_stdev"),
            "noisy": noisy,
            "noisy_reason": why,
        }

    def to_dict(self) -> dict[str, Any]:
        q = self.quality or {}
        qr = self.quality_record
        tr = self.tg_record if self.tg is not None else None
        return {
            "model": self.model,
            "quant": self.quant,
            "size_bytes": self.size_bytes,
            "bpw": self.bpw,
            "fit": self.fit,
            "kld_mean": q.get("kld_mean"),
            "kld_mean_se": q.get("kld_mean_se"),
            "kld_stderr": q.get("kld_mean_se"),
            "eval": self.eval_settings(),
            "top1_agreement": q.get("top1_agreement"),
            "top1_agreement_se": q.get("top1_agreement_se"),
            "ppl_ratio": q.get("ppl_ratio"),
            "ppl_ratio_se": q.get("ppl_ratio_se"),
            "quality_measured_at": qr.measured_at if qr else None,
            "tg_tokens_per_second": self.tg,
            "tg_source": self.tg_source,
            "tg_device": tr.device if tr else None,
            "tg_busy": self.tg_busy,
            "tg_measured_at": tr.measured_at if tr else None,
            "tg_conditions": tr.conditions if tr else None,
            "bench": self.bench_entry(),
            **({"tg_note": self.tg_note} if self.tg_note else {}),
            "measured": self.quality is not None and not self.is_reference,
            "reference": self.is_reference,
            "content": self.content,
            "typical": self.typical,
            **({"error": self.error} if self.error else {}),
        }


def eval_entry(settings: dict[str, Any], tokens: Any) -> dict[str, Any]:
    """An eval settings set as --json shows it per quant."""
    return {
        "ctx": settings.get("ctx"),
        "chunks": settings.get("chunks"),
        "tokens": tokens,
        "text_sha256": settings.get("text_sha256"),
    }


def noisy_bench(m: records.Measurement) -> tuple[bool, str | None]:
    """Whether a bench record is noisy, and why: measured while the machine was busy, or its tg runs
    spread more than NOISY_CV of their mean."""
    if m.busy:
        return True, f"busy: {m.conditions.get('busy_reason')}"
    tg, sd = m.values.get("tg_tokens_per_second"), m.values.get("tg_stdev")
    if isinstance(tg, (int, float)) and isinstance(sd, (int, float)) and tg > 0 and sd / tg > NOISY_CV:
        return True, f"tg runs spread ±{sd / tg:.0%} of their mean (over {NOISY_CV:.0%})"
    return False, None


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
    to_measure: str | None = None  # the command that would let a pick be made, when none is
    other_eval_sets: list[dict[str, Any]] = field(default_factory=list)  # settings not shown
    max_kld: float = MAX_KLD

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "ctx": self.ctx,
            "max_kld": self.max_kld,
            "recommended": self.recommended,
            "reason": self.reason,
            "to_measure": self.to_measure,
            "reference": self.reference,
            "eval": self.eval_settings or None,
            "other_eval_sets": self.other_eval_sets,
            **({"hub": self.hub} if self.hub is not None else {}),
            "quants": [r.to_dict() for r in self.rows],
        }


def _norm(s: str) -> str:
    return re.sub(r"[^0-9a-z]+", "-", s.strip().lower()).strip("-")


def _matches(target: str, label: str, key: str, names: list[str]) -> bool:
    """Whether `target` names a group loosely: case-insensitive, punctuation and spaces alike, as a
    substring of its label, key or a member's file name, or every word of it found in them."""
    want = _norm(target)
    if not want:
        return False
    hay = [_norm(label), _norm(key), *(_norm(n) for n in names)]
    if any(want in h for h in hay):
        return True
    joined = " ".join(hay)
    return all(w in joined for w in want.split("-"))


def _members(target: str) -> tuple[str, list[LibraryEntry]]:
    """The group `target` names (a file's group, or a group named loosely) and its files; one line
    listing the groups when it names several."""
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
    groups: dict[str, list[LibraryEntry]] = {}
    for e in entries:
        groups.setdefault(e.group, []).append(e)
    wanted = target.strip().lower()
    exact = [g for g, m in groups.items() if wanted in (g.lower(), m[0].group_label.lower())]
    found = exact or [
        g
        for g, m in groups.items()
        if _matches(target, m[0].group_label, g, [n for e in m for n in (Path(e.path).name, e.name)])
    ]
    if not found:
        raise QualityError(f"no model file or group named {clean(target)!r} (see quanttui ls)")
    if len(found) > 1:
        labels = sorted({groups[g][0].group_label for g in found})
        shown = ", ".join(repr(clean(x)) for x in labels[:8]) + (", …" if len(labels) > 8 else "")
        raise QualityError(f"{clean(target)!r} names {len(found)} groups: {shown}; name one of them")
    return groups[found[0]][0].group_label, groups[found[0]]


def _fit(facts: dict[str, Any], ctx: int, hw: Hardware) -> dict[str, Any]:
    res = estimate(facts, FitSettings(n_ctx=ctx), hw, search=False)
    return {
        "verdict": res.verdict,
        "verdict_code": res.verdict_code,
        "fully_on_gpu": res.verdict_code == "gpu",
        "gpu_layers": res.gpu_layers,
        "layers": res.n_layer + 1,
    }


def _planned_device(fit: dict[str, Any] | None) -> str | None:
    """Where the fit verdict runs the model: "gpu", "gpu+cpu" or "cpu" (None when it does not fit)."""
    if not fit or fit.get("verdict_code") == "no_fit":
        return None
    if fit.get("fully_on_gpu"):
        return "gpu"
    return "gpu+cpu" if fit.get("gpu_layers") else "cpu"


def _speeds(rows: list[QuantRow], benches: dict[str, list[records.Measurement]]) -> None:
    """Measured tg where a bench record of the row's content on the device its fit plans for exists
    (idle preferred); else scaled from the nearest-size idle measured sibling on that device, marked
    estimated. A speed measured on another device is not shown; `tg_note` says so."""
    for row in rows:
        device = _planned_device(row.fit)
        mine = benches.get(row.content or "", [])
        rec = records.shown_bench(mine, device) if device else None
        if rec is not None:
            row.tg, row.tg_source, row.tg_record = rec.values.get("tg_tokens_per_second"), "measured", rec
        elif mine and device:
            other = records.shown_bench(mine)
            if other is not None:
                tg = other.values.get("tg_tokens_per_second") or 0
                row.tg_note = f"measured on {other.device} ({tg:.1f} tok/s), not on {device} as planned"
    idle = [r for r in rows if r.tg_source == "measured" and r.tg and r.size_bytes and not r.tg_busy]
    for row in rows:
        device = _planned_device(row.fit)
        same = [m for m in idle if m.tg_record is not None and m.tg_record.device == device]
        if row.tg_source is None and same and row.size_bytes:
            near = min(same, key=lambda m: abs(m.size_bytes - row.size_bytes))
            row.tg, row.tg_source = (near.tg or 0) * near.size_bytes / row.size_bytes, "estimated"
            row.tg_record = near.tg_record


def _measured_kld(r: QuantRow) -> float:
    return r.quality["kld_mean"] if r.quality and r.quality.get("kld_mean") is not None else float("inf")


def _typical_kld(r: QuantRow) -> float:
    return r.typical["kld_mean"] if r.typical and r.typical.get("kld_mean") is not None else float("inf")


def _fit_of(r: QuantRow) -> dict[str, Any]:
    """The fit of a row `_pick` weighs (every such row has one)."""
    return r.fit or {}


def _pick(
    rows: list[QuantRow], ctx: int, hub: bool = False, max_kld: float = MAX_KLD
) -> tuple[QuantRow | None, str]:
    """The recommended row and why; with `hub`, by the quant type's typical KLD, said so."""
    fits = [r for r in rows if r.fit and r.fit["verdict_code"] != "no_fit"]
    if not fits:
        return None, f"none of the quants fits at context {ctx}"
    if not hub:
        return _pick_measured(rows, fits, ctx, max_kld)
    kld = _typical_kld

    full = [r for r in fits if _fit_of(r)["fully_on_gpu"]]
    where = f"the {fmt.plural(len(full), 'quant')} that fit fully on the GPU at context {ctx}"
    if not full:
        most = max(_fit_of(r)["gpu_layers"] for r in fits)
        full = [r for r in fits if _fit_of(r)["gpu_layers"] == most]
        where = (
            f"the most layers on the GPU ({most}) at context {ctx}"
            if most
            else f"the quants that fit in RAM at context {ctx} (none fits on the GPU)"
        )
    known = [r for r in full if kld(r) < float("inf")]
    if known:
        best = min(known, key=lambda r: (kld(r), -(r.bpw or 0)))
        model = (best.typical or {}).get("model")
        return best, (
            f"lowest typical KLD for its quant type ({kld(best):.4f}, llama.cpp's figure for {model}; "
            f"typical, not measured on this model) among {where}"
        )
    best = max(full, key=lambda r: r.bpw or 0)
    none = "no typical KLD listed for these quant types, nothing measured"
    return best, f"highest bits per weight ({best.bpw or 0:.2f}; {none}) among {where}"


def _se(r: QuantRow) -> float:
    se = (r.quality or {}).get("kld_mean_se")
    return float(se) if isinstance(se, (int, float)) else 0.0


def _alike(r: QuantRow, best: QuantRow) -> bool:
    """Whether `r`'s KLD is `best`'s within their combined "±" (never without a "±")."""
    margin = math.hypot(_se(r), _se(best))
    return margin > 0 and _measured_kld(r) - _measured_kld(best) <= margin


def _kld_pm(r: QuantRow) -> str:
    se = (r.quality or {}).get("kld_mean_se")
    return f"{_measured_kld(r):.4f}" + (f" ± {se:.4f}" if isinstance(se, (int, float)) else "")


def _name(r: QuantRow) -> str:
    return clean(r.quant or Path(r.model).name)


def _pick_measured(
    rows: list[QuantRow], fits: list[QuantRow], ctx: int, max_kld: float
) -> tuple[QuantRow | None, str]:
    """The module docstring's rule over measured KLDs, the reason in one line."""
    # The reference and its byte-identical copies are the yardstick (KLD 0 by definition): no pick.
    quants = [r for r in fits if not r.is_reference and _measured_kld(r) < float("inf")]
    if not quants:
        if not any(r.quality is not None and not r.is_reference for r in rows):
            return None, "nothing measured: no quant is recommended without a measured KLD"
        return None, f"no quant is recommended: none that fits at context {ctx} has a measured KLD"
    budget = f"KLD ≤ {max_kld:g}"
    within = [r for r in quants if _measured_kld(r) <= max_kld]
    if not within:
        low = min(quants, key=_measured_kld)
        allow = math.ceil(_measured_kld(low) * 1e4) / 1e4
        return None, (
            f"no quant that fits at context {ctx} is within the quality budget ({budget}); the lowest "
            f"is {_name(low)}, {_kld_pm(low)}: --max-kld {allow:g} would allow it"
        )
    on_gpu = [r for r in within if _fit_of(r).get("fully_on_gpu")]
    if on_gpu:
        best = min(on_gpu, key=lambda r: (_measured_kld(r), -(r.bpw or 0)))
        alike = [r for r in on_gpu if _alike(r, best)]
        where = f"fully on the GPU at context {ctx} within the budget ({budget})"
        if len(alike) > 1:
            small = min(alike, key=lambda r: (r.size_bytes, _measured_kld(r)))
            return small, (
                f"smallest of {len(alike)} quants whose KLDs are alike within their ± ({_name(best)} "
                f"lowest, {_kld_pm(best)}; this one {_kld_pm(small)}), {where}"
            )
        return best, f"lowest measured KLD, {_kld_pm(best)}, of {fmt.plural(len(on_gpu), 'quant')} {where}"
    small = min(within, key=lambda r: (r.size_bytes, _measured_kld(r)))
    gpu = any(_fit_of(r).get("fully_on_gpu") or _fit_of(r).get("gpu_layers") for r in fits)
    why = f"none within it fits fully on the GPU at context {ctx}" if gpu else "no GPU to plan for"
    which = (
        f"smallest, so fastest, of {len(within)} quants" if len(within) > 1 else "the only quant that fits"
    )
    return small, f"{which} within the budget ({budget}), KLD {_kld_pm(small)}; {why}"


def advise(target: str, ctx: int, hw: Hardware, max_kld: float = MAX_KLD) -> Advice:
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
    return advise_rows(label, rows, ctx, max_kld=max_kld)


def advise_rows(
    label: str,
    rows: list[QuantRow],
    ctx: int,
    settings: dict[str, Any] | str | None = None,
    *,
    max_kld: float = MAX_KLD,
) -> Advice:
    """The pick among `rows` (each with its fit verdict or error already set): measured quality from
    one eval settings set (`settings`, else the one covering most rows) and speed read from the
    records, the reference and its byte-identical copies marked, rows from most to fewest bits per
    weight."""
    paths = [r.model for r in rows]
    ids = records.content_ids(paths)
    view = records.eval_view(paths, settings, ids=ids)
    ref_content = (view.settings or {}).get("reference")
    for row in rows:
        row.content = ids.get(row.model)
        m = view.rows.get(row.model)
        if m is not None:
            row.quality, row.quality_record = m.values, m
        if ref_content is not None and row.content == ref_content:
            row.is_reference = True
            row.quality = {"kld_mean": 0.0, "top1_agreement": 1.0, "ppl_ratio": 1.0}
            row.quality_record = None
    first = next(iter(view.rows.values()), None)
    tokens = first.conditions.get("tokens") if first else None
    for row in rows:
        if row.is_reference and view.settings is not None:
            row.reference_eval = eval_entry(view.settings, tokens)
    _speeds(rows, records.by_content("bench"))
    rows.sort(key=lambda r: -(r.bpw or 0))
    best, reason = _pick(rows, ctx, max_kld=max_kld)
    about: dict[str, Any] = {}
    ref_path = None
    if view.settings is not None:
        ref_path = view.reference_paths[0] if view.reference_paths else None
        about = {
            "reference": ref_path,
            "reference_content": ref_content,
            "text": first.conditions.get("text") if first else None,
            "text_sha256": view.settings.get("text_sha256"),
            "ctx": view.settings.get("ctx"),
            "chunks": view.settings.get("chunks"),
            "measured_at": view.newest,
            "tokens": tokens,
            "settings_key": records.settings_key(view.settings),
        }
    advice = Advice(label, ctx, rows, best.model if best else None, reason, ref_path, about)
    advice.other_eval_sets, advice.max_kld = view.others, max_kld
    if best is None:
        advice.to_measure = _what_to_measure(rows, ref_path)
    return advice


def _what_to_measure(rows: list[QuantRow], ref_path: str | None) -> str | None:
    """The eval that would let a pick be made: the quants that fit and have no KLD, against the
    reference (the one measured, else the highest-bpw file)."""
    readable = [r for r in rows if r.fit and not r.error]
    if not readable:
        return None
    ref = ref_path or max(readable, key=lambda r: r.bpw or 0).model
    ref_content = next((r.content for r in rows if r.model == ref), None)
    todo = [
        r.model
        for r in readable
        if r.fit and r.fit["verdict_code"] != "no_fit" and r.quality is None and r.content != ref_content
    ]
    return "quanttui eval " + " ".join(shlex.quote(p) for p in [ref, *todo]) if todo else None


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
