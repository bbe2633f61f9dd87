"""Human-readable sizes and counts, shared by the CLI and the screens."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "M": 1000**2,
    "MB": 1000**2,
    "G": 1000**3,
    "GB": 1000**3,
    "T": 1000**4,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}


def size(n: int | None) -> str:
    """Bytes in binary units, as llama.cpp and most download pages show them."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{n} B"


def params(n: int | None) -> str:
    """Parameter counts the way model names spell them: 3.2M, 8.03B."""
    if not n:
        return "?"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.2f}".rstrip("0").rstrip(".") + suffix
    return str(n)


def parse_size(text: str) -> int:
    """'24GiB' -> bytes; decimal (GB) and binary (GiB) units. Raises ValueError with a one-line reason."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"cannot read size {text!r} (try 24GiB, 8GB or 512MiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def plural(n: int, word: str) -> str:
    """`n word` with an `s` unless n is 1: "1 file", "3 models"."""
    return f"{n} {word}{'' if n == 1 else 's'}"
