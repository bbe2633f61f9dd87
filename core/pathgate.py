"""The one gate every write, move, link, mkdir and delete passes: a path must stay inside its tops.

Tops are the library roots (organize, dedupe) or the models folder (downloads). A path is judged
after resolving `..` and every symlink, also for paths that do not exist yet (their nearest existing
folder is resolved), so neither a crafted name nor a link planted in a root can lead outside. Plans
check every path with `check_all` before their first change. Names that come from outside (Hub file
names, Ollama digests) are validated here before they are joined to anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TypeGuard

from .errors import QuanttuiError
from .textsafe import clean, clean_path

OLLAMA_DIGEST = re.compile(r"sha256[:-][0-9a-f]{64}")
# Controls, characters Windows refuses, undecodable bytes, and invisible or reordering characters
# (zero-width, bidi, line separators) that would make a name read as another.
_BAD_NAME_CHARS = re.compile(
    '[\x00-\x1f\x7f-\x9f\\\\:*?"<>|\ud800-\udfff\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]'
)
MAX_NAME = 255  # bytes in one path component on common filesystems
MAX_REL = 1024


class PathRefused(QuanttuiError):
    """A path or name that would lead outside the allowed folders, or is not a safe name."""


def inside(path: str | os.PathLike[str], top: str | os.PathLike[str]) -> bool:
    """Whether `path` is `top` or below it; both are compared as given (resolve them first)."""
    p, t = os.fspath(path), os.fspath(top)
    try:
        return os.path.commonpath([p, t]) == t
    except ValueError:  # different drives, or one relative and one absolute
        return False


def resolve(path: str | os.PathLike[str], *, follow: bool = True) -> Path:
    """The real location of `path`: `..` and symlinks resolved, also where it does not exist yet.

    With follow=False the last component is not followed: a symlink is judged where it sits (removing
    or replacing a link touches the link, not its target).
    """
    p = Path(os.path.abspath(os.fspath(path)))
    if follow:
        return Path(os.path.realpath(p))
    return Path(os.path.realpath(p.parent)) / p.name


def top_of(
    path: str | os.PathLike[str], tops: Iterable[str | os.PathLike[str]], *, follow: bool = True
) -> Path:
    """The (resolved) top holding `path`; PathRefused when it is outside all of them."""
    real = resolve(path, follow=follow)
    for top in tops:
        real_top = Path(os.path.realpath(os.fspath(top)))
        if inside(real, real_top):
            return real_top
    outside_as_given = not any(inside(os.path.abspath(os.fspath(path)), os.path.abspath(t)) for t in tops)
    if outside_as_given:
        raise PathRefused(f"{clean_path(path)}: outside the library roots (see `quanttui roots`)")
    raise PathRefused(f"{clean_path(path)}: leads outside the library roots through a symlink or `..`")


def check(
    path: str | os.PathLike[str], tops: Iterable[str | os.PathLike[str]], *, follow: bool = True
) -> Path:
    """`path` resolved, after checking it is inside one of `tops`; PathRefused otherwise."""
    tops = list(tops)
    top_of(path, tops, follow=follow)
    return resolve(path, follow=follow)


def check_all(
    paths: Iterable[str | os.PathLike[str]], tops: Iterable[str | os.PathLike[str]], *, follow: bool = True
) -> list[Path]:
    """Every path of a plan checked before the plan changes anything; the first refusal raises."""
    tops = list(tops)
    return [check(p, tops, follow=follow) for p in paths]


def safe_relpath(name: str) -> str:
    """A relative name from outside (a Hub file path) validated: forward slashes between plain parts;
    no absolute path, drive, `..`, `.`, empty part, backslash or control character."""
    if not isinstance(name, str) or not name or len(name) > MAX_REL:
        raise PathRefused(f"{clean(name)!s}: not a usable file name")
    bad = _BAD_NAME_CHARS.search(name)
    if bad:
        raise PathRefused(
            f"{clean(name)}: a file name with a character quanttui refuses ({clean(bad.group())})"
        )
    if name.startswith("/"):
        raise PathRefused(f"{clean(name)}: an absolute path, not a file name in the repository")
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise PathRefused(f"{clean(name)}: a file name with an empty, `.` or `..` part")
        if len(part.encode("utf-8")) > MAX_NAME:
            raise PathRefused(f"{clean(name)}: a part of the name is longer than {MAX_NAME} bytes")
    return name


def join_inside(top: str | os.PathLike[str], name: str) -> Path:
    """`top / name` for a name from outside, refused unless it stays inside `top` once resolved."""
    path = Path(top, safe_relpath(name))
    check(path, [top])
    return path


def valid_ollama_digest(digest: object) -> TypeGuard[str]:
    """Whether a manifest's layer digest is `sha256:` (or `sha256-`) and 64 lowercase hex digits."""
    return isinstance(digest, str) and OLLAMA_DIGEST.fullmatch(digest) is not None
