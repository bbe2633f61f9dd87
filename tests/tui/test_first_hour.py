"""Issue 20, "the first hour, round two": keys typed while the side pane has focus, Help scrolled to
its end, a side pane readable at 100 columns, the first screen's ways to a model, a palette that finds
every action with its key, and sizes that follow a hard-link of the duplicates."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from quanttui.core import format as fmt
from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from quanttui.tui.commands import entries
from quanttui.tui.screens.dialogs import ConfirmScreen
from quanttui.tui.screens.help import HelpScreen
from quanttui.tui.screens.usage import UsageScreen
from quanttui.tui.widgets.detail_pane import DetailPane, histogram, ladder
from quanttui.tui.widgets.filter_input import FilterInput
from quanttui.tui.widgets.fit_panel import FitPanel
from quanttui.tui.widgets.model_table import ModelTable
from tests.tui.pilot_help import at_row, eventually, rendered, screen_text, until
from tests.tui.test_library_screen import _loaded, row_keys

STEM = "tiny-model-270m"  # as long as gemma-3-270m-Q3_K_M.gguf, with its copy's folder


@pytest.fixture
def copies(tiny, tmp_path) -> Path:
    """Three quants under long names, and a copy of two of them in a second folder."""
    lib = tmp_path / "lib"
    for sub in ("main", "copies"):
        (lib / sub).mkdir(parents=True)
    for label in ("Q8_0", "Q4_K_M", "Q2_K"):
        shutil.copyfile(tiny.quants[label], lib / "main" / f"{STEM}-{label}.gguf")
    for label in ("Q8_0", "Q2_K"):
        shutil.copyfile(tiny.quants[label], lib / "copies" / f"{STEM}-{label}.gguf")
    return lib


def _app(lib: Path):
    return create_app([Root(lib, "folder", False)], hardware("0", "32GiB"))


def _cursor_background(table: ModelTable):
    """The background the table draws its highlighted row in now."""
    y = table.cursor_row + 1 - round(table.scroll_y)  # under the header line
    segments = [s for s in table.render_line(y) if s.text.strip()]
    return segments[0].style.bgcolor


# 1 -------------------------------------------------------------------------------------------------


async def test_letters_typed_in_the_side_pane_filter_and_delete_names_the_highlighted_row(copies):
    app = _app(copies)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await _loaded(pilot)
        await pilot.press("down", "down")
        await at_row(pilot, 2)
        focused_look = _cursor_background(table)
        await pilot.press("tab")  # the only way to scroll the per-layer chart
        await until(pilot, lambda: isinstance(app.screen.focused, DetailPane))
        # the highlighted row looks as it did with the table focused: it is what Delete acts on
        await eventually(pilot, lambda: _check(_cursor_background(table) == focused_look))
        key = table.cursor_key()
        await pilot.press("delete")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.is_mounted)
        assert key in "".join(rendered(app.screen.query_one("#confirm-files")).split())  # folded
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        app.screen.query_one(DetailPane).focus()
        await pilot.press("q", "8")
        filt = app.screen.query_one(FilterInput)
        await eventually(pilot, lambda: _check(filt.value == "q8" and app.screen.focused is filt))
        await until(pilot, lambda: all("Q8_0" in k for k in row_keys(table) if k.endswith(".gguf")))


def _check(ok: bool) -> None:
    assert ok


def _shown(app, widget) -> str:
    """What the screen shows inside `widget`'s region (its children included)."""
    r = widget.region
    lines = screen_text(app).splitlines()[r.y : r.y + r.height]
    return "\n".join(line[r.x : r.x + r.width] for line in lines)


# 2 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_help_scrolls_to_its_last_key(copies, size):
    app = _app(copies)
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot)
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen.is_mounted)
        seen = screen_text(app)
        for _ in range(12):
            await pilot.press("pagedown")
            await pilot.pause(0.1)
            seen += screen_text(app)
        for key in ("f2 ", "^n ", "^f ", "^g ", "^t ", "^u ", "^b "):
            assert key in seen, key
        await pilot.press("home")
        await pilot.pause(0.1)
        await pilot.press("end")
        await eventually(pilot, lambda: _check("Copy selected text" in screen_text(app)))  # the last row


# 4 -------------------------------------------------------------------------------------------------


def _plain(renderable, width: int) -> str:
    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("width", [24, 30, 37, 45, 57])
def test_tensor_types_and_ladder_never_cut_a_cell(tiny, width):
    from quanttui.core.library import scan

    found = scan([Root(tiny.quants["Q8_0"].parent, "folder", False)])
    e = next(x for x in found if x.name == "tiny-Q4_K_M.gguf")
    text = _plain(histogram(e.facts, width), width)
    assert "…" not in text
    for name, st in e.facts["tensor_types"].items():
        assert name in text and fmt.size(st["bytes"]) in text
    members = [x for x in found if x.group == e.group]
    text = _plain(ladder(members, width), width)
    assert "…" not in text
    for m in members:
        assert m.name in text.replace("\n  ", "")  # whole; a name longer than the pane folds


@pytest.mark.parametrize("size", [(100, 30), (160, 48)])
async def test_side_pane_shows_whole_names_and_whole_words(copies, size):
    app = _app(copies)
    async with app.run_test(size=size) as pilot:
        table = await _loaded(pilot)
        pane, panel = app.screen.query_one(DetailPane), app.screen.query_one(FitPanel)

        def ladder_whole() -> None:
            text = _shown(app, pane)
            assert "quant ladder" in text and "imat" in text and "…" not in text
            for label in ("Q8_0", "Q4_K_M", "Q2_K"):
                assert f"{STEM}-{label}.gguf" in text
            assert f"copies/{STEM}-Q8_0.gguf" in text  # copies of one name are told apart

        await eventually(pilot, ladder_whole)
        table.move_cursor(row=1)
        await at_row(pilot, 1)

        def entry_whole() -> None:
            text = rendered(panel)
            assert "█ overhead" in text and "; KV type" in text and "GPU layers" in text
            assert "…" not in text

        await eventually(pilot, entry_whole)
        pane.scroll_to(y=pane.query_one("#detail-facts").virtual_region.height - 8, animate=False)

        def tensors_whole() -> None:
            text = _shown(app, pane)
            assert "type" in text and "size" in text and "share" in text and "…" not in text

        await eventually(pilot, tensors_whole)


# 5 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_the_first_screen_says_how_to_get_a_model(tmp_path, size):
    empty = tmp_path / "nothing-here-yet"
    empty.mkdir()
    app = _app(empty)
    async with app.run_test(size=size) as pilot:

        def said() -> None:
            text = screen_text(app)
            assert "No GGUF models found." in text
            lines = text.splitlines()
            # state, kind and the path start on one line; a long path folds in its own column
            at = next(i for i, ln in enumerate(lines) if "active" in ln and "folder" in ln)
            column = lines[at].index(str(empty)[:12])
            assert column > lines[at].index("folder")
            folded = "".join(ln[column:].strip() for ln in lines[at : at + 3])
            assert str(empty) in folded
            assert any("quanttui demo" in ln for ln in lines)
            assert any("ctrl+f" in ln and "Hub" in ln for ln in lines)
            assert any("quanttui roots add PATH" in ln for ln in lines)

        await eventually(pilot, said)


# 6 -------------------------------------------------------------------------------------------------


async def test_the_palette_finds_every_action_with_its_key(copies):
    app = _app(copies)
    async with app.run_test(size=(100, 30)) as pilot:
        await _loaded(pilot)
        keyed = {e.title: e.key for e in entries(app.screen)}
        for title, key in (
            ("Quality view", "^k"),
            ("Side pane", "f2"),
            ("Rename", "^n"),
            ("Hub: search Hugging Face", "^f"),
            ("Downloads", "^g"),
            ("Toggle dark/light theme", "^t"),
            ("Delete to trash", "del"),
            ("Fit: halve the context", "["),
            ("Help", "f1"),
        ):
            assert keyed.get(title) == key, title
        for word in ("recommend", "advise", "eval", "bench"):
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            await pilot.press(*word)
            await eventually(pilot, lambda: _check("Quality view  ^k" in screen_text(app)))
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen.query(ModelTable).first(), ModelTable))


# 8 -------------------------------------------------------------------------------------------------


def _disk(lib: Path) -> int:
    seen, total = set(), 0
    for p in lib.rglob("*.gguf"):
        st = p.stat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


async def test_linking_duplicates_updates_disk_usage_and_the_library_line(copies):
    before = _disk(copies)
    app = _app(copies)
    async with app.run_test(size=(100, 30)) as pilot:
        await _loaded(pilot)
        await pilot.press("ctrl+u")
        await until(pilot, lambda: isinstance(app.screen, UsageScreen))
        usage = app.screen
        await until(pilot, lambda: "reclaimable" in rendered(usage.query_one("#dupes")))
        assert f"total {fmt.size(before)}" in rendered(usage.query_one("#usage"))
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: _disk(copies) < before)
        after = _disk(copies)
        total = f"total {fmt.size(after)}"
        await eventually(pilot, lambda: _check(total in rendered(usage.query_one("#usage"))))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, UsageScreen))
        line = f"5 files in 1 model, {fmt.size(after)}"
        await eventually(pilot, lambda: _check(line in app.screen.bar.text))
