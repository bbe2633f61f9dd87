"""The TUI attacked with hostile names: every screen starts, moves and renders with names shown
literally (markup never parsed) and no raw control, C1 or bidi character reaching the terminal."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from quanttui.core.fit import hardware
from quanttui.core.hub import Variant
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from quanttui.tui.downloads import DownloadJob
from quanttui.tui.screens.ab import ABScreen
from quanttui.tui.screens.dialogs import ConfirmScreen
from quanttui.tui.screens.downloads import DownloadsScreen
from quanttui.tui.screens.hub import HubScreen
from quanttui.tui.screens.usage import UsageScreen
from tests.cli.test_cli_hostile import HOSTILE_FILES, HOSTILE_NAMES, RAW, write_arch_model
from tests.modelgen import write_tiny_model
from tests.tui.pilot_help import at_row, until
from tests.tui.test_ab_screen import _until
from tests.tui.test_library_screen import _loaded, rendered, row_keys


def screen_text(app) -> str:
    """Everything the app would draw now (screen, toasts, header, footer), as plain text."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True, record=True, legacy_windows=False
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)


def assert_clean(text: str) -> None:
    for ch in RAW:
        assert ch not in text, repr(ch)


def _hostile_lib(tiny, tmp_path) -> Path:
    d = tmp_path / "lib"
    d.mkdir()
    for key in ("title", "markup", "bidi", "c1"):
        write_tiny_model(d / f"name-{key}.gguf", name=HOSTILE_NAMES[key])
    for fname in HOSTILE_FILES:
        shutil.copyfile(tiny.quants["Q2_K"], d / fname)
    shutil.copyfile(tiny.quants["Q2_K"], os.fsdecode(os.fsencode(d) + b"/caf\xff.gguf"))
    write_arch_model(d / "arch.gguf", "ll\x1b]0;arch\x07[/]ama", "[/]arch\x1b[5m")
    return d


@pytest.mark.slow
async def test_every_row_detail_and_disk_usage_render_hostile_names_literally(tiny, tmp_path):
    d = _hostile_lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        seen = ""
        for row in range(table.row_count):  # every row, group rows included, with its detail pane
            await pilot.press("down")
            await at_row(pilot, min(row + 1, table.row_count - 1))
            text = screen_text(app)
            assert_clean(text)
            seen += text
        assert "x[bold]y.gguf" in seen and "[@click=app.quit]q.gguf" in seen
        assert "e\\x1b[31mvil.gguf" in seen and "n\\u202eman.gguf" in seen and "caf\\xff.gguf" in seen
        assert "[/]arch\\x1b[5m" in seen  # a group row and the quant ladder titled by general.name
        table.move_cursor(row=row_keys(table).index(str(d / "name-markup.gguf")))
        await at_row(pilot, row_keys(table).index(str(d / "name-markup.gguf")))
        detail = app.screen.query_one("#detail-facts")
        literal = "[/][bold]M[link=file:///etc/passwd]x["  # exactly as written: no tag parsed
        await until(pilot, lambda: literal in rendered(detail))
        table.move_cursor(row=row_keys(table).index(str(d / "name-title.gguf")))
        await at_row(pilot, row_keys(table).index(str(d / "name-title.gguf")))
        await until(pilot, lambda: "T\\x1b]0;pwned\\x07" in rendered(detail))
        table.move_cursor(row=row_keys(table).index(str(d / "x[bold]y.gguf")))
        await pilot.press("space")  # the notification names the marked file literally
        await _until(pilot, lambda: any(n.message == "marked A x[bold]y.gguf" for n in app._notifications))
        assert not any(n.markup for n in app._notifications)  # shown as written, never as markup
        await pilot.press("ctrl+u")
        await until(pilot, lambda: isinstance(app.screen, UsageScreen))
        screen = app.screen
        await _until(pilot, lambda: "duplicate" in rendered(screen.query_one("#dupes")))
        text = screen_text(app)
        assert_clean(text)
        assert "[/]arch\\x1b[5m" in rendered(screen.query_one("#usage"))


@pytest.mark.slow
async def test_delete_confirmation_names_the_exact_file_and_trashes_only_it(tiny, tmp_path):
    d = _hostile_lib(tiny, tmp_path)
    target = d / "x[bold]y.gguf"
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        before = sorted(p.name for p in d.iterdir())
        table.move_cursor(row=row_keys(table).index(str(target)))
        await pilot.press("delete")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.is_mounted)
        assert rendered(app.screen.query_one("#confirm-files")).strip() == str(target)
        assert_clean(screen_text(app))
        await pilot.press("y")
        await _until(pilot, lambda: not target.exists() and str(target) not in row_keys(table))
        assert sorted(p.name for p in d.iterdir()) == [n for n in before if n != target.name]
        trash = Path(os.environ["HOME"]) / ".local" / "share" / "Trash" / "files"
        assert [p.name for p in trash.iterdir()] == [target.name]
        # A name with an ESC: the dialog shows the escape, and confirming trashes that very file.
        evil = d / "e\x1b[31mvil.gguf"
        table.move_cursor(row=row_keys(table).index(str(evil)))
        await pilot.press("delete")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.is_mounted)
        assert rendered(app.screen.query_one("#confirm-files")).strip() == f"{d}/e\\x1b[31mvil.gguf"
        await pilot.press("y")
        await _until(pilot, lambda: not evil.exists())
        assert (d / "[@click=app.quit]q.gguf").exists() and (d / "n\u202eman.gguf").exists()


@pytest.mark.slow
async def test_ab_panes_and_hostile_model_output(tiny, tmp_path):
    a, b = tmp_path / "e\x1b]0;A\x07[bold].gguf", tmp_path / "[@click=app.quit]b\u202e.gguf"
    shutil.copyfile(tiny.quants["Q8_0"], a)
    shutil.copyfile(tiny.quants["Q4_K_M"], b)
    app = create_app([Root(tmp_path, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        screen = ABScreen(str(a), str(b))
        await app.push_screen(screen)
        prompt = screen.query_one("#ab-prompt")
        await _until(pilot, lambda: not prompt.disabled)
        screen.cfg.mode, screen.cfg.max_tokens = "completion", 16
        await pilot.press(*"One", "enter")  # the tiny models answer in random bytes, ESC among them
        await _until(pilot, lambda: not screen.running and screen.session.turns)
        text = screen_text(app)
        assert_clean(text)
        assert "A  e\\x1b]0;A\\x07[bold].gguf" in text and "B  [@click=app.quit]b\\u202e.gguf" in text
        answers = [screen.session.turns[-1].a.text, screen.session.turns[-1].b.text]
        if any("\x1b" in t for t in answers):
            assert "\\x1b" in text


@pytest.mark.slow
async def test_hub_results_and_download_rows_with_hostile_metadata(hub, tiny, tmp_path):
    repo = next(iter(hub.repos.values()))
    repo.gguf["architecture"] = "[/]ar\x1b]0;pwned\x07ch"
    app = create_app([Root(tmp_path, "folder", False)], hardware("24GiB", "64GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, HubScreen) and app.screen.focused is not None)
        await pilot.press(*"tiny", "enter")
        results = app.screen.query_one("#hub-results")
        await _until(pilot, lambda: results.row_count == 2)
        await until(pilot, lambda: "[/]ar\\x1b]0;pwned\\x07ch" in screen_text(app))
        assert_clean(screen_text(app))
        job = DownloadJob("evil/[/]x\x1b]0;t\x07", Variant("[bold]Q\x9b", []), status="failed")
        job.error = "refused [/] \x1b]52;c;eA==\x07"
        await pilot.press("ctrl+g")
        await until(pilot, lambda: isinstance(app.screen, DownloadsScreen) and app.screen.is_mounted)
        app.downloads.add(job)  # the screen follows the app's DownloadsState
        await until(pilot, lambda: "refused [/]" in screen_text(app))
        text = screen_text(app)
        assert_clean(text)
        assert "evil/[/]x\\x1b]0;t\\x07 [bold]Q\\x9b" in text and "refused [/] \\x1b]52;c;eA==\\x07" in text
