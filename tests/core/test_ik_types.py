"""Files from ik_llama.cpp: its own tensor types (IQK quants, _R4/_R8 repacks) are named from its type
table, sized by its block math, marked "ik_llama.cpp only", and refused before any load."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from quanttui.cli.main import main
from quanttui.core import report
from quanttui.core.modelfile import inspect_file, unloadable_reason
from quanttui.core.modelfile.checks import facts_problem
from quanttui.core.modelfile.quant_types import (
    IK_OLD_TENSOR_TYPES,
    IK_TENSOR_TYPES,
    file_type_label,
    ik_nbytes,
    is_ik_label,
)

N_EMBD, N_FF = 256, 512


def write_ik(path: Path, type_id: int, ftype: int | None, *, table=IK_TENSOR_TYPES, extra: int = 0) -> Path:
    """A tiny llama GGUF written by gguf's writer: its block matrices of ik_llama.cpp's type `type_id`
    (raw zero bytes of the size its block math gives, plus `extra`), the rest F16/F32."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("IK Test")
    w.add_block_count(2)
    w.add_context_length(4096)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(4)
    if ftype is not None:
        w.add_file_type(ftype)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"t{i}" for i in range(32)])
    w.add_tensor("token_embd.weight", np.zeros((32, N_EMBD), dtype=np.float16))
    for i in range(2):
        for name, shape in (("attn_q", (N_EMBD, N_EMBD)), ("ffn_up", (N_EMBD, N_FF))):
            n = ik_nbytes(table[type_id], shape) + extra  # type: ignore[operator]
            w.add_tensor(
                f"blk.{i}.{name}.weight",
                np.zeros(n, dtype=np.int8),
                raw_shape=tuple(reversed(shape)),
                raw_dtype=type_id,  # type: ignore[arg-type]
            )
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# (tensor type id, llama ftype id, name): a K quant, a KS quant (per-row scale), a trellis quant, a repack
CASES = [(140, 141, "IQ5_K"), (144, 145, "IQ4_KS"), (153, 151, "IQ2_KT"), (337, 338, "IQ2_K_R4")]


@pytest.mark.parametrize(("type_id", "ftype", "name"), CASES)
def test_ik_types_are_named_sized_and_marked(tmp_path, type_id, ftype, name):
    f = inspect_file(write_ik(tmp_path / f"m-{name}.gguf", type_id, ftype))
    t = IK_TENSOR_TYPES[type_id]
    assert f.file_type == name and f.ik_types == [name] and f.runs_on == "ik_llama.cpp only"
    stat = f.tensor_types[name]
    rows = 2 * (N_EMBD + N_FF)
    assert stat.count == 4 and stat.bytes == rows * (t.row_meta + t.type_size * N_EMBD // t.block)
    assert f.dominant_type == name and f.label_matches is True
    expected_bpw = 8 * sum(s.bytes for s in f.tensor_types.values()) / f.parameters
    assert f.bpw == round(expected_bpw, 4)
    d = f.to_dict()
    assert d["ik_only"] is True and facts_problem(d) is None  # the library index keeps it
    # fit asks llama.cpp's ggml about matrices by type number: never one it does not have
    assert all(m[0] < 100 for layer in f.layers for m in layer.matrices)


def test_ik_type_bpw_figures():
    bpw = {t.name: 8 * t.type_size / t.block for t in IK_TENSOR_TYPES.values()}
    assert bpw["IQ2_K"] == 2.375 and bpw["IQ4_KS"] == 4.25 and bpw["IQ6_K"] == 6.625
    assert bpw["IQ2_KT"] == 2.125 and bpw["IQ4_K_R4"] == 4.5


def test_inspect_text_says_ik_only_and_prints_no_none(tmp_path, capsys):
    path = write_ik(tmp_path / "m-IQ4_KS.gguf", 144, 145)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "IQ4_KS (ik_llama.cpp only)" in out
    assert "runnable           no: ik_llama.cpp only: its IQ4_KS tensors" in out
    assert "None" not in out and "type 144" not in out and "ftype 145" not in out
    assert "heads / kv heads   4 / 4" in out  # kv heads not in the file: llama.cpp takes the head count


def test_a_size_that_does_not_match_stays_unnamed(tmp_path):
    f = inspect_file(write_ik(tmp_path / "odd.gguf", 144, None, extra=64))
    assert "type 144" in f.tensor_types and not f.ik_types and f.to_dict()["ik_only"] is False


def test_an_older_ik_number_is_read_by_its_size(tmp_path):
    f = inspect_file(write_ik(tmp_path / "old.gguf", 37, None, table=IK_OLD_TENSOR_TYPES))
    assert f.ik_types == ["IQ2_K"] and "IQ2_K" in f.tensor_types


def test_labels_and_file_types():
    assert file_type_label(140) == ("IQ4_K", False) and file_type_label(145 | 1024) == ("IQ4_KS", True)
    assert file_type_label(15) == ("Q4_K_M", False)  # the standard table first
    assert is_ik_label("IQ4_KS") and is_ik_label("iq2_k_r4") and not is_ik_label("Q4_K_M")
    assert not is_ik_label(None) and not is_ik_label("IQ4_XS")


def test_runs_refuse_an_ik_file_before_loading(tmp_path):
    from quanttui.core.llama.load import _check_loadable

    path = write_ik(tmp_path / "m-IQ4_KS.gguf", 144, 145)
    assert "ik_llama.cpp only" in (unloadable_reason(path) or "")
    with pytest.raises(ValueError, match="m-IQ4_KS.gguf: ik_llama.cpp only"):
        _check_loadable(path)
    assert unloadable_reason(tmp_path / "missing.gguf") is None  # llama.cpp's own load says why


def test_report_counts_never_print_none():
    f = {
        "head_count": [4, 4, 8],
        "head_count_kv": None,
        "vocab_size": None,
        "tokenizer_model": None,
        "sliding_window": 512,
        "sliding_window_pattern": None,
    }
    assert report._heads_text(f) == "4-8 per layer / 4-8 per layer (kv heads not set: as many as heads)"
    assert report._vocab_text(f) == "?"
    assert report._window_text(f) == "512"
    assert report._window_text({**f, "sliding_window_pattern": [True, True, False]}) == "512 (2 of 3 layers)"
