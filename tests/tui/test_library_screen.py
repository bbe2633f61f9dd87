"""Pilot tests: the Library screen as a person uses it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual import events

from quanttui.core import settings as settings_mod
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from quanttui.tui.screens.dialogs import AskScreen
from quanttui.tui.widgets.bpw_chart import BpwChart
from quanttui.tui.widgets.model_table import ModelTable
from tests.tui.pilot_help import at_row, eventually, follows_cursor, note_ids, notes, notes_since, until


@pytest.fixture
def lib(tiny, tmp_path) -> Path:
    d = tmp_path / "lib"
    d.mkdir()
    for label, path in tiny.quants.items():
        shutil.copyfile(path, d / f"tiny-{label}.gguf")
    (d / "broken.gguf").write_bytes(tiny.quants["Q8_0"].read_bytes()[:500])
    return d


def rendered(widget) -> str:
    """The text a widget shows right now."""
    return "\n".join(strip.text for strip in widget.render_lines(widget.region.reset_offset))


async def _loaded(pilot) -> ModelTable:
    """The Library's table once it has rows and its first highlight has reached the panes."""
    table = pilot.app.screen.query_one(ModelTable)
    await until(pilot, lambda: table.row_count and follows_cursor(pilot.app.screen), tries=200)
    return table


def row_keys(table: ModelTable) -> list[str]:
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


async def test_table_groups_quants_and_detail_follows_cursor(lib):
    app = create_app([Root(lib, "folder", False)])
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        keys = row_keys(table)
        assert keys[0].startswith("group:")
        assert [Path(k).name for k in keys[1:5]] == [
            "tiny-Q8_0.gguf",
            "tiny-Q4_K_M.gguf",
            "tiny-IQ4_XS.gguf",
            "tiny-Q2_K.gguf",
        ]
        assert "5 files in 2 models" in app.screen.bar.text
        await pilot.press("down", "down")  # the Q4_K_M row
        await at_row(pilot, 2)
        chart = app.screen.query_one(BpwChart)

        def q4_k_m_shown() -> None:
            detail = rendered(app.screen.query_one("#detail-facts"))
            assert "tiny-Q4_K_M.gguf" in detail and "Q4_K_M" in detail and "4.85" in detail
            assert "Q6_K" in detail  # the tensor-type histogram
            assert [layer["name"] for layer in chart.bars][:2] == ["token_embd", "blk.0"]
            assert "blk.3" in rendered(chart)

        await eventually(pilot, q4_k_m_shown)
        await pilot.press("down", "down")  # Q2_K row, then the broken file's group
        await pilot.press("down", "down")
        await at_row(pilot, 6)

        def broken_shown() -> None:
            detail = rendered(app.screen.query_one("#detail-facts"))
            assert "cannot read this file" in detail and "truncated" in detail

        await eventually(pilot, broken_shown)


@pytest.mark.slow
async def test_typing_filters(lib):
    app = create_app([Root(lib, "folder", False)])
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        await pilot.press("i", "q", "4")

        def filtered() -> None:
            assert app.screen.query_one("#filter").value == "iq4"
            keys = row_keys(table)
            assert len(keys) == 2 and keys[1].endswith("tiny-IQ4_XS.gguf")

        await eventually(pilot, filtered)
        await pilot.press("escape")
        await until(pilot, lambda: len(row_keys(table)) == 7)
        await pilot.press("slash")
        await until(pilot, lambda: app.screen.focused is app.screen.query_one("#filter"))
        await pilot.press(*"nothing-like-this")
        await until(pilot, lambda: app.screen.query_one("#filter").value == "nothing-like-this")

        def nothing_shown() -> None:
            assert table.row_count == 0
            assert "no file matches" in rendered(app.screen.query_one("#detail-facts"))
            assert "no file matches" in rendered(app.screen.query_one("#fit"))  # no earlier file's numbers

        await eventually(pilot, nothing_shown)


@pytest.mark.slow
async def test_keys_that_arrive_together_all_reach_the_filter(lib):
    """A paste or a fast typist: the focus moves after the queued keys, and a space must not mark."""
    app = create_app([Root(lib, "folder", False)])
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        await pilot.press("down", "down")  # a file row, where space would mark it
        for key, char in [("t", "t"), ("i", "i"), ("space", " "), ("q", "q")]:
            app.post_message(events.Key(key, char))
        await until(pilot, lambda: app.screen.query_one("#filter").value == "ti q")
        assert app.screen.marked == []
        await pilot.press("enter", "escape", "down", "down", "space")  # back in the table, space marks
        await until(pilot, lambda: len(app.screen.marked) == 1)
        assert len(app.screen.marked) == 1 and table.has_focus


async def test_sort_cycles_and_reverses(lib):
    app = create_app([Root(lib, "folder", False)])
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        await pilot.press("ctrl+s")  # arch
        await pilot.press("ctrl+s")  # params
        await pilot.press("ctrl+s")  # quant
        await until(pilot, lambda: table.sort_key == "quant")
        names = [Path(k).name for k in row_keys(table) if not k.startswith("group:")]
        assert names == [
            "tiny-IQ4_XS.gguf",
            "tiny-Q2_K.gguf",
            "tiny-Q4_K_M.gguf",
            "tiny-Q8_0.gguf",
            "broken.gguf",
        ]
        await pilot.press("ctrl+o")
        await until(pilot, lambda: str(table.columns["quant"].label) == "Quant ▼")
        names = [Path(k).name for k in row_keys(table) if not k.startswith("group:")]
        assert names == [
            "tiny-Q8_0.gguf",
            "tiny-Q4_K_M.gguf",
            "tiny-Q2_K.gguf",
            "tiny-IQ4_XS.gguf",
            "broken.gguf",
        ]
        assert str(table.columns["quant"].label) == "Quant ▼"
        assert str(table.columns["model"].label) == "Model"


@pytest.mark.slow
async def test_theme_switch_is_remembered(lib):
    app = create_app([Root(lib, "folder", False)])
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(pilot)
        assert app.theme == "quanttui-dark"
        await pilot.press("t")  # a letter filters, it does not switch themes
        await until(pilot, lambda: app.screen.query_one("#filter").value == "t")
        assert app.theme == "quanttui-dark"
        await pilot.press("ctrl+t")
        await until(pilot, lambda: app.theme == "quanttui-light")
    assert settings_mod.load().theme == "quanttui-light"
    app2 = create_app([Root(lib, "folder", False)])
    async with app2.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app2.theme == "quanttui-light"


@pytest.mark.slow
async def test_empty_library_says_where_it_looked(tmp_path):
    app = create_app()
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: "looked in" in rendered(app.screen.query_one("#empty")))
        text = rendered(app.screen.query_one("#empty"))
        assert "No GGUF models found" in text and "huggingface" in text and "quanttui roots add" in text
        new = tmp_path / "new-models"
        new.mkdir()
        await pilot.press("ctrl+a")
        await until(pilot, lambda: isinstance(app.screen, AskScreen) and app.screen.focused is not None)
        await pilot.press(*str(new))
        await until(pilot, lambda: app.screen.query_one("#ask-value").value == str(new))
        await pilot.press("enter")
        await until(pilot, lambda: any(n == f"added {new}" for n in notes(app)))
    assert str(new) in settings_mod.load().roots


async def test_palette_carries_library_actions(lib):
    app = create_app([Root(lib, "folder", False)])
    async with app.run_test(size=(140, 40)) as pilot:
        await _loaded(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in (
            "Rescan library",
            "Add folder",
            "Filter models",
            "Cycle sort column",
            "Toggle dark/light theme",
        ):
            assert title in titles


@pytest.mark.slow
async def test_fit_panel_and_column_follow_the_keys(lib):
    from quanttui.core.fit import hardware

    hw = hardware("24GiB", "64GiB")
    app = create_app([Root(lib, "folder", False)], hw)
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        assert str(table.get_cell(str(lib / "tiny-Q8_0.gguf"), "fit")) == "GPU"
        await pilot.press("down")
        await at_row(pilot, 1)
        panel = app.screen.query_one("#fit")

        def at_4096() -> None:
            text = rendered(panel)
            assert "ctx 4096 · KV f16 · flash attn off" in text and "fits on GPU" in text and "GPU 0" in text

        await eventually(pilot, at_4096)
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: app.screen.fit_settings.n_ctx == 2048)
        await until(pilot, lambda: "ctx 2048" in rendered(panel) and "tiny-Q8_0.gguf" in rendered(panel)
        )
        await pilot.press("semicolon")  # q8_0 cache: flash attention turns on with it
        await until(pilot, lambda: app.screen.fit_settings.type_k != "f16")
        s = app.screen.fit_settings
        assert (s.type_k, s.type_v, s.flash_attn) == ("q8_0", "q8_0", True)
        said = note_ids(app)
        await pilot.press("apostrophe")  # turning flash attention off would be refused by llama.cpp
        await until(pilot, lambda: notes_since(app, said))  # the refusal
        assert app.screen.fit_settings.flash_attn is True
        await pilot.press("left_curly_bracket")  # from auto (all 5) to 4 layers
        await until(pilot, lambda: app.screen.fit_settings.gpu_layers != "auto")
        assert app.screen.fit_settings.gpu_layers == 4

        def four_layers() -> None:
            assert str(table.get_cell(str(lib / "tiny-Q8_0.gguf"), "fit")) == "4/5"
            assert "fits with 4 of 5 layers on GPU" in rendered(panel)

        await eventually(pilot, four_layers)
    saved = settings_mod.load().fit
    assert saved == {"n_ctx": 2048, "type_k": "q8_0", "type_v": "q8_0", "flash_attn": True, "gpu_layers": 4}


async def test_fit_shows_when_nothing_fits(lib):
    from quanttui.core.fit import hardware

    app = create_app([Root(lib, "folder", False)], hardware("0", "8MiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        assert str(table.get_cell(str(lib / "tiny-Q8_0.gguf"), "fit")) == "no"
        await pilot.press("down")
        await at_row(pilot, 1)
        await until(pilot, lambda: "does not fit: RAM needs" in rendered(app.screen.query_one("#fit")))


@pytest.mark.slow
async def test_adding_the_first_folder_gives_the_table_the_keys(tiny, tmp_path):
    models = tmp_path / "first-models"
    models.mkdir()
    shutil.copyfile(tiny.quants["Q2_K"], models / "tiny-Q2_K.gguf")
    app = create_app()
    async with app.run_test(size=(140, 40)) as pilot:
        table = app.screen.query_one(ModelTable)
        await until(pilot, lambda: "looked in" in rendered(app.screen.query_one("#empty")))  # scanned
        await pilot.press("ctrl+a")
        await until(pilot, lambda: isinstance(app.screen, AskScreen) and app.screen.focused is not None)
        await pilot.press(*str(models))
        await until(pilot, lambda: app.screen.query_one("#ask-value").value == str(models))
        await pilot.press("enter")
        await until(pilot, lambda: table.row_count and follows_cursor(app.screen))
        await until(pilot, lambda: app.screen.focused is table)  # the next keys move, mark and act, not type
        await pilot.press("down", "space")
        await until(pilot, lambda: app.screen.marked)
        assert app.screen.marked == [str(models / "tiny-Q2_K.gguf")]


async def test_a_letter_typed_while_nothing_has_focus_filters(lib):
    """The table is hidden while the library is empty and focused again once rows come: a letter typed
    in between, with nothing focused, still reaches the filter."""
    app = create_app([Root(lib, "folder", False)])
    async with app.run_test(size=(100, 30)) as pilot:
        table = await _loaded(pilot)
        app.screen.set_focus(None)
        await pilot.press("i", "q", "4")
        await until(pilot, lambda: app.screen.query_one("#filter").value == "iq4")
        await until(pilot, lambda: len(row_keys(table)) == 2)
