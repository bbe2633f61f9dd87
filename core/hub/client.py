"""The Hub connection: endpoint, session and auth headers from huggingface_hub, limits, errors as one line.

HF_ENDPOINT is read at each call (huggingface_hub reads it once at import). The user's token comes
from huggingface_hub's own login or HF_TOKEN and is only ever put in request headers. Every request
made through huggingface_hub's shared session gets a connect and a read timeout (its own calls pass
none), and every answer's ETag and X-Repo-Commit are checked before huggingface_hub turns them into
folder and file names in its cache.

quanttui's own API calls (search, model info, header range reads, the HEAD before a download) go through
`stream()`: a total deadline on top of the read timeout (guard.py), so an answer dripped a byte at a
time ends too; a cancel that wakes a blocked read; and bodies read as they arrive, decoded a piece at a
time, refused once past a size (`read_body`), so a small gzip bomb never becomes gigabytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..errors import QuanttuiError
from ..textsafe import clean
from .errors import HubError, HubUnreachable, Stopped
from .guard import Guard, guarded, on_request

__all__ = ["HubError", "HubUnreachable", "Stopped"]

T = TypeVar("T")
DEFAULT_ENDPOINT = "https://huggingface.co"
CONNECT_TIMEOUT = 5.0  # seconds to open a connection: an unreachable Hub fails fast
READ_TIMEOUT = 30.0  # seconds without a byte from an API answer (model info, search, range reads)
DEADLINE = 60.0  # seconds for a whole API answer (search, model info, a HEAD); range reads add MIN_RATE
MIN_RATE = 256 << 10  # bytes per second: a range read of N bytes may take DEADLINE + N / MIN_RATE
MAX_JSON = 32 << 20  # decoded bytes of one JSON answer (a model info of 100,000 files is about 20 MiB)
MAX_JSON_VALUES = 1 << 20  # JSON values in one answer: 32 MiB of `{},` would be 11 million objects
MAX_ERROR_BODY = 64 << 10  # bytes of an error answer read for its message
PIECE = 1 << 20  # bytes decoded at a time
ETAG = re.compile(r"[!#-\[\]-~]{1,256}")  # printable, no space, quote, slash or backslash: one path part
COMMIT = re.compile(r"[0-9a-f]{40}")
_installed = threading.Lock()
_done = threading.Event()


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def _fill_timeouts(request: Any) -> None:
    """A request hook: limits the request where its caller set none (huggingface_hub passes None)."""
    given = request.extensions.get("timeout") or {}
    request.extensions = {
        **request.extensions,
        "timeout": {
            "connect": given.get("connect") or CONNECT_TIMEOUT,
            "read": given.get("read") or READ_TIMEOUT,
            "write": given.get("write") or READ_TIMEOUT,
            "pool": given.get("pool") or READ_TIMEOUT,
        },
    }


def _check_names(response: Any) -> None:
    """A response hook: the headers huggingface_hub makes path parts of must be plain tokens."""
    for key, pattern in (("ETag", ETAG), ("X-Linked-Etag", ETAG), ("X-Repo-Commit", COMMIT)):
        value = response.headers.get(key)
        if value is None:
            continue
        bare = value[2:] if value.startswith("W/") else value
        bare = bare.strip('"')
        if not pattern.fullmatch(bare) or bare in (".", "..") or "/" in bare:
            raise HubError(f"the Hub answered a {key} quanttui refuses ({clean(value[:80])})")


def install() -> None:
    """Put the timeouts, the guard (guard.on_request) and the header checks on every session
    huggingface_hub makes (once per process)."""
    if _done.is_set():
        return
    with _installed:
        if _done.is_set():
            return
        from huggingface_hub import close_session, set_client_factory
        from huggingface_hub.utils import _http

        base = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) or _http.default_client_factory

        def factory() -> Any:
            client = base()
            hooks = client.event_hooks
            client.event_hooks = {
                "request": [*hooks.get("request", []), _fill_timeouts, on_request],
                "response": [*hooks.get("response", []), _check_names],
            }
            return client

        set_client_factory(factory)
        close_session()
        _done.set()


def api() -> Any:
    from huggingface_hub import HfApi

    install()
    return HfApi(endpoint=endpoint())


def headers() -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    return build_hf_headers(library_name="quanttui")


def session() -> Any:
    from huggingface_hub import get_session

    install()
    return get_session()


def file_url(repo: str, filename: str, revision: str = "main") -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo, filename, revision=revision, endpoint=endpoint())


def deadline_for(nbytes: int) -> float:
    """Seconds for an answer of `nbytes`: DEADLINE, plus time for the bytes at MIN_RATE."""
    return DEADLINE + nbytes / MIN_RATE


@contextlib.contextmanager
def stream(
    method: str,
    url: str,
    *,
    seconds: float | None,
    params: Any = None,
    accept: str = "identity",
    extra: dict[str, str] | None = None,
    read: float | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[Any, Guard]]:
    """One request on huggingface_hub's session, its answer not read yet: a connect and a read timeout
    (`read`, default READ_TIMEOUT), a total deadline of `seconds` (None: none, as for a model body),
    stopped by `cancel` (default: guard.cancel_on's). Yields the response and its guard; a deadline or
    cancel is Stopped. `accept` is the Accept-Encoding: "identity" wherever bytes are counted."""
    import httpx2

    limits = httpx2.Timeout(read if read is not None else READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    hdrs = {**headers(), "Accept-Encoding": accept, **(extra or {})}
    with (
        guarded(seconds, cancel) as guard,
        session().stream(
            method, url, params=params, headers=hdrs, timeout=limits, follow_redirects=True
        ) as resp,
    ):
        yield resp, guard


class _Decoder:
    """A body decoded a piece at a time (identity, gzip or deflate), never past `limit` bytes received or
    decoded: past it, HubError, or with `truncate` the first `limit` bytes."""

    def __init__(self, encoding: str, limit: int, truncate: bool = False) -> None:
        parts = (p.strip().lower() for p in encoding.split(","))
        codings = [c for c in parts if c not in ("", "identity")]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise HubError(f"the Hub answered in an encoding quanttui does not read ({clean(encoding[:40])})")
        self.coding = codings[0] if codings else None
        wbits = 16 + zlib.MAX_WBITS if self.coding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self.z = zlib.decompressobj(wbits) if self.coding else None
        self.limit, self.truncate = limit, truncate
        self.received, self.out, self.full = 0, bytearray(), False

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        if self.z is None:
            self._add(data)
            return
        while data and not self.full:
            room = self.limit - len(self.out)
            try:  # a piece at a time, stopping one byte past the room: a bomb is never unpacked
                piece = self.z.decompress(data, min(room + 1, PIECE))
            except zlib.error:
                if self.coding != "deflate" or self.out or self.received != len(data):
                    raise HubError(f"the Hub's answer is damaged {self.coding} data") from None
                self.z = zlib.decompressobj(-zlib.MAX_WBITS)  # "deflate" sent raw, as some servers do
                self.coding = "raw deflate"
                continue
            data = self.z.unconsumed_tail
            self._add(piece)
        if self.received > self.limit:
            self._over()

    def _add(self, piece: bytes) -> None:
        room = self.limit - len(self.out)
        self.out += piece[:room] if len(piece) > room else piece
        if len(piece) > room:
            self._over()

    def _over(self) -> None:
        self.full = True
        if not self.truncate:
            raise HubError(f"the Hub's answer is larger than {self.limit:,} bytes; refused")

    def finish(self) -> bytearray:
        if self.z is not None and not self.z.eof and not self.full:
            raise HubError(f"the Hub's answer ends in the middle of its {self.coding} data")
        return self.out  # not copied: at MAX_JSON, a copy is another 32 MiB


def read_body(resp: Any, guard: Guard, limit: int, *, truncate: bool = False) -> bytearray:
    """The body of a `stream()` answer, read and decoded as it arrives, at most `limit` bytes (see
    _Decoder); Stopped at the deadline or on cancel."""
    decoder = _Decoder(resp.headers.get("Content-Encoding", ""), limit, truncate)
    for chunk in resp.iter_raw():
        guard.check()
        decoder.feed(chunk)
        if decoder.full:
            break
    return decoder.finish()


def raise_for_status(resp: Any, guard: Guard) -> None:
    """huggingface_hub's error for an error answer (no such repository, file, revision...), judged from
    its headers and at most MAX_ERROR_BODY bytes of its body."""
    if resp.status_code < 400:
        return
    import httpx2
    from huggingface_hub.utils import hf_raise_for_status

    try:
        body = read_body(resp, guard, MAX_ERROR_BODY, truncate=True)
    except Stopped:
        raise
    except HubError:
        body = bytearray()
    skip = ("content-encoding", "content-length", "transfer-encoding")
    kept = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in skip]
    answer = httpx2.Response(resp.status_code, headers=kept, content=bytes(body), request=resp.request)
    hf_raise_for_status(answer)


def parse_json(data: bytes | bytearray) -> Any:
    """JSON from a Hub answer; ValueError where it is not JSON, nested too deep or has more than
    MAX_JSON_VALUES values (counted from the bytes first, so the objects are never made)."""
    values = sum(data.count(c) for c in (b",", b":", b"[", b"{"))  # an upper bound: strings count too
    if values > MAX_JSON_VALUES:
        raise HubError(f"the Hub's answer holds more than {MAX_JSON_VALUES:,} JSON values; refused")
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deep") from None


def get_json(path: str, params: dict[str, Any] | list[tuple[str, Any]] | None = None) -> Any:
    """One GET of a Hub API path with the limits (DEADLINE, MAX_JSON), no retries; the decoded JSON."""
    url = f"{endpoint()}{path}"
    with stream("GET", url, params=params, seconds=DEADLINE, accept="gzip, deflate") as (resp, guard):
        raise_for_status(resp, guard)
        data = read_body(resp, guard, MAX_JSON)
    return parse_json(data)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return clean(text.splitlines()[0][:200]) if text else "failed"


def network_error(what: str, e: BaseException) -> HubError:
    """The one line for an httpx transport error: unreachable, silent, or dropped."""
    kind = type(e).__name__
    if kind in ("ConnectError", "ConnectTimeout", "ProxyError", "UnsupportedProtocol"):
        return HubUnreachable(f"{what}: cannot reach the Hub at {clean(endpoint())}: offline? ({kind})")
    if kind in ("ReadTimeout", "WriteTimeout", "PoolTimeout"):
        return HubError(f"{what}: the Hub sent nothing for {READ_TIMEOUT:g} s ({kind})")
    return HubError(f"{what}: network error ({kind})")


def call(what: str, fn: Callable[[], T]) -> T:
    """Run a Hub call, turning every failure (HTTP, network, bad JSON, a fault inside huggingface_hub)
    into a one-line HubError; `what` is cleaned here."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    what = clean(what)
    try:
        return fn()
    except QuanttuiError as e:
        if str(e).startswith(what):
            raise
        raise type(e)(f"{what}: {e}") from None
    except RepositoryNotFoundError:
        raise HubError(f"{what}: no such repository (or it is private and you are not logged in)") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise HubUnreachable(f"{what}: cannot reach the Hub at {clean(endpoint())}: offline?") from None
    except EntryNotFoundError:
        raise HubError(f"{what}: no such file in the repository") from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", "?")
        raise HubError(f"{what}: the Hub answered HTTP {status}") from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        # JSON that is not JSON, wrong types or shapes, or a fault inside huggingface_hub.
        raise HubError(f"{what}: the Hub answered something unreadable ({type(e).__name__})") from None
    except Exception as e:
        if type(e).__module__.startswith(("httpx", "httpcore")):
            raise network_error(what, e) from None
        if isinstance(e, OSError):
            raise HubError(f"{what}: {type(e).__name__}: {_first_line(e)}") from None
        raise HubError(f"{what}: unexpected error in the Hub client ({type(e).__name__})") from None
