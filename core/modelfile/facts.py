"""Model and quant facts from parsed headers: what a person choosing a quant needs to know."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import checks as c
from .checks import Values
from .errors import GGUFError
from .quant_types import (
    IK_ONLY,
    PRIMARY_TYPE,
    SHAPE_FALLBACK,
    file_type_label,
    ik_reason,
    ik_type,
    tensor_nbytes,
    tensor_type_known,
    tensor_type_name,
)
from .reader import MAX_TENSORS, Header, read_header
from .split import parse_split_name, split_parts

# Layer numbers have at most 4 digits (checks.MAX_LAYERS); `blk.<5000 digits>.x` is not a layer.
_BLOCK_RE = re.compile(r"^blk\.(0|[1-9]\d{0,3})\.")


@dataclass
class TypeStat:
    count: int = 0
    bytes: int = 0
    parameters: int = 0


# Weights of 2+ dimensions that llama.cpp uses in other ops than a matrix product (never in an extra buffer).
NOT_MATMUL = ("norm", "conv1d", "pos_embd", "token_types", "ssm_a", "ssm_d", "time_mix_", "channel_mix_")


@dataclass
class LayerStat:
    """A layer's weights; `padded` rounds each tensor up to the file's alignment, as buffers hold them."""

    name: str
    parameters: int
    bytes: int
    bpw: float
    padded: int = 0
    # The layer's weight matrices as [ggml type, ne0, ne1, ne2, bytes]: what llama.cpp's CPU backend
    # may copy into an extra buffer (AMX, CPU_REPACK) of its own; fit asks llama.cpp which (ggml.py).
    matrices: list[list[int]] = field(default_factory=list)


@dataclass
class ModelFacts:
    """Everything `inspect` reports about one model file or split set."""

    path: str
    size_bytes: int
    gguf_version: int
    architecture: str | None
    name: str | None
    basename: str | None
    size_label: str | None
    finetune: str | None
    parameters: int
    context_length: int | None
    block_count: int | None
    embedding_length: int | None
    head_count: int | list[int] | None
    head_count_kv: int | list[int] | None
    key_length: int | None
    value_length: int | None
    feed_forward_length: int | list[int] | None
    expert_count: int | None
    expert_used_count: int | None
    sliding_window: int | None
    sliding_window_pattern: int | list[bool] | None
    vocab_size: int | None
    tokenizer_model: str | None
    has_chat_template: bool
    bos_token_id: int | None
    eos_token_id: int | None
    tied_embeddings: bool
    ssm: dict[str, int] | None
    file_type: str | None
    file_type_id: int | None
    file_type_guessed: bool
    dominant_type: str | None
    label_matches: bool | None
    label_fallback: bool  # the layers differ from the label only by llama.cpp's fallback for row sizes
    bpw: float | None
    tensor_count: int
    tensor_types: dict[str, TypeStat]
    layers: list[LayerStat]
    imatrix: dict[str, Any] | None
    split: dict[str, Any] | None
    tensors: list[dict[str, Any]] = field(default_factory=list)
    vocab_only: bool = False  # no tensors: a tokenizer file (llama.cpp's ggml-vocab-*.gguf), not runnable
    ignored: list[str] = field(default_factory=list)  # header values refused: "key: why", one per value
    # Tensor types only ik_llama.cpp has (its IQK quants, _R4/_R8 repacks): llama.cpp cannot load it.
    ik_types: list[str] = field(default_factory=list)

    @property
    def runs_on(self) -> str | None:
        """Why llama.cpp (and so quanttui's runs) cannot load this file, or None: "ik_llama.cpp only"."""
        return IK_ONLY if self.ik_types else None

    def to_dict(self, *, tensors: bool = False) -> dict[str, Any]:
        """JSON-ready facts; per-tensor rows only when asked (asdict would deep-copy them every time)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "tensors"}
        d["tensor_types"] = {k: asdict(v) for k, v in self.tensor_types.items()}
        d["layers"] = [asdict(layer) for layer in self.layers]
        d["ik_only"] = bool(self.ik_types)
        if tensors:
            d["tensors"] = [dict(t) for t in self.tensors]
        return d


_SSM_KEYS = {
    "conv_kernel": "ssm.conv_kernel",
    "inner_size": "ssm.inner_size",
    "state_size": "ssm.state_size",
    "group_count": "ssm.group_count",
    "wkv_head_size": "wkv.head_size",
    "shortconv_l_cache": "shortconv.l_cache",
}


def _ssm_facts(v: Values) -> dict[str, int] | None:
    """Recurrent-state sizes (Mamba, RWKV, hybrids), which fix memory independent of context."""
    found = {name: v.arch_int(key, 1, c.MAX_STATE) for name, key in _SSM_KEYS.items()}
    sizes = {k: n for k, n in found.items() if n is not None}
    return sizes or None


def _tensor_types(header: Header) -> list[tuple[str, int | None, bool]]:
    """(type name, bytes, whether only ik_llama.cpp has the type) per tensor. A number the standard
    table lacks is ik_llama.cpp's when its block math gives the bytes the file holds for it (the gap
    to the next tensor's offset); any other unknown type is "type N", sized by that gap."""
    out: list[tuple[str, int | None, bool]] = [
        (tensor_type_name(t.type_id), tensor_nbytes(t.type_id, t.n_elements), False) for t in header.tensors
    ]
    if all(n is not None for _, n, _ in out):
        return out
    order = sorted(range(len(header.tensors)), key=lambda i: header.tensors[i].offset)
    data_end = None if header.file_size is None else header.file_size - header.data_offset
    for pos, i in enumerate(order):
        if out[i][1] is not None:
            continue
        t = header.tensors[i]
        nxt = header.tensors[order[pos + 1]].offset if pos + 1 < len(order) else data_end
        room = None if nxt is None else max(0, nxt - t.offset)
        ik = ik_type(t.type_id, t.shape, room, header.alignment)
        out[i] = (ik[0].name, ik[1], True) if ik else (out[i][0], room, False)
    return out


def _layer_name(tensor_name: str) -> str:
    m = _BLOCK_RE.match(tensor_name)
    if m and int(m.group(1)) < c.MAX_LAYERS:
        return f"blk.{m.group(1)}"
    if tensor_name.startswith("token_embd"):
        return "token_embd"
    if tensor_name.startswith("output_norm"):
        return "output_norm"
    if tensor_name.startswith("output"):
        return "output"
    return "other"


def _layer_order(name: str) -> tuple[int, int, str]:
    if name.startswith("blk."):
        return (1, int(name[4:]), name)
    fixed = {"token_embd": (0, 0, name), "output_norm": (2, 0, name), "output": (2, 1, name)}
    return fixed.get(name, (3, 0, name))


def summarize(headers: list[Header], path: str, size_bytes: int, split: dict[str, Any] | None) -> ModelFacts:
    """Facts for one model from its header(s); the first header carries the metadata.

    Every metadata value passes a type and range check (checks.Values): a refused one is None
    here and a note in `ignored`, so one odd file never takes a screen, `ls` or `fit` down.
    """
    head = headers[0]
    v = Values(head)
    file_type_id = v.int("general.file_type", 0, (1 << 32) - 1)
    label, guessed = file_type_label(file_type_id)
    types: dict[str, TypeStat] = {}
    layers: dict[str, list[int]] = {}
    matrices: dict[str, list[list[int]]] = {}
    big_params: dict[str, int] = {}  # matrices of the repeating blocks, which the quant label describes
    other_params: dict[str, int] = {}  # the embedding table and output (often kept at a higher type)
    tensor_rows: list[dict[str, Any]] = []
    total_params = total_bytes = 0
    bytes_known = True
    names = set()
    ik_types: set[str] = set()
    for h in headers:
        for t, (tname, nbytes, ik) in zip(h.tensors, _tensor_types(h), strict=False):
            if ik:
                ik_types.add(tname)
            n = t.n_elements
            names.add(t.name)
            stat = types.setdefault(tname, TypeStat())
            stat.count += 1
            stat.parameters += n
            stat.bytes += nbytes or 0
            bytes_known &= nbytes is not None
            total_params += n
            total_bytes += nbytes or 0
            acc = layers.setdefault(_layer_name(t.name), [0, 0, 0])
            acc[0] += n
            acc[1] += nbytes or 0
            acc[2] += -(-(nbytes or 0) // h.alignment) * h.alignment
            if len(t.shape) >= 2:
                into = big_params if _layer_name(t.name).startswith("blk.") else other_params
                into[tname] = into.get(tname, 0) + n
                # Only types llama.cpp's ggml knows: fit asks it about each (an unknown number aborts it).
                known = tensor_type_known(t.type_id)
                if known and nbytes and len(t.shape) <= 3 and not any(k in t.name for k in NOT_MATMUL):
                    ne2 = t.shape[2] if len(t.shape) > 2 else 1
                    matrices.setdefault(_layer_name(t.name), []).append(
                        [t.type_id, t.shape[0], t.shape[1], ne2, nbytes]
                    )
            tensor_rows.append({"name": t.name, "type": tname, "shape": list(t.shape), "bytes": nbytes})
    mix = big_params or other_params
    dominant = max(mix, key=mix.__getitem__) if mix else None
    expected = PRIMARY_TYPE.get(label) if label else None
    layer_stats = [
        LayerStat(name, p, b, round(8 * b / p, 4) if p else 0.0, padded, matrices.get(name, []))
        for name, (p, b, padded) in sorted(layers.items(), key=lambda kv: _layer_order(kv[0]))
    ]
    tensor_count = sum(len(h.tensors) for h in headers)
    declared = (split or {}).get("tensors_count") or 0
    vocab = v.arch_int("vocab_size", 1, c.MAX_VOCAB) or head.array_len("tokenizer.ggml.tokens")
    imatrix = None
    if any(k.startswith("quantize.imatrix.") for k in head.metadata):
        imatrix = {
            "file": v.text("quantize.imatrix.file"),
            "dataset": v.texts("quantize.imatrix.dataset"),
            "entries_count": v.int("quantize.imatrix.entries_count", 0, 1 << 32),
            "chunks_count": v.int("quantize.imatrix.chunks_count", 0, 1 << 32),
        }
    heads = v.per_layer("attention.head_count", 0, c.MAX_HEADS)
    return ModelFacts(
        path=path,
        size_bytes=size_bytes,
        gguf_version=head.version,
        architecture=v.arch,
        name=v.text("general.name"),
        basename=v.text("general.basename"),
        size_label=v.text("general.size_label"),
        finetune=v.text("general.finetune"),
        parameters=total_params,
        context_length=v.arch_int("context_length", 1, c.MAX_CTX_TRAIN),
        block_count=_block_count(v, max(tensor_count, declared)),
        embedding_length=v.arch_int("embedding_length", 1, c.MAX_EMBD),
        head_count=heads,
        head_count_kv=v.per_layer("attention.head_count_kv", 0, c.MAX_HEADS),
        key_length=v.arch_int("attention.key_length", 1, c.MAX_HEAD_DIM),
        value_length=v.arch_int("attention.value_length", 1, c.MAX_HEAD_DIM),
        feed_forward_length=v.per_layer("feed_forward_length", 0, c.MAX_FF),
        expert_count=v.arch_int("expert_count", 0, c.MAX_EXPERTS),
        expert_used_count=v.arch_int("expert_used_count", 0, c.MAX_EXPERTS),
        sliding_window=v.arch_int("attention.sliding_window", 0, c.MAX_CTX_TRAIN),
        sliding_window_pattern=v.pattern("attention.sliding_window_pattern"),
        vocab_size=vocab,
        tokenizer_model=v.text("tokenizer.ggml.model"),
        has_chat_template=isinstance(head.metadata.get("tokenizer.chat_template"), str),
        bos_token_id=v.int("tokenizer.ggml.bos_token_id", 0, c.MAX_TOKEN_ID),
        eos_token_id=v.int("tokenizer.ggml.eos_token_id", 0, c.MAX_TOKEN_ID),
        tied_embeddings="output.weight" not in names and "token_embd.weight" in names,
        ssm=_ssm_facts(v),
        file_type=label,
        file_type_id=file_type_id,
        file_type_guessed=guessed,
        dominant_type=dominant,
        label_matches=None if expected is None or dominant is None else expected == dominant,
        label_fallback=dominant is not None and SHAPE_FALLBACK.get(expected or "") == dominant,
        bpw=round(8 * total_bytes / total_params, 4) if total_params and bytes_known else None,
        tensor_count=tensor_count,
        tensor_types=dict(sorted(types.items(), key=lambda kv: -kv[1].bytes)),
        layers=layer_stats,
        imatrix=imatrix,
        split=split,
        tensors=tensor_rows,
        vocab_only=tensor_count == 0 and not declared,
        ignored=v.ignored,
        ik_types=sorted(ik_types),
    )


def _block_count(v: Values, tensors: int) -> int | None:
    """`block_count`, bounded by MAX_LAYERS and, in a file with tensors, by how many it has."""
    n = v.arch_int("block_count", 1, c.MAX_LAYERS)
    if n is not None and tensors and n > tensors:
        v.refuse(f"{v.arch}.block_count", f"{n:,} blocks but only {tensors:,} tensors")
        return None
    return n


def inspect_file(path: str | Path) -> ModelFacts:
    """Read a local model (any part of a split set reads the whole set) and return its facts."""
    path = Path(path)
    parts, missing = split_parts(path)
    sn = parse_split_name(path.name)
    if sn is None:
        header = read_header(path)
        return summarize([header], str(path), _size(path), None)
    headers = []
    for part in parts:
        try:
            headers.append(read_header(part))
        except GGUFError as e:
            raise type(e)(f"{part.name}: {e}") from None
    headers.sort(key=_split_no)
    if _split_no(headers[0]) != 0:
        raise GGUFError(f"part 1 of {sn.count} is missing ({', '.join(missing)}): its metadata lives there")
    declared = headers[0].get("split.tensors.count")
    split = {
        "count": sn.count,
        "parts": [str(p) for p in parts],
        "missing": missing,
        "tensors_count": declared if c.is_int(declared) and 0 <= declared <= sn.count * MAX_TENSORS else None,
    }
    first = path.with_name(sn.part_name(1))
    return summarize(headers, str(first), sum(_size(p) for p in parts), split)


def unloadable_reason(path: str | Path) -> str | None:
    """Why llama.cpp cannot load this model although it reads as a GGUF (it holds ik_llama.cpp's own
    tensor types), or None. A file that cannot be read is None here: llama.cpp's load says why."""
    try:
        facts = inspect_file(path)
    except (GGUFError, OSError, ValueError):
        return None
    return ik_reason(facts.ik_types) if facts.ik_types else None


def _split_no(header: Header) -> int:
    """A part's `split.no` (0-based); a part without a usable one sorts last."""
    no = header.get("split.no", 0)
    return no if c.is_int(no) and 0 <= no < 1 << 16 else 1 << 16


def _size(path: Path) -> int:
    return path.stat().st_size
