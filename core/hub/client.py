"""The Hub connection: endpoint, session and auth headers from huggingface_hub, limits, errors as one line.

HF_ENDPOINT is read at each call (huggingface_hub reads it once at import). The user's token comes
from huggingface_hub's own login or HF_TOKEN and is only ever put in request headers. Every request
made through huggingface_hub's shared session gets a connect and a read timeout (its own calls pass
none), and every answer's ETag and X-Repo-Commit are checked before huggingface_hub turns them into
folder and file names in its cache.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import QuanttuiError
from ..textsafe import clean

T = TypeVar("T")
DEFAULT_ENDPOINT = "https://huggingface.co"
CONNECT_TIMEOUT = 5.0  # seconds to open a connection: an unreachable Hub fails fast
READ_TIMEOUT = 30.0  # seconds without a byte from an API answer (model info, search, range reads)
ETAG = re.compile(r"[!#-\[\]-~]{1,256}")  # printable, no space, quote, slash or backslash: one path part
COMMIT = re.compile(r"[0-9a-f]{40}")
_installed = threading.Lock()
_done = False


class HubError(QuanttuiError):
    """A Hub request that failed; str() is one line, never containing the token."""


class HubUnreachable(HubError):
    """The Hub could not be reached at all (offline, DNS, refused): said at once, not after retries."""


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def timeout() -> Any:
    """The connect and read limits for one API request (read at each call, so tests can shrink them)."""
    import httpx2

    return httpx2.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)


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
    """Put the timeout and header checks on every session huggingface_hub makes (once per process)."""
    global _done
    if _done:
        return
    with _installed:
        if _done:
            return
        from huggingface_hub import close_session, set_client_factory
        from huggingface_hub.utils import _http

        base = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) or _http.default_client_factory

        def factory() -> Any:
            client = base()
            hooks = client.event_hooks
            client.event_hooks = {
                "request": [*hooks.get("request", []), _fill_timeouts],
                "response": [*hooks.get("response", []), _check_names],
            }
            return client

        set_client_factory(factory)
        close_session()
        _done = True


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


def get_json(path: str, params: dict[str, Any] | list[tuple[str, Any]] | None = None) -> Any:
    """One GET of a Hub API path with the limits, no retries; the decoded JSON."""
    from huggingface_hub.utils import hf_raise_for_status

    r = session().get(f"{endpoint()}{path}", params=params, headers=headers(), timeout=timeout())
    hf_raise_for_status(r)
    return r.json()


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
