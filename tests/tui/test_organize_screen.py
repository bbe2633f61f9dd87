"""Pilot tests: mark -> delete -> confirm, mark -> move, and the disk usage view."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from quanttui.tui.screens.dialogs import AskScreen, ConfirmScreen
from quanttui.tui.screens.library import LibraryScreen
from quanttui.tui.screens.usage import UsageScreen
from tests.tui.pilot_help import until
from tests.tui.test_ab_screen import _until
from tests.tui.test_library_screen import _loaded, rendered, row_keys


def _lib(tiny, tmp_path) -> Path:
    d = tmp_path / "lib"
    d.mkdir()
    for label in ("Q8_0", "Q4_K_M", "Q2_K"):
        shutil.copyfile(tiny.quants[label], d / f"tiny-{label}.gguf")
    return d


@pytest.mark.slow
async def test_mark_delete_confirm(tiny, tmp_path):
    d = _lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        await pilot.press("down", "space", "down", "space")  # Q8_0 and Q4_K_M
        await until(pilot, lambda: len(app.screen.marked) == 2)
        await pilot.press("delete")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.is_mounted)
        text = rendered(app.screen.query_one("#confirm-files"))
        assert "tiny-Q8_0.gguf" in text and "tiny-Q4_K_M.gguf" in text
        assert "Move to the trash 2 files" in rendered(app.screen.query_one("#confirm-title"))
        await pilot.press("n")  # nothing happens on no
        await until(pilot, lambda: isinstance(app.screen, LibraryScreen))
        assert (d / "tiny-Q8_0.gguf").exists()
        await pilot.press("delete")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.is_mounted)
        await pilot.press("y")
        await _until(pilot, lambda: not (d / "tiny-Q8_0.gguf").exists() and len(row_keys(table)) == 2)
        assert not (d / "tiny-Q4_K_M.gguf").exists() and (d / "tiny-Q2_K.gguf").exists()
        trash = Path(os.environ["HOME"]) / ".local" / "share" / "Trash" / "files"
        assert sorted(p.name for p in trash.iterdir()) == ["tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf"]


@pytest.mark.slow
async def test_mark_move(tiny, tmp_path):
    d = _lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        await pilot.press("down", "space")
        await until(pilot, lambda: len(app.screen.marked) == 1)
        await pilot.press("ctrl+x")
        await until(pilot, lambda: isinstance(app.screen, AskScreen) and app.screen.is_mounted)
        box = app.screen.query_one("#ask-value")
        box.value = str(d / "Tiny" / "quants")
        await pilot.press("enter")
        await _until(pilot, lambda: (d / "Tiny" / "quants" / "tiny-Q8_0.gguf").exists())
        assert not (d / "tiny-Q8_0.gguf").exists()
        await _until(pilot, lambda: any("Tiny/quants" in k for k in row_keys(table)))
        table.move_cursor(row=1)  # a file row: marks are cleared after a move
        await pilot.press("ctrl+x")
        await until(pilot, lambda: isinstance(app.screen, AskScreen) and app.screen.is_mounted)
        app.screen.query_one("#ask-value").value = "/somewhere/outside"
        await pilot.press("enter")
        await _until(
            pilot, lambda: any("outside the library roots" in str(n.message) for n in app._notifications)
        )


@pytest.mark.slow
async def test_disk_usage_and_duplicates(tiny, tmp_path):
    d = _lib(tiny, tmp_path)
    shutil.copyfile(tiny.quants["Q8_0"], d / "copy-of-Q8_0.gguf")
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 60)) as pilot:
        await _loaded(pilot)
        await pilot.press("ctrl+u")
        await until(pilot, lambda: isinstance(app.screen, UsageScreen))
        screen = app.screen
        await _until(pilot, lambda: "reclaimable" in rendered(screen.query_one("#dupes")))
        assert "by root" in rendered(screen.query_one("#usage"))
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.is_mounted)
        await pilot.press("y")
        await _until(
            pilot, lambda: os.stat(d / "copy-of-Q8_0.gguf").st_ino == os.stat(d / "tiny-Q8_0.gguf").st_ino
        )
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, LibraryScreen))
