"""Issue 17: a library of thousands of files. The table holds the first ROW_LIMIT matching files in sort
order and a line under it says how many match; typing narrows the rows, which stay right (groups,
quant ladder, marks) whatever the table leaves out; the status bar counts the whole library. The table
adds its rows and draws its cells its own faster way: what it draws is what DataTable draws."""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path

import pytest
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from quanttui.core.fit import hardware
from quanttui.core.library import LibraryEntry, Root
from quanttui.core.library.scan import read_facts
from quanttui.tui.app import create_app
from quanttui.tui.widgets.model_table import FREEZE_AT, GROUP_PREFIX, ROW_LIMIT, ModelTable
from tests.tui.pilot_help import eventually, follows_cursor, rendered, until
from tests.tui.test_library_screen import row_keys

pytestmark = pytest.mark.slow

FAMILIES = ("Llama-3.1", "Mistral", "Qwen2.5", "gemma-3", "Phi-4", "DeepSeek-R1", "SmolLM3", "granite-3.3")
QUANTS = (("F16", 16.0), ("Q8_0", 8.5), ("Q6_K", 6.56), ("Q5_K_M", 5.69), ("Q4_K_M", 4.85), ("Q2_K", 3.35))
MODELS = 1_000  # of len(QUANTS) files each


@pytest.fixture
def entries(tiny) -> list[LibraryEntry]:
    """6,000 files of 1,000 models, from one real file's facts (no 6,000 files are written)."""
    facts, error = read_facts(tiny.quants["Q8_0"])
    assert facts is not None, error
    out = []
    for g in range(MODELS):
        family = FAMILIES[g % len(FAMILIES)]
        label = f"{family} ft{g:04d}"
        for quant, bpw in QUANTS:
            path = f"/lib/{family}/{family}-ft{g:04d}-{quant}.gguf"
            out.append(
                LibraryEntry(
                    path=path,
                    parts=[path],
                    missing=[],
                    root="/lib",
                    store="folder",
                    size_bytes=int(bpw * 1e8),
                    origin={},
                    facts=facts | {"file_type": quant, "bpw": bpw, "basename": family},
                    error=None,
                    group=f"llama:{label.lower()}",
                    group_label=label,
                )  # fmt: skip
            )
    return out[::-1]  # not in the table's order: the table sorts


def expected(entries: list[LibraryEntry], *words: str) -> list[str]:
    """The row keys of the files matching every word, as the Library sorts by model (models by name,
    most bits first within one), with their models' header rows, cut at ROW_LIMIT files."""
    hit = [e for e in entries if all(w in e.path.lower() for w in words)]
    keys: list[str] = []
    files = 0
    for label in sorted({e.group_label for e in hit}, key=str.lower):
        members = sorted((e for e in hit if e.group_label == label), key=lambda e: -e.fact("bpw"))
        if files >= ROW_LIMIT:
            break
        keys.append(GROUP_PREFIX + members[0].group)
        for e in members[: ROW_LIMIT - files]:
            keys.append(e.path)
            files += 1
    return keys


def more_line(app) -> str:
    line = app.screen.query_one("#more")
    return rendered(line) if line.display else ""


async def _big(pilot, entries: list[LibraryEntry]) -> ModelTable:
    """The Library once the scan (of an empty folder) is done and `entries` have come as its result."""
    app = pilot.app
    await until(pilot, lambda: not app.library.scan.running and app.screen.query(ModelTable))
    app.library.set_entries(entries, hardware("0", "32GiB"), [])
    table = app.screen.query_one(ModelTable)
    await until(pilot, lambda: table.row_count and follows_cursor(app.screen))
    return table


async def test_a_big_library_shows_the_first_rows_and_says_how_many_match(entries, tmp_path: Path):
    app = create_app([Root(tmp_path, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _big(pilot, entries)

        def first_rows() -> None:
            assert row_keys(table) == expected(entries)
            assert sum(not k.startswith(GROUP_PREFIX) for k in row_keys(table)) == ROW_LIMIT
            assert f"showing {ROW_LIMIT:,} of 6,000 files: type to narrow" in more_line(app)
            assert "6000 files in 1000 models" in app.screen.bar.text  # the library, not the rows

        await eventually(pilot, first_rows)

        for key, char in [("s", "s"), ("m", "m"), ("o", "o"), ("l", "l")]:  # typed fast: one burst
            app.post_message(events.Key(key, char))
        filt = app.screen.query_one("#filter")

        def smol() -> None:
            assert filt.value == "smol" and row_keys(table) == expected(entries, "smol")
            assert f"showing {ROW_LIMIT:,} of 750 matching files: type to narrow" in more_line(app)

        await eventually(pilot, smol)
        await pilot.press("space", "q", "4")  # 125 SmolLM3 models' Q4_K_M: all of them show

        def smol_q4() -> None:
            assert row_keys(table) == expected(entries, "smol", "q4") and len(row_keys(table)) == 2 * 125
            assert more_line(app) == ""

        await eventually(pilot, smol_q4)
        assert "SmolLM3 ft0006  1 file" in str(table.get_cell(row_keys(table)[0], "model"))
        assert str(table.get_cell(row_keys(table)[1], "fit")) == "RAM"
        await pilot.press("backspace", "backspace", "backspace")
        await eventually(pilot, smol)
        await pilot.press("escape")

        def everything() -> None:
            assert row_keys(table) == expected(entries)
            assert f"showing {ROW_LIMIT:,} of 6,000 files" in more_line(app)

        await eventually(pilot, everything)


async def test_marks_and_the_cursor_follow_the_filter_in_a_big_library(entries, tmp_path: Path):
    app = create_app([Root(tmp_path, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(100, 30)) as pilot:
        table = await _big(pilot, entries)
        await pilot.press("down", "space")  # the first model's F16
        first = expected(entries)[1]
        await until(pilot, lambda: str(table.get_cell(first, "model")).startswith("A "))
        assert app.screen.marked == [first]
        await pilot.press(*"f16")
        await until(pilot, lambda: row_keys(table) == expected(entries, "f16"))
        assert table.cursor_key() == first  # the cursor stays on its file where the filter keeps it
        assert str(table.get_cell(first, "model")).startswith("A ")
        await pilot.press("down", "down")  # the next model's F16, below its header
        await until(pilot, lambda: table.cursor_row == 3 and follows_cursor(app.screen))
        await pilot.press("space")
        second = expected(entries, "f16")[3]
        await until(pilot, lambda: str(table.get_cell(second, "model")).startswith("B "))
        assert app.screen.marked == [first, second]


async def test_the_cursor_stays_on_a_row_and_the_panes_follow_it_as_the_filter_changes(
    entries, tmp_path: Path
):
    app = create_app([Root(tmp_path, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _big(pilot, entries)
        far = row_keys(table)[300]  # a file far down the first rows
        assert not far.startswith(GROUP_PREFIX)
        table.move_cursor(row=300)
        await until(pilot, lambda: table.cursor_key() == far and follows_cursor(app.screen))
        model = Path(far).name.split("-")[-2]  # "ft0042": the file's model
        await pilot.press(*model)
        await eventually(pilot, lambda: _rows_follow(app, table, expected(entries, model)))
        assert table.cursor_key() == far  # the filter keeps the file: the cursor stays on it
        await pilot.press("z", "z")  # nothing matches
        await until(
            pilot, lambda: app.screen.query_one("#filter").value == model + "zz" and not table.row_count
        )
        await pilot.press("backspace", "backspace")
        await eventually(pilot, lambda: _rows_follow(app, table, expected(entries, model)))
        await pilot.press("escape")  # the filter cleared, back in the table
        await eventually(pilot, lambda: _rows_follow(app, table, expected(entries)))
        await pilot.press("down", "down", "down")
        await eventually(pilot, lambda: _rows_follow(app, table, expected(entries)) and table.cursor_row == 3)


def _rows_follow(app, table: ModelTable, keys: list[str]) -> bool:
    """The rows are `keys`, the cursor on one of them and the panes showing it; on a model's header,
    the model's files are the rows under it."""
    assert row_keys(table) == keys
    assert 0 <= table.cursor_row < table.row_count and table.cursor_key() in keys
    assert follows_cursor(app.screen)
    key = table.cursor_key()
    if key.startswith(GROUP_PREFIX):
        members = [e.path for e in table.group_members(key[len(GROUP_PREFIX) :])]
        under = keys[keys.index(key) + 1 :][: len(members)]
        assert sorted(members) == sorted(under) and all(not k.startswith(GROUP_PREFIX) for k in under)
    return True


class OneTable(App):
    def compose(self) -> ComposeResult:
        yield ModelTable(id="t")


async def test_the_rows_are_drawn_as_datatable_draws_them(entries):
    """Marks, measured figures, unreadable and split files, a name too long for its column, right-aligned
    figures, the cursor and the mouse's row: every line and cell the table draws its own way is the
    one DataTable draws."""
    some = entries[:60]
    some[1] = replace(some[1], facts=None, error="truncated")
    some[2] = replace(some[2], parts=[some[2].path, some[2].path + "-2"])
    some[3] = replace(some[3], path=some[3].path.replace(".gguf", "-" + "x" * 90 + ".gguf"))
    app = OneTable()
    async with app.run_test(size=(140, 40)) as pilot:
        table = app.query_one(ModelTable)
        table.load(some, {}, [some[4].path, some[5].path, some[6].path])
        await app.workers.wait_for_complete()  # the cached results read (none) before these
        await pilot.pause()
        table.set_measured({some[4].path: (Text("0.012", justify="right"), Text("55.1"))})
        await until(pilot, lambda: table.row_count == 70 and "kld" in table.columns)
        await pilot.pause()
        table._pseudo_class_state = table.get_pseudo_class_state()
        base, lines = table.rich_style, 0
        for cursor, hover in [((0, 0), (0, 0)), ((3, 0), (5, 2)), ((9, 1), (3, 0))]:
            for row in range(table.row_count):
                key = table.coordinate_to_cell_key((row, 0)).row_key
                args = (key, 0, base, Coordinate(*cursor), Coordinate(*hover))
                table._clear_caches()
                ours = table._render_line_in_row(*args)
                table._clear_caches()
                assert ours == DataTable._render_line_in_row(table, *args), (row, cursor, hover)
                lines += 1
        assert lines == 3 * 70
        text = rendered(table)
        assert "error" in text and "0.012" in text


async def test_a_large_library_is_frozen_out_of_the_collectors_walks_until_the_table_goes(entries):
    assert len(entries) >= FREEZE_AT
    app = OneTable()
    async with app.run_test(size=(140, 40)) as pilot:
        table = app.query_one(ModelTable)
        table.load(entries, {}, [])
        await until(pilot, lambda: table._froze and gc.get_freeze_count() > len(entries))
    assert gc.get_freeze_count() == 0  # thawed: the app's objects are the collector's again
