"""A Hub that answers a byte at a time, or with a gzip bomb, against quanttui's deadlines and caps.

A dripped answer never trips the per-read timeout; each API call (search, model info, a header range
read, the HEAD before a download) must still end at its deadline with one line and hang up. A gzip
bomb must be refused at the decoded-size cap without being unpacked. A cancel ends a call at once,
also while the answer's headers are still arriving, and quitting the app never waits for the Hub.
"""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc

import pytest

from quanttui.core.fit import hardware
from quanttui.core.hub import HubError, cancel_on, fetch_header, partial_path, pull, repo_variants, search
from quanttui.core.hub import client as hub_client
from quanttui.core.hub import guard as hub_guard
from quanttui.core.library import Root
from quanttui.core.paths import models_dir
from quanttui.tui.app import create_app
from tests.conftest import REPO
from tests.core.test_hub_attack import in_thread, variant
from tests.hubserver import Faults
from tests.tui.pilot_help import until
from tests.tui.test_hub_screen import search_from_the_library

pytestmark = pytest.mark.slow

DRIP = 0.2  # seconds between bytes: any answer takes minutes to arrive whole
BOMB = 512 << 20  # bytes the bomb expands to (it is about 0.5 MB on the wire)


@pytest.fixture
def short(monkeypatch):
    """Deadlines of 1 s, so a test of one waits a second, not a minute."""
    monkeypatch.setattr(hub_client, "DEADLINE", 1.0)
    monkeypatch.setattr(hub_client, "MIN_RATE", 1 << 40)  # range reads get no time for their bytes
    monkeypatch.setattr(hub_guard, "HEADERS_DEADLINE", 1.0)


def hung_up(hub) -> bool:
    """Whether the client let go of the dripping connection (checked for up to 10 s)."""
    for _ in range(100):
        if hub.hangups:
            return True
        time.sleep(0.1)
    return False


def ends_with_one_line(action, *, within: float = 10.0) -> str:
    """Run `action`; the one-line HubError it must end with, well within `within` seconds (a guard
    against the minutes a dripped answer lasts, not a speed limit)."""
    error = in_thread(action, guard=within)
    assert isinstance(error, HubError), error
    assert "\n" not in str(error)
    return str(error)


API_CALLS = [
    ("/api/models", lambda: search("tiny")),
    ("/api/models/", lambda: repo_variants(REPO)),
    ("/resolve/", lambda: fetch_header(REPO, "tiny-Q2_K.gguf", use_cache=False)),
]


@pytest.mark.parametrize("drip_body", [False, True], ids=["whole-answer", "body-only"])
@pytest.mark.parametrize(("only", "action"), API_CALLS, ids=["search", "model-info", "range-read"])
def test_a_dripped_api_answer_ends_at_the_deadline(hub, short, only, action, drip_body):
    hub.faults = Faults(drip=DRIP, drip_body=drip_body, only=only)
    error = ends_with_one_line(action)
    assert "within 1 s" in error  # the whole answer's deadline, or its header's, whichever is first
    assert hung_up(hub)  # the connection was shut, not left to a reader still waiting on it


def test_the_head_before_a_download_into_the_hf_cache_ends_at_its_deadline(hub, short):
    files = variant("Q2_K").files
    hub.faults = Faults(drip=DRIP, only="/resolve/")
    error = ends_with_one_line(lambda: pull(REPO, files, to="hf-cache"))
    assert "within 1 s" in error and "tiny-Q2_K.gguf" in error
    assert hung_up(hub)


def test_a_download_whose_answer_header_drips_ends_at_the_header_deadline(hub, short):
    files = variant("Q2_K").files
    hub.faults = Faults(drip=DRIP, only="/resolve/")
    error = ends_with_one_line(lambda: pull(REPO, files))
    assert "no complete answer header within 1 s" in error
    assert not (models_dir() / REPO / "tiny-Q2_K.gguf").exists()


def test_a_cancel_ends_a_call_whose_headers_are_still_arriving(hub):
    cancel = threading.Event()
    hub.faults = Faults(drip=DRIP, only="/api/models")

    def cancelled_search() -> None:
        with cancel_on(cancel):
            search("tiny")

    threading.Timer(0.5, cancel.set).start()
    assert "cancelled" in ends_with_one_line(cancelled_search)
    assert hung_up(hub)


def test_a_cancel_ends_a_download_before_its_body_starts(hub):
    files = variant("Q8_0").files
    cancel = threading.Event()
    hub.faults = Faults(drip=DRIP, only="/resolve/")
    threading.Timer(0.5, cancel.set).start()
    assert "cancelled" in ends_with_one_line(lambda: pull(REPO, files, cancel=cancel))
    dest = models_dir() / REPO / "tiny-Q8_0.gguf"
    assert not dest.exists() and not partial_path(dest).exists()  # no answer, nothing opened


@pytest.mark.parametrize(("only", "action"), API_CALLS[:2], ids=["search", "model-info"])
def test_a_gzip_bomb_is_refused_at_the_cap_without_being_unpacked(hub, only, action):
    hub.faults = Faults(gzip_bomb=1 << 20, only="/api/models")  # gzip within the cap is read as usual
    assert search("tiny") == []  # `[`, a MiB of spaces, `]`
    hub.faults = Faults(gzip_bomb=BOMB, only=only)
    tracemalloc.start()
    try:
        error = ends_with_one_line(action, within=60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"larger than {hub_client.MAX_JSON:,} bytes; refused" in error
    assert peak < 2 * hub_client.MAX_JSON  # the cap's worth at most, not the bomb's 512 MiB


@pytest.mark.parametrize(
    "action",
    [
        lambda: fetch_header(REPO, "tiny-Q2_K.gguf", use_cache=False),
        lambda: pull(REPO, variant("Q2_K").files),
    ],
    ids=["range-read", "download"],
)
def test_an_encoded_file_answer_is_refused(hub, action):
    hub.faults = Faults(gzip_bomb=BOMB, only="/resolve/")
    error = ends_with_one_line(action, within=60)
    assert "gzip-encoded; refused" in error
    dest = models_dir() / REPO / "tiny-Q2_K.gguf"
    assert not dest.exists() and not (partial_path(dest).exists() and partial_path(dest).stat().st_size)


def test_an_answer_of_too_many_json_values_is_refused_before_it_is_parsed(hub, monkeypatch):
    monkeypatch.setattr(hub_client, "MAX_JSON_VALUES", 1000)
    hub.faults = Faults(api_json=[{}] * 2000, only="/api/models")
    assert "more than 1,000 JSON values; refused" in ends_with_one_line(lambda: search("tiny"))


async def test_quitting_is_not_held_up_by_a_dripping_hub(hub):
    hub.faults = Faults(drip=DRIP, only="/api/models")
    app = create_app([Root(models_dir(), "quanttui", True)], hardware("24GiB", "64GiB"))
    async with app.run_test(size=(120, 40)) as pilot:
        await search_from_the_library(pilot, "tiny")
        await until(pilot, lambda: hub.requests)  # the search is in flight, a byte at a time
        await pilot.press("ctrl+q")
    # What asyncio.run does once the app has returned: wait for every worker thread to end.
    await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), 10)
