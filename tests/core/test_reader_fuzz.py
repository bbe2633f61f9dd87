"""Fuzzing the reader: any bytes give a header or a typed GGUFError, never another exception or a hang."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quanttui.core.modelfile import GGUFError, NeedMoreData, parse_header, read_header
from tests.modelgen import write_tiny_model

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def header(tmp_path_factory) -> bytes:
    path = write_tiny_model(tmp_path_factory.mktemp("fuzz") / "m.gguf", n_layer=2)
    return path.read_bytes()[: read_header(path).data_offset]


def _parse_any(data: bytes) -> None:
    for complete in (True, False):
        with contextlib.suppress(GGUFError, NeedMoreData):
            parse_header(data, complete=complete)


@FUZZ
@given(data=st.data())
def test_mutated_headers(header, data):
    buf = bytearray(header)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        kind = data.draw(st.sampled_from(["byte", "u64", "u32"]))
        if kind == "byte":
            buf[pos] = data.draw(st.integers(0, 255))
        elif pos + 8 <= len(buf):
            fmt = "<Q" if kind == "u64" else "<I"
            top = (1 << 64) - 1 if kind == "u64" else (1 << 32) - 1
            struct.pack_into(fmt, buf, pos, data.draw(st.integers(0, top)))
    _parse_any(bytes(buf))


@FUZZ
@given(cut=st.integers(0, 10_000))
def test_every_prefix(header, cut):
    _parse_any(header[: cut % (len(header) + 1)])


@FUZZ
@given(raw=st.binary(max_size=512))
def test_random_bytes_after_magic(raw):
    _parse_any(b"GGUF" + raw)
    _parse_any(b"GGUF\x03\x00\x00\x00" + raw)
