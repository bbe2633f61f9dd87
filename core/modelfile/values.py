"""Decode GGUF metadata values and arrays from a buffer: the cursor the header parser reads with.

Small arrays are materialized while the header's budget lasts; larger ones are stepped over and
kept as `ArrayRef`s. Every count and length is checked against what the file can hold.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from .errors import CorruptError, NeedMoreData, TruncatedError
from .strings import MAX_STRING, skip_strings

MAX_KEY = 65535
MAX_NESTING = 4
# llama.cpp refuses arrays of arrays; they are parsed (gguf-py writes them) but never more than this
# many inner arrays per header, so a file of millions of tiny arrays costs nothing to reject.
MAX_INNER_ARRAYS = 1 << 12
# Arrays up to these sizes are materialized while parsing; larger ones stay lazy.
EAGER_SCALARS = 4096
EAGER_STRINGS = 64
# What one header may materialize in eager arrays in all; past it arrays stay lazy (ArrayRef).
EAGER_ITEMS_BUDGET = 1 << 18
EAGER_BYTES_BUDGET = 1 << 24

# GGUF value types (gguf.GGUFValueType) with their struct codes; 8 = string, 9 = array.
_SCALAR_CODES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
T_STRING, T_ARRAY = 8, 9
VALUE_TYPE_NAMES = {
    0: "UINT8",
    1: "INT8",
    2: "UINT16",
    3: "INT16",
    4: "UINT32",
    5: "INT32",
    6: "FLOAT32",
    7: "BOOL",
    8: "STRING",
    9: "ARRAY",
    10: "UINT64",
    11: "INT64",
    12: "FLOAT64",
}


@dataclass(frozen=True)
class ArrayRef:
    """A metadata array left unread: its item type, length and where its items start."""

    item_type: int
    count: int
    offset: int

    def __len__(self) -> int:
        return self.count


class Cursor:
    """Cursor over a buffer; raises TruncatedError (whole file) or NeedMoreData (a prefix)."""

    def __init__(self, buf: Any, *, complete: bool, byteorder: str = "<", total: int | None = None):
        self.buf = buf
        self.size = len(buf)
        self.complete = complete
        self.bo = byteorder
        self.total = total if total is not None else (self.size if complete else None)
        self.pos = 0
        self.items_left = EAGER_ITEMS_BUDGET
        self.bytes_left = EAGER_BYTES_BUDGET
        self.inner_arrays = 0
        self._u64 = struct.Struct(byteorder + "Q")
        self._u32 = struct.Struct(byteorder + "I")

    def need(self, end: int) -> None:
        if end > self.size:
            if self.complete or (self.total is not None and end > self.total):
                have = self.total if self.total is not None else self.size
                raise TruncatedError(f"file ends at byte {have:,} but its header needs byte {end:,}")
            raise NeedMoreData(end)

    def u32(self) -> int:
        self.need(self.pos + 4)
        v: int
        (v,) = self._u32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return v

    def u64(self) -> int:
        self.need(self.pos + 8)
        v: int
        (v,) = self._u64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return v

    def raw_string(self, limit: int, what: str) -> bytes:
        start = self.pos
        n = self.u64()
        if n > limit:
            raise CorruptError(f"{what} at byte {start:,} claims a length of {n:,} bytes")
        self.need(self.pos + n)
        data = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return data

    def name(self, what: str) -> str:
        start = self.pos
        raw = self.raw_string(MAX_KEY, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptError(f"{what} at byte {start:,} is not valid UTF-8") from None

    def value(self, vtype: int, depth: int) -> Any:
        code = _SCALAR_CODES.get(vtype)
        if code is not None:
            st = struct.Struct(self.bo + code)
            self.need(self.pos + st.size)
            (v,) = st.unpack_from(self.buf, self.pos)
            self.pos += st.size
            return v
        if vtype == T_STRING:
            return self.raw_string(MAX_STRING, "string value").decode("utf-8", errors="replace")
        if vtype == T_ARRAY:
            item_type, count = self.array_head(depth)
            items_at = self.pos
            if self._eager(item_type, count):
                return self.read_array_items(item_type, count, eager=True, depth=depth + 1)
            self.read_array_items(item_type, count, eager=False, depth=depth + 1)
            return ArrayRef(item_type, count, items_at)
        raise CorruptError(f"unknown value type {vtype} at byte {self.pos - 4:,}")

    def array_head(self, depth: int) -> tuple[int, int]:
        """Read an array's item type and count, refusing deep nesting and counts the file cannot hold."""
        start = self.pos
        if depth >= MAX_NESTING:
            raise CorruptError(f"arrays nested deeper than {MAX_NESTING} at byte {start:,}")
        if depth > 0:
            self.inner_arrays += 1
            if self.inner_arrays > MAX_INNER_ARRAYS:
                raise CorruptError(f"more than {MAX_INNER_ARRAYS:,} arrays inside arrays (at byte {start:,})")
        item_type = self.u32()
        count = self.u64()
        self._check_count(count, item_type, start)
        return item_type, count

    def _eager(self, item_type: int, count: int) -> bool:
        """Whether to materialize an array here: small ones, while the header's budget lasts."""
        if item_type in (T_STRING, T_ARRAY):
            if count > EAGER_STRINGS or count > self.items_left:
                return False
            if item_type == T_STRING:
                start = self.pos
                end = skip_strings(self, count)
                self.pos = start
                if end - start > self.bytes_left:
                    return False
                self.bytes_left -= end - start
        elif count > EAGER_SCALARS or count > self.items_left:
            return False
        self.items_left -= count
        return True

    def _check_count(self, count: int, item_type: int, start: int) -> None:
        code = _SCALAR_CODES.get(item_type)
        min_item = struct.calcsize(code) if code else 8 if item_type in (T_STRING, T_ARRAY) else 1
        room = (self.total if self.total is not None else 1 << 40) - self.pos
        if count * min_item > room:
            raise CorruptError(f"array at byte {start:,} claims {count:,} items, more than the file can hold")

    def read_array_items(self, item_type: int, count: int, *, eager: bool, depth: int) -> Any:
        """The items as a list when eager; otherwise step over them, building nothing, and return None."""
        code = _SCALAR_CODES.get(item_type)
        if code is not None:
            size = count * struct.calcsize(code)
            self.need(self.pos + size)
            out = list(struct.unpack_from(f"{self.bo}{count}{code}", self.buf, self.pos)) if eager else None
            self.pos += size
            return out
        if item_type == T_STRING:
            if eager:
                return [self.value(T_STRING, depth) for _ in range(count)]
            self.pos = skip_strings(self, count)
            return None
        if item_type == T_ARRAY:
            if eager:
                return [self.value(T_ARRAY, depth) for _ in range(count)]
            for _ in range(count):
                inner_type, inner_count = self.array_head(depth)
                self.read_array_items(inner_type, inner_count, eager=False, depth=depth + 1)
            return None
        raise CorruptError(f"unknown array item type {item_type} at byte {self.pos:,}")
