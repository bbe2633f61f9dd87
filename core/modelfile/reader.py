"""Parse a GGUF header (metadata and tensor infos) from a file or a byte buffer.

Tensor data is never read. Large arrays (token lists, merges, scores) are skipped and kept as
`ArrayRef`s that can be loaded on request. `gguf.GGUFReader` builds a numpy view per array element
and took 18-58 s on real 128k-262k-token vocabularies; this reader takes milliseconds.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..safeopen import UnsafeFileError, open_regular
from .errors import CorruptError, GGUFError, NeedMoreData, NotGGUFError, TruncatedError
from .values import ArrayRef, Cursor

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS; llama.cpp refuses more
# Real headers hold under a thousand keys and tens of thousands of tensors; these leave wide room.
MAX_KV = 1 << 16
MAX_TENSORS = 1 << 17
# A local header is read in growing chunks: the first covers most headers whole; each later one
# grows eightfold, so a 7 MiB vocabulary header costs one re-parse of a 1 MiB prefix, not three.
FIRST_READ = 1 << 20
GROWTH = 8


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's name, shape (ggml order, fastest dimension first), type number and data offset."""

    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class Header:
    """A parsed GGUF header. `data_offset` is where tensor data starts (the header's size)."""

    version: int
    byteorder: str
    metadata: dict[str, Any]
    value_types: dict[str, int]
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int
    file_size: int | None = None
    _buf: Any = field(default=None, repr=False, compare=False)

    def get(self, key: str, default: Any = None) -> Any:
        value = self.metadata.get(key, default)
        return default if isinstance(value, ArrayRef) else value

    def array_len(self, key: str) -> int | None:
        value = self.metadata.get(key)
        if isinstance(value, (ArrayRef, list)):
            return len(value)
        return None

    def load_array(self, key: str) -> list[Any]:
        """Materialize a lazy array; needs the buffer the header was parsed from."""
        value = self.metadata.get(key)
        if isinstance(value, list):
            return value
        if not isinstance(value, ArrayRef):
            raise KeyError(key)
        if self._buf is None:
            raise GGUFError(f"array {key!r} was not kept: reopen the file to load it")
        parser = Cursor(self._buf, complete=True, byteorder=self.byteorder)
        parser.pos = value.offset
        items: list[Any] = parser.read_array_items(value.item_type, value.count, eager=True, depth=1)
        return items


def parse_header(
    buf: Any, *, complete: bool = True, file_size: int | None = None, keep_buffer: bool = False
) -> Header:
    """Parse a GGUF header from `buf` (bytes, mmap, memoryview).

    With complete=False, `buf` is a prefix of the file: running out raises NeedMoreData with the
    number of bytes needed so far. `file_size`, when known, bounds counts and tensor data.
    """
    size = len(buf)
    if size == 0:
        raise NotGGUFError("empty file")
    if size < 4 and not complete:
        raise NeedMoreData(24)
    if bytes(buf[:4]) != GGUF_MAGIC:
        raise NotGGUFError(f"not a GGUF file (starts with {_shown(bytes(buf[:4]))})")
    p = Cursor(buf, complete=complete, total=file_size if file_size is not None else None)
    p.pos = 4
    version = p.u32()
    byteorder = "<"
    if version not in (2, 3) and struct.unpack("<I", struct.pack(">I", version))[0] in (2, 3):
        byteorder = ">"
        p = Cursor(buf, complete=complete, byteorder=">", total=p.total)
        p.pos = 4
        version = p.u32()
    if version == 1:
        raise NotGGUFError("GGUF version 1 is not supported (llama.cpp dropped it in 2023)")
    if version not in (2, 3):
        raise NotGGUFError(f"unsupported GGUF version {version}")
    n_tensors = p.u64()
    n_kv = p.u64()
    if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
        raise CorruptError(f"header claims {n_tensors:,} tensors and {n_kv:,} metadata keys")
    if p.total is not None and n_kv * 13 + n_tensors * 32 > p.total - p.pos:
        raise TruncatedError(
            f"file is truncated: {p.total:,} bytes cannot hold the {n_tensors:,} tensors and {n_kv:,} keys "
            "its header declares"
        )
    metadata: dict[str, Any] = {}
    value_types: dict[str, int] = {}
    for _ in range(n_kv):
        key = p.name("metadata key")
        vtype = p.u32()
        metadata[key] = p.value(vtype, 0)
        value_types[key] = vtype
    tensors: list[TensorInfo] = []
    try:
        for _ in range(n_tensors):
            tensors.append(_read_tensor_info(p))
    except NeedMoreData as e:
        raise NeedMoreData(max(e.needed, p.pos + (n_tensors - len(tensors)) * 96 + 1024)) from None
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise CorruptError(f"general.alignment is {alignment!r}, not a power of two")
    data_offset = -(-p.pos // alignment) * alignment
    total = file_size if file_size is not None else (size if complete else None)
    header = Header(
        version=version,
        byteorder=byteorder,
        metadata=metadata,
        value_types=value_types,
        tensors=tensors,
        alignment=alignment,
        data_offset=data_offset,
        file_size=total,
        _buf=buf if keep_buffer else None,
    )
    if total is not None:
        _check_data_bounds(header, total)
    return header


def _shown(magic: bytes) -> str:
    """The first bytes of a file a person can read: text when printable ASCII, else hex."""
    if all(32 <= b < 127 for b in magic):
        return f'"{magic.decode("ascii")}"'
    return "bytes " + magic.hex(" ")


def _read_tensor_info(p: Cursor) -> TensorInfo:
    start = p.pos
    name = p.name("tensor name")
    n_dims = p.u32()
    if n_dims > MAX_DIMS:
        raise CorruptError(f"tensor {name!r} at byte {start:,} has {n_dims} dimensions (max {MAX_DIMS})")
    shape = tuple(p.u64() for _ in range(n_dims))
    n = 1
    for d in shape:
        n *= d
    if n >= 1 << 62:
        raise CorruptError(f"tensor {name!r} claims {n:,} elements")
    type_id = p.u32()
    offset = p.u64()
    return TensorInfo(name, shape, type_id, offset)


def _check_data_bounds(header: Header, total: int) -> None:
    from .quant_types import tensor_nbytes

    room = total - header.data_offset
    for t in header.tensors:
        nbytes = tensor_nbytes(t.type_id, t.n_elements)
        end = t.offset + (nbytes or 0)
        if end > room:
            raise TruncatedError(
                f"file is truncated: tensor {t.name!r} needs {header.data_offset + end:,} bytes, "
                f"file has {total:,}"
            )


def read_header(path: str | os.PathLike[str], *, keep_buffer: bool = False) -> Header:
    """Parse the header of a local GGUF file with ordinary reads, never more than the file holds.

    No memory map: a file truncated by another process while it is mapped kills this one with
    SIGBUS; a read of a shrinking file just comes back short, which is reported as truncation.
    Opened with safeopen: a FIFO or a device put where a model was is refused at once, never waited
    on or read without end.
    """
    path = Path(path)
    try:
        with open_regular(path, buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise NotGGUFError("empty file")
            return _read_growing(fh, size, keep_buffer)
    except UnsafeFileError as e:
        raise GGUFError(f"{e}, not a GGUF file") from None
    except IsADirectoryError:
        raise GGUFError("is a directory, not a GGUF file") from None
    except FileNotFoundError:
        raise GGUFError("no such file") from None
    except PermissionError:
        raise GGUFError("permission denied") from None
    except OSError as e:
        raise GGUFError(f"cannot read: {e.strerror or e}") from None


def _read_growing(fh: Any, size: int, keep_buffer: bool) -> Header:
    """Read a prefix, parse, and read more while the parser asks for it (GROWTH times more each time).

    Each round reads into one preallocated buffer (readinto), copying only the prefix already read.
    """
    buf = bytearray()
    want = min(size, FIRST_READ)
    while True:
        grown = bytearray(want)
        grown[: len(buf)] = buf
        have = _read_into(fh, memoryview(grown)[len(buf) :]) + len(buf)
        buf = grown
        if have < want:
            raise TruncatedError(f"file shrank to {have:,} bytes while being read (it had {size:,})")
        try:
            return parse_header(buf, complete=want == size, file_size=size, keep_buffer=keep_buffer)
        except NeedMoreData as e:
            needed = e.needed
        want = min(size, max(needed, GROWTH * len(buf)))


def _read_into(fh: Any, view: memoryview) -> int:
    """Fill `view` from the current position; fewer bytes only at the end of the file."""
    done = 0
    while done < len(view):
        n = fh.readinto(view[done:])
        if not n:
            break
        done += n
    return done
