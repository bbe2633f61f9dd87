"""The A/B, Hub, repo and Downloads screens at 80x24, 100x30 and 160x48: what matters is on screen
and readable; an unreachable Hub is said at once with a way to retry; an empty Downloads screen
says so, with no progress bar."""

from __future__ import annotations

import socket

import pytest
from textual.widgets import ProgressBar

from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.core.paths import models_dir
from quanttui.tui.app import create_app
from quanttui.tui.screens.downloads import DownloadsScreen
from quanttui.tui.screens.hub import HubScreen, RepoScreen
from tests.conftest import REPO
from tests.tui.pilot_help import SIZES, ab_app, eventually, open_ab, rendered, screen_text, turn, until


def _inside(widget, size: tuple[int, int]) -> bool:
    r = widget.region
    return r.width > 0 and r.height > 0 and r.right <= size[0] and r.bottom <= size[1]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.slow
async def test_ab_screen_at_each_size(tiny, tmp_path, size):
    app = ab_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        screen = await open_ab(pilot, tiny.quants["Q8_0"], tiny.quants["Q4_K_M"])
        screen.cfg.mode, screen.cfg.max_tokens = "completion", 16
        await turn(pilot, screen, "Hi")
        await until(pilot, lambda: "16 tokens" in rendered(screen.query_one("#pane-b .meters")))

        def laid_out() -> None:
            text = screen_text(app)
            assert "A  tiny-Q8_0.gguf" in text and "B  tiny-Q4_K_M.gguf" in text
            assert "completion mode" in text and "each prompt stands alone" in text
            for side in ("a", "b"):
                pane = screen.query_one(f"#pane-{side}")
                assert _inside(pane, size) and pane.region.width >= size[0] // 2 - 2
                body = pane.query_one(".body")
                assert pane.query_one("VerticalScroll").region.height >= 4 and "> Hi" in rendered(body)
                assert "16 tokens" in rendered(pane.query_one(".meters"))
            assert _inside(screen.query_one("#ab-prompt"), size)

        await eventually(pilot, laid_out)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.slow
async def test_hub_search_and_repo_at_each_size(hub, tiny, size):
    app = create_app([Root(models_dir(), "quanttui", True)], hardware("24GiB", "64GiB"))
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.3)
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, HubScreen) and app.screen.focused is not None)
        await pilot.press(*"tiny", "enter")
        results = app.screen.query_one("#hub-results")
        await until(pilot, lambda: results.row_count == 2)

        def found() -> None:
            text = screen_text(app)
            assert REPO in text and "2 repositories" in text

        await eventually(pilot, found)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, RepoScreen))
        repo = app.screen
        await until(pilot, lambda: repo.listing is not None and len(repo.facts) == len(repo.listing.variants))

        def listed() -> None:
            assert repo.has_class("narrow") == (size[0] < RepoScreen.NARROW)
            text = screen_text(app)
            for label in ("Q8_0", "Q4_K_M", "Q2_K"):
                assert label in text
            detail = repo.query_one("#variant-detail")
            assert _inside(detail, size) and detail.region.height >= 4 and detail.region.width >= 30
            assert "Tiny Llama" in rendered(repo.query_one("#variant-facts"))  # the highlighted quant's facts

        await eventually(pilot, listed)


async def test_an_unreachable_hub_is_said_at_once_and_ctrl_r_tries_again(hub, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    app = create_app([Root(models_dir(), "quanttui", True)], hardware("24GiB", "64GiB"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, HubScreen) and app.screen.focused is not None)
        screen = app.screen
        await pilot.press(*"tiny", "enter")
        status = screen.query_one("#hub-status")
        await until(pilot, lambda: "cannot reach" in rendered(status), tries=300)  # at most 15 s
        said = " ".join(rendered(status).split())
        assert f"cannot reach the Hub at {closed}: offline?" in said and "ctrl+r searches again" in said
        monkeypatch.setenv("HF_ENDPOINT", hub.url)  # back online
        await pilot.press("ctrl+r")
        await until(pilot, lambda: screen.query_one("#hub-results").row_count == 2)
        await until(pilot, lambda: "2 repositories" in rendered(status))


@pytest.mark.parametrize("size", SIZES)
async def test_an_empty_downloads_screen_says_so_without_a_bar(tmp_path, size):
    app = create_app([Root(tmp_path, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.3)
        await pilot.press("ctrl+g")
        await until(pilot, lambda: isinstance(app.screen, DownloadsScreen) and app.screen.is_mounted)
        screen = app.screen
        await until(pilot, lambda: "no downloads yet: find a model with the Hub (ctrl+f)" in screen_text(app))
        assert not screen.query_one(ProgressBar).display and not screen.query_one("#jobs").display
        assert "%" not in screen_text(app)  # no empty bar's percentage
