"""The Library and Disk usage screens at 80x24, 100x30 and 160x48: the columns that show fit their
half, full names stay readable, the footer always starts with quit and help, a help screen lists
every key, and a table drawn before it measures its cells is drawn at its final widths."""

from __future__ import annotations

import shutil

import pytest

from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from quanttui.tui.screens.help import GENERIC, HelpScreen
from quanttui.tui.screens.usage import UsageScreen
from quanttui.tui.widgets.model_table import MODEL_MIN, PRIORITY, WIDTHS, ModelTable, plan_columns
from tests.tui.pilot_help import eventually, until
from tests.tui.test_ab_screen import _until
from tests.tui.test_hostile_text import screen_text
from tests.tui.test_library_screen import _loaded, rendered

SIZES = [(80, 24), (100, 30), (160, 48)]
LABELS = {"model": "Model", "arch": "Arch", "params": "Params", "quant": "Quant", "bpw": "BPW"}
LABELS |= {"size": "Size", "fit": "Fit", "imatrix": "imat", "store": "Store"}


@pytest.fixture
def lib(tiny, tmp_path):
    d = tmp_path / "lib"
    d.mkdir()
    for label in ("Q8_0", "Q4_K_M", "Q2_K"):
        shutil.copyfile(tiny.quants[label], d / f"tiny-{label}.gguf")
    shutil.copyfile(tiny.quants["Q8_0"], d / "copy-of-Q8_0.gguf")
    return d


def footer_line(app) -> str:
    return screen_text(app).rstrip("\n").splitlines()[-1]


@pytest.mark.parametrize("size", SIZES)
async def test_library_fits_each_size(lib, size):
    app = create_app([Root(lib, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=size) as pilot:
        table = await _loaded(pilot)

        def fitted() -> None:
            shown = [str(c.label) for c in table.columns.values()]
            head = screen_text(app)
            for must in ("Model ▲", "Quant", "Size", "Fit"):  # the sort arrow is never cut
                assert must in head
            assert "tiny-Q4_K_M.gguf" in head  # a whole file name
            assert table.virtual_size.width <= table.size.width  # no column runs past the table
            assert table.region.right <= size[0]
            footer = footer_line(app)
            assert footer.lstrip().startswith("^q Quit") and "f1 Help" in footer
            if size[0] >= 160:  # every column but Store, the least needed, beside a 60-wide side pane
                assert sorted(shown) == sorted(
                    f"{v} ▲" if k == "model" else v for k, v in LABELS.items() if k != "store"
                )
                assert app.screen.query_one("#right-column").region.width > 40
            if size[0] < 100:
                assert app.screen.query_one("#right-column").region.width == 0  # side pane hidden

        await eventually(pilot, fitted)  # columns and footer are fitted to the size a few frames on
        if size[0] < 100:
            await pilot.press("f2")  # shows it in the table's place
            await until(pilot, lambda: "memory fit" in screen_text(app))
            await pilot.press("f2")
            await _until(pilot, lambda: app.screen.focused is table)


@pytest.mark.parametrize("size", SIZES)
async def test_disk_usage_fits_each_size(lib, size):
    app = create_app([Root(lib, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot)
        await pilot.press("ctrl+u")
        await until(pilot, lambda: isinstance(app.screen, UsageScreen))
        screen = app.screen
        await _until(pilot, lambda: "reclaimable" in rendered(screen.query_one("#dupes")))

        def fitted() -> None:
            text = screen_text(app)
            assert "by root" in text and "total" in text
            assert "4 files of 1 model" in text and "1 models" not in text
            footer = footer_line(app)
            assert footer.lstrip().startswith("^q Quit") and "f1 Help" in footer and "Back" in footer

        await eventually(pilot, fitted)


def test_columns_by_priority_fit_the_width():
    for width in range(20, 200):
        plan = plan_columns(width, 40)
        keys = [k for k, _ in plan]
        assert keys[0] == "model"
        used = sum(w + 2 for _, w in plan)
        assert used <= max(width, MODEL_MIN + 2)
        kept = [k for k in PRIORITY if k in keys]
        assert kept == list(PRIORITY[: len(kept)])  # a column shows only when every more important one does
        if width >= 40 + 2 + sum(w + 2 for w in WIDTHS.values()):
            assert len(keys) == 10 - 1 and dict(plan)["model"] == 40


async def test_rows_drawn_before_the_table_measures_them_are_full_width(lib):
    """A fresh auto-width DataTable measures its rows on its next idle pass; until then each column is
    as wide as its header, and a cell drawn in that window is cached at that width (the cell cache key
    holds no width), so names showed as "tiny-" until a redraw. The widths before the first idle pass
    must be the final ones."""
    from textual.app import App

    from quanttui.core.library import scan

    entries = scan([Root(lib, "folder", False)])

    class One(App):
        def compose(self):
            yield ModelTable(id="t")

    app = One()
    async with app.run_test(size=(160, 20)) as pilot:
        await pilot.pause()
        table = app.query_one(ModelTable)
        table.load(entries, {}, [])  # no await: the table has had no idle pass since its rows came
        before = {c.key.value: c.get_render_width(table) for c in table.columns.values()}
        await until(pilot, lambda: not table._require_update_dimensions)  # its idle pass has measured
        after = {c.key.value: c.get_render_width(table) for c in table.columns.values()}
        assert before == after  # a draw in between would use these widths
        assert "tiny-Q4_K_M.gguf" in rendered(table) and "3.34 MiB" in rendered(table)


@pytest.mark.slow
async def test_help_lists_every_key_of_the_screen_and_the_app(lib):
    app = create_app([Root(lib, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(100, 30)) as pilot:
        await _loaded(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = {(key, what) for _, key, what in app.screen.rows}
        for pair in [("]", "Context ×2"), ("^x", "Move"), ("^u", "Disk usage"), ("^q", "Quit")]:
            assert pair in keys
        assert ("^f", "Hub") in keys and ("^t", "Theme") in keys and ("f2", "Side pane") in keys
        rows = app.screen.rows
        assert rows[0][0] == "this screen"  # the Library's own keys first, Textual's generic ones last
        generic = [what in GENERIC for _, _, what in rows]
        assert generic == sorted(generic) and ("tab", "Focus Next") in keys
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        app.screen.query_one("#filter").focus()
        await until(pilot, lambda: app.screen.focused is app.screen.query_one("#filter"))
        await pilot.press("f1")  # from the filter too
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert ("]", "Context ×2") in {(key, what) for _, key, what in app.screen.rows}
        await pilot.press("escape")


async def test_palette_commands_come_from_the_screen(lib):
    app = create_app([Root(lib, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(100, 30)) as pilot:
        await _loaded(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Rescan library", "Fit: double the context", "Move to folder", "Side pane"):
            assert title in titles
        await pilot.press("ctrl+u")
        await until(pilot, lambda: isinstance(app.screen, UsageScreen))
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Rescan library" not in titles and "Toggle dark/light theme" in titles


async def test_theme_not_saved_by_a_launch(lib):
    from quanttui.core.settings import settings_path

    app = create_app([Root(lib, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(100, 30)) as pilot:
        await _loaded(pilot)
        assert app.theme == "quanttui-dark"
    assert not settings_path().exists()  # nothing changed, nothing written


def test_model_table_has_no_attribute_shadowing_textual():
    from textual.widgets import DataTable

    for name in ("sort_key", "sort_reverse", "query_text", "visible_entries", "marks"):
        assert not hasattr(DataTable, name)
    assert ModelTable.sort is DataTable.sort
