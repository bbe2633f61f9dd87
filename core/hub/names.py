"""Names that come from the Hub or the command line, validated before they become folders, files or URLs.

A repo id becomes the folder OWNER/REPO under the models folder, a file name the path below it, a
revision part of the Hugging Face cache's layout: each is refused unless it is plain (no absolute
path, `..`, backslash, control character), so no answer from a Hub can lead a write outside its box.
"""

from __future__ import annotations

import re

from ..pathgate import PathRefused, safe_relpath
from ..textsafe import clean
from .client import HubError

_REPO_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
SHA256 = re.compile(r"[0-9a-f]{64}")
COMMIT = re.compile(r"[0-9a-f]{40}")
MAX_REPO_ID = 96 * 2 + 1


class NameRefused(HubError):
    """A repo id, file name or revision quanttui will not use as a path or in a request."""


def repo_id(value: object) -> str:
    """`value` if it is OWNER/REPO with plain parts (letters, digits, `.`, `_`, `-`; no `..` or `--`)."""
    if not isinstance(value, str) or len(value) > MAX_REPO_ID:
        raise NameRefused(f"{clean(value)[:200]}: not a repository id (OWNER/REPO)")
    parts = value.split("/")
    if len(parts) != 2 or not all(_REPO_PART.fullmatch(p) for p in parts) or ".." in value or "--" in value:
        raise NameRefused(f"{clean(value)[:200]}: not a repository id (OWNER/REPO with plain names)")
    return value


def file_name(value: object) -> str:
    """`value` if it is a usable relative file name in a repository (see pathgate.safe_relpath)."""
    try:
        return safe_relpath(value)  # type: ignore[arg-type]
    except PathRefused as e:
        raise NameRefused(str(e)) from None


def revision(value: object) -> str:
    """`value` if it is a usable revision: a branch, tag or commit, also `refs/pr/N`."""
    try:
        return safe_relpath(value)  # type: ignore[arg-type]
    except PathRefused:
        raise NameRefused(f"{clean(value)[:200]}: not a usable revision") from None


def sha256(value: object) -> str | None:
    """A listed SHA-256 if it is 64 lowercase hex digits, else None."""
    return value if isinstance(value, str) and SHA256.fullmatch(value) else None


def commit(value: object) -> str | None:
    """A commit id if it is 40 lowercase hex digits, else None."""
    return value if isinstance(value, str) and COMMIT.fullmatch(value) else None
