"""The header reader against gguf's own GGUFReader, and on hand-made awkward files."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from quanttui.core.modelfile import (
    CorruptError,
    NeedMoreData,
    NotGGUFError,
    TruncatedError,
    inspect_file,
    parse_header,
    read_header,
)
from quanttui.core.modelfile.values import ArrayRef
from tests.modelgen import VOCAB, write_tiny_model, write_vocab_header


def _gguf_value(field: gguf.ReaderField):
    """A metadata value decoded the way gguf's reader stores it, for comparison."""
    vtype = field.types[0]
    if vtype == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode()
    if vtype == gguf.GGUFValueType.ARRAY:
        if field.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode() for i in field.data]
        return [field.parts[i][0].item() for i in field.data]
    return field.parts[field.data[0]][0].item()


@pytest.mark.parametrize("label", ["F16", "Q8_0", "Q4_K_M", "Q2_K", "IQ4_XS"])
def test_header_equals_gguf_reader(tiny, label):
    path = tiny.f16 if label == "F16" else tiny.quants[label]
    ours = read_header(path, keep_buffer=True)
    theirs = gguf.GGUFReader(path)
    assert ours.data_offset == theirs.data_offset
    assert ours.alignment == theirs.alignment
    keys = [k for k in theirs.fields if not k.startswith("GGUF.")]
    assert list(ours.metadata) == keys
    for key in keys:
        value = ours.metadata[key]
        if isinstance(value, ArrayRef):
            value = ours.load_array(key)
        expected = _gguf_value(theirs.fields[key])
        floats = isinstance(expected, list) and expected and isinstance(expected[0], float)
        if isinstance(expected, float) or floats:
            assert value == pytest.approx(expected)
        else:
            assert value == expected, key
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    for mine, ref in zip(ours.tensors, theirs.tensors, strict=False):
        assert mine.shape == tuple(int(x) for x in ref.shape)
        assert mine.type_id == int(ref.tensor_type)
        assert ours.data_offset + mine.offset == int(ref.data_offset)
        assert mine.n_elements == int(ref.n_elements)


@pytest.mark.parametrize("label", ["Q8_0", "Q4_K_M", "Q2_K", "IQ4_XS"])
def test_bpw_and_bytes_match_llama_cpp_and_gguf(tiny, label):
    facts = inspect_file(tiny.quants[label])
    assert facts.file_type == label
    assert facts.label_matches is True
    # llama.cpp's quantizer printed this figure for the same file.
    assert round(facts.bpw, 2) == tiny.llama_bpw[label]
    theirs = gguf.GGUFReader(tiny.quants[label])
    assert sum(st.bytes for st in facts.tensor_types.values()) == sum(int(t.n_bytes) for t in theirs.tensors)
    assert facts.parameters == sum(int(t.n_elements) for t in theirs.tensors)
    per_type: dict[str, int] = {}
    for t in theirs.tensors:
        per_type[t.tensor_type.name] = per_type.get(t.tensor_type.name, 0) + int(t.n_bytes)
    assert {k: v.bytes for k, v in facts.tensor_types.items()} == per_type


def test_q4_k_m_is_a_mix_and_layers_add_up(tiny):
    facts = inspect_file(tiny.quants["Q4_K_M"])
    assert set(facts.tensor_types) == {"Q4_K", "Q6_K", "F32"}
    assert facts.dominant_type == "Q4_K"
    names = [layer.name for layer in facts.layers]
    # The 256-element F32 output norm is a row of its own, not folded into the Q6_K "output" at 32 bpw.
    assert names == ["token_embd", "blk.0", "blk.1", "blk.2", "blk.3", "output_norm", "output"]
    assert sum(layer.bytes for layer in facts.layers) == sum(st.bytes for st in facts.tensor_types.values())
    norm, output = facts.layers[-2:]
    assert (norm.parameters, norm.bpw) == (256, 32.0)
    assert output.parameters == 259 * 256 and output.bpw == pytest.approx(6.5625, abs=1e-4)  # Q6_K


def test_model_facts(tiny):
    f = inspect_file(tiny.quants["Q8_0"])
    assert (f.architecture, f.name, f.basename, f.size_label) == ("llama", "Tiny Llama", "tiny-llama", "3M")
    assert (f.context_length, f.block_count, f.embedding_length) == (2048, 4, 256)
    assert (f.head_count, f.head_count_kv, f.feed_forward_length) == (4, 2, 768)
    assert (f.vocab_size, f.tokenizer_model, f.has_chat_template) == (len(VOCAB), "llama", True)
    assert (f.bos_token_id, f.eos_token_id) == (1, 2)
    assert f.imatrix is None and f.split is None and f.tied_embeddings is False


def test_imatrix_provenance(tiny):
    f = inspect_file(tiny.quants["IQ4_XS"])
    assert f.imatrix == {
        "file": "imatrix.dat",
        "dataset": "calibration_datav3.txt",
        "entries_count": 28,
        "chunks_count": 125,
    }


def test_tied_embeddings(tiny):
    f = inspect_file(tiny.tied)
    assert f.tied_embeddings is True
    assert "output.weight" not in {t["name"] for t in f.tensors}
    assert [layer.name for layer in f.layers][-1] == "output_norm"  # no "output" row without output.weight


def test_split_set_reads_as_one_model(tiny):
    parts = tiny.split_parts
    assert [p.name for p in parts] == [f"tiny-split-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    whole = inspect_file(tiny.f16)
    f = inspect_file(parts[1])  # any part reads the whole set
    assert f.path == str(parts[0])
    assert f.split["count"] == 3 and f.split["missing"] == []
    assert f.size_bytes == sum(p.stat().st_size for p in parts)
    assert f.parameters == whole.parameters
    assert f.tensor_count == whole.tensor_count
    assert f.bpw == whole.bpw


def test_split_set_names_missing_parts(tiny, tmp_path):
    for p in tiny.split_parts[:2]:
        (tmp_path / p.name).write_bytes(p.read_bytes())
    f = inspect_file(tmp_path / tiny.split_parts[0].name)
    assert f.split["missing"] == ["tiny-split-00003-of-00003.gguf"]
    (tmp_path / tiny.split_parts[0].name).unlink()
    with pytest.raises(Exception, match="part 1 of 3 is missing"):
        inspect_file(tmp_path / tiny.split_parts[1].name)


def test_large_vocab_stays_lazy(tmp_path):
    path = write_vocab_header(tmp_path / "vocab.gguf", n_tokens=20_000, n_merges=30_000)
    h = read_header(path, keep_buffer=True)
    tokens = h.metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, ArrayRef) and tokens.count == 20_000
    assert h.array_len("tokenizer.ggml.merges") == 30_000
    theirs = gguf.GGUFReader(path)
    field = theirs.fields["tokenizer.ggml.tokens"]
    assert h.load_array("tokenizer.ggml.tokens") == [bytes(field.parts[i]).decode() for i in field.data]
    assert h.data_offset == theirs.data_offset
    assert inspect_file(path).vocab_size == 20_000


def test_string_skip_survives_nul_and_long_tokens(tmp_path):
    """Tokens that look like length fields (NUL bytes, empty strings, >64 KiB) must not fool the skipper."""
    rng = np.random.default_rng(1)
    tokens = []
    for i in range(5000):
        kind = i % 7
        if kind == 0:
            tokens.append("\x00" * int(rng.integers(1, 9)))
        elif kind == 1:
            tokens.append("")
        elif kind == 2 and i % 1000 == 2:
            tokens.append("x" * 70_000)
        else:
            tokens.append("t" + "\x01\x00" * int(rng.integers(0, 5)))
    w = gguf.GGUFWriter(tmp_path / "odd.gguf", "llama")
    w.add_token_list(tokens)
    w.add_uint32("after.marker", 1234)
    w.add_tensor("x.weight", np.zeros((4, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    h = read_header(tmp_path / "odd.gguf", keep_buffer=True)
    assert h.metadata["after.marker"] == 1234
    assert h.load_array("tokenizer.ggml.tokens") == tokens
    assert [t.name for t in h.tensors] == ["x.weight"]


def test_big_endian_and_version_2(tmp_path):
    little = write_tiny_model(tmp_path / "le.gguf")
    w_path = tmp_path / "be.gguf"
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(w_path, "llama", endianess=gguf.GGUFEndian.BIG)
    w.add_block_count(2)
    w.add_token_list(["a", "b"] * 200)
    w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((8, 32)).astype(np.float32).byteswap())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    h = read_header(w_path)
    assert h.byteorder == ">" and h.get("llama.block_count") == 2
    assert h.tensors[0].shape == (32, 8)
    data = bytearray(little.read_bytes())
    data[4:8] = struct.pack("<I", 2)
    v2 = tmp_path / "v2.gguf"
    v2.write_bytes(bytes(data))
    assert read_header(v2).version == 2
    assert inspect_file(v2).bpw == inspect_file(little).bpw


def _patch_tensor_type(path: Path, out: Path, tensor: str, type_id: int, ftype: int | None = None) -> None:
    h = read_header(path)
    data = bytearray(path.read_bytes())
    name = tensor.encode()
    at = data.index(struct.pack("<Q", len(name)) + name)
    pos = at + 8 + len(name)
    n_dims = struct.unpack_from("<I", data, pos)[0]
    struct.pack_into("<I", data, pos + 4 + 8 * n_dims, type_id)
    if ftype is not None:
        key = b"general.file_type"
        kat = data.index(struct.pack("<Q", len(key)) + key) + 8 + len(key) + 4
        struct.pack_into("<I", data, kat, ftype)
    out.write_bytes(bytes(data))
    assert h.tensors  # the source parsed


def test_unknown_type_numbers_do_not_crash(tiny, tmp_path):
    out = tmp_path / "future.gguf"
    _patch_tensor_type(tiny.quants["Q8_0"], out, "blk.0.ffn_up.weight", 42, ftype=41)
    f = inspect_file(out)
    assert f.file_type == "Q2_0"
    assert "Q2_0" in f.tensor_types  # named by quanttui's table where gguf has no name yet
    # Sized by the gap to the next tensor, so the totals still add up to the data section.
    ref = inspect_file(tiny.quants["Q8_0"])
    assert f.tensor_types["Q2_0"].bytes >= ref.layers[1].bytes // 10
    out2 = tmp_path / "future2.gguf"
    _patch_tensor_type(tiny.quants["Q8_0"], out2, "blk.0.ffn_up.weight", 977, ftype=977 | 1024)
    f2 = inspect_file(out2)
    assert f2.file_type == "ftype 977" and f2.file_type_guessed is True
    assert "type 977" in f2.tensor_types
    assert f2.label_matches is None


# Bad input ----------------------------------------------------------------------------------------


def _header_bytes(path: Path) -> bytes:
    return path.read_bytes()[: read_header(path).data_offset]


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (b"", NotGGUFError, "empty file"),
        (b"PK\x03\x04" + b"\0" * 40, NotGGUFError, "not a GGUF file"),
        (b"GGUF" + struct.pack("<I", 1) + b"\0" * 40, NotGGUFError, "version 1"),
        (b"GGUF" + struct.pack("<I", 99) + b"\0" * 40, NotGGUFError, "unsupported GGUF version 99"),
        (b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 0), CorruptError, "tensors"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 5) + struct.pack("<Q", 1 << 60), CorruptError, "length"),
        (
            b"GGUF"
            + struct.pack("<IQQ", 3, 0, 1)
            + struct.pack("<Q", 2)
            + b"\xff\xfe"
            + struct.pack("<I", 4),
            CorruptError,
            "UTF-8",
        ),
        (
            b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<I", 77),
            CorruptError,
            "unknown value type 77",
        ),
        (
            b"GGUF"
            + struct.pack("<IQQ", 3, 0, 1)
            + struct.pack("<Q", 1)
            + b"k"
            + struct.pack("<IIQ", 9, 8, 1 << 50),
            CorruptError,
            "claims",
        ),
    ],
)
def test_bad_input_gives_typed_one_line_errors(tmp_path, content, error, message):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content + b"\0" * 64 if content else b"")
    with pytest.raises(error, match=message) as info:
        read_header(path)
    assert "\n" not in str(info.value)


def test_truncated_files(tiny, tmp_path):
    data = tiny.quants["Q4_K_M"].read_bytes()
    h = read_header(tiny.quants["Q4_K_M"])
    for cut in (10, 300, h.data_offset - 5, h.data_offset + 1000, len(data) - 1):
        path = tmp_path / f"cut{cut}.gguf"
        path.write_bytes(data[:cut])
        with pytest.raises(TruncatedError, match="truncated|ends at byte"):
            read_header(path)


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(Exception, match="directory"):
        read_header(tmp_path)
    with pytest.raises(Exception, match="no such file"):
        read_header(tmp_path / "nope.gguf")


def test_prefix_parsing_asks_for_more_then_agrees(tiny):
    path = tiny.quants["Q2_K"]
    data = path.read_bytes()
    whole = read_header(path)
    size = 16
    requests = 0
    while True:
        requests += 1
        try:
            h = parse_header(data[:size], complete=False, file_size=len(data))
            break
        except NeedMoreData as e:
            assert e.needed > size
            size = max(e.needed, size * 2)
    assert requests < 12
    assert h.metadata == whole.metadata and h.tensors == whole.tensors and h.data_offset == whole.data_offset
