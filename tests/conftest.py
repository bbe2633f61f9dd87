"""Isolated dirs for every test, and tiny real models built once per session."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

# llama.cpp (built with OpenMP) has its threads wait at each barrier; libgomp's default spins there.
# With pytest-xdist's workers, and A/B's two model processes, each running physical-cores threads,
# spinning threads take the CPU from the ones they wait for (a contended run took twice as long).
# Set before anything loads llama.cpp; workers and model processes inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from tests.hubserver import HubRepo, HubServer  # noqa: E402
from tests.modelgen import quantize, quantized_bpw, write_tiny_model  # noqa: E402
from tests.realmodel import SESSION_DIR_ENV, session_folder  # noqa: E402

REPO = "someone/Tiny-Llama-GGUF"
IMATRIX_KV = {
    "quantize.imatrix.file": "imatrix.dat",
    "quantize.imatrix.dataset": "calibration_datav3.txt",
    "quantize.imatrix.entries_count": 28,
    "quantize.imatrix.chunks_count": 125,
}


@dataclass
class TinyModels:
    dir: Path
    f16: Path
    quants: dict[str, Path]
    llama_bpw: dict[str, float]
    split_parts: list[Path]
    tied: Path


@pytest.hookimpl(tryfirst=True)  # before the tmp_path plugin reads the basetemp
def pytest_configure(config: pytest.Config) -> None:
    """A pytest-xdist worker's tmp_path would sit a folder deeper than a serial run's (…/pytest-N/
    popen-gw0/test_x0), and TUI tests draw whole paths in dialogs sized for a serial run's: each
    worker makes its own numbered basetemp as a serial run does (…/pytest-M/test_x0), and keeps the
    session's folder for what the workers share (session_folder). An explicit --basetemp stays."""
    basetemp = config.option.basetemp
    if getattr(config, "workerinput", None) is None or basetemp is None:
        return
    os.environ[SESSION_DIR_ENV] = str(Path(basetemp).parent)
    if not any(str(a).startswith("--basetemp") for a in config.invocation_params.args):
        config.option.basetemp = None


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the trained Gemma ladder (`real`) builds or loads a real model: it is slow."""
    for item in items:
        if "real" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def machine_verdict(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """llama.cpp's extra-buffer verdict for this host, probed once per session as quanttui does once
    per machine (on a host whose extra buffers crash, every test then runs without them). pytest-xdist's
    workers share the folder: the first probes, the others read its verdict."""
    with session_folder(tmp_path_factory, "machine") as cache, pytest.MonkeyPatch.context() as mp:
        mp.setenv("QUANTTUI_CACHE_DIR", str(cache))
        mp.setenv("QUANTTUI_CONFIG_DIR", str(cache / "config"))
        mp.delenv("QUANTTUI_EXTRA_BUFFERS", raising=False)
        mp.delenv("QUANTTUI_FAILPOINT", raising=False)
        from quanttui.core.llama import extra

        extra.decide()
    store = cache / "llama-machine.json"
    return store.read_bytes() if store.exists() else b""


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, machine_verdict: bytes) -> Path:
    """Every store quanttui looks at points into this test's own folder; the session's extra-buffer
    verdict is there as on a machine that has probed."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("QUANTTUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("QUANTTUI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QUANTTUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QUANTTUI_EXTRA_BUFFERS", raising=False)  # each test starts in auto
    from quanttui.core.llama.extra import take_notices

    take_notices()  # fallbacks an earlier test made are not this test's to say
    if machine_verdict:
        (tmp_path / "cache").mkdir(exist_ok=True)
        (tmp_path / "cache" / "llama-machine.json").write_bytes(machine_verdict)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("LLAMA_CACHE", str(tmp_path / "llama.cpp"))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    # send2trash fixes the trash folder from HOME when imported; point it at this test's home.
    import send2trash.plat_other as trash

    trash_dir = home / ".local" / "share" / "Trash"
    monkeypatch.setattr(trash, "XDG_DATA_HOME", os.fsencode(home / ".local" / "share"))
    monkeypatch.setattr(trash, "HOMETRASH_B", os.fsencode(trash_dir))
    monkeypatch.setattr(trash, "HOMETRASH", str(trash_dir))
    return tmp_path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """F16 source, Q8_0 / Q4_K_M / Q2_K / IQ4_XS (with imatrix keys), a 3-part split set, a tied model.
    Built once per session: pytest-xdist's workers share the folder, the first builds it."""
    labels = ("Q8_0", "Q4_K_M", "Q2_K", "IQ4_XS")
    with session_folder(tmp_path_factory, "models") as d:
        done = d / "built.json"  # written last: the BPW llama.cpp printed for each quant
        if not done.is_file():
            done.write_text(json.dumps(_build_tiny(d, labels)))
        bpw = json.loads(done.read_text())
    quants = {label: d / f"tiny-{label}.gguf" for label in labels}
    parts = sorted((d / "split").glob("*.gguf"))
    return TinyModels(d, d / "tiny-F16.gguf", quants, bpw, parts, d / "tied" / "tiny-tied-F16.gguf")


def _build_tiny(d: Path, labels: tuple[str, ...]) -> dict[str, float]:
    f16 = write_tiny_model(d / "tiny-F16.gguf")
    f16_im = write_tiny_model(d / "src-imatrix.gguf", extra_kv=IMATRIX_KV)
    bpw: dict[str, float] = {}
    for label in labels:
        src = f16_im if label == "IQ4_XS" else f16
        quantize(src, d / f"tiny-{label}.gguf", label)
        bpw[label] = quantized_bpw()
    f16_im.unlink()
    split_dir = d / "split"
    split_dir.mkdir(exist_ok=True)
    write_tiny_model(split_dir / "tiny-split.gguf", split_max_tensors=15)
    tied_dir = d / "tied"
    tied_dir.mkdir(exist_ok=True)
    write_tiny_model(tied_dir / "tiny-tied-F16.gguf", tied=True)
    return bpw


@pytest.fixture
def hub(tiny, tmp_path, monkeypatch):
    """A loopback Hub (HF_ENDPOINT) serving the tiny models in two repos."""
    files = {f"tiny-{q}.gguf": p for q, p in tiny.quants.items()}
    files |= {f"split/{p.name}": p for p in tiny.split_parts}
    repos = [
        HubRepo(
            REPO,
            files,
            downloads=500,
            likes=3,
            gguf={"total": 3280640, "architecture": "llama", "context_length": 2048},
        ),
        HubRepo(
            "other/Tiny-Chat-GGUF",
            {"chat-Q8_0.gguf": tiny.quants["Q8_0"]},
            downloads=900,
            likes=1,
            last_modified="2026-11-20T00:00:00.000Z",
        ),
    ]
    server = HubServer(repos).start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield server
    server.stop()
