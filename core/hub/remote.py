"""Read a remote GGUF's header with HTTP range requests, growing the range until the reader has it.

Each request asks for about what the reader says is still missing (it extrapolates token lists
and tensor tables), so a 128k-token header arrives in a few requests with little over-read. Headers
are cached on disk by (repo, revision, file), so a repo reopens instantly. Every answer must start
where asked and agree on the file's size; a header is read to at most MAX_HEADER bytes, and each
request ends at a deadline that grows with the bytes it asks for (client.deadline_for).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..modelfile import GGUFError, Header, NeedMoreData, parse_header, summarize
from ..modelfile.facts import ModelFacts
from ..paths import cache_dir
from ..textsafe import clean
from . import names
from .client import HubError, call, deadline_for, file_url, stream

FIRST_REQUEST = 1 << 20
SLACK = 128 << 10
MAX_REQUESTS = 12
MAX_HEADER = 256 << 20  # no real header comes near this; a hostile one must not pull a whole file
CONTENT_RANGE = re.compile(r"bytes (\d{1,20})-(\d{1,20})/(\d{1,20}|\*)")
HF_PATH = re.compile(r"^hf:(?P<repo>[^/@]+/[^/@]+)/(?P<file>[^@]+?)(?:@(?P<rev>[^/]+))?$")


@dataclass
class FetchStats:
    requests: int = 0
    bytes: int = 0
    header_size: int = 0
    cached: bool = False


def parse_hf_path(text: str) -> tuple[str, str, str]:
    """'hf:OWNER/REPO/FILE[@REV]' -> (repo, file, revision)."""
    m = HF_PATH.match(text)
    if not m:
        raise HubError(f"{clean(text)}: expected hf:OWNER/REPO/FILE (optionally @REVISION)")
    repo, name, rev = m["repo"], m["file"], m["rev"] or "main"
    return names.repo_id(repo), names.file_name(name), names.revision(rev)


def _cache_file(repo: str, filename: str, revision: str) -> Path:
    """The cache entry of a header: named by a hash of its key, so no name from outside is a path part."""
    key = hashlib.sha256(json.dumps([repo, revision, filename]).encode()).hexdigest()[:40]
    return cache_dir() / "remote-headers" / f"{key}.hdr"


def _range(url: str, start: int, end: int) -> tuple[bytes, int | None]:
    """Bytes [start, end] of the file and its total size; reads no more than asked even without 206,
    refuses a 206 that does not start at `start` and an encoded answer (its bytes are not the file's),
    and ends at client.deadline_for(the bytes asked)."""
    want = end - start + 1
    asked = {"Range": f"bytes={start}-{end}"}
    with stream("GET", url, seconds=deadline_for(end + 1), extra=asked) as (resp, guard):
        if resp.status_code == 416:
            return b"", None
        if resp.status_code not in (200, 206):
            raise HubError(f"the Hub answered HTTP {resp.status_code}")
        coding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        if coding not in ("", "identity"):
            raise HubError(f"the Hub answered the range {clean(coding[:40])}-encoded; refused")
        total = None
        cr = resp.headers.get("Content-Range", "")
        if resp.status_code == 206:
            m = CONTENT_RANGE.fullmatch(cr.strip())
            if not m or int(m[1]) != start or not start <= int(m[2]) <= end:
                shown = clean(cr[:80]) or "(none)"
                raise HubError(f"the Hub answered the range {shown} for bytes {start:,}-{end:,}; refused")
            total = int(m[3]) if m[3] != "*" else None
            want = int(m[2]) - start + 1
        elif resp.headers.get("Content-Length", "").isdigit():
            total = int(resp.headers["Content-Length"])
        chunks, got = [], 0
        skip = start if resp.status_code == 200 else 0  # a server that ignored Range sends from byte 0
        for chunk in resp.iter_raw():
            guard.check()
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
            chunks.append(chunk)
            got += len(chunk)
            if got >= want:
                break
        return b"".join(chunks)[:want], total


def fetch_header(
    repo: str, filename: str, revision: str = "main", *, use_cache: bool = True, size: int | None = None
) -> tuple[Header, FetchStats]:
    """The parsed header of a file on the Hub, with what fetching it cost. `size` is the listed size:
    an answer that disagrees with it (or with an earlier answer) is refused."""
    names.repo_id(repo)
    names.file_name(filename)
    names.revision(revision)
    what = clean(f"{repo}/{filename}")
    cache = _cache_file(repo, filename, revision)
    meta = cache.with_suffix(".json")
    if use_cache and cache.is_file() and meta.is_file():
        try:
            cached = json.loads(meta.read_text())["file_size"]
            if cached is not None and (not isinstance(cached, int) or isinstance(cached, bool)):
                raise ValueError("file_size")
            header = parse_header(cache.read_bytes(), complete=False, file_size=cached)
            return header, FetchStats(cached=True)
        except (OSError, ValueError, KeyError, TypeError, GGUFError, NeedMoreData):
            pass  # a damaged cache entry is fetched again
    url = file_url(repo, filename, revision)
    stats = FetchStats()
    buf = bytearray()
    total: int | None = None
    want = FIRST_REQUEST
    while True:
        if stats.requests >= MAX_REQUESTS:
            raise HubError(
                f"{what}: header still incomplete after {MAX_REQUESTS} requests ({len(buf):,} bytes)"
            )
        start, end = len(buf), want - 1
        data, told = call(what, functools.partial(_range, url, start, end))
        stats.requests += 1
        if told is not None and (total if total is not None else size) not in (None, told):
            raise HubError(
                f"{what}: the Hub says the file has {told:,} bytes, not {(total or size or 0):,}; refused"
            )
        total = told if told is not None else total
        if not data:
            raise HubError(f"{what}: the file ends at {len(buf):,} bytes before its header does")
        buf += data
        try:
            header = parse_header(bytes(buf), complete=False, file_size=total)
            break
        except NeedMoreData as e:
            want = max(e.needed + SLACK, len(buf) + 1)
            if total is not None:
                want = min(want, total)
            if want > MAX_HEADER:
                raise HubError(
                    f"{what}: the header says it needs {e.needed:,} bytes, more than quanttui reads "
                    f"({MAX_HEADER:,}); refused"
                ) from None
        except GGUFError as e:
            raise HubError(f"{what}: {e}") from None
    stats.bytes, stats.header_size = len(buf), header.data_offset
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(bytes(buf[: header.data_offset]))
        meta.write_text(json.dumps({"file_size": total}))
    except OSError:
        pass
    return header, stats


def remote_facts(
    repo: str,
    filename: str,
    revision: str = "main",
    parts: list[str] | None = None,
    sizes: list[int] | None = None,
) -> ModelFacts:
    """Facts for a remote file or split set, as `inspect` gives for a local one."""
    wanted = parts or [filename]
    listed = sizes if sizes and len(sizes) == len(wanted) else [None] * len(wanted)
    headers_ = [fetch_header(repo, n, revision, size=s)[0] for n, s in zip(wanted, listed, strict=True)]
    headers_.sort(key=lambda h: h.get("split.no", 0))
    size = sum(sizes) if sizes else sum(h.file_size or 0 for h in headers_)
    split: dict[str, Any] | None = None
    if len(wanted) > 1:
        split = {
            "count": len(wanted),
            "parts": [f"hf:{repo}/{n}" for n in wanted],
            "missing": [],
            "tensors_count": headers_[0].get("split.tensors.count"),
        }
    return summarize(headers_, f"hf:{repo}/{wanted[0]}", size, split)
