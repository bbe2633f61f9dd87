"""Build tiny real GGUF models (llama architecture, byte-level vocabulary, random weights).

Used by the tests and bench/; quantizing goes through llama.cpp's own quantizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np

from quanttui.core.llama.load import FTYPES, last_quantize_log
from quanttui.core.llama.load import quantize as llama_quantize
from quanttui.core.llama.tinymodel import BYTE_TOKENS, CHAT_TEMPLATE, SPECIALS, VOCAB, write_tiny_model

__all__ = ["BYTE_TOKENS", "CHAT_TEMPLATE", "FTYPES", "SPECIALS", "VOCAB", "quantize", "write_tiny_model"]


def quantize(src: str | Path, dst: str | Path, label: str) -> Path:
    """Quantize with llama.cpp's own quantizer, through quanttui's llama.cpp boundary."""
    llama_quantize(src, dst, FTYPES[label])
    _quant_log[:] = last_quantize_log
    return Path(dst)


def write_vocab_header(
    path: str | Path, n_tokens: int = 128_000, n_merges: int = 280_000, seed: int = 0
) -> Path:
    """A GGUF whose header has a real-sized BPE vocabulary (like Llama 3) and a few small tensors."""
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz\xc4\xa0", dtype=np.uint8)

    def words(n: int, lo: int, hi: int) -> list[str]:
        lengths = rng.integers(lo, hi, n)
        chars = alphabet[rng.integers(0, 26, lengths.sum())].tobytes().decode()
        out, pos = [], 0
        for ln in lengths:
            out.append(chars[pos : pos + ln])
            pos += ln
        return out

    w = gguf.GGUFWriter(path, "llama")
    w.add_name("Vocab Header")
    w.add_block_count(1)
    w.add_context_length(131072)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(words(n_tokens, 1, 12))
    w.add_token_types([1] * n_tokens)
    a, b = words(n_merges, 1, 7), words(n_merges, 1, 7)
    w.add_token_merges([f"{x} {y}" for x, y in zip(a, b, strict=False)])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_chat_template(CHAT_TEMPLATE)
    w.add_tensor("token_embd.weight", np.zeros((16, 64), dtype=np.float16))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((64, 64), dtype=np.float16))
    w.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)


_quant_log: list[str] = []


def quantized_bpw() -> float:
    """The BPW llama.cpp printed for the last quantize() ("quant size = ... (4.85 BPW)")."""
    import re

    for line in reversed(_quant_log):
        m = re.search(r"quant size\s*=.*\(([\d.]+) BPW\)", line)
        if m:
            return float(m.group(1))
    raise LookupError("no quant size line in llama.cpp's log")


def write_model_with_template(path: str | Path, template: str, **kw: Any) -> Path:
    """A tiny model (as write_tiny_model) whose `tokenizer.chat_template` is `template`."""
    return write_tiny_model(path, chat_template=template, **kw)


# Raw GGUF bytes, for headers no writer would produce (wrong value types, hostile counts) ----------

T_UINT32, T_INT64, T_UINT64, T_FLOAT64, T_BOOL, T_STRING, T_ARRAY = 4, 11, 10, 12, 7, 8, 9


def _raw_type(value: Any) -> int:
    if isinstance(value, bool):
        return T_BOOL
    if isinstance(value, int):
        return T_UINT32 if 0 <= value < 1 << 32 else T_INT64 if value < 1 << 63 else T_UINT64
    if isinstance(value, float):
        return T_FLOAT64
    if isinstance(value, str):
        return T_STRING
    if isinstance(value, list):
        return T_ARRAY
    raise TypeError(f"no GGUF type for {type(value).__name__}")


def _raw_payload(vtype: int, value: Any) -> bytes:
    import struct

    if vtype == T_STRING:
        data = value.encode("utf-8", "surrogateescape")
        return struct.pack("<Q", len(data)) + data
    if vtype == T_ARRAY:
        item = _raw_type(value[0]) if value else T_UINT32
        if value and item in (T_UINT32, T_INT64, T_UINT64):  # one integer type that holds every item
            item = T_INT64 if min(value) < 0 else T_UINT32 if max(value) < 1 << 32 else T_UINT64
        return struct.pack("<IQ", item, len(value)) + b"".join(_raw_payload(item, v) for v in value)
    code = {T_BOOL: "<?", T_UINT32: "<I", T_INT64: "<q", T_UINT64: "<Q", T_FLOAT64: "<d"}[vtype]
    return struct.pack(code, value)


def raw_gguf(
    kv: dict[str, Any], tensors: list[tuple[str, tuple[int, ...], int]] = (), *, data: bool = True
) -> bytes:
    """A GGUF v3 file: each value typed from its Python type (int -> UINT32, or INT64/UINT64 when it
    does not fit; float -> FLOAT64; list -> ARRAY of its first item's type). Tensors are
    (name, ggml shape, type id) with zeroed data, or no data at all when `data` is False."""
    import struct

    from quanttui.core.modelfile.quant_types import tensor_nbytes

    out = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(kv))]
    for key, value in kv.items():
        k = key.encode()
        vtype = _raw_type(value)
        out.append(struct.pack("<Q", len(k)) + k + struct.pack("<I", vtype) + _raw_payload(vtype, value))
    offset = 0
    for name, shape, type_id in tensors:
        n = name.encode()
        out.append(struct.pack("<Q", len(n)) + n + struct.pack("<I", len(shape)))
        out.append(struct.pack(f"<{len(shape)}QIQ", *shape, type_id, offset))
        elements = 1
        for d in shape:
            elements *= d
        size = tensor_nbytes(type_id, elements) or 0
        offset += -(-size // 32) * 32
    head = b"".join(out)
    head += bytes(-len(head) % 32)
    return head + (bytes(offset) if data else b"")


def raw_llama(kv: dict[str, Any] | None = None, *, n_layer: int = 2, n_embd: int = 64) -> bytes:
    """A small raw llama GGUF (F32 tensors, a 16-token vocabulary); `kv` adds or replaces keys
    (a value of None removes the key)."""
    base: dict[str, Any] = {
        "general.architecture": "llama",
        "general.name": "Raw Llama",
        "general.file_type": 0,
        "llama.block_count": n_layer,
        "llama.context_length": 4096,
        "llama.embedding_length": n_embd,
        "llama.feed_forward_length": 2 * n_embd,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": [f"t{i}" for i in range(16)],
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
    }
    for k, v in (kv or {}).items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    tensors: list[tuple[str, tuple[int, ...], int]] = [("token_embd.weight", (n_embd, 16), 0)]
    for i in range(n_layer):
        tensors.append((f"blk.{i}.attn_q.weight", (n_embd, n_embd), 0))
        tensors.append((f"blk.{i}.ffn_up.weight", (n_embd, 2 * n_embd), 0))
    tensors += [("output_norm.weight", (n_embd,), 0), ("output.weight", (n_embd, 16), 0)]
    return raw_gguf(base, tensors)


# Every metadata key summarize() or the fit estimate reads.
HEADER_KEYS = [
    "general.architecture",
    "general.name",
    "general.basename",
    "general.size_label",
    "general.finetune",
    "general.file_type",
    "general.alignment",
    "llama.context_length",
    "llama.block_count",
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.attention.key_length",
    "llama.attention.value_length",
    "llama.expert_count",
    "llama.expert_used_count",
    "llama.attention.sliding_window",
    "llama.attention.sliding_window_pattern",
    "llama.vocab_size",
    "llama.ssm.conv_kernel",
    "llama.ssm.inner_size",
    "llama.ssm.state_size",
    "llama.ssm.group_count",
    "llama.wkv.head_size",
    "llama.shortconv.l_cache",
    "tokenizer.ggml.model",
    "tokenizer.ggml.tokens",
    "tokenizer.chat_template",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "quantize.imatrix.file",
    "quantize.imatrix.dataset",
    "quantize.imatrix.entries_count",
    "quantize.imatrix.chunks_count",
    "split.no",
    "split.count",
    "split.tensors.count",
]
# Values of every GGUF type, in and out of range: strings, negatives, huge counts, floats where
# integers belong, booleans, empty, long and nested arrays, arrays of arrays of different types.
WRONG_VALUES = {
    "str": "12",
    "empty_str": "",
    "neg": -1,
    "zero": 0,
    "huge": 100_000_000,
    "u64max": (1 << 64) - 1,
    "i64min": -(1 << 63),
    "float": 3.5,
    "float_int": 32.0,
    "nan": float("nan"),
    "bool": True,
    "empty_array": [],
    "ints": [1, 2, 3],
    "big_ints": [1 << 40] * 3,
    "strings": ["a", "b"],
    "bools": [True, False],
    "nested": [[1, 2], [3]],
    "mixed_nested": [[1], ["x"], [True]],
    "deep": [[[[1]]]],
    "long_array": list(range(5000)),
    "long_string": "x" * 5000,
    "control": "\x1b]0;owned\x07\x1b[31m",
}
