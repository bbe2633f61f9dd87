"""Our header reader against gguf.GGUFReader on a header with a 128k-token vocabulary and 280k merges.

Goal (issue 2): >= 300x faster than GGUFReader and < 50 ms. Both run side by side in this process.
Run: python bench/reader_vs_gguf.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gguf  # noqa: E402

from quanttui.core.modelfile import inspect_file, read_header  # noqa: E402
from tests.modelgen import write_vocab_header  # noqa: E402


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = write_vocab_header(Path(d) / "vocab128k.gguf")
        h = read_header(path)
        print(
            f"header: {h.data_offset / 2**20:.1f} MiB, {h.array_len('tokenizer.ggml.tokens'):,} tokens, "
            f"{h.array_len('tokenizer.ggml.merges'):,} merges"
        )
        ours = timed(lambda: read_header(path), 15)
        facts = timed(lambda: inspect_file(path), 15)
        theirs = timed(lambda: gguf.GGUFReader(path), 2)
    o, f, t = statistics.median(ours), statistics.median(facts), statistics.median(theirs)
    print(f"quanttui read_header   median {o * 1000:8.1f} ms  (goal < 50 ms)")
    print(f"quanttui inspect_file  median {f * 1000:8.1f} ms")
    print(f"gguf.GGUFReader        median {t * 1000:8.1f} ms")
    print(f"ratio GGUFReader / read_header = {t / o:.0f}x  (goal >= 300x)")
    print(f"ratio GGUFReader / inspect_file = {t / f:.0f}x")


if __name__ == "__main__":
    main()
