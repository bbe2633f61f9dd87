"""Plain-text renderings of a model file and a library: the same facts the Library screen shows.

Every line these functions return passes through core.textsafe.clean, so names, paths and header
values from outside reach the terminal with their control, bidi and undecodable characters escaped.
"""

from __future__ import annotations

from typing import Any

from . import format as fmt
from .library import LibraryEntry, Root
from .modelfile.quant_types import ik_reason
from .textsafe import clean


def _kv(label: str, value: Any) -> str:
    return f"  {label:<18} {value}"


def _or_unknown(value: Any) -> Any:
    """A header value for a line of text: `?` where the file does not say (never Python's None)."""
    return "?" if value is None or value == "" else value


def count_text(value: Any) -> str:
    """A count that may be per layer: `4`, or `4-8 per layer` when the layers differ; `?` when unknown."""
    if isinstance(value, list):
        if not value:
            return "?"
        lo, hi = min(value), max(value)
        return str(lo) if lo == hi else f"{lo}-{hi} per layer"
    return str(_or_unknown(value))


def _heads_text(f: dict[str, Any]) -> str:
    heads, kv = f.get("head_count"), f.get("head_count_kv")
    if kv is None and heads is not None:  # llama.cpp takes the head count when the file does not say
        return f"{count_text(heads)} / {count_text(heads)} (kv heads not set: as many as heads)"
    return f"{count_text(heads)} / {count_text(kv)}"


def _vocab_text(f: dict[str, Any]) -> str:
    size, model = f.get("vocab_size"), f.get("tokenizer_model")
    return f"{_or_unknown(size)} ({model})" if model else str(_or_unknown(size))


def _window_text(f: dict[str, Any]) -> str:
    pattern = f.get("sliding_window_pattern")
    if isinstance(pattern, list):
        return f"{f['sliding_window']} ({sum(pattern)} of {len(pattern)} layers)"
    if pattern is None:
        return str(f["sliding_window"])
    return f"{f['sliding_window']} (pattern {pattern})"


def ik_text(f: dict[str, Any]) -> str:
    """Why llama.cpp cannot load the file, when it holds ik_llama.cpp's own tensor types; else ""."""
    types = f.get("ik_types") or []
    if not types and not f.get("ik_only"):
        return ""
    return ik_reason([str(t) for t in types])


def _text(lines: list[str]) -> str:
    """The lines as one text, each line cleaned: a value holding a newline or ESC stays on its line."""
    return "\n".join(clean(line) for line in lines)


def imatrix_text(im: dict[str, Any] | None) -> str:
    if not im:
        return "none recorded"
    bits = [im.get("dataset") or im.get("file") or "yes"]
    if im.get("chunks_count"):
        bits.append(f"{im['chunks_count']} chunks")
    if im.get("entries_count"):
        bits.append(f"{im['entries_count']} entries")
    return ", ".join(str(b) for b in bits)


def quant_text(f: dict[str, Any]) -> str:
    label = f.get("file_type") or "unlabeled"
    if f.get("file_type_guessed"):
        label += " (guessed)"
    if f.get("ik_only"):
        label += " (ik_llama.cpp only)"
    if f.get("label_matches") is False:
        dominant = f.get("dominant_type")
        if f.get("label_fallback"):  # not a mislabel: what llama.cpp does for rows the blocks do not fit
            label += f" (layers mostly {dominant}: llama.cpp's fallback where rows do not fit the blocks)"
        else:
            label += f"  ! its layers are mostly {dominant}, not what the label says"
    return label


def bar(value: float, top: float, width: int) -> str:
    cells = 0 if top <= 0 else value / top * width
    full = int(cells)
    part = " ▏▎▍▌▋▊▉"[int((cells - full) * 8)] if full < width else ""
    return ("█" * full + part).ljust(width)


def inspect_text(f: dict[str, Any], *, tensors: bool = False) -> str:
    lines = [clean(f["path"])]
    lines += [
        _kv("model", f.get("name") or "?"),
        _kv("architecture", f.get("architecture") or "?"),
        _kv("parameters", f"{fmt.params(f['parameters'])} ({f['parameters']:,})"),
        _kv("quant", quant_text(f)),
        _kv("bits per weight", f"{f['bpw']:.2f}" if f.get("bpw") is not None else "?"),
        _kv("file size", fmt.size(f["size_bytes"])),
        _kv("imatrix", imatrix_text(f.get("imatrix"))),
        _kv("context length", _or_unknown(f.get("context_length"))),
        _kv("layers", _or_unknown(f.get("block_count"))),
        _kv("embedding", _or_unknown(f.get("embedding_length"))),
        _kv("heads / kv heads", _heads_text(f)),
        _kv("vocabulary", _vocab_text(f)),
        _kv("chat template", "yes" if f.get("has_chat_template") else "no"),
    ]
    if f.get("tied_embeddings"):
        lines.append(_kv("output layer", "reads token_embd (tied embeddings)"))
    if f.get("vocab_only"):
        lines.append(_kv("runnable", "no: vocabulary only, no weights (a tokenizer file, not a model)"))
    elif ik_text(f):
        lines.append(_kv("runnable", f"no: {ik_text(f)}"))
    for note in f.get("ignored") or []:
        lines.append(_kv("ignored", note))
    if f.get("expert_count"):
        used = f.get("expert_used_count")
        n = f["expert_count"]
        lines.append(_kv("experts", f"{used} of {n} used" if used else str(n)))
    if f.get("sliding_window"):
        lines.append(_kv("sliding window", _window_text(f)))
    split = f.get("split")
    if split:
        miss = f", missing {', '.join(split['missing'])}" if split["missing"] else ""
        lines.append(_kv("split", f"{split['count']} parts{miss}"))
    if f.get("vocab_only"):
        return _text(lines)
    lines.append("")
    lines.append(f"  {'tensor type':<12} {'count':>6} {'params':>10} {'size':>12}")
    for name, st in f["tensor_types"].items():
        lines.append(
            f"  {name:<12} {st['count']:>6} {fmt.params(st['parameters']):>10} {fmt.size(st['bytes']):>12}"
        )
    lines.append("")
    layers = f.get("layers") or []
    top = max((layer["bpw"] for layer in layers), default=0)
    lines.append("  bits per weight by layer")
    for layer in layers:
        lines.append(f"  {clean(layer['name']):<14} {layer['bpw']:6.2f} {bar(layer['bpw'], top, 30)}")
    if tensors:
        lines.append("")
        for t in f.get("tensors", []):
            shape = "x".join(map(str, t["shape"]))
            lines.append(f"  {clean(t['name']):<40} {t['type']:<8} {shape:<16} {fmt.size(t['bytes'])}")
    return _text(lines)


def ls_text(entries: list[LibraryEntry]) -> str:
    header = (
        f"{'model':<36} {'arch':<10} {'params':>7} {'quant':<9} {'bpw':>5} {'size':>11} {'imatrix':<8} store"
    )
    lines = [header]
    last_group = None
    for e in entries:
        if e.group != last_group:
            lines.append(f"{e.group_label}")
            last_group = e.group
        name = clean(e.name)
        if e.error:
            lines.append(f"  {name:<34} error: {e.error}")
            continue
        bpw = f"{e.fact('bpw'):.2f}" if e.fact("bpw") is not None else "?"
        im = "yes" if e.fact("imatrix") else "-"
        arch = clean(e.fact("architecture") or "?")[:10]
        lines.append(
            f"  {name[:34]:<34} {arch:<10} {fmt.params(e.fact('parameters')):>7} "
            f"{clean(e.quant or '?'):<9} {bpw:>5} {fmt.size(e.size_bytes):>11} {im:<8} {e.store}"
            + ("  (ik_llama.cpp only)" if e.fact("ik_only") else "")
        )
    return _text(lines)


def empty_library_text(roots: list[tuple[Root, str]]) -> str:
    lines = ["No GGUF models found. quanttui looked in:"]
    for root, state in roots:
        lines.append(f"  {state:<8} {root.kind:<12} {root.path}")
    lines.append("Add a folder with: quanttui roots add PATH")
    return _text(lines)


def roots_text(rows: list[dict[str, Any]]) -> str:
    return _text([f"{r['state']:<8} {r['kind']:<12} {r['path']}" for r in rows])
