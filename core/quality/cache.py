"""Where eval and bench records are kept: one JSON file per record under the cache dir, written
atomically; a damaged or foreign file, or one from another METHOD, reads as a miss.

What a record holds and how records are found (by content identity, one settings set per
comparison) is records.py. `identity` (real path, size, mtime) is the pre-record path identity, still
written into each record for readers that have not moved to records.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from ..paths import cache_dir

METHOD = 2  # bump when the figures would change for the same inputs (2: records with conditions, ±)


def identity(path: str | Path) -> dict[str, Any]:
    """Real path, size and mtime (ns) of a file; OSError when it cannot be read."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return {"path": real, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def folder(kind: str) -> Path:
    return cache_dir() / "quality" / kind


def key(*parts: Any) -> str:
    blob = json.dumps([METHOD, *parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _number_or_none(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))


def _valid(record: Any, numbers: tuple[str, ...]) -> bool:
    if not isinstance(record, dict) or record.get("method") != METHOD:
        return False
    result = record.get("result")
    return isinstance(result, dict) and all(_number_or_none(result.get(n)) for n in numbers)


EVAL_NUMBERS = (
    "kld_mean",
    "kld_median",
    "kld_p99",
    "kld_max",
    "top1_agreement",
    "ppl",
    "ppl_ref",
    "ppl_ratio",
    "p_diff_mean",
    "p_diff_rms",
    "tokens_scored",
    "seconds",
)
BENCH_NUMBERS = ("pp_tokens_per_second", "tg_tokens_per_second", "load_seconds", "threads")


def load(kind: str, k: str) -> dict[str, Any] | None:
    """The stored record, or None (missing, unreadable, damaged or from another method)."""
    try:
        record = json.loads((folder(kind) / f"{k}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if _valid(record, EVAL_NUMBERS if kind == "eval" else BENCH_NUMBERS) else None


def store(kind: str, k: str, record: dict[str, Any]) -> None:
    """Write atomically; a read-only cache dir costs a rerun later, never the result now."""
    d = folder(kind)
    with contextlib.suppress(OSError):
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({**record, "method": METHOD}, fh)
        os.replace(tmp, d / f"{k}.json")


def _all(kind: str) -> list[dict[str, Any]]:
    d = folder(kind)
    if not d.is_dir():
        return []
    out = []
    for f in sorted(d.glob("*.json")):
        record = load(kind, f.stem)
        if record is not None:
            out.append(record)
    return out


def measured_evals(path: str | Path) -> list[dict[str, Any]]:
    """Every stored eval of this file's content (newest first), or [] when it cannot be read."""
    from . import records

    try:
        me = records.content_id(path)
    except OSError:
        return []
    found = [r for r in _all("eval") if r.get("content") == me]
    return sorted(found, key=lambda r: r.get("time", 0), reverse=True)


def measured_bench(path: str | Path) -> dict[str, Any] | None:
    """The bench record of this file's content to show: the newest idle one, else the newest busy."""
    from . import records

    try:
        me = records.content_id(path)
    except OSError:
        return None
    found = [r for r in _all("bench") if r.get("content") == me]
    idle = [r for r in found if not (r.get("conditions") or {}).get("busy")]
    return max(idle or found, key=lambda r: r.get("time", 0), default=None)
