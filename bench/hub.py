"""Hub figures (issue 4), side by side against the same loopback Hub server:

- remote inspection of a file with a 128k-token vocabulary: requests and bytes transferred against
  the header's size (goal: at most 4 requests and the header + 1 MiB);
- download throughput of `quanttui pull` against huggingface_hub's `hf_hub_download` on the same
  file (goal: >= 90%);
- with --offline: how long a search takes to fail on an unreachable endpoint (a closed loopback
  port), `quanttui.core.hub.search` against huggingface_hub's `list_models` (which retries).
Run: python bench/hub.py [--mib 256] [--offline]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hubserver import HubRepo, HubServer  # noqa: E402
from tests.modelgen import write_vocab_header  # noqa: E402

REPO = "bench/Big-GGUF"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256, help="size of the downloaded file")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--offline", action="store_true", help="only the unreachable-endpoint figure")
    args = ap.parse_args()
    if args.offline:
        offline()
        return
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        vocab = write_vocab_header(d / "vocab-F16.gguf")
        big = d / "big-Q8_0.gguf"
        with open(big, "wb") as fh:
            fh.write(vocab.read_bytes())
            block = os.urandom(1 << 20)
            for _ in range(args.mib):
                fh.write(block)
        server = HubServer([HubRepo(REPO, {"vocab-F16.gguf": vocab, "big-Q8_0.gguf": big})]).start()
        os.environ["HF_ENDPOINT"] = server.url
        os.environ["QUANTTUI_CACHE_DIR"] = str(d / "cache")
        os.environ["HF_HUB_CACHE"] = str(d / "hf")
        from huggingface_hub import hf_hub_download

        from quanttui.core.hub import fetch_header, pull, repo_variants
        from quanttui.core.modelfile import read_header

        header_size = read_header(vocab).data_offset
        _, stats = fetch_header(REPO, "vocab-F16.gguf", use_cache=False)
        over = (stats.bytes - header_size) / 2**10
        print(
            f"remote inspection: header {header_size / 2**20:.2f} MiB, {stats.requests} requests, "
            f"{stats.bytes / 2**20:.2f} MiB transferred, over-read {over:.0f} KiB "
            "(goal: <= 4 requests, <= header + 1024 KiB)"
        )
        (variant,) = [v for v in repo_variants(REPO).variants if v.first == "big-Q8_0.gguf"]
        ours, theirs = [], []
        for i in range(args.repeat):
            t = time.perf_counter()
            hf_hub_download(REPO, "big-Q8_0.gguf", cache_dir=d / f"hf{i}", endpoint=server.url)
            theirs.append(time.perf_counter() - t)
            t = time.perf_counter()
            pull(REPO, variant.files, root=d / f"ours{i}")
            ours.append(time.perf_counter() - t)
        server.stop()
    o, h = statistics.median(ours), statistics.median(theirs)
    print(
        f"download {variant.size / 2**20:.0f} MiB: quanttui pull {variant.size / o / 2**20:7.1f} MiB/s, "
        f"hf_hub_download {variant.size / h / 2**20:7.1f} MiB/s (medians of {args.repeat})"
    )
    print(f"ratio pull / hf_hub_download = {h / o:.1%}  (goal >= 90%; pull also verifies SHA-256)")


def offline() -> None:
    """Seconds until a search on a closed loopback port fails: quanttui's against list_models'."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    os.environ["HF_ENDPOINT"] = url
    from huggingface_hub import HfApi

    from quanttui.core.hub import HubError, search

    t = time.perf_counter()
    try:
        search("llama")
    except HubError as e:
        message = str(e)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    with contextlib.suppress(Exception):  # any failure ends the baseline
        list(HfApi(endpoint=url).list_models(filter="gguf", search="llama", limit=5))
    theirs = time.perf_counter() - t
    print(f"offline search fails in {ours:.2f} s (list_models: {theirs:.2f} s): ratio {ours / theirs:.1%}")
    print(f"  says: {message}")


if __name__ == "__main__":
    main()
