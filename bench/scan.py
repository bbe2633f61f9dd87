"""Library scan of 200 generated GGUF files, cold (empty index) and warm (nothing changed).

Goal (issue 2): cold < 2 s, warm < 0.2 s. The baseline printed beside it is a bare os.walk + stat of
the same tree, the floor any scan pays.
Run: python bench/scan.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quanttui.core.library import Root, scan  # noqa: E402
from tests.modelgen import write_tiny_model  # noqa: E402

N = 200


def walk_stat(top: Path) -> int:
    n = 0
    for dirpath, _, files in os.walk(top):
        for f in files:
            os.stat(os.path.join(dirpath, f))
            n += 1
    return n


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        src = write_tiny_model(d / "src.gguf", n_layer=32, n_embd=256, n_ff=256)
        lib = d / "lib"
        for i in range(N):
            target = lib / f"model{i % 20:02d}" / f"m{i:03d}-F16.gguf"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        roots = [Root(lib, "folder", False)]
        index = d / "index.json"
        colds, warms, floors = [], [], []
        for _ in range(3):
            index.unlink(missing_ok=True)
            t = time.perf_counter()
            entries = scan(roots, index_file=index)
            colds.append(time.perf_counter() - t)
            assert len(entries) == N and not any(e.error for e in entries)
            for _ in range(3):
                t = time.perf_counter()
                warm = scan(roots, index_file=index)
                warms.append(time.perf_counter() - t)
                assert all(e.cached for e in warm)
            t = time.perf_counter()
            walk_stat(lib)
            floors.append(time.perf_counter() - t)
    c, w, f = statistics.median(colds), statistics.median(warms), statistics.median(floors)
    print(f"{N} files, {len(entries[0].facts['layers'])} layers each")
    print(f"cold scan   median {c * 1000:8.1f} ms  (goal < 2000 ms)")
    print(f"warm scan   median {w * 1000:8.1f} ms  (goal < 200 ms)")
    print(f"walk+stat   median {f * 1000:8.1f} ms  (floor)")
    print(f"ratio cold/warm = {c / w:.1f}x, warm/floor = {w / f:.1f}x")


if __name__ == "__main__":
    main()
