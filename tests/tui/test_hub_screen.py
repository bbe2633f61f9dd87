"""Pilot tests: search -> repo -> download, the tensor diff, and downloads you can watch."""

from __future__ import annotations

import pytest

from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.core.paths import models_dir
from quanttui.tui.app import create_app
from quanttui.tui.screens.downloads import DownloadsScreen
from quanttui.tui.screens.hub import DiffScreen, HubScreen, RepoScreen
from tests.conftest import REPO
from tests.tui.pilot_help import until
from tests.tui.test_ab_screen import _until
from tests.tui.test_library_screen import rendered


async def search_from_the_library(pilot, query: str) -> None:
    """From the Library at start: ctrl+f opens the Hub, `query` Enter searches."""
    app = pilot.app
    await pilot.pause(0.3)
    await pilot.press("ctrl+f")
    await until(pilot, lambda: isinstance(app.screen, HubScreen) and app.screen.focused is not None)
    await pilot.press(*query, "enter")


@pytest.mark.slow
async def test_search_open_repo_download(hub, tiny, tmp_path):
    hub.repos[REPO].files["mislabeled-Q6_K.gguf"] = tiny.quants["Q2_K"]
    app = create_app([Root(models_dir(), "quanttui", True)], hardware("24GiB", "64GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        await search_from_the_library(pilot, "tiny")
        results = app.screen.query_one("#hub-results")
        await _until(pilot, lambda: results.row_count == 2)
        await pilot.press("down", "enter")  # the second hit: the tiny llama repo (fewer downloads)
        await until(pilot, lambda: isinstance(app.screen, RepoScreen))
        repo = app.screen
        assert repo.repo == REPO
        table = repo.query_one("#variants")
        await _until(pilot, lambda: table.row_count == 6 and len(repo.facts) == 6)
        q8 = "tiny-Q8_0.gguf"
        assert str(table.get_cell(q8, "bpw")) == "8.52" and str(table.get_cell(q8, "fit")) == "GPU"
        assert str(table.get_cell("tiny-IQ4_XS.gguf", "imatrix")) == "yes"
        assert str(table.get_cell("mislabeled-Q6_K.gguf", "quant")) == "Q6_K (header: Q2_K)"
        table.move_cursor(row=table.get_row_index(q8))
        await until(pilot, lambda: "Q8_0" in rendered(repo.query_one("#variant-facts")))
        await pilot.press("m")
        await until(pilot, lambda: repo.marked == [q8])
        table.move_cursor(row=table.get_row_index("tiny-Q4_K_M.gguf"))
        await pilot.press("m", "x")
        await until(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.is_mounted)
        assert "tensors differ in type" in rendered(app.screen.query_one("#diff-summary"))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is repo)
        table.move_cursor(row=table.get_row_index(q8))
        await pilot.press("d")
        dest = models_dir() / REPO / q8
        await _until(pilot, lambda: dest.exists())
        await pilot.press("ctrl+g")
        await until(pilot, lambda: isinstance(app.screen, DownloadsScreen))
        await _until(pilot, lambda: "done" in rendered(app.screen.query_one("#jobs")))
        assert dest.read_bytes() == tiny.quants["Q8_0"].read_bytes()


async def test_files_refused_from_a_listing_are_said_with_their_reason(hub, tiny, tmp_path):
    hub.repos[REPO].files["../escape-Q8_0.gguf"] = tiny.quants["Q8_0"]
    hub.repos[REPO].files["evil\x1b]0;t\x07-Q8_0.gguf"] = tiny.quants["Q8_0"]
    app = create_app([Root(models_dir(), "quanttui", True)], hardware("24GiB", "64GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.3)
        app.push_screen(RepoScreen(REPO))
        await _until(pilot, lambda: isinstance(app.screen, RepoScreen) and app.screen.listing is not None)
        status = rendered(app.screen.query_one("#repo-status"))
        assert "2 files refused:" in status and "../escape-Q8_0.gguf" in status
        assert "evil\\x1b]0;t\\x07-Q8_0.gguf" in status and "\x1b" not in status
        table = app.screen.query_one("#variants")
        assert all("escape" not in str(k.value) and "evil" not in str(k.value) for k in table.rows)
