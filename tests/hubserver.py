"""A Hub-compatible HTTP server on 127.0.0.1 for tests and bench/: search, model info, tree, resolve
with HEAD, ETag, X-Repo-Commit, Content-Length and Range. It can misbehave on request, also as an
adversary: hostile file names and repo ids are plain data in its repos (any name is listed as given),
and `Faults` sends wrong Content-Ranges, overlong bodies, junk JSON, hostile headers, stalls, answers
dripped a byte at a time and gzip bombs."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import socket
import struct
import sys
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class HubRepo:
    repo_id: str
    files: dict[str, Path]
    sha: str = "0123456789abcdef0123456789abcdef01234567"
    downloads: int = 0
    likes: int = 0
    last_modified: str = "2026-11-01T00:00:00.000Z"
    gguf: dict[str, Any] = field(default_factory=dict)
    raw_siblings: list[Any] = field(default_factory=list)  # extra entries listed as given (any JSON)
    _hashes: dict[str, str] = field(default_factory=dict)

    def sha256(self, name: str) -> str:
        if name not in self._hashes:
            self._hashes[name] = hashlib.sha256(self.files[name].read_bytes()).hexdigest()
        return self._hashes[name]


@dataclass
class Faults:
    """What to do wrong. Applies to every matching request until cleared."""

    status: int | None = None  # answer every request with this status
    garbage_json: bool = False  # API answers that are not JSON
    drop_after: int | None = None  # close a file body after this many bytes
    stall: float = 0.0  # seconds to wait before answering (or, with stall_after, mid-body)
    stall_after: int | None = None  # send this many bytes of a file body, then go quiet for `stall`
    corrupt: bool = False  # flip bytes in file bodies
    only: str | None = None  # apply these faults only to request paths containing this text
    overlong: int = 0  # send this many bytes past a file body (with no Content-Length, then close)
    announce_overlong: bool = False  # with overlong: announce the longer length in Content-Length
    range_shift: int = 0  # a 206 whose Content-Range and body start this many bytes after the asked start
    range_header: str | None = None  # a 206 carrying this Content-Range, whatever was asked
    api_json: Any = None  # answer API requests with this JSON instead of the real answer
    headers: dict[str, str] = field(default_factory=dict)  # extra headers on every answer
    drip: float = 0.0  # send answers one byte every `drip` seconds, status line and headers included
    drip_body: bool = False  # with drip: the headers at once, then the body a byte at a time
    gzip_bomb: int = 0  # answer with `[`, this many spaces and `]`, gzip-encoded (about 1,000 to 1)

    def applies(self, path: str) -> bool:
        return self.only is None or self.only in path


@functools.lru_cache(maxsize=4)
def gzip_bomb(spaces: int) -> bytes:
    """A valid gzip of `[`, `spaces` spaces (rounded down to whole MiB) and `]`, built without holding
    the expanded text: after a full flush deflate starts afresh, so one compressed MiB is repeated."""
    mib = b" " * (1 << 20)
    n = spaces >> 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(b"[") + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.compress(b"]") + c.flush(zlib.Z_FINISH)
    crc = zlib.crc32(b"[")
    for _ in range(n):
        crc = zlib.crc32(mib, crc)
    crc = zlib.crc32(b"]", crc)
    size = (2 + (n << 20)) & 0xFFFFFFFF
    gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return gzip_header + head + block * n + tail + struct.pack("<II", crc, size)


class _Drip:
    """The handler's output, sent a byte every `every` seconds once `active`, until the client hangs up
    (the write fails) or the server stops."""

    def __init__(self, out: Any, every: float, server: HubServer, active: bool) -> None:
        self.out, self.every, self.server, self.active = out, every, server, active

    def write(self, data: bytes) -> int:
        if not self.active:
            return self.out.write(data)
        for i in range(len(data)):
            if self.server.quiet.wait(self.every):
                raise ConnectionAbortedError("the server is stopping")
            try:
                self.out.write(data[i : i + 1])
            except OSError:
                self.server.hangups += 1
                raise
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.out, name)


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a refused answer, a timeout) is expected here, not an error to print."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class HubServer:
    def __init__(self, repos: list[HubRepo]) -> None:
        self.repos = {r.repo_id: r for r in repos}
        self.faults = Faults()
        self.quiet = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.hangups = 0  # dripped answers whose client hung up (a write failed)
        self.httpd = _QuietServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> HubServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop at once: serve_forever looks at its stop flag only when its select() returns, so a
        connection that sends nothing wakes it (else it would wait out its poll interval)."""
        self.quiet.set()  # a handler holding a stalled connection lets go
        stopper = threading.Thread(target=self.httpd.shutdown, daemon=True)
        stopper.start()
        while stopper.is_alive() and self.thread.is_alive():
            with contextlib.suppress(OSError), socket.create_connection(self.httpd.server_address, 1):
                pass
            stopper.join(0.01)
        stopper.join()
        self.httpd.server_close()

    def bytes_sent(self, path_part: str = "/resolve/") -> int:
        return sum(r["sent"] for r in self.requests if path_part in r["path"])

    def _info(self, repo: HubRepo, files_metadata: bool) -> dict[str, Any]:
        siblings: list[Any] = []
        for name, path in sorted(repo.files.items()):
            s: dict[str, Any] = {"rfilename": name}
            if files_metadata:
                size = path.stat().st_size
                s |= {
                    "size": size,
                    "blobId": repo.sha256(name)[:40],
                    "lfs": {"size": size, "sha256": repo.sha256(name), "pointerSize": 134},
                }
            siblings.append(s)
        siblings += repo.raw_siblings
        return {
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": repo.sha,
            "downloads": repo.downloads,
            "likes": repo.likes,
            "lastModified": repo.last_modified,
            "tags": ["gguf"],
            "gguf": repo.gguf,
            "private": False,
            "gated": False,
            "siblings": siblings,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def faults(self) -> Faults:
                """The faults for this request: none where `only` does not match its path."""
                f = server.faults
                return f if f.applies(unquote(urlparse(self.path).path)) else Faults()

            def end_headers(self) -> None:
                super().end_headers()
                if isinstance(self.wfile, _Drip):
                    self.wfile.active = True  # drip_body: from here on, a byte at a time

            def _json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
                f = self.faults()
                if f.api_json is not None and status == 200:
                    data = f.api_json
                body = b"<html>oops" if f.garbage_json else json.dumps(data).encode()
                if f.gzip_bomb:
                    body = gzip_bomb(f.gzip_bomb)
                    headers = {**(headers or {}), "Content-Encoding": "gzip"}
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in {**(headers or {}), **f.headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                server.requests[-1]["sent"] = len(body)

            def _not_found(self, code: str) -> None:
                self._json({"error": code}, 404, {"X-Error-Code": code, "X-Error-Message": code})

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                url = urlparse(self.path)
                path = unquote(url.path)
                server.requests.append(
                    {
                        "method": self.command,
                        "path": path,
                        "range": self.headers.get("Range"),
                        "auth": self.headers.get("Authorization"),
                        "sent": 0,
                    }
                )
                f = self.faults()
                if f.drip:
                    self.wfile = _Drip(self.wfile, f.drip, server, active=not f.drip_body)
                if f.stall and f.stall_after is None:
                    server.quiet.wait(f.stall)  # nothing sent; stop() lets go
                if f.status:
                    self._json({"error": "fault"}, f.status)
                    return
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) == 2:
                    self._search(parse_qs(url.query))
                elif parts[:2] == ["api", "models"] and len(parts) >= 4:
                    repo = server.repos.get("/".join(parts[2:4]))
                    if repo is None:
                        self._not_found("RepoNotFound")
                    elif len(parts) >= 6 and parts[4] == "tree":
                        self._json(
                            [
                                {
                                    "type": "file",
                                    "path": n,
                                    "size": p.stat().st_size,
                                    "oid": repo.sha256(n)[:40],
                                    "lfs": {
                                        "oid": repo.sha256(n),
                                        "size": p.stat().st_size,
                                        "pointerSize": 134,
                                    },
                                }
                                for n, p in sorted(repo.files.items())
                            ]
                            + repo.raw_siblings
                        )
                    else:
                        self._json(server._info(repo, "blobs=True" in url.query or "blobs=true" in url.query))
                elif len(parts) >= 5 and parts[2] == "resolve":
                    repo = server.repos.get("/".join(parts[:2]))
                    name = "/".join(parts[4:])
                    if repo is None:
                        self._not_found("RepoNotFound")
                    elif name not in repo.files:
                        self._not_found("EntryNotFound")
                    else:
                        self._file(repo, name)
                else:
                    self._not_found("RepoNotFound")

            def _search(self, q: dict[str, list[str]]) -> None:
                term = (q.get("search") or [""])[0].lower()
                hits = [r for r in server.repos.values() if term in r.repo_id.lower()]
                sort = (q.get("sort") or ["downloads"])[0]
                key = {"likes": lambda r: r.likes, "lastModified": lambda r: r.last_modified}.get(
                    sort, lambda r: r.downloads
                )
                hits.sort(key=key, reverse=True)
                limit = int((q.get("limit") or ["1000"])[0])
                self._json([server._info(r, False) | {"siblings": None} for r in hits[:limit]])

            def _file(self, repo: HubRepo, name: str) -> None:
                f = self.faults()
                data = repo.files[name].read_bytes()
                size = len(data)
                start, end, status = 0, size - 1, 200
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    a, _, b = rng[6:].partition("-")
                    start = int(a) if a else 0
                    end = min(int(b), size - 1) if b else size - 1
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                    start = min(start + f.range_shift, end)
                body = data[start : end + 1]
                if f.corrupt:
                    body = bytes(b ^ 0x5A for b in body)
                if f.gzip_bomb:
                    body = gzip_bomb(f.gzip_bomb)
                junk = b"\xee" * f.overlong
                self.send_response(status)
                if not f.overlong:
                    self.send_header("Content-Length", str(len(body)))
                elif f.announce_overlong:
                    self.send_header("Content-Length", str(len(body) + len(junk)))
                else:
                    self.send_header("Connection", "close")  # the body ends when the connection does
                hdrs = {"Accept-Ranges": "bytes", "ETag": f'"{repo.sha256(name)}"', "X-Repo-Commit": repo.sha}
                if f.gzip_bomb:
                    hdrs["Content-Encoding"] = "gzip"
                if status == 206:
                    hdrs["Content-Range"] = f.range_header or f"bytes {start}-{end}/{size}"
                for k, v in {**hdrs, **f.headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command == "HEAD":
                    return
                if f.drop_after is not None:
                    body = body[: f.drop_after]
                    self.wfile.write(body)
                    server.requests[-1]["sent"] = len(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if f.stall_after is not None:
                    self.wfile.write(body[: f.stall_after])
                    self.wfile.flush()
                    server.quiet.wait(f.stall)  # connection open, nothing sent
                    body = body[f.stall_after :]
                sent = 0
                try:
                    self.wfile.write(body)
                    sent = len(body)
                    for i in range(0, len(junk), 1 << 16):  # as long as the client keeps reading
                        piece = junk[i : i + (1 << 16)]
                        self.wfile.write(piece)
                        sent += len(piece)
                except OSError:  # the client hung up: it stopped reading
                    self.close_connection = True
                server.requests[-1]["sent"] = sent
                if f.overlong:
                    self.close_connection = True

        return Handler
