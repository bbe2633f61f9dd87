"""The Hub connection: endpoint, session and auth headers from huggingface_hub, errors as one line.

HF_ENDPOINT is read at each call (huggingface_hub reads it once at import). The user's token comes
from huggingface_hub's own login or HF_TOKEN and is only ever put in request headers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import QuanttuiError

T = TypeVar("T")
DEFAULT_ENDPOINT = "https://huggingface.co"


class HubError(QuanttuiError):
    """A Hub request that failed; str() is one line, never containing the token."""


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def api() -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint())


def headers() -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    return build_hf_headers(library_name="quanttui")


def session() -> Any:
    from huggingface_hub import get_session

    return get_session()


def file_url(repo: str, filename: str, revision: str = "main") -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo, filename, revision=revision, endpoint=endpoint())


def call(what: str, fn: Callable[[], T]) -> T:
    """Run a Hub call, turning every failure (HTTP, network, bad JSON) into a one-line HubError."""
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    try:
        return fn()
    except RepositoryNotFoundError:
        raise HubError(f"{what}: no such repository (or it is private and you are not logged in)") from None
    except EntryNotFoundError:
        raise HubError(f"{what}: no such file in the repository") from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", "?")
        raise HubError(f"{what}: the Hub answered HTTP {status}") from None
    except ValueError as e:  # JSON that is not JSON, unexpected shapes
        raise HubError(f"{what}: the Hub answered something unreadable ({type(e).__name__})") from None
    except (OSError, KeyError, TypeError) as e:
        raise HubError(
            f"{what}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'failed'}"
        ) from None
    except Exception as e:  # httpx transport errors (timeouts, dropped connections)
        if type(e).__module__.startswith(("httpx", "httpcore")):
            raise HubError(f"{what}: network error ({type(e).__name__})") from None
        raise
