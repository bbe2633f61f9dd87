"""Names and sizes of GGML tensor types and llama.cpp file types, from the `gguf` package.

Numbers newer than the installed `gguf` knows are named "type N" / "ftype N" and never fail.
"""

from __future__ import annotations

from functools import cache

import gguf

GUESSED_FLAG = 1024
# File types llama.cpp knows that the installed gguf may not (shared/notes/facts.md).
_EXTRA_FILE_TYPES = {39: "NVFP4", 40: "Q1_0", 41: "Q2_0"}
_EXTRA_TENSOR_TYPES = {42: "Q2_0"}

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
    """The label of `general.file_type` (e.g. "Q4_K_M") and whether llama.cpp marked it guessed."""
    if ftype is None:
        return None, False
    guessed = bool(ftype & GUESSED_FLAG)
    base = ftype & ~GUESSED_FLAG
    try:
        name = gguf.LlamaFileType(base).name
        label = name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        label = _EXTRA_FILE_TYPES.get(base, f"ftype {base}")
    return label, guessed
