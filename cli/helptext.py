"""Every command's `--help`: a one-line description and examples, as `hf` and llama.cpp's tools show.

One table for all commands (the topic modules only declare arguments), applied by main.build_parser:
a command missing here fails tests/cli/test_help.py, so a new command cannot ship a bare `--help`.
"""

from __future__ import annotations

import argparse
from typing import Any

from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OFFLINE, EXIT_OK, EXIT_USAGE

EXIT_CODES = (
    f"exit codes: {EXIT_OK} done, {EXIT_FAILED} failed or refused (for fit: does not fit), "
    f"{EXIT_USAGE} usage error, {EXIT_OFFLINE} the Hub could not be reached, {EXIT_INTERRUPTED} interrupted"
)

# command: (description, examples)
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "inspect": (
        "Show a GGUF file's model and quant facts: architecture, parameters, quant and bits per weight,\n"
        "context, heads, vocabulary, the tensor types and the bits per weight of every layer.\n"
        "A split set reads whole from any part; hf:OWNER/REPO/FILE reads the header from the Hub.",
        (
            "quanttui inspect model-Q4_K_M.gguf",
            "quanttui inspect --json --tensors model-Q4_K_M.gguf",
            "quanttui inspect hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        ),
    ),
    "ls": (
        "List every GGUF in the library roots, grouped by model, with quant, bits per weight and size.",
        ("quanttui ls", "quanttui ls --json"),
    ),
    "roots": (
        "Show, add or remove the folders the library scans (the Hugging Face cache, Ollama and\n"
        "LM Studio stores are found by default; removing a default one hides it).",
        ("quanttui roots", "quanttui roots add ~/models", "quanttui roots remove ~/models"),
    ),
    "fit": (
        "Estimate the GPU memory and RAM a model takes at a context length, KV cache type and\n"
        "offload, per device; --measure loads it and prints llama.cpp's own buffer sizes beside it.\n"
        "Exits 1 when it does not fit.",
        (
            "quanttui fit model-Q4_K_M.gguf --ctx 32768",
            "quanttui fit model-Q4_K_M.gguf --kv q8_0 --flash-attn --vram 24GiB",
            "quanttui fit big-Q4_K_M.gguf --with draft-Q8_0.gguf",
        ),
    ),
    "ab": (
        "Run two models on the same prompt (greedy) and compare their answers token by token:\n"
        "where they first diverge, and how far their next-token distributions are apart.",
        (
            'quanttui ab model-Q8_0.gguf model-Q4_K_M.gguf --prompt "Explain KV cache in one paragraph"',
            "quanttui ab model-Q8_0.gguf model-IQ3_M.gguf --suite prompts.txt --save",
        ),
    ),
    "rm": (
        "Delete models (a split set whole) inside the library roots: to the trash unless --permanent.",
        ("quanttui rm model-Q2_K.gguf", "quanttui rm --permanent --yes model-Q2_K.gguf"),
    ),
    "mv": (
        "Move models (split sets whole) into a folder inside the library roots; across filesystems\n"
        "each file is copied, checked (size and SHA-256) and only then removed.",
        ("quanttui mv model-Q4_K_M.gguf ~/models/llama-3.2-1b/", "quanttui mv *.gguf ~/models/archive/"),
    ),
    "dedupe": (
        "Find identical model files across the roots (by SHA-256); --apply deletes the extras or\n"
        "replaces them with hard links to one kept copy.",
        ("quanttui dedupe", "quanttui dedupe --apply link --yes"),
    ),
    "du": (
        "Disk usage of the library: the total, and per root, per model and per quant.",
        ("quanttui du", "quanttui du --json"),
    ),
    "search": (
        "Search Hugging Face for GGUF repos, by downloads, likes or most recent.",
        ('quanttui search "llama 3.2 1b"', "quanttui search qwen --sort recent --limit 10 --json"),
    ),
    "pull": (
        "Download one quant of a Hub repo (every part of a split set) into the library, resumable;\n"
        "without FILE|QUANT it lists the quants the repo has.",
        (
            "quanttui pull bartowski/Llama-3.2-1B-Instruct-GGUF Q4_K_M",
            "quanttui pull bartowski/Llama-3.2-1B-Instruct-GGUF --to hf-cache Q8_0",
        ),
    ),
    "eval": (
        "Measure what lower quants lose against a reference (F16 or Q8_0): KL divergence, top-1\n"
        "agreement and perplexity, as llama-perplexity --kl-divergence does. Figures are recorded,\n"
        "so a second run is instant; Ctrl+C keeps the rows already finished.",
        (
            "quanttui eval model-F16.gguf model-Q4_K_M.gguf model-Q3_K_M.gguf",
            "quanttui eval model-Q8_0.gguf model-IQ3_M.gguf --text wiki.txt --chunks 20",
        ),
    ),
    "bench": (
        "Measure prompt processing and generation speed in tokens/s (llama-bench's pp512 and tg128)\n"
        "of each model on this machine; figures are recorded per machine.",
        (
            "quanttui bench model-Q4_K_M.gguf model-Q8_0.gguf",
            "quanttui bench --again --json model-Q4_K_M.gguf",
        ),
    ),
    "advise": (
        "Which quant of a model to run on this machine at a context length: what fits, what each\n"
        "loses (measured, or typical figures for a Hub repo), and the pick. Exits 1 when none fits.",
        (
            'quanttui advise "Llama 3.2 1B Instruct" --ctx 8192',
            "quanttui advise hf:bartowski/Llama-3.2-1B-Instruct-GGUF --vram 8GiB",
        ),
    ),
    "demo": (
        "Set up a real small model to start with: Gemma 3 270M and lower quants of it in the models\n"
        "folder, with the eval against F16 already run, so the Library shows what each quant loses.",
        ("quanttui demo", "quanttui"),
    ),
    "doctor": (
        "Print what a bug report needs: the llama.cpp build, devices, extra buffer types, quanttui's\n"
        "folders and whether the Hub answers.",
        ("quanttui doctor", "quanttui doctor --json --no-hub"),
    ),
}


def _epilog(examples: tuple[str, ...]) -> str:
    return "examples:\n" + "\n".join(f"  {e}" for e in examples)


def apply(parser: argparse.ArgumentParser, sub: Any) -> None:
    """Give the top-level parser and every command its description and examples (raw text)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        _epilog(("quanttui", "quanttui inspect model.gguf", "quanttui fit model.gguf --ctx 32768"))
        + "\n\nWithout a command, quanttui opens the terminal UI; `quanttui COMMAND --help`"
        + " shows a command's options.\n"
        + EXIT_CODES
    )
    for name, p in sub.choices.items():
        description, examples = COMMANDS.get(name, (None, ()))
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        if description:
            p.description = description
        if examples:
            p.epilog = _epilog(examples)
