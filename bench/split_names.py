"""`quanttui ls` on files whose names claim a huge split set, beside the same files with plain names.

60 small GGUFs named `mNN-Q4_0-00001-of-99999.gguf` each claim 99,999 parts; the same 60 named
`mNN-Q4_0.gguf` claim none. What the library does with a split name must cost in proportion to the
parts on disk, not to the count the name claims (issue 17, item 10). Goal: split names take under
2x the time and peak memory of plain ones, for `ls` and `ls --json`. Each run is a fresh process with
an empty index (a cold scan); times and peaks are the median of RUNS runs (default 3).
Run: python bench/split_names.py [N_FILES]   (RUNS=1 for a quick look)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.modelgen import raw_llama  # noqa: E402

N = 60
RUNS = int(os.environ.get("RUNS", "3"))
CLAIM = 99_999


def make_library(home: Path, n: int, split: bool) -> dict[str, str]:
    """n small models in quanttui's models folder under `home`; the environment that points at them."""
    env = os.environ | {
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "QUANTTUI_CONFIG_DIR": str(home / "config"),
        "QUANTTUI_DATA_DIR": str(home / "data"),
        "QUANTTUI_CACHE_DIR": str(home / "cache"),
        "HF_HUB_CACHE": str(home / "hf"),
        "LLAMA_CACHE": str(home / "llama.cpp"),
        "OLLAMA_MODELS": str(home / "ollama"),
        "QUANTTUI_EXTRA_BUFFERS": "off",
    }
    env.pop("HF_HOME", None)
    models = home / "data" / "models"
    models.mkdir(parents=True)
    data = raw_llama(n_layer=1, n_embd=4)
    for i in range(n):
        name = f"m{i:02d}-Q4_0-00001-of-{CLAIM:05d}.gguf" if split else f"m{i:02d}-Q4_0.gguf"
        (models / name).write_bytes(data)
    return env


def run(args: list[str], env: dict[str, str], index: Path) -> tuple[float, int, int, int]:
    """(seconds, peak RSS in bytes, bytes printed, index bytes) for one cold `quanttui ARGS`."""
    index.unlink(missing_ok=True)
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "quanttui.cli.main", *args], stdout=out, stderr=subprocess.DEVNULL, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"quanttui {' '.join(args)} exited {proc.returncode}")
        printed = out.seek(0, os.SEEK_END)
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return seconds, peak, printed, index.stat().st_size if index.exists() else 0


def measure(n: int, split: bool, args: list[str]) -> tuple[float, float, int, int]:
    with tempfile.TemporaryDirectory() as d:
        env = make_library(Path(d), n, split)
        index = Path(d) / "cache" / "library-index.json"
        runs = [run(args, env, index) for _ in range(RUNS)]
    return (
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        runs[-1][2],
        runs[-1][3],
    )


def mib(n: float) -> str:
    return f"{n / (1 << 20):8.1f} MiB" if n >= 1 << 20 else f"{n / 1024:8.1f} KiB"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else N
    print(f"{n} files of {len(raw_llama(n_layer=1, n_embd=4))} bytes; split names claim {CLAIM:,} parts each")
    print(f"{'command':<10} {'names':<6} {'time':>8} {'peak RSS':>12} {'printed':>12} {'index':>12}")
    worst = 0.0
    for args in (["ls"], ["ls", "--json"]):
        plain = measure(n, False, args)
        split = measure(n, True, args)
        for label, (s, rss, printed, idx) in (("plain", plain), ("split", split)):
            print(f"{' '.join(args):<10} {label:<6} {s:7.2f}s {mib(rss)} {mib(printed)} {mib(idx)}")
        t_ratio, m_ratio = split[0] / plain[0], split[1] / plain[1]
        worst = max(worst, t_ratio, m_ratio)
        print(f"{'':<10} {'ratio':<6} {t_ratio:7.2f}x {m_ratio:11.2f}x {split[2] / max(plain[2], 1):11.2f}x")
    print(f"worst ratio {worst:.2f}x (goal: under 2x)")


if __name__ == "__main__":
    main()
