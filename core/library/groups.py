"""Group quants of one model: metadata first, then the HF repo or folder, then the file name."""

from __future__ import annotations

import re
from typing import Any

# Quant labels as they appear in file and repo names: Q4_K_M, IQ3_XXS, Q8_0, F16, BF16, UD-Q4_K_XL, MXFP4...
QUANT_IN_NAME = re.compile(
    r"(?:[-_. ](?:UD-)?(?:I?Q\d(?:_[0-9A-Z]+)*|BF16|F16|F32|FP16|FP32|MXFP4(?:_MOE)?|TQ\d_\d)(?=$|[-_. ]))+",
    re.IGNORECASE,
)


def strip_quant(name: str) -> str:
    """'Llama-3.2-1B-Instruct-Q4_K_M' -> 'Llama-3.2-1B-Instruct'."""
    name = re.sub(r"\.gguf$", "", name, flags=re.IGNORECASE)
    name = re.sub(r"-\d{5}-of-\d{5}$", "", name)
    stripped = QUANT_IN_NAME.sub("", name)
    return re.sub(r"[-_.]gguf$", "", stripped, flags=re.IGNORECASE) or name


def quant_from_name(name: str) -> str | None:
    """The quant label a file name carries, upper-cased, if any."""
    found = QUANT_IN_NAME.findall(re.sub(r"\.gguf$", "", name, flags=re.IGNORECASE))
    return found[-1].strip("-_. ").upper() if found else None


def _norm(s: str) -> str:
    return re.sub(r"[\s_.\-]+", "-", s.strip().lower()).strip("-")


def group_of(
    facts: dict[str, Any] | None, filename: str, origin: dict[str, str], folder: str
) -> tuple[str, str]:
    """(key, label) for grouping: quants of one model share the key."""
    if facts:
        arch = facts.get("architecture") or ""
        base = facts.get("basename")
        if base:
            parts = [base, facts.get("size_label"), facts.get("finetune")]
            label = " ".join(str(p) for p in parts if p)
            return f"{arch}:{_norm(label)}", label
        if facts.get("name"):
            label = strip_quant(str(facts["name"]))
            return f"{arch}:{_norm(label)}", label
    if origin.get("hf_repo"):
        label = strip_quant(origin["hf_repo"].split("/")[-1])
        return f"hf:{_norm(label)}", label
    if origin.get("ollama"):
        label = origin["ollama"].split(":")[0]
        return f"ollama:{_norm(label)}", label
    label = strip_quant(filename)
    return f"file:{_norm(folder)}/{_norm(label)}", label
