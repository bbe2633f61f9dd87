"""Typed, bounded reads of header values, and a check of facts dicts read back from a cache.

A header is written by strangers: `block_count` may be a string, a float or 10**8, `head_count` a
nested array. Every value a fact is derived from passes through here; one of the wrong type or out
of range becomes None and a note in `ignored`, so nothing downstream (fit, groups, sorting, screens)
meets a value it cannot use and no work grows with a number the file merely claims.
"""

from __future__ import annotations

import builtins
import math
from typing import Any, TypeGuard

import gguf

from ..textsafe import clean
from .reader import Header
from .values import ArrayRef

# Bounds far beyond any real model (the largest have ~160 layers, 16k embeddings, 262k-token
# vocabularies and 10M-token contexts), small enough that work per layer stays trivial.
MAX_LAYERS = 4096
MAX_CTX_TRAIN = 1 << 32
MAX_EMBD = 1 << 20
MAX_HEADS = 1 << 16
MAX_HEAD_DIM = 1 << 16
MAX_FF = 1 << 24
MAX_EXPERTS = 1 << 16
MAX_VOCAB = 1 << 24
MAX_TOKEN_ID = (1 << 32) - 1
MAX_STATE = 1 << 24
KNOWN_TYPE_IDS = frozenset(int(t) for t in gguf.GGMLQuantizationType)
MAX_TEXT = 1024  # names, labels and the like; a longer value is cut with an ellipsis
MAX_ARCH = 128


def _matrix_ok(m: Any) -> bool:
    """[ggml type, ne0, ne1, ne2, bytes], each a non-negative int, the type one gguf knows."""
    return (
        isinstance(m, list)
        and len(m) == 5
        and all(_int_ok(v, False) for v in m)
        and m[0] in KNOWN_TYPE_IDS
        and all(0 < v < 1 << 40 for v in m[1:4])
    )


def _kind(value: Any) -> str:
    """A short description of a value's type, for a note."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, ArrayRef)):
        return f"an array of {len(value):,}"
    return type(value).__name__


def is_int(value: Any) -> TypeGuard[int]:
    """An int that is not a bool (bool is an int subclass in Python; in GGUF it is a type of its own)."""
    return isinstance(value, int) and not isinstance(value, bool)


class Values:
    """Reads `header` values through type and range checks, collecting a note for each one refused."""

    def __init__(self, header: Header):
        self.header = header
        self.ignored: list[str] = []
        arch = header.metadata.get("general.architecture")
        self.arch = self.text("general.architecture", limit=MAX_ARCH, cut=False) if arch is not None else None

    def refuse(self, key: str, why: str) -> None:
        if len(self.ignored) < 64:
            self.ignored.append(clean(f"{key}: {why}"))

    def key(self, suffix: str) -> str | None:
        return f"{self.arch}.{suffix}" if self.arch else None

    def raw(self, key: str | None) -> Any:
        return None if key is None else self.header.metadata.get(key)

    def int(self, key: str | None, lo: int, hi: int) -> int | None:
        """An integer in [lo, hi], or None (noted when present but unusable)."""
        value = self.raw(key)
        if value is None or key is None:
            return None
        if not is_int(value):
            self.refuse(key, f"{_kind(value)}, not an integer")
            return None
        if not lo <= value <= hi:
            self.refuse(key, f"{value:,} is out of range ({lo:,} to {hi:,})")
            return None
        return value

    def arch_int(self, suffix: str, lo: builtins.int, hi: builtins.int) -> builtins.int | None:
        return self.int(self.key(suffix), lo, hi)

    def per_layer(
        self, suffix: str, lo: builtins.int, hi: builtins.int
    ) -> builtins.int | list[builtins.int] | None:
        """A per-layer count: an integer, or an array of integers (one per layer); equal items collapse."""
        key = self.key(suffix)
        value = self.raw(key)
        if key is None or value is None:
            return None
        if not isinstance(value, list):
            return self.int(key, lo, hi)
        if not value or len(value) > MAX_LAYERS:
            self.refuse(key, f"an array of {len(value):,} (1 to {MAX_LAYERS:,} expected)")
            return None
        if not all(is_int(v) and lo <= v <= hi for v in value):
            self.refuse(key, f"array items must be integers from {lo:,} to {hi:,}")
            return None
        return value[0] if all(v == value[0] for v in value) else list(value)

    def pattern(self, suffix: str) -> builtins.int | list[bool] | None:
        """The sliding-window pattern: every Nth layer global (an integer) or one flag per layer."""
        key = self.key(suffix)
        value = self.raw(key)
        if key is None or value is None:
            return None
        if not isinstance(value, list):
            return self.int(key, 0, MAX_LAYERS)
        if not value or len(value) > MAX_LAYERS or not all(isinstance(v, bool) or v in (0, 1) for v in value):
            self.refuse(key, f"{_kind(value)}, not one flag per layer")
            return None
        return [bool(v) for v in value]

    def text(self, key: str, *, limit: builtins.int = MAX_TEXT, cut: bool = True) -> str | None:
        """A string value, cut to `limit` characters (or refused when `cut` is False and it is longer)."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.refuse(key, f"{_kind(value)}, not a string")
            return None
        if len(value) > limit:
            if not cut:
                self.refuse(key, f"a string of {len(value):,} characters (at most {limit})")
                return None
            return value[: limit - 1] + "…"
        return value

    def texts(self, key: str) -> str | None:
        """A string, or an array of strings joined with commas (the imatrix dataset may be either)."""
        value = self.raw(key)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            joined = ", ".join(value)
            return joined if len(joined) <= MAX_TEXT else joined[: MAX_TEXT - 1] + "…"
        return self.text(key)


# A facts dict (ModelFacts.to_dict) read back from the library index: the type each field must have.
_STR = (str, type(None))
_FIELDS_STR = (
    "path", "architecture", "name", "basename", "size_label", "finetune", "tokenizer_model", "file_type",
    "dominant_type",
)  # fmt: skip
_FIELDS_INT = (
    "size_bytes", "gguf_version", "parameters", "context_length", "block_count", "embedding_length",
    "key_length", "value_length", "expert_count", "expert_used_count", "sliding_window", "vocab_size",
    "bos_token_id", "eos_token_id", "file_type_id", "tensor_count",
)  # fmt: skip
_FIELDS_PER_LAYER = ("head_count", "head_count_kv", "feed_forward_length")
_FIELDS_BOOL = ("has_chat_template", "tied_embeddings", "file_type_guessed", "vocab_only", "ik_only")


def _int_ok(v: Any, optional: bool = True) -> bool:
    return (optional and v is None) or (is_int(v) and 0 <= v < 1 << 63)


def _number_ok(v: Any) -> bool:
    if v is None:
        return True
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def facts_problem(f: Any) -> str | None:
    """What is wrong with a facts dict (a key and why), or None when every present field has its type."""
    if not isinstance(f, dict):
        return "facts are not a mapping"
    for k in _FIELDS_STR:
        if not isinstance(f.get(k), _STR):
            return f"{k} is not a string"
    for k in _FIELDS_INT:
        if not _int_ok(f.get(k)):
            return f"{k} is not a count"
    if f.get("block_count") is not None and f["block_count"] > MAX_LAYERS:
        return "block_count is out of range"
    for k in _FIELDS_PER_LAYER:
        v = f.get(k)
        if isinstance(v, list):
            if len(v) > MAX_LAYERS or not all(_int_ok(x, False) for x in v):
                return f"{k} is not a list of counts"
        elif not _int_ok(v):
            return f"{k} is not a count"
    for k in _FIELDS_BOOL:
        if not isinstance(f.get(k, False), bool):
            return f"{k} is not true or false"
    if not isinstance(f.get("label_matches"), (bool, type(None))):
        return "label_matches is not true or false"
    pattern = f.get("sliding_window_pattern")
    if isinstance(pattern, list):
        if len(pattern) > MAX_LAYERS or not all(isinstance(x, bool) for x in pattern):
            return "sliding_window_pattern is not a list of flags"
    elif not _int_ok(pattern):
        return "sliding_window_pattern is not a count"
    if not _number_ok(f.get("bpw")):
        return "bpw is not a number"
    ssm = f.get("ssm")
    if ssm is not None and not (isinstance(ssm, dict) and all(_int_ok(v, False) for v in ssm.values())):
        return "ssm is not a mapping of counts"
    return _tables_problem(f)


def _tables_problem(f: dict[str, Any]) -> str | None:
    types = f.get("tensor_types", {})
    if not isinstance(types, dict) or not all(
        isinstance(v, dict) and all(_int_ok(v.get(k), False) for k in ("count", "bytes", "parameters"))
        for v in types.values()
    ):
        return "tensor_types is not a table of counts"
    layers = f.get("layers", [])
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS + 16:
        return "layers is not a list"
    for layer in layers:
        if not (
            isinstance(layer, dict)
            and isinstance(layer.get("name"), str)
            and all(_int_ok(layer.get(k, 0), False) for k in ("parameters", "bytes", "padded"))
            and _number_ok(layer.get("bpw", 0))
            and isinstance(layer.get("matrices", []), list)
            and all(_matrix_ok(m) for m in layer.get("matrices", []))
        ):
            return "layers holds a row that is not a layer"
    imatrix = f.get("imatrix")
    if imatrix is not None and not (
        isinstance(imatrix, dict) and all(isinstance(v, (str, int, type(None))) for v in imatrix.values())
    ):
        return "imatrix is not a mapping of values"
    split = f.get("split")
    if split is not None and not (
        isinstance(split, dict)
        and _int_ok(split.get("count"), False)
        and _int_ok(split.get("tensors_count"))
        and all(_is_str_list(split.get(k)) for k in ("parts", "missing"))
    ):
        return "split is not a split set"
    ignored = f.get("ignored", [])
    if not (isinstance(ignored, list) and all(isinstance(x, str) for x in ignored)):
        return "ignored is not a list of notes"
    ik_types = f.get("ik_types", [])
    if not (isinstance(ik_types, list) and all(isinstance(x, str) for x in ik_types)):
        return "ik_types is not a list of type names"
    return None
