"""The Hub: search GGUF repos, list a repo's quants, read remote headers, download safely."""

from __future__ import annotations

from .client import HubError, endpoint
from .download import destination, partial_path, pull
from .remote import FetchStats, fetch_header, parse_hf_path, remote_facts
from .search import RemoteFile, RepoHit, RepoListing, Variant, repo_variants, search

__all__ = [
    "FetchStats",
    "HubError",
    "RemoteFile",
    "RepoHit",
    "RepoListing",
    "Variant",
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
