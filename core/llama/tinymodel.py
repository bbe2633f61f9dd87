"""A tiny real GGUF model (llama architecture, byte-level vocabulary, random weights), written with
the gguf package. The extra-buffer probe decodes one on the user's machine; the tests build theirs
from the same writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIALS = ["<unk>", "<s>", "</s>"]
BYTE_TOKENS = [f"<0x{i:02X}>" for i in range(256)]
VOCAB = SPECIALS + BYTE_TOKENS  # 259 tokens: SentencePiece with byte fallback

def write_tiny_model(
    path: str | Path,
    *,
    seed: int = 0,
    n_layer: int = 4,
    n_embd: int = 256,
    n_ff: int = 768,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ctx: int = 2048,
    name: str = "Tiny Llama",
    extra_kv: dict[str, Any] | None = None,
    split_max_tensors: int = 0,
    tied: bool = False,
    output_scale: float = 0.3,
    chat_template: str = CHAT_TEMPLATE,
) -> Path:
    """Write an F16 llama model that llama.cpp loads; dims are multiples of 256 so k-quants apply.
    `output_scale=0` zeroes the output layer: every logit ties, so greedy decoding repeats one token
    (a model that loops for sure)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, "llama", split_max_tensors=split_max_tensors)
    w.add_name(name)
    w.add_basename("tiny-llama")
    w.add_size_label("3M")
    w.add_block_count(n_layer)
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("llama")
    w.add_token_list(VOCAB)
    w.add_token_scores([0.0] * len(VOCAB))
    w.add_token_types([2, 3, 3] + [6] * 256)  # UNKNOWN, CONTROL, CONTROL, then BYTE
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template(chat_template)
    for key, value in (extra_kv or {}).items():
        if isinstance(value, str):
            w.add_string(key, value)
        else:
            w.add_uint32(key, value)
    n_vocab = len(VOCAB)
    head_dim = n_embd // n_head

    def mat(rows: int, cols: int, scale: float = 0.08) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float16)

    def norm(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    w.add_tensor("token_embd.weight", mat(n_vocab, n_embd, 1.0))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm(n_embd))
        w.add_tensor(p + "attn_q.weight", mat(n_embd, n_embd))
        w.add_tensor(p + "attn_k.weight", mat(n_head_kv * head_dim, n_embd))
        w.add_tensor(p + "attn_v.weight", mat(n_head_kv * head_dim, n_embd))
        w.add_tensor(p + "attn_output.weight", mat(n_embd, n_embd))
        w.add_tensor(p + "ffn_norm.weight", norm(n_embd))
        w.add_tensor(p + "ffn_gate.weight", mat(n_ff, n_embd))
        w.add_tensor(p + "ffn_up.weight", mat(n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", mat(n_embd, n_ff))
    w.add_tensor("output_norm.weight", norm(n_embd))
    if not tied:
        w.add_tensor("output.weight", mat(n_vocab, n_embd, output_scale))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
