"""Typical quality loss per quant type, from llama.cpp's own published table (never a measurement).

For a Hub repo nothing has been evaluated here, so `advise hf:` can only say what a quant type
typically loses: the figures of llama.cpp's tools/perplexity/README.md, "LLaMA 3 8b Scoreboard"
(LLaMA 3 8B against FP16 on Wikitext-2; MIT-licensed llama.cpp documentation), kept verbatim in
data/typical_kld.json with their source. Every figure handed out carries that source and the model.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

PREFERRED_IMATRIX = "WT 10m"  # the importance matrix the table uses for most rows


@cache
def table() -> dict[str, Any]:
    """The shipped table: {"source": {...}, "rows": [{"quant", "imatrix", "kld_mean", ...}]}."""
    raw = resources.files(__package__).joinpath("data/typical_kld.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(raw)
    return data


def source() -> dict[str, str]:
    """Where the figures come from: file, section, project, license, model, text, settings."""
    return dict(table()["source"])


def source_line() -> str:
    """The source in one line, for a table's footnote and the `source` of each figure."""
    s = table()["source"]
    return (
        f"llama.cpp {s['file']}, \"LLaMA 3 8b Scoreboard\" ({s['model']} against FP16 on "
        f"{s['text']}; MIT-licensed llama.cpp documentation)"
    )


def _row(quant: str, imatrix: bool | None) -> dict[str, Any] | None:
    """The table's row for `quant`: with an importance matrix when the file was made with one
    (Wikitext 10m preferred), without one otherwise; the other kind when only that is listed."""
    rows: list[dict[str, Any]] = [r for r in table()["rows"] if r["quant"] == quant.upper()]
    if not rows:
        return None
    plain = [r for r in rows if r["imatrix"] is None]
    wt = [r for r in rows if r["imatrix"] is not None]
    wt.sort(key=lambda r: r["imatrix"] != PREFERRED_IMATRIX)
    ordered = wt + plain if imatrix else plain + wt
    return ordered[0]


def typical_for(quant: str | None, imatrix: bool | None = None) -> dict[str, Any] | None:
    """What a file of quant type `quant` typically loses, per the source table; None for a type the
    table does not list. `measured` is always False: these are llama.cpp's figures for another model."""
    if not quant:
        return None
    r = _row(quant, imatrix)
    if r is None:
        return None
    base_ppl = r["ppl"] - r["delta_ppl"]
    return {
        "quant_type": r["quant"],
        "imatrix": r["imatrix"],
        "kld_mean": r["kld_mean"],
        "ppl_ratio": round(r["ppl"] / base_ppl, 6) if base_ppl > 0 else None,
        "delta_ppl": r["delta_ppl"],
        "mean_dp_percent": r["mean_dp_percent"],
        "rms_dp_percent": r["rms_dp_percent"],
        "model": table()["source"]["model"],
        "text": table()["source"]["text"],
        "source": source_line(),
        "measured": False,
    }
