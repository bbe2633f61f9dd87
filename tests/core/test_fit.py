"""The memory estimate against llama.cpp's own logged buffers (CPU build) and the H100 calibration data."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest

from quanttui.core.fit import FitError, FitSettings, estimate, fit_pair, hardware
from quanttui.core.fit.devices import Device, Hardware, cuda_visible, parse_sizes
from quanttui.core.fit.measure import measure
from quanttui.core.modelfile import inspect_file
from tests.modelgen import quantize

MIB = 1 << 20
CALIBRATION = Path(__file__).resolve().parents[1] / "data" / "gpu-memory-h100-calibration.json"
NO_GPU = Hardware((), Device("RAM", "ram", "cpu", 64 << 30, 64 << 30), "test")


def gpus(*gib: float, ram: float = 128) -> Hardware:
    devs = tuple(
        Device(f"GPU {i}", "gpu", "cuda", int(g * (1 << 30)), int(g * (1 << 30))) for i, g in enumerate(gib)
    )
    return Hardware(devs, Device("RAM", "ram", "cpu", int(ram * (1 << 30)), int(ram * (1 << 30))), "test")


def mib2(n: int) -> float:
    """Bytes as llama.cpp prints them: MiB with two decimals."""
    return round(n / MIB, 2)


CONFIGS = [
    FitSettings(n_ctx=2048),
    FitSettings(n_ctx=1000),  # padded to 1024 cells
    FitSettings(n_ctx=8192),
    FitSettings(n_ctx=8192, flash_attn=True),
    FitSettings(n_ctx=4096, flash_attn=True, type_k="q8_0", type_v="q8_0"),
    FitSettings(n_ctx=4096, flash_attn=True, type_k="q4_0", type_v="q4_0"),
    FitSettings(n_ctx=4096, flash_attn=True, type_k="q8_0", type_v="f16"),
    FitSettings(n_ctx=4096, n_ubatch=128),
    FitSettings(n_ctx=4096, n_ubatch=256, flash_attn=True),
]


@pytest.mark.parametrize("label", ["Q4_K_M", "Q8_0", "F16", "tied"])
@pytest.mark.parametrize(
    "settings",
    CONFIGS,
    ids=lambda s: f"ctx{s.n_ctx}-{s.type_k}{s.type_v}-fa{int(s.flash_attn)}-ub{s.n_ubatch}",
)
def test_estimate_matches_llama_cpp_on_cpu(tiny, label, settings):
    path = {"F16": tiny.f16, "tied": tiny.tied}.get(label) or tiny.quants[label]
    settings = replace(settings, use_mmap=False)  # every weight in one buffer, repacked or not
    ram = estimate(inspect_file(path).to_dict(), settings, NO_GPU).devices[-1]
    measured = measure(str(path), settings)
    weights = sum(parts.get("weights", 0) for parts in measured.values())
    cpu = measured["CPU"]
    assert mib2(ram.weights) == mib2(weights)
    assert mib2(ram.kv_cache) == mib2(cpu["kv_cache"])
    assert ram.compute == pytest.approx(cpu["compute"], rel=0.10)
    assert mib2(ram.output) == mib2(cpu["output"])


def _calibration_facts(record: dict, records: list[dict]) -> dict:
    """Header facts for a calibration model, its layer sizes solved from llama.cpp's logged buffers."""
    sh = record["shape"]
    same = [r for r in records if r["model"] == record["model"]]
    full = next(r for r in same if r["n_gpu_layers"] == -1)["llama_cpp_buffers_mib"]["model"]
    part_rec = next(r for r in same if r["n_gpu_layers"] > 0)
    part = part_rec["llama_cpp_buffers_mib"]["model"]["CUDA0"]
    n_layer, n_gpu = sh["n_layer"], part_rec["n_gpu_layers"]
    block = (full["CUDA0"] - part) / (n_layer - (n_gpu - 1)) * MIB
    output = full["CUDA0"] * MIB - n_layer * block
    layers = [{"name": "token_embd", "padded": int(full["CPU_Mapped"] * MIB)}]
    layers += [{"name": f"blk.{i}", "padded": int(block)} for i in range(n_layer)]
    layers.append({"name": "output", "padded": int(output)})
    return {
        "name": record["model"],
        "architecture": "llama",
        "block_count": n_layer,
        "embedding_length": sh["n_embd"],
        "head_count": sh["n_head"],
        "head_count_kv": sh["n_head_kv"],
        "vocab_size": sh["n_vocab"],
        "feed_forward_length": sh["n_ff"],
        "context_length": 131072,
        "layers": layers,
        "dominant_type": record["quant"].split("_K")[0].replace("Q4", "Q4_K"),
        "tied_embeddings": False,
    }


def test_h100_calibration_within_tolerance():
    """Every measured configuration: the GPU estimate within max(3%, 128 MiB) of the real footprint."""
    records = json.loads(CALIBRATION.read_text())["records"]
    worst = 0.0
    for r in records:
        facts = _calibration_facts(r, records)
        s = FitSettings(
            n_ctx=r["n_ctx"],
            type_k=r["kv_type"],
            type_v=r["kv_type"],
            flash_attn=r["flash_attn"],
            gpu_layers="all" if r["n_gpu_layers"] == -1 else r["n_gpu_layers"],
            n_batch=r["n_batch"],
            n_ubatch=r["n_ubatch"],
        )
        gpu = estimate(facts, s, gpus(80), search=False).devices[0]
        real = r["gpu_footprint_mib"] * MIB
        tolerance = max(0.03 * real, 128 * MIB)
        assert abs(gpu.total - real) <= tolerance, (
            r["model"],
            r["n_ctx"],
            gpu.total / MIB,
            r["gpu_footprint_mib"],
        )
        assert mib2(gpu.kv_cache) == r["llama_cpp_buffers_mib"]["KV"]["CUDA0"]
        worst = max(worst, abs(gpu.total - real) / real)
    assert worst < 0.03


def test_offload_order_output_first_embeddings_never(tiny):
    facts = inspect_file(tiny.quants["Q8_0"]).to_dict()
    layer = {x["name"]: x["padded"] for x in facts["layers"]}
    output = layer["output"] + layer["output_norm"]  # llama.cpp's output layer holds both
    one = estimate(facts, FitSettings(gpu_layers=1), gpus(24), search=False)
    gpu, ram = one.devices
    assert gpu.weights == output and gpu.kv_cache == 0
    assert ram.weights == layer["token_embd"] + sum(layer[f"blk.{i}"] for i in range(4))
    two = estimate(facts, FitSettings(gpu_layers=2), gpus(24), search=False)
    assert two.devices[0].weights == output + layer["blk.3"]
    everything = estimate(facts, FitSettings(gpu_layers="all"), gpus(24), search=False)
    assert everything.devices[1].weights == layer["token_embd"]
    assert everything.verdict == "fits on GPU" and everything.verdict_code == "gpu"


def test_tied_embeddings_copy_to_the_gpu(tiny):
    facts = inspect_file(tiny.tied).to_dict()
    layer = {x["name"]: x["padded"] for x in facts["layers"]}
    gpu, ram = estimate(facts, FitSettings(gpu_layers="all"), gpus(24), search=False).devices
    assert "output" not in layer
    blocks = sum(layer[f"blk.{i}"] for i in range(4))
    assert gpu.weights == blocks + layer["output_norm"] + layer["token_embd"]
    assert ram.weights == layer["token_embd"]


def test_limits_are_the_edge_of_fitting(tiny):
    facts = inspect_file(tiny.quants["Q4_K_M"]).to_dict()
    facts["context_length"] = 1 << 20
    hw = gpus(1.0)
    r = estimate(facts, FitSettings(n_ctx=4096, gpu_layers="all"), hw)
    best = r.max_context_full_offload
    assert best and best % 256 == 0
    assert estimate(facts, FitSettings(n_ctx=best, gpu_layers="all"), hw, search=False).fits
    assert not estimate(facts, FitSettings(n_ctx=best + 256, gpu_layers="all"), hw, search=False).fits
    full = estimate(facts, FitSettings(n_ctx=4096, gpu_layers="all"), hw, search=False).devices[0].total
    small = gpus((full - 5 * MIB) / (1 << 30))  # every layer but one or two fits
    auto = estimate(facts, FitSettings(n_ctx=4096), small)
    assert auto.verdict_code == "partial" and 0 < auto.gpu_layers < 5
    assert auto.verdict == f"fits with {auto.gpu_layers} of 5 layers on GPU"
    more = estimate(facts, FitSettings(n_ctx=4096, gpu_layers=auto.gpu_layers + 1), small, search=False)
    assert not more.fits and more.verdict.startswith("does not fit: GPU 0 needs")


def test_no_gpu_is_normal_and_ram_can_run_out(tiny):
    facts = inspect_file(tiny.quants["Q4_K_M"]).to_dict()
    r = estimate(facts, FitSettings(), NO_GPU)
    assert r.verdict == "RAM only" and r.gpu_layers == 0 and r.max_context_full_offload is None
    tiny_ram = Hardware((), Device("RAM", "ram", "cpu", 8 * MIB, 8 * MIB), "test")
    assert estimate(facts, FitSettings(), tiny_ram).verdict_code == "no_fit"


def test_two_gpus_split_layers_and_output_on_the_last(tiny):
    facts = inspect_file(tiny.quants["Q8_0"]).to_dict()
    r = estimate(facts, FitSettings(gpu_layers="all"), gpus(24, 12), search=False)
    g0, g1, _ = r.devices
    # llama.cpp's split: layer i goes to the first GPU whose cumulative share exceeds i/5 (2/3, 1).
    assert (g0.layers, g1.layers) == (4, 1)
    layer = {x["name"]: x["padded"] for x in facts["layers"]}
    assert g1.weights == layer["output"] + layer["output_norm"]
    assert g0.weights == sum(layer[f"blk.{i}"] for i in range(4))
    assert g0.overhead == g1.overhead > 0


def test_sliding_window_and_recurrent_layers():
    base = {
        "name": "x",
        "architecture": "gemma3",
        "block_count": 12,
        "embedding_length": 1024,
        "head_count": 8,
        "head_count_kv": 4,
        "key_length": 128,
        "value_length": 128,
        "vocab_size": 1000,
        "context_length": 131072,
        "sliding_window": 512,
        "layers": [{"name": f"blk.{i}", "padded": 1000} for i in range(12)],
    }
    kv_row = 2 * 128 * 4 * 2  # K + V, f16, 4 kv heads of 128
    full = estimate(base, FitSettings(n_ctx=32768), NO_GPU, search=False).devices[-1].kv_cache
    assert full == 12 * kv_row * 32768  # llama-cpp-python's default swa_full=True keeps full-size caches
    swa = estimate(base, FitSettings(n_ctx=32768, swa_full=False), NO_GPU, search=False).devices[-1].kv_cache
    assert swa == 2 * kv_row * 32768 + 10 * kv_row * 1024  # gemma3: every 6th layer global; window 512+512
    mamba = {
        **copy.deepcopy(base),
        "architecture": "mamba",
        "sliding_window": None,
        "ssm": {"conv_kernel": 4, "inner_size": 2048, "state_size": 16},
    }
    a = estimate(mamba, FitSettings(n_ctx=4096), NO_GPU, search=False).devices[-1].kv_cache
    b = estimate(mamba, FitSettings(n_ctx=65536), NO_GPU, search=False).devices[-1].kv_cache
    assert a == b == 12 * 4 * (3 * 2048 + 16 * 2048)


def test_pair_shares_the_runtime_and_suggests_fixes(tiny):
    fa = inspect_file(tiny.quants["Q8_0"]).to_dict()
    fb = inspect_file(tiny.quants["Q2_K"]).to_dict()
    s = FitSettings(n_ctx=16384, gpu_layers="all")
    roomy = fit_pair(fa, fb, s, gpus(24))
    a_alone = estimate(fa, s, gpus(24), search=False).devices[0]
    b_alone = estimate(fb, s, gpus(24), search=False).devices[0]
    assert roomy.fits
    assert roomy.devices[0].total == a_alone.total + b_alone.total - b_alone.overhead
    tight_hw = gpus(1.0)
    tight = fit_pair(fa, fb, s, tight_hw)
    assert not tight.fits
    assert {"ctx", "kv"} <= {sug["change"] for sug in tight.suggestions}
    for sug in tight.suggestions:
        if sug["change"] == "ctx":
            assert fit_pair(fa, fb, replace(s, n_ctx=sug["n_ctx"]), tight_hw).fits
        if sug["change"] == "kv":
            s2 = replace(s, type_k="q8_0", type_v="q8_0", flash_attn=True)
            assert fit_pair(fa, fb, s2, tight_hw).fits


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (FitSettings(n_ctx=0), "out of range"),
        (FitSettings(n_ctx=10**9), "out of range"),
        (FitSettings(type_k="q3"), "unknown K cache type"),
        (FitSettings(type_k="q8_0", type_v="q8_0"), "needs flash attention"),
        (FitSettings(gpu_layers=-3), "gpu layers"),
    ],
)
def test_bad_settings(tiny, settings, message):
    with pytest.raises(FitError, match=message):
        estimate(inspect_file(tiny.quants["Q2_K"]).to_dict(), settings, NO_GPU)


def test_size_overrides():
    assert parse_sizes("24GiB,12GiB") == [24 << 30, 12 << 30]
    assert parse_sizes("0") == []
    hw = hardware("8GB", "16GiB", detected=NO_GPU)
    assert [g.total_bytes for g in hw.gpus] == [8 * 10**9] and hw.ram.total_bytes == 16 << 30
    with pytest.raises(ValueError, match="cannot read size"):
        parse_sizes("24 lightyears")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),  # unset: every GPU, in NVML's (PCI bus) order
        ("", []),  # set and empty: CUDA sees none
        ("1", [1]),
        ("2,0", [2, 0]),  # CUDA numbers them in the order given
        ("GPU-bbbb", [1]),  # a UUID prefix
        ("0,7,1", [0]),  # the list ends at the first entry that names no GPU
        ("1,1,2", [1]),  # or one already listed
        ("-1", []),
        ("GPU-", []),  # a prefix of several UUIDs names none of them
    ],
)
def test_cuda_visible_devices_decide_which_gpus_fit_counts(value, expected):
    uuids = ["GPU-aaaa-1111", "GPU-bbbb-2222", "GPU-cccc-3333"]
    assert cuda_visible(value, uuids) == expected


@pytest.mark.parametrize("extra", ["auto", "off"])
@pytest.mark.parametrize("label", ["Q4_0", "Q4_K_M", "Q8_0", "tied-Q4_0"])
def test_mmap_on_counts_the_extra_buffer_copies(tiny, tmp_path, label, extra, monkeypatch):
    """With mmap on (llama-cpp-python's default) the CPU backend keeps a copy of some weights in its
    extra buffers (AMX, CPU_REPACK: whatever this host's llama.cpp has) beside the mapped file: the
    estimate adds exactly the extra buffers llama.cpp logs here, and none when they are off. (Its
    CPU_Mapped figure spans only the tensors it maps, at most the whole data the estimate counts.)"""
    from quanttui.core.llama import ggml

    monkeypatch.setenv("QUANTTUI_EXTRA_BUFFERS", extra)
    src = tiny.tied if label.startswith("tied") else tiny.f16
    quant = label.removeprefix("tied-")
    path = tiny.quants.get(label) or quantize(src, tmp_path / f"tiny-{label}.gguf", quant)
    facts = inspect_file(path).to_dict()
    settings = FitSettings(n_ctx=1024)
    ram = estimate(facts, settings, NO_GPU, search=False).devices[-1]
    no_map = estimate(facts, replace(settings, use_mmap=False), NO_GPU, search=False).devices[-1]
    measured = measure(str(path), settings)
    copies = sum(measured.get(name, {}).get("weights", 0) for name in ggml.extra_buffer_types())
    assert mib2(ram.weights - no_map.weights) == mib2(copies)
    assert mib2(no_map.weights) >= mib2(measured["CPU_Mapped"]["weights"])
    if extra == "off":
        assert copies == 0 and no_map.weights == sum(layer["padded"] for layer in facts["layers"])
    elif quant == "Q4_0" and ggml.placement(2, 256, 256) is not None:
        assert copies > 0.5 * no_map.weights  # every block matrix is Q4_0; token_embd is not copied
