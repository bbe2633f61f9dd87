"""Text from outside (file names, GGUF metadata, Hub ids, model output) made safe to show.

Such text may hold ESC/OSC sequences that retitle the window, write the clipboard or plant links,
bidi overrides that reorder what a confirmation says, and bytes that are not UTF-8 (surrogate-escaped
file names). `clean` turns every one of those into visible escapes, so a terminal never acts on them
and a strict UTF-8 stream can always write the result. Markup is a display concern: screens wrap the
cleaned text in a rich Text (tui/safe.py) so it is never parsed as markup. `--json` keeps exact values.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, C1 controls, lone surrogates (undecodable file-name bytes),
# bidi embeddings/overrides/isolates, zero-width and line/paragraph separators.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)
_UNSAFE_LINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


def _escape(m: re.Match[str]) -> str:
    c = m.group(0)
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # a byte os.fsdecode could not decode: show the byte
        return f"\\x{n - 0xDC00:02x}"
    if n <= 0xFF:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}"


def clean(value: object, *, multiline: bool = False) -> str:
    """`value` as text with every control, bidi and undecodable character shown as an escape.

    One line by default (newlines and tabs escaped too), for names, paths and table cells;
    `multiline=True` keeps newlines and tabs, for model output and chat templates.
    """
    text = value if isinstance(value, str) else str(value)
    return (_UNSAFE if multiline else _UNSAFE_LINE).sub(_escape, text)


def clean_path(path: object) -> str:
    """A path for display: `os.fspath` text cleaned to one line."""
    import os

    text: str | bytes
    try:
        text = os.fspath(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
    except TypeError:
        text = str(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    return clean(text)
