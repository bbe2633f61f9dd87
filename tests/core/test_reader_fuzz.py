"""Fuzzing the reader: any bytes give a header or a typed GGUFError, never another exception or a hang;
any typed value for a key facts and fit read gives facts or one line, never another exception."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quanttui.core.fit import FitError, FitSettings, estimate, hardware
from quanttui.core.modelfile import GGUFError, NeedMoreData, inspect_file, parse_header, read_header
from quanttui.core.modelfile.checks import facts_problem
from tests.modelgen import HEADER_KEYS, raw_llama, write_tiny_model

HW = hardware("8GiB", "32GiB")

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


# Values of any GGUF type (nested arrays included) for the keys facts and fit read ------------------

_SCALARS = (
    st.integers(-(1 << 63), (1 << 63) - 1)
    | st.integers(1 << 63, (1 << 64) - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.text(max_size=40)
)


def _one_gguf_type(xs: list) -> bool:
    """A GGUF array has one item type: no mixed Python types, no integers needing both INT64 and UINT64."""
    if len({type(x) for x in xs}) > 1:
        return False
    return not (xs and isinstance(xs[0], int) and min(xs) < 0 and max(xs) >= 1 << 63)


_VALUES = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=6).filter(_one_gguf_type), max_leaves=20
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kv=st.dictionaries(st.sampled_from(HEADER_KEYS), _VALUES, min_size=1, max_size=6))
def test_typed_values_for_known_keys(tmp_path, kv):
    """Any typed value for any known key: facts or a one-line GGUFError; fit a result or a FitError."""
    path = tmp_path / "m.gguf"
    path.write_bytes(raw_llama(kv))
    try:
        facts = inspect_file(path).to_dict()
    except GGUFError as e:
        assert "\n" not in str(e)
        return
    assert facts_problem(facts) is None
    try:
        estimate(facts, FitSettings(n_ctx=8192), HW)
    except FitError as e:
        assert "\n" not in str(e)
