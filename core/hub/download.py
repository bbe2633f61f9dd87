"""Download a variant (every part of a split set) with progress, cancel, resume and SHA-256 checks.

Bytes go to a hidden `.FILE.partial` next to the destination, so a partial file never shows as a
model. A later pull resumes from the bytes on disk with a Range request (huggingface_hub deletes
its partial file on failure, so it cannot resume across calls). The finished file is checked against
the repo's SHA-256 before it is renamed into place. Every name is validated and every path checked
against the models folder before the first folder is made; an answer whose Content-Range does not
start where asked is refused before a byte is appended, a body longer than the listed size is
refused at that size, so a `.partial` never grows past it, and an encoded body (asked for as it is)
is refused. A body has no overall deadline, only READ_TIMEOUT between bytes; a cancel ends it at any
stage, also while the answer's headers arrive (client.stream, guard.py).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from ..organize.move import partial_path, sha256_file
from ..organize.safety import log_operation
from ..pathgate import PathRefused, check, join_inside
from ..paths import models_dir
from ..textsafe import clean, clean_path
from . import client, names
from .client import HubError, call, file_url
from .guard import guarded
from .search import RemoteFile

Progress = Callable[[int, int, str], None]  # bytes done (all files), bytes total, current file
CHUNK = 1 << 20
SPACE_MARGIN = 64 << 20
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota reached, file size limit
READ_TIMEOUT = 60.0  # seconds without a byte before a download counts as stalled (pull resumes it)
CONTENT_RANGE = re.compile(r"bytes (\d{1,20})-(\d{1,20})/(\d{1,20}|\*)")


def destination(repo: str, name: str, root: Path | None = None) -> Path:
    """Where a file of `repo` lands in quanttui's models folder: OWNER/REPO/FILE, refused (HubError)
    unless the repo id and the name are plain and the path stays inside the folder once resolved."""
    top = root or models_dir()
    rel = f"{names.repo_id(repo)}/{names.file_name(name)}"
    try:
        dest = join_inside(top, rel)
        check(partial_path(dest), [top])
    except PathRefused as e:
        raise names.NameRefused(f"{clean(rel)}: leads outside the models folder ({e})") from None
    return dest


def _check_answer(resp: object, have: int, expected: int, name: str) -> int:
    """Where the body of a download answer starts in the file; HubError (nothing written yet) when
    its Content-Range or Content-Length does not fit the bytes asked for and the listed size."""
    status = resp.status_code  # type: ignore[attr-defined]
    hdrs = resp.headers  # type: ignore[attr-defined]
    start = 0
    if status == 206:
        cr = hdrs.get("Content-Range", "")
        m = CONTENT_RANGE.fullmatch(cr.strip())
        if not m or int(m[1]) != have or int(m[2]) != expected - 1 or m[3] not in ("*", str(expected)):
            raise HubError(
                f"{name}: the Hub answered the range {clean(cr[:80]) or '(none)'} for bytes "
                f"{have:,}-{expected - 1:,} of {expected:,}; refused, nothing appended"
            )
        start = have
    coding = hdrs.get("Content-Encoding", "identity").strip().lower()
    if coding not in ("", "identity"):  # asked for the bytes as they are: these are not the file's
        raise HubError(
            f"{name}: the Hub answered the file {clean(coding[:40])}-encoded; refused, nothing kept"
        )
    length = hdrs.get("Content-Length")
    if length is not None and (not length.isdigit() or int(length) != expected - start):
        raise HubError(
            f"{name}: the Hub announced {clean(length[:40])} bytes for bytes {start:,}-{expected - 1:,} "
            f"of the listed {expected:,}; refused, nothing written"
        )
    return start


def _check_space(folder: Path, needed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed + SPACE_MARGIN > free:
        raise HubError(f"not enough free space in {clean_path(folder)}: need {needed:,} bytes, {free:,} free")


def _hash_existing(path: Path) -> tuple[hashlib._Hash, int]:
    h = hashlib.sha256()
    n = 0
    if path.exists():
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                n += len(chunk)
    return h, n


def _fetch(
    url: str,
    part: Path,
    expected: int,
    done_before: int,
    total: int,
    name: str,
    progress: Progress | None,
    cancel: threading.Event,
) -> hashlib._Hash:
    h, have = _hash_existing(part)
    if have > expected:
        part.unlink()
        h, have = hashlib.sha256(), 0
    if have == expected:
        return h
    rng = {"Range": f"bytes={have}-"} if have else {}
    with client.stream("GET", url, seconds=None, extra=rng, read=READ_TIMEOUT, cancel=cancel) as (resp, _):
        if resp.status_code not in (200, 206):
            raise HubError(f"{name}: the Hub answered HTTP {resp.status_code}")
        start = _check_answer(resp, have, expected, name)
        mode = "ab"
        if start != have:  # the server sent the whole file: start over
            h, have, mode = hashlib.sha256(), 0, "wb"
        with open(part, mode) as fh:
            try:
                for chunk in resp.iter_raw():  # as it arrives: nothing received is lost on a drop
                    if cancel.is_set():
                        raise HubError(f"{name}: cancelled; {have:,} bytes kept to resume")
                    if len(chunk) > expected - have:
                        fh.flush()
                        fh.truncate(start)  # this answer is not the listed file: none of it is kept
                        raise HubError(
                            f"{name}: the Hub sent more than the listed {expected:,} bytes; refused, "
                            f"{start:,} bytes kept"
                        )
                    fh.write(chunk)
                    h.update(chunk)
                    have += len(chunk)
                    if progress:
                        progress(done_before + have, total, name)
            except OSError as e:
                if e.errno in NO_ROOM:
                    with contextlib.suppress(OSError):  # what is still buffered cannot go anywhere either
                        fh.close()
                    kept = part.stat().st_size  # resuming starts from what reached the disk
                    raise HubError(
                        f"{name}: no room to write ({os.strerror(e.errno)}); {kept:,} bytes kept to resume"
                    ) from None
                raise
            except Exception as e:  # httpx transport errors: the connection dropped mid-body
                if cancel.is_set():
                    raise HubError(f"{name}: cancelled; {have:,} bytes kept to resume") from None
                if type(e).__name__ == "ReadTimeout":
                    raise HubError(
                        f"{name}: the Hub sent nothing for {READ_TIMEOUT:g} s at {have:,} of {expected:,} "
                        "bytes; pull again to resume"
                    ) from None
                if type(e).__module__.startswith(("httpx", "httpcore")):
                    raise HubError(
                        f"{name}: the connection ended at {have:,} of {expected:,} bytes "
                        f"({type(e).__name__}); pull again to resume"
                    ) from None
                raise
    if have < expected:
        raise HubError(
            f"{name}: the connection ended at {have:,} of {expected:,} bytes; pull again to resume"
        )
    return h


def pull(
    repo: str,
    files: list[RemoteFile],
    revision: str = "main",
    *,
    root: Path | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    to: str = "library",
) -> list[Path]:
    """Download `files` (a variant) into OWNER/REPO/ under the models folder, or into the Hugging Face
    cache with `to="hf-cache"`; returns the final paths."""
    cancel = cancel or threading.Event()
    _validate(repo, files, revision)
    if not files:
        return []
    if to == "hf-cache":
        return _pull_hf_cache(repo, files, revision, progress, cancel)
    dests = [destination(repo, f.name, root) for f in files]  # the whole plan, before the first mkdir
    remaining = sum(
        f.size - (partial_path(d).stat().st_size if partial_path(d).exists() else 0)
        for f, d in zip(files, dests, strict=True)
        if not d.exists()
    )
    _check_space(dests[0].parent, max(remaining, 0))
    total = sum(f.size for f in files)
    done = 0
    for f, dest in zip(files, dests, strict=True):
        if dest.exists() and dest.stat().st_size == f.size:
            done += f.size
            continue
        dest = destination(repo, f.name, root)  # again: a link planted since the plan is refused too
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = partial_path(dest)
        url = file_url(repo, f.name, revision)
        digest = call(
            f.name,
            functools.partial(_fetch, url, part, f.size, done, total, clean(f.name), progress, cancel),
        )
        if f.sha256 and digest.hexdigest() != f.sha256:
            part.unlink(missing_ok=True)
            raise HubError(
                f"{clean(f.name)}: SHA-256 does not match the repo's ({digest.hexdigest()[:12]}… vs "
                f"{f.sha256[:12]}…): the download was corrupted and has been discarded"
            )
        destination(repo, f.name, root)
        os.replace(part, dest)
        done += f.size
        log_operation("download", repo=repo, revision=revision, file=f.name, path=str(dest), sha256=f.sha256)
    return dests


def _validate(repo: str, files: list[RemoteFile], revision: str) -> None:
    """Every name of a pull checked before anything is made: NameRefused (a HubError) otherwise."""
    names.repo_id(repo)
    names.revision(revision)
    for f in files:
        names.file_name(f.name)
        if not isinstance(f.size, int) or isinstance(f.size, bool) or f.size <= 0:
            raise names.NameRefused(f"{clean(f.name)}: no usable size listed")
        if f.sha256 is not None and names.sha256(f.sha256) is None:
            raise names.NameRefused(f"{clean(f.name)}: the listed SHA-256 is not one")


def _pull_hf_cache(
    repo: str, files: list[RemoteFile], revision: str, progress: Progress | None, cancel: threading.Event
) -> list[Path]:
    """Through huggingface_hub, so `hf cache` and llama.cpp see the files the usual way. It cannot resume
    across calls (it deletes its partial file on failure since 1.18); the SHA-256 is checked after."""
    from huggingface_hub import hf_hub_download

    from ..library.roots import hf_hub_cache
    from .client import endpoint

    cache = hf_hub_cache()
    _check_space(cache, sum(f.size for f in files))
    total, done, out = sum(f.size for f in files), 0, []
    client.install()  # before huggingface_hub's first request: limits and header checks
    for f in files:
        call(f.name, functools.partial(_preflight, repo, f.name, revision, cache))
        bar = _progress_bar(clean(f.name), f.size, done, total, progress, cancel)

        def fetch(f: RemoteFile = f, bar: type = bar) -> str:
            with guarded(None, cancel):  # a cancel wakes its reads; a HEAD's answer has a deadline
                return hf_hub_download(
                    repo, f.name, revision=revision, cache_dir=cache, endpoint=endpoint(), tqdm_class=bar
                )

        path = Path(call(f.name, fetch))
        try:
            check(path, [cache], follow=False)
            blob = check(path, [cache])
        except PathRefused as e:
            raise HubError(f"{clean(f.name)}: huggingface_hub put it outside its cache ({e})") from None
        if f.sha256 and sha256_file(blob) != f.sha256:
            path.unlink(missing_ok=True)
            blob.unlink(missing_ok=True)
            raise HubError(f"{clean(f.name)}: SHA-256 does not match the repo's: the download was discarded")
        done += f.size
        out.append(path)
        log_operation("download", repo=repo, revision=revision, file=f.name, path=str(path), to="hf-cache")
    return out


def _preflight(repo: str, name: str, revision: str, cache: Path) -> None:
    """One HEAD with quanttui's limits before hf_hub_download, which retries an unreachable or silent
    Hub for about 25 s when the file is not cached yet: this says so at once instead."""
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo, name, cache_dir=cache, revision=revision), str):
        return  # cached: huggingface_hub answers from the cache without retrying
    with client.stream("HEAD", file_url(repo, name, revision), seconds=client.DEADLINE):
        pass  # an error status is huggingface_hub's to say, as for a file already cached


def _progress_bar(
    name: str, size: int, base: int, total: int, progress: Progress | None, cancel: threading.Event
) -> type:
    """A silent tqdm for huggingface_hub that reports bytes to `progress`, raises on cancel and when
    more than the listed `size` arrives (huggingface_hub then deletes its partial file)."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class Bar(hf_tqdm):
        seen = 0

        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True
            # huggingface_hub's tqdm.__init__ is unannotated (tqdm itself ships no types)
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

        def update(self, n: float | None = 1) -> bool | None:
            if cancel.is_set():
                raise HubError(f"{name}: cancelled")
            Bar.seen += int(n or 0)
            if Bar.seen > size:
                raise HubError(f"{name}: the Hub sent more than the listed {size:,} bytes; refused")
            if progress:
                progress(base + Bar.seen, total, name)
            return None

    return Bar
