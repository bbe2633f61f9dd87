"""A model's shape as memory sees it (layers, heads, cache geometry, bytes per block), from its facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import QuanttuiError
from ..modelfile.checks import facts_problem
from .rules import CTX_PAD, MAX_CTX, RECURRENT_ARCHS, SWA_PATTERN_DEFAULTS, Placement, kv_row_bytes

if TYPE_CHECKING:
    from .estimate import FitSettings

FLOAT_TYPES = {"F32", "F16", "BF16"}


class FitError(QuanttuiError, ValueError):
    """A configuration llama.cpp would refuse, or a bad input; str() is one line."""


@dataclass(frozen=True)
class Shape:
    """What memory depends on, taken from a model's header facts."""

    name: str
    architecture: str
    n_layer: int
    n_embd: int
    n_head: list[int]
    n_head_kv: list[int]
    head_dim_k: int
    head_dim_v: int
    n_vocab: int
    n_ff: int
    n_ctx_train: int
    n_swa: int
    swa_layers: list[bool]
    recurrent_layers: list[bool]
    ssm: dict[str, int]
    embd_bytes: int
    block_bytes: list[int]
    output_bytes: int
    tied: bool
    float_weights: bool
    # Weight matrices [ggml type, ne0, ne1, ne2, bytes] of blocks 0..n_layer-1 and, last, the output
    # layer (a tied output's is token_embd's): candidates for llama.cpp's extra buffers.
    matrices: tuple[tuple[tuple[int, ...], ...], ...] = ()

    @classmethod
    def from_facts(cls, f: Any) -> Shape:
        """The shape of a model from its facts dict; a dict of the wrong shape is a FitError, never a crash.

        Facts may come from the library's on-disk index, so their types are checked here again.
        """
        problem = facts_problem(f)
        if problem:
            raise FitError(f"cannot estimate memory: the model's facts are damaged ({problem})")
        if f.get("vocab_only"):
            raise FitError("a vocabulary-only file (no tensors): there is no model to load")
        arch = f.get("architecture") or "?"
        n_layer = f.get("block_count")
        n_embd = f.get("embedding_length")
        if not n_layer or not n_embd:
            raise FitError("no usable block_count or embedding_length in the header: cannot estimate memory")

        def per_layer(value: Any, default: int) -> list[int]:
            if isinstance(value, list):
                return list(value[:n_layer]) + [default] * max(0, n_layer - len(value))
            return [value if value is not None else default] * n_layer

        n_head = per_layer(f.get("head_count"), 0)
        n_head_kv = per_layer(f.get("head_count_kv"), max(n_head) if n_head else 0)
        head = max(n_head) or 1
        layers = {layer["name"]: layer for layer in f.get("layers") or []}

        def padded(name: str) -> int:
            size: int = layers.get(name, {}).get("padded", 0)
            return size

        blocks = [padded(f"blk.{i}") for i in range(n_layer)]

        def matrices(*names: str) -> tuple[tuple[int, ...], ...]:
            return tuple(tuple(m) for name in names for m in layers.get(name, {}).get("matrices", []))

        tied = bool(f.get("tied_embeddings"))
        # token_embd is read by row (GET_ROWS), never from an extra buffer; a tied output is a copy of it.
        output_names = ("output", "other", "token_embd") if tied else ("output", "other")
        mats = tuple(matrices(f"blk.{i}") for i in range(n_layer)) + (matrices(*output_names),)
        output = padded("output") + padded("output_norm") + padded("other")
        embd = padded("token_embd")
        if tied:
            output += embd
        ssm = f.get("ssm") or {}
        if arch in RECURRENT_ARCHS:
            recurrent = [True] * n_layer
        elif isinstance(f.get("head_count_kv"), list) and ssm:
            recurrent = [kv == 0 for kv in n_head_kv]
        else:
            recurrent = [False] * n_layer
        window = f.get("sliding_window") or 0
        pattern = f.get("sliding_window_pattern")
        if isinstance(pattern, list):
            swa = [bool(x) for x in pattern][:n_layer] + [False] * max(0, n_layer - len(pattern))
        else:
            every = pattern if pattern else SWA_PATTERN_DEFAULTS.get(arch, 0)
            swa = [bool(window) and every > 1 and (i % every) < every - 1 for i in range(n_layer)]
        ff = f.get("feed_forward_length")
        return cls(
            name=f.get("name") or f.get("path") or "?",
            architecture=arch,
            n_layer=n_layer,
            n_embd=n_embd,
            n_head=n_head,
            n_head_kv=n_head_kv,
            head_dim_k=f.get("key_length") or n_embd // head,
            head_dim_v=f.get("value_length") or n_embd // head,
            n_vocab=f.get("vocab_size") or 0,
            n_ff=max(ff) if isinstance(ff, list) else (ff or 0),
            n_ctx_train=f.get("context_length") or MAX_CTX,
            n_swa=window,
            swa_layers=swa,
            recurrent_layers=recurrent,
            ssm=ssm,
            embd_bytes=embd,
            block_bytes=blocks,
            output_bytes=output,
            tied=tied,
            float_weights=(f.get("dominant_type") or "") in FLOAT_TYPES,
            matrices=mats,
        )

    def extra_bytes(self, il: int, place: Placement) -> tuple[dict[str, int], int]:
        """({extra buffer: bytes there}, those matrices' bytes in the file) of layer `il` (n_layer:
        the output layer) on the CPU, as `place` says llama.cpp puts each matrix."""
        alloc: dict[str, int] = {}
        orig = 0
        for t, ne0, ne1, ne2, nbytes in self.matrices[il] if il < len(self.matrices) else ():
            where = place(t, ne0, ne1, ne2)
            if where is not None:
                alloc[where[0]] = alloc.get(where[0], 0) + where[1]
                orig += nbytes
        return alloc, orig

    @property
    def n_embd_gqa(self) -> int:
        return max(self.n_head_kv) * self.head_dim_k

    def kv_layer_bytes(self, il: int, cells: int, s: FitSettings) -> int:
        """Cache bytes of block `il`: attention K+V, or recurrent state (f32, per sequence)."""
        if self.recurrent_layers[il]:
            return self._recurrent_bytes() * s.n_parallel
        kv_heads = self.n_head_kv[il]
        if kv_heads == 0:
            return 0
        if self.swa_layers[il] and not s.swa_full and self.n_swa:
            cells = min(cells, _pad(self.n_swa * s.n_parallel + s.n_ubatch))
        k = kv_row_bytes(s.type_k, self.head_dim_k * kv_heads)
        v = kv_row_bytes(s.type_v, self.head_dim_v * kv_heads)
        return (k + v) * cells

    def _recurrent_bytes(self) -> int:
        m = self.ssm
        if "wkv_head_size" in m:  # RWKV: token shift (2 x n_embd) + wkv state (n_embd x head size)
            return 4 * (2 * self.n_embd + self.n_embd * m["wkv_head_size"])
        if "shortconv_l_cache" in m:  # LFM2 short convolutions
            return 4 * max(0, m["shortconv_l_cache"] - 1) * self.n_embd
        d_conv, d_inner = m.get("conv_kernel", 4), m.get("inner_size", 2 * self.n_embd)
        d_state, groups = m.get("state_size", 16), m.get("group_count", 0)
        conv = max(0, d_conv - 1) * (d_inner + 2 * groups * d_state)
        return 4 * (conv + d_state * d_inner)


def _pad(n: int, to: int = CTX_PAD) -> int:
    return -(-n // to) * to
