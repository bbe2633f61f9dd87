"""Stepping over runs of length-prefixed GGUF strings (token lists, merges) without decoding them."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import CorruptError, NeedMoreData

MAX_STRING = 1 << 28  # a single metadata string over 256 MiB is corruption, not a chat template


def skip_strings(p: Any, count: int) -> int:
    """Return the offset just past `count` length-prefixed strings starting at `p.pos`."""
    start, total = p.pos, count
    off: int = p.pos
    try:
        while count > 0:
            if count >= 256 and p.bo == "<":
                done, off = _skip_strings_vectorized(p, off, count)
                count -= done
                if done >= 32:
                    continue
            step = min(count, 4096)
            off = _skip_strings_loop(p, off, step)
            count -= step
    except NeedMoreData as e:
        # A prefix ran out mid-array: extrapolate from the strings seen, so a remote reader can ask
        # for about the rest of the header in one request.
        seen = total - count
        avg = (off - start) / seen if seen else 16
        raise NeedMoreData(max(e.needed, off + int(count * avg * 1.1) + 4096)) from None
    return off


def _skip_strings_loop(p: Any, off: int, count: int) -> int:
    unpack = p._u64.unpack_from
    for _ in range(count):
        p.need(off + 8)
        n = unpack(p.buf, off)[0]
        if n > MAX_STRING:
            raise CorruptError(f"string at byte {off:,} claims a length of {n:,} bytes")
        off += 8 + n
    p.need(off)
    return off


def _skip_strings_vectorized(p: Any, off: int, count: int) -> tuple[int, int]:
    """Skip a run of strings under 64 KiB each with numpy; every step is checked exactly.

    Candidate starts are offsets whose 8 bytes read as a length < 65536. The chain P[0] = off,
    P[i+1] = P[i] + 8 + len(P[i]) is accepted only as far as it is verified, so a false
    candidate inside a string's text can shorten the run but never make it wrong. Measured on a
    128k-token + 280k-merge header: 14 ms against 80 ms for the plain loop.
    """
    room = p.size - off
    window = min(room, max(count * 24, 1 << 16))
    if window < 16:
        return 0, off
    a = np.frombuffer(p.buf, dtype=np.uint8, count=window, offset=off)
    mask = np.zeros(window, dtype=bool)
    for k in range(8):
        n = (window - k) // 8
        if n > 0:
            words = np.frombuffer(p.buf, dtype="<u8", count=n, offset=off + k)
            mask[k::8][:n] = words < 65536
    # A short string's length field at p also makes p-1 a candidate; the true start is the later one.
    keep = mask.copy()
    keep[:-1] &= ~mask[1:]
    starts = np.flatnonzero(keep)
    if len(starts) == 0 or starts[0] != 0:
        return 0, off
    m = min(count, len(starts))
    starts = starts[:m]
    nxt = starts + 8 + a[starts].astype(np.int64) + (a[starts + 1].astype(np.int64) << 8)
    bad = np.flatnonzero(nxt[:-1] != starts[1:])
    last = int(bad[0]) if len(bad) else m - 1
    end = off + int(nxt[last])
    p.need(end)
    return last + 1, end
