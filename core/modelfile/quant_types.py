"""Names and sizes of GGML tensor types and llama.cpp file types, from the `gguf` package, and
ik_llama.cpp's own types (its IQK quants and repacked _R4/_R8 layouts), which only it loads.

Numbers newer than the installed `gguf` knows are named "type N" / "ftype N" and never fail. A type
number is read as ik_llama.cpp's only when the standard table lacks it and its block math gives the
tensor's byte size in the file (ik_llama.cpp renumbered its types more than once).
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import gguf

GUESSED_FLAG = 1024
# File types llama.cpp knows that the installed gguf may not (shared/notes/facts.md).
_EXTRA_FILE_TYPES = {39: "NVFP4", 40: "Q1_0", 41: "Q2_0"}
_EXTRA_TENSOR_TYPES = {42: "Q2_0"}

IK_ONLY = "ik_llama.cpp only"


class IkType(NamedTuple):
    """One of ik_llama.cpp's tensor types: a row of ne0 weights takes
    `row_meta + type_size * ne0 / block` bytes (ggml_row_size in its ggml/src/ggml.c)."""

    name: str
    block: int
    type_size: int
    row_meta: int


# ik_llama.cpp's type numbers the standard ggml table does not have, with block sizes from its
# ggml/src/ggml.c type_traits and ggml/src/ggml-common.h block structs (ikawrakow/ik_llama.cpp at
# 8337e4cd, Aug 2026). Its R4/R8 ids 202/208/223 were _R4 before Feb 2025, with the same bytes per weight.
IK_TENSOR_TYPES: dict[int, IkType] = {
    97: IkType("Q8_0_X4", 32, 34, 0),
    98: IkType("Q8_1_X4", 32, 36, 0),
    99: IkType("Q8_2_X4", 32, 36, 0),
    133: IkType("Q6_0", 32, 26, 0),
    134: IkType("IQ1_BN", 64, 13, 2),
    135: IkType("IQ2_BN", 64, 16, 4),
    136: IkType("Q8_K64", 64, 68, 0),
    137: IkType("IQ2_K", 256, 76, 0),
    138: IkType("IQ3_K", 256, 110, 0),
    139: IkType("IQ4_K", 256, 144, 0),
    140: IkType("IQ5_K", 256, 176, 0),
    141: IkType("IQ6_K", 256, 212, 0),
    144: IkType("IQ4_KS", 256, 136, 4),
    145: IkType("IQ2_KS", 256, 70, 2),
    146: IkType("IQ4_KSS", 256, 128, 4),
    147: IkType("Q8_K16", 64, 64, 20),
    148: IkType("Q8_K32", 256, 296, 0),
    149: IkType("Q8_KR8", 256, 296, 0),
    150: IkType("Q8_K128", 128, 140, 0),
    151: IkType("Q8_KV", 32, 32, 8),
    152: IkType("IQ5_KS", 256, 168, 4),
    153: IkType("IQ2_KT", 256, 68, 4),
    154: IkType("IQ3_KT", 256, 100, 4),
    155: IkType("IQ4_KT", 256, 128, 4),
    156: IkType("IQ3_KS", 256, 102, 2),
    157: IkType("IQ2_KL", 256, 86, 2),
    158: IkType("IQ1_KT", 256, 56, 4),
    202: IkType("Q4_0_R8", 32, 18, 0),
    206: IkType("Q5_0_R4", 32, 22, 0),
    208: IkType("Q8_0_R8", 32, 34, 0),
    210: IkType("Q2_K_R4", 256, 84, 0),
    211: IkType("Q3_K_R4", 256, 110, 0),
    212: IkType("Q4_K_R4", 256, 144, 0),
    213: IkType("Q5_K_R4", 256, 176, 0),
    214: IkType("Q6_K_R4", 256, 210, 0),
    216: IkType("IQ2_XXS_R4", 256, 66, 0),
    217: IkType("IQ2_XS_R4", 256, 74, 0),
    218: IkType("IQ3_XXS_R4", 256, 98, 0),
    219: IkType("IQ1_S_R4", 32, 6, 2),
    220: IkType("IQ4_NL_R4", 32, 18, 0),
    221: IkType("IQ3_S_R4", 256, 110, 0),
    222: IkType("IQ2_S_R4", 256, 82, 0),
    223: IkType("IQ4_XS_R8", 256, 136, 0),
    229: IkType("IQ1_M_R4", 32, 7, 2),
    230: IkType("BF16_R16", 1, 2, 0),
    233: IkType("Q6_0_R4", 32, 26, 0),
    335: IkType("IQ2_BN_R4", 64, 16, 4),
    337: IkType("IQ2_K_R4", 256, 76, 0),
    338: IkType("IQ3_K_R4", 256, 110, 0),
    339: IkType("IQ4_K_R4", 256, 144, 0),
    340: IkType("IQ5_K_R4", 256, 176, 0),
    344: IkType("IQ4_KS_R4", 256, 136, 4),
    352: IkType("IQ5_KS_R4", 256, 168, 4),
    353: IkType("MXFP4_R8", 32, 17, 0),
    397: IkType("Q8_K_R16", 256, 258, 0),
    398: IkType("Q8_KV_R8", 32, 32, 4),
    399: IkType("Q8_K_R8", 256, 258, 0),
}
# Numbers ik_llama.cpp used before Sept 2024 (its IQ2_K was 37, IQ3_K 38) that no standard type has:
# read as these only when the byte size matches.
IK_OLD_TENSOR_TYPES: dict[int, IkType] = {
    37: IkType("IQ2_K", 256, 76, 0),
    38: IkType("IQ3_K", 256, 110, 0),
}
# ik_llama.cpp's llama_ftype values (its include/llama.h) that the standard table does not have.
IK_FILE_TYPES = {
    135: "Q6_0", 136: "IQ1_BN", 137: "IQ2_BN", 138: "IQ2_K", 139: "IQ3_K", 140: "IQ4_K", 141: "IQ5_K",
    142: "IQ6_K", 145: "IQ4_KS", 146: "IQ3_KL", 147: "IQ2_KS", 148: "IQ4_KSS", 149: "Q8_KV", 150: "IQ5_KS",
    151: "IQ2_KT", 152: "IQ3_KT", 153: "IQ4_KT", 154: "IQ3_KS", 155: "IQ2_KL", 156: "IQ1_KT",
    202: "Q4_0_R8", 207: "Q8_0_R8", 208: "Q5_0_R4", 210: "Q2_K_R4", 211: "Q3_K_R4", 214: "Q4_K_R4",
    216: "Q5_K_R4", 218: "Q6_K_R4", 219: "IQ2_XXS_R4", 220: "IQ2_XS_R4", 223: "IQ3_XXS_R4", 224: "IQ1_S_R4",
    225: "IQ4_NL_R4", 226: "IQ3_S_R4", 229: "IQ2_M_R4", 230: "IQ4_XS_R8", 231: "IQ1_M_R4", 232: "BF16_R16",
    335: "Q6_0_R4", 337: "IQ2_BN_R4", 338: "IQ2_K_R4", 339: "IQ3_K_R4", 340: "IQ4_K_R4", 341: "IQ5_K_R4",
    345: "IQ4_KS_R4", 350: "IQ5_KS_R4", 351: "MXFP4_R8", 398: "Q8_KV_R8", 399: "Q8_K_R8",
}  # fmt: skip
# Quant labels (in file names, on the Hub) that name an ik_llama.cpp-only recipe.
IK_LABELS = frozenset(IK_FILE_TYPES.values()) | frozenset(t.name for t in IK_TENSOR_TYPES.values())


def ik_reason(types: list[str]) -> str:
    """The one line that says why a file with these ik_llama.cpp types cannot run here."""
    which = ", ".join(types[:4]) + (", ..." if len(types) > 4 else "")
    return f"{IK_ONLY}: its {which + ' ' if which else ''}tensors are types llama.cpp cannot load"


def is_ik_label(label: str | None) -> bool:
    """Whether a quant label (Q4_K_M, IQ4_KS, IQ4_K_R4...) names a recipe only ik_llama.cpp loads."""
    return bool(label) and label.upper().removeprefix("UD-") in IK_LABELS  # type: ignore[union-attr]


def ik_nbytes(t: IkType, shape: tuple[int, ...]) -> int | None:
    """Bytes of a tensor of ik_llama.cpp's type `t`, or None when its rows do not fit the blocks."""
    if not shape or shape[0] % t.block:
        return None
    rows = 1
    for d in shape[1:]:
        rows *= d
    return rows * (t.row_meta + t.type_size * (shape[0] // t.block))


def ik_type(
    type_id: int, shape: tuple[int, ...], room: int | None, alignment: int
) -> tuple[IkType, int] | None:
    """ik_llama.cpp's type for a number the standard table lacks, with the tensor's bytes, when its
    block math fits `room` (the bytes up to the next tensor, padded to `alignment`); with `room`
    unknown, only a current ik_llama.cpp number is taken at its word."""
    if tensor_type_known(type_id) or type_id in _EXTRA_TENSOR_TYPES:
        return None
    for table in (IK_TENSOR_TYPES, IK_OLD_TENSOR_TYPES):
        t = table.get(type_id)
        if t is None:
            continue
        n = ik_nbytes(t, shape)
        if n is None:
            continue
        if room is None:
            if table is IK_TENSOR_TYPES:
                return t, n
            continue
        if n <= room <= -(-n // alignment) * alignment:
            return t, n
    return None


# The tensor type that carries most weights in each llama.cpp recipe, to check a label against the mix.
PRIMARY_TYPE = {
    "F32": "F32",
    "F16": "F16",
    "BF16": "BF16",
    "Q4_0": "Q4_0",
    "Q4_1": "Q4_1",
    "Q5_0": "Q5_0",
    "Q5_1": "Q5_1",
    "Q8_0": "Q8_0",
    "Q2_K": "Q2_K",
    "Q2_K_S": "Q2_K",
    "Q3_K_S": "Q3_K",
    "Q3_K_M": "Q3_K",
    "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K",
    "Q4_K_M": "Q4_K",
    "Q5_K_S": "Q5_K",
    "Q5_K_M": "Q5_K",
    "Q6_K": "Q6_K",
    "IQ2_XXS": "IQ2_XXS",
    "IQ2_XS": "IQ2_XS",
    "IQ2_S": "IQ2_S",
    "IQ2_M": "IQ2_S",
    "IQ3_XXS": "IQ3_XXS",
    "IQ3_XS": "IQ3_S",
    "IQ3_S": "IQ3_S",
    "IQ3_M": "IQ3_S",
    "IQ1_S": "IQ1_S",
    "IQ1_M": "IQ1_M",
    "IQ4_NL": "IQ4_NL",
    "IQ4_XS": "IQ4_XS",
    "TQ1_0": "TQ1_0",
    "TQ2_0": "TQ2_0",
    "MXFP4_MOE": "MXFP4",
    "NVFP4": "NVFP4",
    "Q1_0": "Q1_0",
    # ik_llama.cpp's recipes: most are named for their main type
    **{label: label for label in IK_FILE_TYPES.values() if label != "IQ3_KL"},
    "IQ2_M_R4": "IQ2_S_R4",
}

# What llama.cpp's quantizer writes instead of a type whose blocks do not fit a tensor's rows
# (src/llama-quant.cpp, tensor_type_fallback): Gemma 3 270M's 640-wide rows take Q5_0 for Q4_K.
SHAPE_FALLBACK = {
    **dict.fromkeys(("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_XS"), "IQ4_NL"),
    **dict.fromkeys(("Q2_0", "Q2_K", "Q3_K", "TQ1_0", "TQ2_0"), "Q4_0"),
    "Q4_K": "Q5_0",
    "Q5_K": "Q5_1",
    "Q6_K": "Q8_0",
}


@cache
def tensor_type_name(type_id: int) -> str:
    try:
        return gguf.GGMLQuantizationType(type_id).name
    except ValueError:
        return _EXTRA_TENSOR_TYPES.get(type_id, f"type {type_id}")


@cache
def tensor_type_known(type_id: int) -> bool:
    try:
        return gguf.GGMLQuantizationType(type_id) in gguf.GGML_QUANT_SIZES
    except ValueError:
        return False


def tensor_nbytes(type_id: int, n_elements: int) -> int | None:
    """Bytes of a tensor's data, or None for a type the installed gguf does not know."""
    if not tensor_type_known(type_id):
        return None
    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(type_id)]
    return n_elements * size // block


def file_type_label(ftype: int | None) -> tuple[str | None, bool]:
    """The label of `general.file_type` (e.g. "Q4_K_M", or ik_llama.cpp's "IQ4_KS") and whether
    llama.cpp marked it guessed."""
    if ftype is None:
        return None, False
    guessed = bool(ftype & GUESSED_FLAG)
    base = ftype & ~GUESSED_FLAG
    try:
        name = gguf.LlamaFileType(base).name
        label = name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        label = _EXTRA_FILE_TYPES.get(base) or IK_FILE_TYPES.get(base) or f"ftype {base}"
    return label, guessed
