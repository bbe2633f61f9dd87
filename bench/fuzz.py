"""Hostile headers, measured: fuzz throughput and the worst time and memory one header can cost.

1. Type fuzz: every key facts/fit read (tests.modelgen.HEADER_KEYS) with every wrong value
   (WRONG_VALUES), each through inspect_file + a fit estimate with its limit searches: headers/s
   and the slowest single case, beside the same work on the untouched header.
2. One hostile header per process (time and peak RSS of inspect + fit), beside a normal tiny one:
   a 448-byte file claiming 10**8 blocks (issue 10: 2 minutes and 4.7 GB before), a 64 MB file of
   5 million empty nested arrays (a 411 MB one peaked at 3.7 GB before), 2000 arrays just under the
   eager size, and a 128k-token vocabulary header.
Run: python bench/fuzz.py
"""

from __future__ import annotations

import contextlib
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quanttui.core.errors import QuanttuiError  # noqa: E402
from quanttui.core.fit import FitSettings, estimate, hardware  # noqa: E402
from quanttui.core.modelfile import inspect_file  # noqa: E402
from tests.modelgen import HEADER_KEYS, WRONG_VALUES, raw_gguf, raw_llama, write_vocab_header  # noqa: E402

HW = hardware("24GiB", "64GiB")


def one(path: Path) -> None:
    """What the Library does on a highlight: facts, then the fit estimate with its searches."""
    with contextlib.suppress(QuanttuiError):
        estimate(inspect_file(path).to_dict(), FitSettings(), HW)


def fuzz(d: Path) -> None:
    cases = []
    for key in HEADER_KEYS:
        for name, value in WRONG_VALUES.items():
            path = d / f"{key}-{name}.gguf"
            path.write_bytes(raw_llama({key: value}))
            cases.append(path)
    normal = d / "normal.gguf"
    normal.write_bytes(raw_llama())
    worst, worst_case = 0.0, ""
    start = time.perf_counter()
    for path in cases:
        t = time.perf_counter()
        one(path)
        took = time.perf_counter() - t
        if took > worst:
            worst, worst_case = took, path.stem
    total = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(len(cases)):
        one(normal)
    base = time.perf_counter() - start
    print(f"type fuzz: {len(cases)} headers ({len(HEADER_KEYS)} keys x {len(WRONG_VALUES)} values)")
    print(f"  hostile  {len(cases) / total:8.0f} headers/s   slowest {worst * 1000:6.1f} ms ({worst_case})")
    print(f"  normal   {len(cases) / base:8.0f} headers/s   ratio hostile/normal time {total / base:.2f}x")


# Peak RSS from VmHWM, which starts afresh at exec (ru_maxrss keeps the parent's peak across exec).
_CHILD = """
import re, sys, time
sys.path.insert(0, sys.argv[2])
from bench.fuzz import one
t = time.perf_counter()
one(sys.argv[1])
took = time.perf_counter() - t
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(took, int(hwm) // 1024)
"""


def isolated(path: Path) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(ROOT)], capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0:
        raise SystemExit(f"{path.name}: exit {out.returncode}: {out.stderr[-500:]}")
    took, peak = out.stdout.split()
    return float(took), int(peak)


def nested_file(path: Path, n: int) -> Path:
    """One key holding `n` empty UINT32 arrays: 12 bytes each."""
    key = b"x"
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + key
    path.write_bytes(head + struct.pack("<IIQ", 9, 9, n) + struct.pack("<IQ", 4, 0) * n)
    return path


def hostile(d: Path) -> None:
    normal = d / "normal.gguf"
    normal.write_bytes(raw_llama())
    files = {
        "block_count=1e8 (448 bytes)": d / "blocks.gguf",
        "5M nested arrays (64 MB)": nested_file(d / "nested.gguf", 5_000_000),
        "2000 arrays of 4000 ints": d / "eager.gguf",
        "128k-token vocabulary (normal)": write_vocab_header(d / "vocab.gguf"),
    }
    arch = {"general.architecture": "llama", "llama.embedding_length": 4096}
    files["block_count=1e8 (448 bytes)"].write_bytes(raw_gguf({**arch, "llama.block_count": 100_000_000}))
    files["2000 arrays of 4000 ints"].write_bytes(raw_gguf({f"a{i}": list(range(4000)) for i in range(2000)}))
    base_t, base_m = isolated(normal)
    print("one header per process: inspect + fit (time, peak RSS)")
    print(f"  {'normal tiny header':<32} {base_t * 1000:8.1f} ms {base_m:6d} MiB")
    for label, path in files.items():
        took, peak = isolated(path)
        size = path.stat().st_size
        print(
            f"  {label:<32} {took * 1000:8.1f} ms {peak:6d} MiB   file {size / 2**20:7.1f} MiB"
            f"   vs normal: {took / base_t:6.1f}x time, +{peak - base_m} MiB"
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        fuzz(Path(d))
    with tempfile.TemporaryDirectory() as d:
        hostile(Path(d))


if __name__ == "__main__":
    main()
