"""Measurement records: a figure is a record, never a bare number.

Every eval and bench result is kept as a `Measurement`: its values, the uncertainty the reference
tool prints beside them (llama-perplexity's "±" for eval, llama-bench's "±" stddev for bench), when
it was measured, and under which conditions (llama.cpp build key and version, threads, extra buffers,
GPU layers, the machine's load before and after, and for bench whether the machine was busy). Records
are found by the file's *content identity* (`content_id`), not its path: a moved, renamed,
hard-linked or copied file keeps its figures, and a byte-identical copy of a reference is known as
one. Eval records carry their *settings* (reference content, text, ctx, chunks): one comparison (a
column, a table, a pick) only ever holds records of one settings set (`eval_view`).

Content identity: the size of every part of the set and a BLAKE2b of the first MiB, the last 64 KiB
and 32 blocks of 16 KiB spread evenly over each part (about 1.6 MiB read per file, once: the id is
remembered by device, inode, size and mtime, so a rename or a hard link costs a stat). Two files
with the same id are treated as the same content; files that differ only outside the sampled bytes
would be taken for one another (a GGUF's header, which holds every tensor's type and offset, is
always read whole up to 1 MiB, and the weights are sampled throughout).

Busy rule (bench): a bench is "busy" when other processes used more than BUSY_OTHER_CORES cores on
average while it ran (system CPU time from /proc/stat minus the bench worker's own CPU time, over
the wall time), or when the 1-minute load average before it started exceeded its threads +
BUSY_LOAD_MARGIN (a run queue was already there). A busy record is kept but never shown where an
idle one of the same file exists, never used to scale estimates, and never a cache hit: the next
bench measures again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ..modelfile.split import split_parts
from ..safeopen import open_regular, read_text_bounded
from . import cache

HEAD = 1 << 20
TAIL = 64 << 10
SAMPLES = 32
BLOCK = 16 << 10
ID_VERSION = "c1"
MAX_IDS = 50_000  # remembered ids; past it the oldest half is forgotten
BUSY_OTHER_CORES = 0.5
BUSY_LOAD_MARGIN = 0.5

EVAL_SETTINGS = ("reference", "text_sha256", "ctx", "chunks")
UNCERTAIN = {  # value -> the name of its "±" in a record's values
    "kld_mean": "kld_mean_se",
    "ppl": "ppl_se",
    "ppl_ref": "ppl_ref_se",
    "ppl_ratio": "ppl_ratio_se",
    "ln_ppl_ratio": "ln_ppl_ratio_se",
    "top1_agreement": "top1_agreement_se",
    "p_diff_mean": "p_diff_mean_se",
    "p_diff_rms": "p_diff_rms_se",
    "pp_tokens_per_second": "pp_stdev",
    "tg_tokens_per_second": "tg_stdev",
}


# ---------------------------------------------------------------- content identity

_ids_lock = threading.Lock()
_ids: dict[str, str] | None = None
_ids_from: Path | None = None  # the file _ids was read from (the cache dir may change: tests, env)


def _ids_path() -> Path:
    return cache.folder("ids").with_suffix(".json")


def _load_ids() -> dict[str, str]:
    global _ids, _ids_from
    if _ids is None or _ids_from != _ids_path():
        _ids_from = _ids_path()
        try:
            data = json.loads(read_text_bounded(_ids_path(), 16 << 20))
            _ids = {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            _ids = {}
    return _ids


def _save_ids() -> None:
    ids = _load_ids()
    if len(ids) > MAX_IDS:
        for k in list(ids)[: len(ids) // 2]:
            del ids[k]
    path = _ids_path()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ids-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(ids, fh)
        os.replace(tmp, path)


def _stamp(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def _sample(path: Path, size: int) -> bytes:
    """BLAKE2b of the sampled bytes of one file."""
    h = hashlib.blake2b(digest_size=16)
    with open_regular(path, buffering=0) as f:
        h.update(f.read(HEAD))
        if size > HEAD:
            span = max(size - HEAD - TAIL - BLOCK, 0)
            for i in range(SAMPLES):
                f.seek(HEAD + span * i // max(SAMPLES - 1, 1))
                h.update(f.read(BLOCK))
            f.seek(max(size - TAIL, 0))
            h.update(f.read(TAIL))
    return h.digest()


def _part_id(path: Path) -> tuple[int, bytes]:
    st = os.stat(path)
    stamp = _stamp(st)
    with _ids_lock:
        hit = _load_ids().get(stamp)
    if hit is not None:
        return st.st_size, bytes.fromhex(hit)
    digest = _sample(path, st.st_size)
    with _ids_lock:
        _load_ids()[stamp] = digest.hex()
        _save_ids()
    return st.st_size, digest


def content_id(path: str | Path) -> str:
    """The content identity of a model file (every part of a split set): "c1:SIZE:HEX". OSError when
    a part cannot be read."""
    real = Path(os.path.realpath(path))
    parts, _missing = split_parts(real)
    h = hashlib.blake2b(digest_size=16)
    total = 0
    for p in parts or [real]:
        size, digest = _part_id(p)
        total += size
        h.update(size.to_bytes(8, "little") + digest)
    return f"{ID_VERSION}:{total}:{h.hexdigest()}"


def content_ids(paths: Iterable[str]) -> dict[str, str]:
    """`content_id` of each path that can be read (the others are left out)."""
    out = {}
    for p in paths:
        with contextlib.suppress(OSError):
            out[p] = content_id(p)
    return out


# ---------------------------------------------------------------- the machine's load


@dataclass(frozen=True)
class LoadSample:
    """The machine at one moment: 1-minute load average and system CPU seconds (busy, total)."""

    loadavg: float | None
    busy_s: float
    total_s: float
    at: float


def load_sample() -> LoadSample:
    try:
        la: float | None = os.getloadavg()[0]
    except OSError:
        la = None
    t = psutil.cpu_times()
    total = float(sum(t))
    idle = float(t.idle + getattr(t, "iowait", 0.0))
    return LoadSample(la, total - idle, total, time.monotonic())


def busy_verdict(
    before: LoadSample, after: LoadSample, own_cpu_s: float | None, threads: int
) -> dict[str, Any]:
    """The load conditions of a measurement between two samples, the measuring process having used
    `own_cpu_s` CPU seconds; "busy" and why by the rule in this module's docstring."""
    wall = max(after.at - before.at, 1e-9)
    busy_s = max(after.busy_s - before.busy_s, 0.0)
    total_s = max(after.total_s - before.total_s, 1e-9)
    others = max(busy_s - (own_cpu_s or 0.0), 0.0) / wall if own_cpu_s is not None else None
    why = []
    if others is not None and others > BUSY_OTHER_CORES:
        why.append(f"other processes used {others:.1f} cores while it ran")
    if before.loadavg is not None and before.loadavg > threads + BUSY_LOAD_MARGIN:
        why.append(f"load average {before.loadavg:.2f} at the start, above its {threads} threads")
    return {
        "load_before": before.loadavg,
        "load_after": after.loadavg,
        "cpu_percent": round(100.0 * busy_s / total_s, 1),
        "other_cores": round(others, 2) if others is not None else None,
        "busy": bool(why),
        "busy_reason": "; ".join(why) or None,
    }


def build_conditions() -> dict[str, Any]:
    """This llama.cpp build (core/llama/extra.py's build key) and its version, or "unknown"."""
    try:
        from ..llama.extra import build_key
        from ..llama.lib import version

        return {"build": build_key(), "llama_cpp": version()}
    except Exception:  # noqa: BLE001  a record without a known build is still a record
        return {"build": "unknown", "llama_cpp": "unknown"}


def device_of(gpu_layers: int | None, n_layers: int | None) -> str:
    """Where a model ran: "cpu" (no layer offloaded), "gpu" (all), else "gpu+cpu"."""
    if not gpu_layers:
        return "cpu"
    if n_layers and gpu_layers >= n_layers:
        return "gpu"
    return "gpu+cpu"


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class Measurement:
    """One measured result: values (their "±" where the reference tool prints one), when, where."""

    kind: str  # "eval" or "bench"
    content: str  # content_id of the measured file
    path: str  # where it was when measured (for display; records are found by `content`)
    settings: dict[str, Any]
    values: dict[str, Any]
    measured_at: float
    conditions: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    @property
    def uncertainty(self) -> dict[str, float]:
        return {k: self.values[se] for k, se in UNCERTAIN.items() if self.values.get(se) is not None}

    @property
    def busy(self) -> bool:
        return bool(self.conditions.get("busy"))

    @property
    def device(self) -> str:
        return str(self.conditions.get("device") or "cpu")

    @property
    def settings_key(self) -> str:
        return settings_key(self.settings)

    def describe(self) -> str:
        """When and under what, in one line: "measured 2026-12-04 15:50, cpu, 2 threads, ..."."""
        c = self.conditions
        parts = [f"measured {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.measured_at))}"]
        parts.append(self.device if self.device == "cpu" else f"{self.device} ({c.get('gpu_layers')} layers)")
        if c.get("threads"):
            parts.append(f"{c['threads']} threads")
        if c.get("extra_buffers") is not None:
            parts.append(f"extra buffers {'on' if c['extra_buffers'] else 'off'}")
        if c.get("load_before") is not None:
            parts.append(f"load {c['load_before']:.2f}")
        if self.kind == "eval":
            s = self.settings
            parts.append(f"ctx {s.get('ctx')} × {s.get('chunks')} chunks")
        if self.busy:
            parts.append(f"BUSY: {c.get('busy_reason')}")
        parts.append(f"llama.cpp {c.get('llama_cpp', '?')} [{c.get('build', '?')}]")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "content": self.content,
            "path": self.path,
            "settings": self.settings,
            "values": self.values,
            "uncertainty": self.uncertainty,
            "measured_at": self.measured_at,
            "conditions": self.conditions,
        }


def settings_key(settings: dict[str, Any]) -> str:
    return cache.key("settings", settings)


def _from_stored(key: str, r: dict[str, Any]) -> Measurement | None:
    if not isinstance(r.get("content"), str) or not isinstance(r.get("settings"), dict):
        return None
    when = r.get("measured_at")
    cond = r.get("conditions")
    return Measurement(
        str(r.get("kind")),
        r["content"],
        str(r.get("path") or ""),
        r["settings"],
        dict(r["result"]),
        float(when) if isinstance(when, (int, float)) else 0.0,
        cond if isinstance(cond, dict) else {},
        key,
    )


def store(kind: str, key: str, m: Measurement, legacy: dict[str, Any] | None = None) -> Measurement:
    """Keep `m` under `key` (replacing what was there). `legacy` adds the fields the pre-record
    readers look for (path identities), so a reader not yet moved to this module still works."""
    cache.store(
        kind,
        key,
        {
            **(legacy or {}),
            "kind": kind,
            "content": m.content,
            "path": m.path,
            "settings": m.settings,
            "result": m.values,
            "measured_at": m.measured_at,
            "time": m.measured_at,
            "conditions": m.conditions,
        },
    )
    return Measurement(m.kind, m.content, m.path, m.settings, m.values, m.measured_at, m.conditions, key)


def load(kind: str, key: str) -> Measurement | None:
    r = cache.load(kind, key)
    return _from_stored(key, r) if r is not None else None


def forget(kind: str, key: str) -> None:
    with contextlib.suppress(OSError):
        (cache.folder(kind) / f"{key}.json").unlink()


def all_records(kind: str) -> list[Measurement]:
    """Every valid record of `kind`, read once (newest first)."""
    d = cache.folder(kind)
    if not d.is_dir():
        return []
    out = []
    for f in d.glob("*.json"):
        r = cache.load(kind, f.stem)
        m = _from_stored(f.stem, r) if r is not None else None
        if m is not None and m.kind == kind:
            out.append(m)
    return sorted(out, key=lambda m: m.measured_at, reverse=True)


def by_content(kind: str) -> dict[str, list[Measurement]]:
    out: dict[str, list[Measurement]] = {}
    for m in all_records(kind):
        out.setdefault(m.content, []).append(m)
    return out


# ---------------------------------------------------------------- views


def shown_bench(records: list[Measurement], device: str | None = None) -> Measurement | None:
    """The bench record to show: the newest idle one (on `device` when given), else the newest busy
    one (which the caller must mark busy); never a busy one where an idle one exists."""
    mine = [m for m in records if device is None or m.device == device]
    idle = [m for m in mine if not m.busy]
    return max(idle or mine, key=lambda m: m.measured_at, default=None)


@dataclass
class EvalView:
    """One settings set's eval records for some files: the only thing a column or table shows."""

    settings: dict[str, Any] | None
    rows: dict[str, Measurement]  # path -> its record in this set
    reference_paths: list[str]  # the paths whose content is this set's reference (twins included)
    others: list[dict[str, Any]] = field(default_factory=list)  # other sets: settings, files, newest

    @property
    def newest(self) -> float:
        return max((m.measured_at for m in self.rows.values()), default=0.0)


def eval_view(
    paths: list[str],
    settings: dict[str, Any] | str | None = None,
    *,
    ids: dict[str, str] | None = None,
    records: dict[str, list[Measurement]] | None = None,
) -> EvalView:
    """The eval records of `paths` under one settings set: `settings` (a dict or its settings_key)
    when given, else the set that covers the most of `paths`, the newest on a tie. A file measured
    twice under one set shows its newest record. Reference rows are every path whose content is the
    set's reference."""
    ids = ids if ids is not None else content_ids(paths)
    records = records if records is not None else by_content("eval")
    sets: dict[str, dict[str, Any]] = {}
    for path in paths:
        cid = ids.get(path)
        for m in records.get(cid, []) if cid else []:
            s = sets.setdefault(m.settings_key, {"settings": m.settings, "rows": {}, "newest": 0.0})
            old = s["rows"].get(path)
            if old is None or m.measured_at > old.measured_at:
                s["rows"][path] = m
            s["newest"] = max(s["newest"], m.measured_at)
    wanted = settings if isinstance(settings, str) or settings is None else settings_key(settings)
    if wanted is not None:
        chosen = wanted if wanted in sets else None
    else:
        chosen = max(sets, key=lambda k: (len(sets[k]["rows"]), sets[k]["newest"]), default=None)
    others = [
        {"settings": s["settings"], "settings_key": k, "files": len(s["rows"]), "newest": s["newest"]}
        for k, s in sets.items()
        if k != chosen
    ]
    others.sort(key=lambda o: (-o["files"], -o["newest"]))
    if chosen is None:
        ref = settings.get("reference") if isinstance(settings, dict) else None
        return EvalView(settings if isinstance(settings, dict) else None, {}, _refs(paths, ids, ref), others)
    s = sets[chosen]
    return EvalView(s["settings"], s["rows"], _refs(paths, ids, s["settings"].get("reference")), others)


def _refs(paths: list[str], ids: dict[str, str], ref: str | None) -> list[str]:
    return [p for p in paths if ref is not None and ids.get(p) == ref]


@dataclass
class Cell:
    """What the Library shows for one file: its eval record (from its group's one settings set, or
    None), whether it is that set's reference, and its bench record (idle preferred; `busy` marks a
    busy one shown because no idle one exists)."""

    eval: Measurement | None = None
    is_reference: bool = False
    bench: Measurement | None = None

    @property
    def kld(self) -> float | None:
        return self.eval.values.get("kld_mean") if self.eval else (0.0 if self.is_reference else None)

    @property
    def tg(self) -> float | None:
        return self.bench.values.get("tg_tokens_per_second") if self.bench else None


def library_cells(groups: dict[str, list[str]]) -> tuple[dict[str, Cell], dict[str, EvalView]]:
    """Per path, its Library cell; per group, the eval view its KLD column comes from (one settings
    set per group, so a column never mixes). Every record and content id is read once per call."""
    paths = [p for members in groups.values() for p in members]
    ids = content_ids(paths)
    evals, benches = by_content("eval"), by_content("bench")
    cells: dict[str, Cell] = {}
    views: dict[str, EvalView] = {}
    for group, members in groups.items():
        view = eval_view(members, ids=ids, records=evals)
        views[group] = view
        for p in members:
            b = shown_bench(benches.get(ids.get(p, ""), []))
            cell = Cell(view.rows.get(p), p in view.reference_paths, b)
            if cell.eval or cell.is_reference or cell.bench:
                cells[p] = cell
    return cells, views
