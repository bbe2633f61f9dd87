"""Fit verdicts for every file of a 200-file library, as the Library table computes them after a scan.

Goal (issue 3): < 0.5 s for 200 files. Printed beside it, in the same run: the warm scan of the same
library (the work the table already pays for), as a ratio.
Run: python bench/fit.py
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quanttui.core.fit import FitSettings, estimate  # noqa: E402
from quanttui.core.fit.devices import Device, Hardware  # noqa: E402
from quanttui.core.library import Root, scan  # noqa: E402
from tests.modelgen import write_tiny_model  # noqa: E402

N = 200
# A GPU small enough that most files only partly fit, so "auto" and the limits have to search.
HW = Hardware(
    (Device("GPU 0", "gpu", "cuda", 760 << 20, 760 << 20),),
    Device("RAM", "ram", "cpu", 64 << 30, 60 << 30),
    "x",
)


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        src = write_tiny_model(d / "src.gguf", n_layer=32, n_embd=256, n_ff=256)
        lib = d / "lib"
        lib.mkdir()
        for i in range(N):
            shutil.copyfile(src, lib / f"m{i:03d}-F16.gguf")
        roots = [Root(lib, "folder", False)]
        index = d / "index.json"
        scan(roots, index_file=index)
        scans, fits, searches = [], [], []
        for _ in range(5):
            t = time.perf_counter()
            entries = scan(roots, index_file=index)
            scans.append(time.perf_counter() - t)
            t = time.perf_counter()
            verdicts = [estimate(e.facts, FitSettings(), HW, search=False).verdict_code for e in entries]
            fits.append(time.perf_counter() - t)
            t = time.perf_counter()
            for e in entries:
                estimate(e.facts, FitSettings(), HW)
            searches.append(time.perf_counter() - t)
    assert len(verdicts) == N
    s, f, full = statistics.median(scans), statistics.median(fits), statistics.median(searches)
    layers = entries[0].facts["block_count"]
    print(f"{N} files of {layers} layers, GPU layers 'auto', verdicts {dict(Counter(verdicts))}")
    print(f"table verdicts      median {f * 1000:8.1f} ms  (goal < 500 ms)")
    print(f"with max ctx/layers median {full * 1000:8.1f} ms")
    print(f"warm scan           median {s * 1000:8.1f} ms")
    print(f"ratio verdicts / warm scan = {f / s:.2f}x")


if __name__ == "__main__":
    main()
