"""Check the fit estimate against real GPU memory: real shapes, one fresh process per configuration.

For each model shape and setting, a child process loads the model with llama-cpp-python (a GPU
build), runs a prompt (512 tokens, or nearly the whole context where a configuration says so) and
64 generated tokens, and records the peak NVML memory above the idle baseline, as
../shared/data/gpu-memory-h100-calibration.json was measured. The parent prints, per configuration,
fit's estimate against the measured footprint and fit's compute buffer against the one llama.cpp
logged, each with their ratio. Needs an NVIDIA GPU and a CUDA build of llama-cpp-python.

The `7b-mha-like` shape has no GQA (32 KV heads, as many as query heads): with half the layers
offloaded, a q8_0 KV cache and flash attention, fit's compute buffer was reported several-fold low;
its two controls (an f16 cache; all layers) tell which part of that configuration does it.
Run: python bench/gpu_fit_check.py --out DIR [--shapes 7b-mha-like] [--deadline SECONDS]
     python bench/gpu_fit_check.py --prepare --shapes 7b-mha-like  # write the F16 sources only
     python bench/gpu_fit_check.py --dry-run   # a tiny no-GQA shape on any build, CPU included
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SHAPES = {
    # Qwen2.5-0.5B-like: tied embeddings, 152k vocabulary, 2 KV heads of 64.
    "qwen05-like": dict(
        n_embd=896, n_layer=24, n_head=14, n_head_kv=2, n_ff=4864, n_vocab=151936, head_dim=64, tied=True
    ),
    # Wide heads (256) and a 256k vocabulary, as Gemma-style models have.
    "head256-like": dict(
        n_embd=2048, n_layer=12, n_head=8, n_head_kv=1, n_ff=8192, n_vocab=256000, head_dim=256, tied=False
    ),
    # LLaMA-2-7B-like without GQA: 32 query and 32 KV heads of 128, a 32k vocabulary.
    "7b-mha-like": dict(
        n_embd=4096, n_layer=32, n_head=32, n_head_kv=32, n_ff=11008, n_vocab=32000, head_dim=128, tied=False
    ),
    # The same head layout, small enough to check this script on a CPU (--dry-run).
    "mha-tiny": dict(
        n_embd=512, n_layer=4, n_head=4, n_head_kv=4, n_ff=1024, n_vocab=2000, head_dim=128, tied=False
    ),
}
CONFIGS = [
    dict(n_ctx=8192, flash_attn=False, kv="f16", gpu_layers="all"),
    dict(n_ctx=16384, flash_attn=True, kv="f16", gpu_layers="all"),
    dict(n_ctx=8192, flash_attn=True, kv="q8_0", gpu_layers="all"),
    dict(n_ctx=4096, flash_attn=False, kv="f16", gpu_layers="half"),
]
# No GQA: partial offload (half the layers) with a q8_0 cache and flash attention, then the same with
# an f16 cache, then with every layer; the prompt fills the context, as a long chat does.
MHA_CONFIGS = [
    dict(n_ctx=8192, flash_attn=True, kv="q8_0", gpu_layers="half", prompt=8000),
    dict(n_ctx=8192, flash_attn=True, kv="f16", gpu_layers="half", prompt=8000),
    dict(n_ctx=8192, flash_attn=True, kv="q8_0", gpu_layers="all", prompt=8000),
]
QUANTS = ("Q4_K_M", "Q8_0")
PLANS = {  # shape: (configurations, quants)
    "qwen05-like": (CONFIGS, QUANTS),
    "head256-like": (CONFIGS, QUANTS),
    "7b-mha-like": (MHA_CONFIGS, ("Q4_K_M",)),
    "mha-tiny": (MHA_CONFIGS, ("Q4_K_M",)),
}
DEFAULT_SHAPES = ("qwen05-like", "head256-like", "7b-mha-like")


def child(path: str, cfg: dict) -> None:
    """Runs in a fresh process: llama_cpp is imported before numpy (a CUDA build crashed otherwise)."""
    from quanttui.core.llama import LlamaLogCapture, lib  # noqa: I001  (llama_cpp must come first)
    import threading

    import pynvml

    try:
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        used = lambda: pynvml.nvmlDeviceGetMemoryInfo(h).used  # noqa: E731
    except pynvml.NVMLError:  # no NVIDIA GPU: the run still checks that this script works
        used = lambda: 0  # noqa: E731
    base = used()
    peak = [base]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], used())
            time.sleep(0.01)

    threading.Thread(target=poll, daemon=True).start()
    from quanttui.core.fit.measure import GGML_TYPES, parse_buffers

    sink = LlamaLogCapture.start()
    t = GGML_TYPES[cfg["kv"]]
    llm = lib().Llama(
        model_path=path,
        n_ctx=cfg["n_ctx"],
        n_gpu_layers=cfg["ngl"],
        flash_attn=cfg["flash_attn"],
        type_k=t,
        type_v=t,
        n_batch=512,
        n_ubatch=512,
        verbose=True,
    )
    n_vocab = llm.n_vocab()
    llm.eval([3 + i % (n_vocab - 3) for i in range(cfg.get("prompt", 512))])
    for _ in range(64):
        llm.eval([llm.sample(temp=0.0)])
    time.sleep(0.2)
    stop.set()
    print(json.dumps({"footprint": peak[0] - base, "buffers": parse_buffers(sink)}))


def build(name: str, shape: dict, work: Path) -> Path:
    """A zero-weight F16 llama model with the given shape (memory does not depend on weight values)."""
    import gguf
    import numpy as np

    path = work / f"{name}-F16.gguf"
    if path.exists():
        return path
    s = shape
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_block_count(s["n_layer"])
    w.add_context_length(131072)
    w.add_embedding_length(s["n_embd"])
    w.add_feed_forward_length(s["n_ff"])
    w.add_head_count(s["n_head"])
    w.add_head_count_kv(s["n_head_kv"])
    w.add_key_length(s["head_dim"])
    w.add_value_length(s["head_dim"])
    w.add_rope_dimension_count(s["head_dim"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("llama")
    vocab = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    vocab += [f"t{i}" for i in range(s["n_vocab"] - len(vocab))]
    w.add_token_list(vocab)
    w.add_token_scores([0.0] * len(vocab))
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (len(vocab) - 259))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    e, hd, f16 = s["n_embd"], s["head_dim"], np.float16
    w.add_tensor("token_embd.weight", np.zeros((s["n_vocab"], e), f16))
    for i in range(s["n_layer"]):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(e, np.float32))
        w.add_tensor(p + "attn_q.weight", np.zeros((s["n_head"] * hd, e), f16))
        w.add_tensor(p + "attn_k.weight", np.zeros((s["n_head_kv"] * hd, e), f16))
        w.add_tensor(p + "attn_v.weight", np.zeros((s["n_head_kv"] * hd, e), f16))
        w.add_tensor(p + "attn_output.weight", np.zeros((e, s["n_head"] * hd), f16))
        w.add_tensor(p + "ffn_norm.weight", np.ones(e, np.float32))
        w.add_tensor(p + "ffn_gate.weight", np.zeros((s["n_ff"], e), f16))
        w.add_tensor(p + "ffn_up.weight", np.zeros((s["n_ff"], e), f16))
        w.add_tensor(p + "ffn_down.weight", np.zeros((e, s["n_ff"]), f16))
    w.add_tensor("output_norm.weight", np.ones(e, np.float32))
    if not s["tied"]:
        w.add_tensor("output.weight", np.zeros((s["n_vocab"], e), f16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def quantize(src: Path, quant: str) -> Path:
    dst = src.with_name(src.name.replace("F16", quant))
    if not dst.exists():
        code = (
            "from quanttui.core.llama import quantize;"
            f"quantize({str(src)!r}, {str(dst)!r}, {quant!r})"
        )
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return dst


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt(x: float | None, spec: str) -> str:
    return format(x, spec) if x is not None else "n/a"


def run_one(name: str, shape: dict, quant: str, path: Path, facts: dict, cfg: dict, hw: object) -> dict:
    """One configuration in a fresh child: fit's estimate beside the measured footprint and the
    compute buffer llama.cpp logged for the GPU, with their ratios (None where nothing was measured)."""
    from quanttui.core.fit import FitSettings, estimate

    ngl = -1 if cfg["gpu_layers"] == "all" else shape["n_layer"] // 2
    run = {**cfg, "ngl": ngl}
    r = subprocess.run(
        [sys.executable, __file__, "--child", str(path), json.dumps(run)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0:
        print(f"{name} {quant} {run}: child failed\n{r.stderr[-2000:]}", flush=True)
        return {"model": name, "quant": quant, **run, "error": r.stderr[-2000:]}
    measured = json.loads(r.stdout.strip().splitlines()[-1])
    s = FitSettings(
        n_ctx=cfg["n_ctx"],
        type_k=cfg["kv"],
        type_v=cfg["kv"],
        flash_attn=cfg["flash_attn"],
        gpu_layers="all" if ngl < 0 else ngl,
    )
    gpu = estimate(facts, s, hw, search=False).devices[0]
    real = measured["footprint"] or None  # 0: no NVIDIA GPU to read (a dry run)
    logged = next((b.get("compute") for n, b in measured["buffers"].items() if n.startswith("CUDA")), None)
    return {
        "model": name,
        "quant": quant,
        **run,
        "estimate": gpu.total,
        "footprint": real,
        "ratio": _ratio(gpu.total, real),
        "error_mib": (gpu.total - real) / 2**20 if real else None,
        "error_pct": 100 * (gpu.total - real) / real if real else None,
        "compute_estimate": gpu.compute,
        "compute_logged": logged,
        "compute_ratio": _ratio(gpu.compute, logged),
        "estimate_parts": gpu.to_dict(),
        "buffers": measured["buffers"],
    }


def line(row: dict) -> str:
    """One result as a line: estimate vs measured footprint and compute buffer, each with its ratio."""
    if "error" in row:
        return f"{row['model']:13} {row['quant']:6} ctx={row['n_ctx']:6} ngl={row['ngl']:3}  child failed"
    mib = 2**20
    real = row["footprint"] / mib if row["footprint"] else None
    logged = row["compute_logged"] / mib if row["compute_logged"] is not None else None
    return (
        f"{row['model']:13} {row['quant']:6} ctx={row['n_ctx']:6} fa={int(row['flash_attn'])} "
        f"kv={row['kv']:5} ngl={row['ngl']:3} total est={row['estimate'] / mib:9.1f} "
        f"real={_fmt(real, '9.1f')} MiB est/real={_fmt(row['ratio'], '.2f')}  "
        f"compute est={row['compute_estimate'] / mib:8.1f} logged={_fmt(logged, '8.1f')} MiB "
        f"est/logged={_fmt(row['compute_ratio'], '.2f')}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("gpu_fit_check_out"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/gpu_fit_check"))
    ap.add_argument(
        "--deadline", type=float, default=540.0, help="stop starting new runs after this many seconds"
    )
    ap.add_argument("--shapes", default=",".join(DEFAULT_SHAPES), help=f"of {', '.join(SHAPES)}")
    ap.add_argument("--prepare", action="store_true", help="write the F16 sources only (no llama_cpp needed)")
    ap.add_argument(
        "--dry-run", action="store_true", help="mha-tiny at ctx 1024 on any build, a 141 GiB GPU assumed"
    )
    ap.add_argument("--child", nargs=2, metavar=("PATH", "CONFIG"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], json.loads(args.child[1]))
        return
    start = time.time()
    shapes = ["mha-tiny"] if args.dry_run else [x for x in args.shapes.split(",") if x]
    unknown = [x for x in shapes if x not in SHAPES]
    if unknown:
        ap.error(f"unknown shape {', '.join(unknown)} (have {', '.join(SHAPES)})")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.prepare:
        for name in shapes:
            print(f"wrote {build(name, SHAPES[name], args.work)}", flush=True)
        return
    from quanttui.core.fit import hardware
    from quanttui.core.modelfile import inspect_file

    args.out.mkdir(parents=True, exist_ok=True)
    hw = hardware("141GiB", "128GiB") if args.dry_run else hardware()
    results = []
    for name in shapes:
        shape = SHAPES[name]
        configs, quants = PLANS[name]
        src = build(name, shape, args.work)
        for quant in quants:
            path = quantize(src, quant)
            facts = inspect_file(path).to_dict()
            for cfg in configs:
                if args.dry_run:  # the same settings at a context a CPU runs through in seconds
                    cfg = {**cfg, "n_ctx": 1024, "prompt": min(cfg.get("prompt", 512), 900)}
                if time.time() - start > args.deadline:
                    print(f"deadline: {name} {quant} {cfg} not run", flush=True)
                    continue
                row = run_one(name, shape, quant, path, facts, cfg, hw)
                results.append(row)
                print(line(row), flush=True)
                (args.out / "gpu_fit_check.json").write_text(json.dumps(results, indent=1))
    where = args.out / "gpu_fit_check.json"
    print(f"\n{len(results)} runs in {time.time() - start:.0f} s (results in {where})")
    for row in results:
        print(line(row))
    ok = [r for r in results if r.get("footprint")]
    if ok:
        worst = max(abs(r["error_mib"]) for r in ok)
        within = sum(abs(r["error_mib"]) <= max(128, 0.03 * r["footprint"] / 2**20) for r in ok)
        print(f"{within}/{len(ok)} totals within max(3%, 128 MiB); worst {worst:.1f} MiB")
    else:
        print("no GPU memory measured (no NVIDIA GPU): the estimates above are unchecked")


if __name__ == "__main__":
    main()
