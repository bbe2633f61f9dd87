"""`quanttui inspect`'s plain text says what a file is: vocabulary only, tied output, refused values, and
an embedding table that outweighs the label without reading as an alarm."""

from __future__ import annotations

import pytest

from quanttui.cli.main import main
from quanttui.core.modelfile import inspect_file
from quanttui.core.report import quant_text
from tests.modelgen import raw_gguf

Q8_0, Q4_K = 8, 12  # ggml tensor types


@pytest.fixture
def real_gemma_like(tmp_path):
    """A Q4_K_M file shaped like Gemma 3 270M: a 262k x 640 embedding table at Q8_0 that outweighs
    its two Q4_K blocks."""
    path = tmp_path / "gemma-like-Q4_K_M.gguf"
    tensors = [("token_embd.weight", (640, 262144), Q8_0)]
    for i in range(2):
        tensors += [(f"blk.{i}.attn_q.weight", (640, 1024), Q4_K)]
        tensors += [(f"blk.{i}.ffn_up.weight", (640, 2048), Q4_K)]
    kv = {"general.architecture": "gemma3", "general.file_type": 15, "gemma3.block_count": 2}
    path.write_bytes(raw_gguf(kv, tensors))
    return path, "Q4_K"


def test_vocab_only_file_says_it_is_not_runnable(tmp_path, capsys):
    path = tmp_path / "ggml-vocab-llama.gguf"
    path.write_bytes(raw_gguf({"general.architecture": "llama", "tokenizer.ggml.tokens": ["a", "b"]}))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "runnable" in out and "vocabulary only" in out
    assert "tensor type" not in out and "bits per weight by layer" not in out  # no empty tables


def test_refused_header_values_are_listed(tmp_path, capsys):
    path = tmp_path / "odd.gguf"
    kv = {"general.architecture": "llama", "llama.block_count": "lots", "tokenizer.ggml.tokens": ["a"]}
    path.write_bytes(raw_gguf(kv))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ignored" in out and "llama.block_count" in out


def test_tied_embeddings_are_said(tiny, capsys):
    assert main(["inspect", str(tiny.tied)]) == 0
    assert "reads token_embd (tied embeddings)" in capsys.readouterr().out
    assert main(["inspect", str(tiny.quants["Q8_0"])]) == 0
    assert "tied embeddings" not in capsys.readouterr().out


def test_a_big_embedding_table_does_not_contradict_the_label(real_gemma_like, capsys):
    """Gemma's 262k-token embedding table is kept at Q8_0 and outweighs the layers; the label
    describes the layers, so a Q3_K_M of it is a Q3_K_M, not an alarm."""
    path, layers_type = real_gemma_like
    f = inspect_file(path)
    assert f.dominant_type == layers_type and f.label_matches is True
    assert main(["inspect", str(path)]) == 0
    assert "!" not in capsys.readouterr().out.split("quant", 1)[1].splitlines()[0]


def test_layers_of_another_type_than_the_label_are_flagged():
    f = {"file_type": "Q4_K_M", "label_matches": False, "dominant_type": "Q8_0"}
    assert quant_text(f) == "Q4_K_M  ! its layers are mostly Q8_0, not what the label says"


def test_llama_cpps_fallback_for_rows_the_blocks_do_not_fit_is_said_not_flagged(tmp_path, capsys):
    """Gemma 3 270M's 640-wide rows do not fit Q4_K's 256-blocks: llama.cpp writes Q5_0 instead. The
    published Q4_K_M is mostly Q5_0 in its layers, which is the quantizer's rule, not a mislabel."""
    Q5_0 = 6
    path = tmp_path / "fallback-Q4_K_M.gguf"
    tensors = [("token_embd.weight", (640, 1024), Q8_0), ("blk.0.attn_q.weight", (640, 1024), Q5_0)]
    kv = {"general.architecture": "gemma3", "general.file_type": 15, "gemma3.block_count": 1}
    path.write_bytes(raw_gguf(kv, tensors))
    f = inspect_file(path)
    assert f.label_matches is False and f.label_fallback is True
    assert main(["inspect", str(path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("quant "))
    assert "!" not in line and "layers mostly Q5_0: llama.cpp's fallback" in line
