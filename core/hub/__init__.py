"""The Hub: search GGUF repos, list a repo's quants, read remote headers, download safely."""

from __future__ import annotations

from ..organize.move import partial_path
from .client import HubError, HubUnreachable, Stopped, endpoint
from .download import destination, pull
from .guard import cancel_on
from .names import NameRefused
from .remote import FetchStats, fetch_header, parse_hf_path, remote_facts
from .search import Refused, RemoteFile, RepoHit, RepoListing, Variant, repo_variants, search

__all__ = [
    "FetchStats",
    "HubError",
    "HubUnreachable",
    "NameRefused",
    "Refused",
    "RemoteFile",
    "RepoHit",
    "RepoListing",
    "Stopped",
    "Variant",
    "cancel_on",
    "destination",
    "endpoint",
    "fetch_header",
    "parse_hf_path",
    "partial_path",
    "pull",
    "remote_facts",
    "repo_variants",
    "search",
]
