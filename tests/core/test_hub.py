"""The Hub through real huggingface_hub code against a loopback Hub-compatible server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from quanttui.cli.main import main
from quanttui.core.hub import HubError, fetch_header, partial_path, pull, remote_facts, repo_variants, search
from quanttui.core.library import Root, scan
from quanttui.core.modelfile import inspect_file, read_header
from quanttui.core.paths import models_dir
from tests.conftest import REPO
from tests.core.test_organize import no_room_after
from tests.hubserver import Faults
from tests.modelgen import write_vocab_header


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_search_sorts_and_summarizes(hub):
    hits = search("tiny")
    assert [h.repo for h in hits] == ["other/Tiny-Chat-GGUF", REPO]
    assert [h.repo for h in search("tiny", sort="likes")] == [REPO, "other/Tiny-Chat-GGUF"]
    assert [h.repo for h in search("tiny", sort="recent")][0] == "other/Tiny-Chat-GGUF"
    mine = hits[1]
    assert (mine.parameters, mine.architecture, mine.context_length) == (3280640, "llama", 2048)
    assert search("nothing-like-this") == []


def test_repo_variants_sum_split_parts(hub, tiny):
    listing = repo_variants(REPO)
    labels = [v.label for v in listing.variants]
    assert sorted(labels) == sorted(["Q8_0", "Q4_K_M", "Q2_K", "IQ4_XS", "tiny-split"])
    split = next(v for v in listing.variants if v.label == "tiny-split")
    assert len(split.files) == 3 and split.size == sum(p.stat().st_size for p in tiny.split_parts)
    q8 = next(v for v in listing.variants if v.label == "Q8_0")
    assert q8.files[0].sha256 == sha(tiny.quants["Q8_0"])


def test_remote_header_facts_equal_the_local_reader(hub, tiny):
    for label in ("Q4_K_M", "IQ4_XS"):
        remote = remote_facts(REPO, f"tiny-{label}.gguf").to_dict()
        local = inspect_file(tiny.quants[label]).to_dict()
        for d in (remote, local):
            d.pop("path")
        assert remote == local
    names = [f"split/{p.name}" for p in tiny.split_parts]
    remote = remote_facts(REPO, names[0], parts=names, sizes=[p.stat().st_size for p in tiny.split_parts])
    local = inspect_file(tiny.split_parts[0])
    assert (remote.parameters, remote.bpw, remote.tensor_count) == (
        local.parameters,
        local.bpw,
        local.tensor_count,
    )


def test_remote_header_is_cached_and_cheap(hub, tmp_path):
    big = write_vocab_header(tmp_path / "vocab.gguf")
    hub.repos[REPO].files["vocab-F16.gguf"] = big
    header, stats = fetch_header(REPO, "vocab-F16.gguf")
    assert header.data_offset == read_header(big).data_offset
    assert stats.requests <= 4  # issue 4's figure: at most 4 requests
    assert stats.bytes <= header.data_offset + (1 << 20)  # and at most the header + 1 MiB
    before = len(hub.requests)
    again, stats2 = fetch_header(REPO, "vocab-F16.gguf")
    assert stats2.cached and len(hub.requests) == before and again.tensors == header.tensors


def test_a_new_commit_is_read_again_not_served_from_the_header_cache(hub, tiny, capfd):
    assert main(["inspect", f"hf:{REPO}/tiny-Q8_0.gguf", "--json"]) == 0
    assert json.loads(capfd.readouterr().out)["file_type"] == "Q8_0"
    repo = hub.repos[REPO]
    repo.files["tiny-Q8_0.gguf"] = tiny.quants["Q2_K"]  # main moves: the uploader replaced the file
    repo.sha, repo._hashes = "fedcba9876543210fedcba9876543210fedcba98", {}
    assert main(["inspect", f"hf:{REPO}/tiny-Q8_0.gguf", "--json"]) == 0
    assert json.loads(capfd.readouterr().out)["file_type"] == "Q2_K"


def test_download_killed_halfway_resumes_and_verifies(hub, tiny):
    (v,) = [v for v in repo_variants(REPO).variants if v.label == "Q8_0"]
    size = v.files[0].size
    hub.faults = Faults(drop_after=size // 2)
    with pytest.raises(HubError, match="connection ended"):
        pull(REPO, v.files)
    dest = models_dir() / REPO / "tiny-Q8_0.gguf"
    assert not dest.exists() and partial_path(dest).stat().st_size == size // 2
    assert scan([Root(models_dir(), "quanttui", True)]) == []  # a partial file never shows as a model
    hub.faults = Faults()
    (path,) = pull(REPO, v.files)
    assert path == dest and sha(dest) == sha(tiny.quants["Q8_0"]) and not partial_path(dest).exists()
    ranges = [
        r["range"] for r in hub.requests if r["path"].endswith("tiny-Q8_0.gguf") and r["method"] == "GET"
    ]
    assert ranges[-1] == f"bytes={size // 2}-"  # resumed, not restarted


def test_a_stalled_download_cancels_at_once_and_resumes(hub, tiny):
    """The connection stays open and sends nothing: cancel must not wait for it."""
    (v,) = [v for v in repo_variants(REPO).variants if v.label == "Q8_0"]
    size = v.files[0].size
    hub.faults = Faults(stall_after=size // 3, stall=120)
    cancel, got, errors = threading.Event(), [], []

    def progress(done, total, name):
        got.append(done)
        if done >= size // 3:
            cancel.set()  # the stall starts now

    def run():
        try:
            pull(REPO, v.files, progress=progress, cancel=cancel)
        except HubError as e:
            errors.append(str(e))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=30)  # a guard for a hang (the stall lasts 120 s), not a speed limit
    assert not worker.is_alive() and len(errors) == 1
    assert "cancelled" in errors[0] and "kept to resume" in errors[0]
    dest = models_dir() / REPO / "tiny-Q8_0.gguf"
    assert partial_path(dest).stat().st_size == size // 3
    hub.faults = Faults()
    (path,) = pull(REPO, v.files)
    assert sha(path) == sha(tiny.quants["Q8_0"])


def test_a_download_that_goes_quiet_ends_with_a_message_and_resumes(hub, tiny, monkeypatch):
    monkeypatch.setattr("quanttui.core.hub.download.READ_TIMEOUT", 0.5)
    (v,) = [v for v in repo_variants(REPO).variants if v.label == "Q2_K"]
    size = v.files[0].size
    hub.faults = Faults(stall_after=size // 2, stall=120)
    quiet = r"the Hub sent nothing for 0.5 s at [\d,]+ of [\d,]+ bytes; pull again"
    with pytest.raises(HubError, match=quiet):
        pull(REPO, v.files)
    dest = models_dir() / REPO / "tiny-Q2_K.gguf"
    assert partial_path(dest).stat().st_size == size // 2
    hub.faults = Faults()
    (path,) = pull(REPO, v.files)
    assert sha(path) == sha(tiny.quants["Q2_K"])


def test_no_room_mid_download_keeps_the_partial_and_resumes(hub, tiny):
    (v,) = [v for v in repo_variants(REPO).variants if v.label == "Q8_0"]
    size = v.files[0].size
    script = (
        "from quanttui.core.hub import HubError, pull, repo_variants\n"
        f"(v,) = [v for v in repo_variants({REPO!r}).variants if v.label == 'Q8_0']\n"
        f"try:\n    pull({REPO!r}, v.files)\nexcept HubError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, preexec_fn=no_room_after(size // 2)
    )
    dest = models_dir() / REPO / "tiny-Q8_0.gguf"
    kept = partial_path(dest).stat().st_size
    assert (
        out.stdout.strip()
        == f"tiny-Q8_0.gguf: no room to write (File too large); {kept:,} bytes kept to resume"
    )
    assert out.stderr == "" and 0 < kept <= size // 2 and not dest.exists()
    (path,) = pull(REPO, v.files)
    assert sha(path) == sha(tiny.quants["Q8_0"])
    ranges = [
        r["range"] for r in hub.requests if r["path"].endswith("tiny-Q8_0.gguf") and r["method"] == "GET"
    ]
    assert ranges[-1] == f"bytes={kept}-"  # resumed from what was on disk


def test_corrupted_download_is_rejected(hub):
    (v,) = [v for v in repo_variants(REPO).variants if v.label == "Q2_K"]
    hub.faults = Faults(corrupt=True)
    with pytest.raises(HubError, match="SHA-256 does not match"):
        pull(REPO, v.files)
    dest = models_dir() / REPO / "tiny-Q2_K.gguf"
    assert not dest.exists() and not partial_path(dest).exists()


def test_cancel_leaves_no_model_and_split_sets_come_whole(hub, tiny):
    listing = repo_variants(REPO)
    split = next(v for v in listing.variants if v.label == "tiny-split")
    cancel = threading.Event()
    with pytest.raises(HubError, match="cancelled"):
        pull(REPO, split.files, progress=lambda done, total, name: cancel.set(), cancel=cancel)
    assert scan([Root(models_dir(), "quanttui", True)]) == []
    paths = pull(REPO, split.files)
    assert [p.name for p in paths] == [p.name for p in tiny.split_parts]
    (entry,) = scan([Root(models_dir(), "quanttui", True)])
    assert entry.missing == [] and len(entry.parts) == 3


def test_not_enough_space_is_checked_first(hub, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 1000))
    (v,) = [v for v in repo_variants(REPO).variants if v.label == "Q8_0"]
    with pytest.raises(HubError, match="not enough free space"):
        pull(REPO, v.files)
    assert not list(models_dir().rglob("*.partial"))


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (Faults(status=500), "HTTP 500"),
        (Faults(garbage_json=True), "unreadable"),
        (Faults(status=404), "HTTP 404"),
    ],
)
def test_a_hub_that_misbehaves_gives_one_line(hub, faults, message):
    hub.faults = faults
    with pytest.raises(HubError, match=message) as info:
        repo_variants(REPO)
    assert "\n" not in str(info.value)
    with pytest.raises(HubError, match="no such repository"):
        hub.faults = Faults()
        repo_variants("nobody/nothing")


def test_cli_search_pull_inspect_fit_and_the_token_stays_secret(hub, tiny, capfd, monkeypatch):
    secret = "hf_quanttuiTestTokenDoNotPrint123"
    monkeypatch.setenv("HF_TOKEN", secret)
    assert main(["search", "tiny", "--json"]) == 0
    assert json.loads(capfd.readouterr().out)[0]["repo"] == "other/Tiny-Chat-GGUF"
    assert main(["inspect", f"hf:{REPO}/tiny-Q4_K_M.gguf", "--json"]) == 0
    d = json.loads(capfd.readouterr().out)
    assert d["file_type"] == "Q4_K_M" and round(d["bpw"], 2) == tiny.llama_bpw["Q4_K_M"]
    assert main(["fit", f"hf:{REPO}/tiny-Q8_0.gguf", "--vram", "8GiB", "--json"]) == 0
    assert json.loads(capfd.readouterr().out)["verdict"] == "fits on GPU"
    assert main(["pull", REPO]) == 1
    assert "say which quant to pull: " in capfd.readouterr().err
    assert main(["pull", REPO, "q2_k"]) == 0
    out = capfd.readouterr()
    assert (models_dir() / REPO / "tiny-Q2_K.gguf").exists()
    assert main(["inspect", f"hf:{REPO}/missing.gguf"]) == 1
    err = capfd.readouterr().err
    assert "no such GGUF" in err
    assert any(r["auth"] == f"Bearer {secret}" for r in hub.requests)  # the token was used ...
    written = [p.read_bytes() for p in Path(os.environ["QUANTTUI_DATA_DIR"]).rglob("*") if p.is_file()]
    written += [p.read_bytes() for p in Path(os.environ["QUANTTUI_CACHE_DIR"]).rglob("*") if p.is_file()]
    assert secret.encode() not in b"".join(written)  # ... and never written, printed or logged
    assert secret not in out.out + out.err + err


def test_download_into_the_hf_cache_the_cache_way(hub, tiny):
    from huggingface_hub import scan_cache_dir

    from quanttui.core.library.roots import hf_hub_cache

    (v,) = [v for v in repo_variants(REPO).variants if v.label == "IQ4_XS"]
    seen: list[int] = []
    (path,) = pull(REPO, v.files, to="hf-cache", progress=lambda done, total, name: seen.append(done))
    assert sha(Path(os.path.realpath(path))) == sha(tiny.quants["IQ4_XS"]) and seen[-1] == v.size
    (repo,) = scan_cache_dir(hf_hub_cache()).repos
    assert repo.repo_id == REPO and {f.file_name for r in repo.revisions for f in r.files} == {
        "tiny-IQ4_XS.gguf"
    }
    (entry,) = scan([Root(hf_hub_cache(), "huggingface", True)])
    assert entry.origin["hf_repo"] == REPO and entry.quant == "IQ4_XS"
    hub.faults = Faults(corrupt=True)
    (q2,) = [v for v in repo_variants(REPO).variants if v.label == "Q2_K"]
    hub.faults = Faults(corrupt=True)
    with pytest.raises(HubError, match="SHA-256 does not match"):
        pull(REPO, q2.files, to="hf-cache")
