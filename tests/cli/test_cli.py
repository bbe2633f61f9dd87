"""The CLI prints what the screens show; errors are one line on stderr with a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from quanttui.cli.main import main


def test_inspect_json_carries_the_contract(tiny, capsys):
    assert main(["inspect", str(tiny.quants["Q4_K_M"]), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in (
        "path",
        "size_bytes",
        "architecture",
        "parameters",
        "file_type",
        "bpw",
        "tensor_types",
        "layers",
        "imatrix",
        "split",
        "context_length",
        "block_count",
        "vocab_size",
    ):
        assert key in d, key
    assert d["file_type"] == "Q4_K_M" and d["architecture"] == "llama"
    assert d["bpw"] == round(d["bpw"], 4) and round(d["bpw"], 2) == tiny.llama_bpw["Q4_K_M"]
    assert set(d["tensor_types"]["Q4_K"]) == {"count", "bytes", "parameters"}
    assert {"name", "bpw", "bytes"} <= set(d["layers"][0])
    assert "tensors" not in d


def test_inspect_several_paths_gives_a_list_with_errors(tiny, tmp_path, capsys):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"nope")
    rc = main(["inspect", str(tiny.quants["Q8_0"]), str(bad), "--json", "--tensors"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert out[0]["file_type"] == "Q8_0" and len(out[0]["tensors"]) == 39
    assert out[1] == {"path": str(bad), "error": 'not a GGUF file (starts with "nope")'}


def test_inspect_text(tiny, capsys):
    assert main(["inspect", str(tiny.quants["IQ4_XS"])]) == 0
    out = capsys.readouterr().out
    assert "IQ4_XS" in out and "calibration_datav3.txt, 125 chunks" in out and "blk.3" in out


def test_ls_and_roots(tiny, tmp_path, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    assert main(["ls"]) == 0
    assert "No GGUF models found" in capsys.readouterr().out
    assert main(["roots", "add", str(lib)]) == 0
    assert capsys.readouterr().out.strip() == f"added: {lib}"
    (lib / "tiny-Q2_K.gguf").write_bytes(tiny.quants["Q2_K"].read_bytes())
    assert main(["ls", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["quant"] == "Q2_K" and entry["store"] == "folder" and entry["facts"]["file_type"] == "Q2_K"
    assert main(["roots", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"path": str(lib), "kind": "folder", "default": False, "state": "active"} in rows
    assert main(["roots", "remove", str(tmp_path / "elsewhere")]) == 1  # refused
    assert "not a library root" in capsys.readouterr().err


def test_console_script_error_is_one_line(tmp_path):
    bad = tmp_path / "short.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00")
    r = subprocess.run(
        [sys.executable, "-m", "quanttui.cli.main", "inspect", str(bad)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"quanttui: {bad}: ") and "ends at byte" in r.stderr


def test_core_never_imports_textual():
    code = (
        "import sys; import quanttui.core, quanttui.core.modelfile, quanttui.core.library;"
        "import quanttui.core.format, quanttui.core.fit, quanttui.core.ab, quanttui.core.organize;"
        "import quanttui.core.hub, quanttui.core.fit.measure, quanttui.cli.fit, quanttui.cli.hub;"
        "import quanttui.cli.main;"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'));"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(("given", "seen"), [(None, "PCI_BUS_ID"), ("FASTEST_FIRST", "FASTEST_FIRST")])
def test_cuda_numbers_gpus_as_nvml_does_unless_the_user_said_otherwise(given, seen):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_DEVICE_ORDER"}
    env |= {"CUDA_DEVICE_ORDER": given} if given else {}
    code = "import os, quanttui.core; print(os.environ['CUDA_DEVICE_ORDER'])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.stdout.strip() == seen


def test_fit_json_contract(tiny, capsys):
    rc = main(
        ["fit", str(tiny.quants["Q4_K_M"]), "--ctx", "8192", "--vram", "24GiB", "--ram", "64GiB", "--json"]
    )
    d = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert d["verdict"] == "fits on GPU" and d["gpu_layers"] == 5
    assert d["max_context_full_offload"] == 2048  # the model's trained context caps it
    gpu, ram = d["devices"]
    for part in ("name", "total_bytes", "weights", "kv_cache", "compute", "output", "overhead", "total"):
        assert part in gpu and part in ram
    assert gpu["total_bytes"] == 24 << 30 and ram["total_bytes"] == 64 << 30
    assert gpu["kv_cache"] == 8192 * 4 * 2 * (2 * 64 * 2)  # cells x layers x K,V x (2 heads x 64 dims x f16)
    assert gpu["total"] == sum(gpu[p] for p in ("weights", "kv_cache", "compute", "output", "overhead"))


def test_fit_measure_and_pair(tiny, capfd):
    assert main(["fit", str(tiny.quants["Q8_0"]), "--vram", "0", "--measure"]) == 0
    out = capfd.readouterr()
    assert (
        "verdict: RAM only" in out.out and "llama.cpp measured" in out.out and "kv_cache 8.00 MiB" in out.out
    )
    assert "llama_model_loader" not in out.out + out.err  # llama.cpp's log never reaches the terminal
    rc = main(
        [
            "fit",
            str(tiny.quants["Q8_0"]),
            "--with",
            str(tiny.quants["Q2_K"]),
            "--vram",
            "1GiB",
            "--ctx",
            "16384",
            "--json",
        ]
    )
    d = json.loads(capfd.readouterr().out)
    assert rc == 1 and d["fits"] is False and d["suggestions"]


def test_fit_bad_input_is_one_line(tiny, capsys):
    path = str(tiny.quants["Q2_K"])
    for argv, message in (
        (["--ctx", "-1"], "out of range"),
        (["--kv", "q8_0"], "needs flash attention"),
        (["--vram", "lots"], "cannot read size"),
        (["--gpu-layers", "many"], "--gpu-layers"),
    ):
        assert main(["fit", path, *argv]) == 2  # a usage error, as argparse's own
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
