"""A hostile Hub against quanttui's limits: overlong bodies, wrong Content-Ranges, stalls, junk JSON,
a fault inside huggingface_hub, hostile cache headers and an unreachable endpoint.

Each attack asserts the limit held: no `.partial` past the listed size, nothing appended from a
refused answer, no wait past the read limit, one line and no traceback, "offline" said at once.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from quanttui.cli.main import main
from quanttui.core.hub import (
    HubError,
    HubUnreachable,
    RemoteFile,
    fetch_header,
    partial_path,
    pull,
    remote_facts,
    repo_variants,
    search,
)
from quanttui.core.hub import client as hub_client
from quanttui.core.hub import remote as hub_remote
from quanttui.core.library.roots import hf_hub_cache
from quanttui.core.paths import models_dir
from tests.conftest import REPO
from tests.core.test_hub_attack import (
    LADDER,
    all_files,
    in_thread,
    one_line,
    outside_boxes,
    sha,
    size_of,
    variant,
)
from tests.hubserver import Faults
from tests.modelgen import write_vocab_header

# lengths and ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize("announce", [False, True])
def test_a_body_longer_than_listed_never_grows_the_partial(hub, tiny, tmp_path, announce):
    (f,) = variant("Q2_K").files
    dest = models_dir() / REPO / f.name
    seen: list[int] = []
    hub.faults = Faults(overlong=32 << 20, announce_overlong=announce)
    with pytest.raises(HubError, match="listed|announced") as info:
        pull(REPO, [f], progress=lambda done, total, name: seen.append(size_of(partial_path(dest))))
    assert "\n" not in str(info.value)
    assert max(seen, default=0) <= f.size and size_of(partial_path(dest)) <= f.size
    assert not dest.exists()
    assert hub.bytes_sent() < f.size + (32 << 20)  # the client stopped reading; it did not drain it
    hub.faults = Faults()
    (path,) = pull(REPO, [f])
    assert sha(path) == sha(tiny.quants["Q2_K"])


def test_an_overlong_resumed_body_appends_nothing(hub, tiny):
    (f,) = variant("Q8_0").files
    dest = models_dir() / REPO / f.name
    hub.faults = Faults(drop_after=f.size // 2)
    with pytest.raises(HubError, match="connection ended"):
        pull(REPO, [f])
    kept = partial_path(dest).read_bytes()
    hub.faults = Faults(overlong=4 << 20)
    with pytest.raises(HubError, match=f"more than the listed {f.size:,} bytes"):
        pull(REPO, [f])
    assert partial_path(dest).read_bytes() == kept
    hub.faults = Faults()
    (path,) = pull(REPO, [f])
    assert sha(path) == sha(tiny.quants["Q8_0"])


def wrong_ranges(size: int, half: int) -> list[Faults]:
    return [
        Faults(range_shift=1000),  # starts later than asked: bytes would be skipped
        Faults(range_header=f"bytes 0-{size - 1}/{size}"),  # starts at 0: bytes would repeat
        Faults(range_header=f"bytes {half}-{size - 1}/{size + 7}"),  # another file's total
        Faults(range_header=f"bytes {half}-{size - 2}/{size}"),  # ends early
        Faults(range_header="bytes */*"),
        Faults(range_header="garbage"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_a_206_that_does_not_match_the_request_is_refused(hub, tiny, case):
    (f,) = variant("Q8_0").files
    dest = models_dir() / REPO / f.name
    half = f.size // 2
    hub.faults = Faults(drop_after=half)
    with pytest.raises(HubError):
        pull(REPO, [f])
    kept = partial_path(dest).read_bytes()
    hub.faults = wrong_ranges(f.size, half)[case]
    with pytest.raises(HubError, match="refused, nothing appended") as info:
        pull(REPO, [f])
    assert "\n" not in str(info.value)
    assert partial_path(dest).read_bytes() == kept and not dest.exists()
    hub.faults = Faults()
    (path,) = pull(REPO, [f])
    assert sha(path) == sha(tiny.quants["Q8_0"])


@pytest.mark.parametrize("faults", [Faults(range_shift=100), Faults(range_header="bytes 0-99999999/12")])
def test_remote_header_reads_refuse_a_wrong_range(hub, faults):
    hub.faults = faults
    with pytest.raises(HubError, match="refused") as info:
        fetch_header(REPO, "tiny-Q4_K_M.gguf", use_cache=False)
    assert "\n" not in str(info.value)


def test_remote_header_refuses_a_size_other_than_listed(hub, tiny):
    size = tiny.quants["Q4_K_M"].stat().st_size
    with pytest.raises(HubError, match=f"has {size:,} bytes, not {size + 1:,}"):
        remote_facts(REPO, "tiny-Q4_K_M.gguf", parts=["tiny-Q4_K_M.gguf"], sizes=[size + 1])


def test_remote_header_reads_are_bounded(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(hub_remote, "MAX_HEADER", 2 << 20)
    hub.repos[REPO].files["vocab-F16.gguf"] = write_vocab_header(tmp_path / "vocab.gguf")
    with pytest.raises(HubError, match="more than quanttui reads"):
        fetch_header(REPO, "vocab-F16.gguf", use_cache=False)
    assert hub.bytes_sent() <= hub_remote.MAX_HEADER  # it stopped at the bound, not at the file's end


# stalls, junk, ids, faults inside the client ------------------------------------------------------


@pytest.mark.parametrize(
    ("only", "action"),
    [
        ("/api/models/", lambda: repo_variants(REPO)),
        ("/api/models", lambda: search("tiny")),
        ("/resolve/", lambda: fetch_header(REPO, "tiny-Q2_K.gguf", use_cache=False)),
    ],
)
def test_a_stalled_api_call_ends_at_the_read_limit(hub, monkeypatch, only, action):
    monkeypatch.setattr(hub_client, "READ_TIMEOUT", 0.5)
    hub.faults = Faults(stall=120, only=only)
    error = in_thread(action)  # the stall lasts 120 s; the guard only proves it did not wait it out
    assert isinstance(error, HubError) and "sent nothing for 0.5 s" in str(error)


@pytest.mark.parametrize(
    "junk",
    [[], "text", 7, {"siblings": {"a": 1}}, {"siblings": "x", "sha": ["no"]}],
)
def test_junk_model_info_is_one_line_or_an_empty_ladder(hub, capfd, junk):
    hub.faults = Faults(api_json=junk, only="/api/models/")
    try:
        listing = repo_variants(REPO)
    except HubError as e:
        assert "unreadable" in str(e) and "\n" not in str(e)
    else:
        assert listing.variants == [] and listing.revision == "main"
    assert main(["pull", REPO, "Q2_K"]) == 1
    one_line(capfd.readouterr().err)


def test_wrong_types_in_a_listing_refuse_that_file_only(hub, tiny):
    good = hub._info(hub.repos[REPO], True)
    good["siblings"] += [
        {"rfilename": 5},
        {"rfilename": "big-Q4_0.gguf", "size": "big"},
        {"rfilename": "neg-Q4_0.gguf", "size": -4},
        {"rfilename": "bool-Q4_0.gguf", "size": True},
        {"rfilename": "badsha-Q4_0.gguf", "size": 10, "lfs": {"sha256": "zz", "size": 10}},
        {"rfilename": "twice.gguf", "size": 10},
        {"rfilename": "twice.gguf", "size": 10},
        "junk",
        None,
        [1, 2],
    ]
    good["sha"] = "../../../not-a-commit"
    hub.faults = Faults(api_json=good, only="/api/models/")
    listing = repo_variants(REPO)
    assert listing.revision == "main"  # a commit id that is not one is not used
    refused = {str(r.name): r.reason for r in listing.refused}
    bad = {"5", "big-Q4_0.gguf", "neg-Q4_0.gguf", "bool-Q4_0.gguf", "badsha-Q4_0.gguf", "twice.gguf"}
    assert set(refused) == bad
    assert sorted(v.label for v in listing.variants) == sorted([*LADDER, "twice.gguf"])


@pytest.mark.parametrize("junk", [{"not": "a list"}, "x", 3])
def test_junk_search_answers_are_one_line(hub, capfd, junk):
    hub.faults = Faults(api_json=junk, only="/api/models")
    with pytest.raises(HubError, match="unreadable"):
        search("tiny")
    assert main(["search", "tiny"]) == 1
    assert "unreadable" in one_line(capfd.readouterr().err)


def test_wrong_types_in_search_hits_become_unknown(hub):
    hub.faults = Faults(
        api_json=[{"id": 5}, {"id": "ok/Repo-GGUF", "downloads": "x", "likes": True, "gguf": []}, "x", None],
        only="/api/models",
    )
    (hit,) = search("tiny")
    assert (hit.repo, hit.downloads, hit.likes, hit.parameters) == ("ok/Repo-GGUF", None, None, None)


def test_a_fault_inside_huggingface_hub_is_one_line(hub, capfd, monkeypatch):
    """An /api/agent-harnesses answer that is a list makes huggingface_hub raise AttributeError while
    it builds the headers of every later request."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _detect_agent

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", False)
    monkeypatch.setattr(_detect_agent, "_registry", ["a list, not an object"])
    for argv, rc in (
        (["search", "tiny"], 1),
        (["pull", REPO, "Q2_K"], 1),
        (["inspect", f"hf:{REPO}/tiny-Q2_K.gguf"], 1),
    ):
        assert main(argv) == rc
        assert "AttributeError" in one_line(capfd.readouterr().err)
    with pytest.raises(HubError, match="AttributeError"):
        pull(REPO, [RemoteFile("tiny-Q2_K.gguf", 10, None)])


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Repo-Commit": "../../../../../outside"},
        {"ETag": '"../../../../outside-blob"'},
        {"ETag": 'W/"../../../../outside-blob"'},
        {"X-Linked-Etag": '"/tmp/outside-blob"'},
    ],
)
def test_hostile_headers_never_shape_paths_in_the_hf_cache(hub, tmp_path, headers):
    before = all_files(tmp_path)
    hub.faults = Faults(headers=headers, only="/resolve/")
    with pytest.raises(HubError, match="refuses") as info:
        pull(REPO, variant("Q2_K").files, to="hf-cache")
    assert "\n" not in str(info.value)
    assert outside_boxes(tmp_path, before) == set()
    assert not any("outside" in str(p) for p in all_files(tmp_path) - before)


def test_a_body_longer_than_listed_is_refused_into_the_hf_cache(hub, tmp_path):
    (f,) = variant("Q2_K").files
    hub.faults = Faults(overlong=32 << 20, only="/resolve/")
    with pytest.raises(HubError):
        pull(REPO, [f], to="hf-cache")
    assert all(p.stat().st_size <= f.size for p in all_files(hf_hub_cache()) if p.is_file())


# an unreachable Hub ------------------------------------------------------------------------------


@pytest.fixture
def closed_port(monkeypatch) -> str:
    """HF_ENDPOINT on a loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    return url


@pytest.mark.parametrize(
    "action",
    [
        lambda: search("tiny"),
        lambda: repo_variants(REPO),
        lambda: fetch_header(REPO, "tiny-Q2_K.gguf"),
        lambda: pull(REPO, [RemoteFile("tiny-Q2_K.gguf", 10, None)]),
        lambda: pull(REPO, [RemoteFile("tiny-Q2_K.gguf", 10, None)], to="hf-cache"),
    ],
)
def test_an_unreachable_hub_is_said_at_once(closed_port, action):
    error = in_thread(action)
    assert isinstance(error, HubUnreachable), error
    assert f"cannot reach the Hub at {closed_port}: offline?" in str(error) and "\n" not in str(error)


def test_offline_search_from_the_command_line_is_one_line(closed_port):
    script = "import sys\nfrom quanttui.cli.main import main\nsys.exit(main(['search', 'tiny']))\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 3 and out.stdout == ""
    assert "cannot reach the Hub" in one_line(out.stderr) and "offline" in out.stderr
