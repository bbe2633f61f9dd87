"""Download a variant (every part of a split set) with progress, cancel, resume and SHA-256 checks.

Bytes go to a hidden `.FILE.partial` next to the destination, so a partial file never shows as a
model. A later pull resumes from the bytes on disk with a Range request (huggingface_hub deletes
its partial file on failure, so it cannot resume across calls). The finished file is checked against
the repo's SHA-256 before it is renamed into place.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..organize.move import partial_path, sha256_file
from ..organize.safety import log_operation
from ..paths import models_dir
from .client import HubError, call, file_url, headers, session
from .search import RemoteFile

Progress = Callable[[int, int, str], None]  # bytes done (all files), bytes total, current file
CHUNK = 1 << 20
SPACE_MARGIN = 64 << 20
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota reached, file size limit
READ_TIMEOUT = 60.0  # seconds without a byte before a download counts as stalled (pull resumes it)


def destination(repo: str, name: str, root: Path | None = None) -> Path:
    """Where a file of `repo` lands in quanttui's models folder: OWNER/REPO/FILE."""
    return (root or models_dir()) / repo / name


def _check_space(folder: Path, needed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed + SPACE_MARGIN > free:
        raise HubError(f"not enough free space in {folder}: need {needed:,} bytes, {free:,} free")


def _hash_existing(path: Path) -> tuple[hashlib._Hash, int]:
    h = hashlib.sha256()
    n = 0
    if path.exists():
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                n += len(chunk)
    return h, n


@contextlib.contextmanager
def _unblock_on_cancel(cancel: threading.Event, resp: Any) -> Iterator[None]:
    """While reading `resp`, a cancel shuts its socket down, which wakes a read blocked on a stalled
    connection at once (closing the response from another thread did not: it waited 20 s, until the
    test server's stall ended)."""
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if cancel.wait(0.2):
                stream = resp.extensions.get("network_stream")
                sock = stream.get_extra_info("socket") if stream is not None else None
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return

    watcher = threading.Thread(target=watch, name="download-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()


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
    hdrs = {**headers(), **({"Range": f"bytes={have}-"} if have else {})}
    with session().stream("GET", url, headers=hdrs, follow_redirects=True, timeout=READ_TIMEOUT) as resp:
        if resp.status_code not in (200, 206):
            raise HubError(f"{name}: the Hub answered HTTP {resp.status_code}")
        mode = "ab"
        if resp.status_code == 200 and have:  # the server ignored Range: start over
            h, have, mode = hashlib.sha256(), 0, "wb"
        with open(part, mode) as fh, _unblock_on_cancel(cancel, resp):
            try:
                for chunk in resp.iter_bytes():  # as it arrives: nothing received is lost on a drop
                    if cancel.is_set():
                        raise HubError(f"{name}: cancelled; {have:,} bytes kept to resume")
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
    if to == "hf-cache":
        return _pull_hf_cache(repo, files, revision, progress, cancel)
    dests = [destination(repo, f.name, root) for f in files]
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
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = partial_path(dest)
        url = file_url(repo, f.name, revision)
        digest = call(
            f.name,
            lambda f=f, part=part, url=url, before=done: _fetch(
                url, part, f.size, before, total, f.name, progress, cancel
            ),
        )
        if f.sha256 and digest.hexdigest() != f.sha256:
            part.unlink(missing_ok=True)
            raise HubError(
                f"{f.name}: SHA-256 does not match the repo's ({digest.hexdigest()[:12]}… vs "
                f"{f.sha256[:12]}…): the download was corrupted and has been discarded"
            )
        os.replace(part, dest)
        done += f.size
        log_operation("download", repo=repo, revision=revision, file=f.name, path=str(dest), sha256=f.sha256)
    return dests


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
    for f in files:
        bar = _progress_bar(f.name, done, total, progress, cancel)
        path = Path(
            call(
                f.name,
                lambda f=f, bar=bar: hf_hub_download(
                    repo, f.name, revision=revision, cache_dir=cache, endpoint=endpoint(), tqdm_class=bar
                ),
            )
        )
        blob = Path(os.path.realpath(path))
        if f.sha256 and sha256_file(blob) != f.sha256:
            path.unlink(missing_ok=True)
            blob.unlink(missing_ok=True)
            raise HubError(f"{f.name}: SHA-256 does not match the repo's: the download was discarded")
        done += f.size
        out.append(path)
        log_operation("download", repo=repo, revision=revision, file=f.name, path=str(path), to="hf-cache")
    return out


def _progress_bar(
    name: str, base: int, total: int, progress: Progress | None, cancel: threading.Event
) -> type:
    """A silent tqdm for huggingface_hub that reports bytes to `progress` and raises on cancel."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class Bar(hf_tqdm):
        seen = 0

        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if cancel.is_set():
                raise HubError(f"{name}: cancelled")
            Bar.seen += int(n or 0)
            if progress:
                progress(base + Bar.seen, total, name)
            return None

    return Bar
