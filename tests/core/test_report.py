"""`quanttui inspect`'s plain text says what a file is: vocabulary only, tied output, refused values, and
an embedding table that outweighs the label without reading as an alarm."""

from __future__ import annotations

from quanttui.tui.cli import main
from quanttui.tui.report import quant_text
from tests.core.test_hostile_headers import raw_gguf


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


def test_a_big_embedding_table_is_named_not_alarmed():
    layers = [{"name": "token_embd", "bytes": 600}, {"name": "blk.0", "bytes": 400}]
    gemma = {"file_type": "Q4_K_M", "label_matches": False, "dominant_type": "Q8_0", "layers": layers}
    assert quant_text(gemma) == "Q4_K_M (most bytes: the Q8_0 token embedding table)"
    layers = [{"name": "token_embd", "bytes": 100}, {"name": "blk.0", "bytes": 900}]
    odd = {**gemma, "layers": layers}
    assert "! mostly Q8_0, not what the label says" in quant_text(odd)
