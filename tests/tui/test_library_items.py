"""Issue 11's Library items, each as a user meets it: keys with the filter focused, what Delete and Move
act on and name, the suggested Move folder on a fresh install, vocabulary-only files, the fit panel's
bounds and naming, the texts, and an operation that fails without taking the app down."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from pathlib import Path

import pytest

from quanttui.cli.main import main
from quanttui.core import settings as settings_mod
from quanttui.core.fit import hardware
from quanttui.core.library import Root, add_root
from quanttui.core.paths import models_dir
from quanttui.tui.app import create_app
from quanttui.tui.screens.dialogs import AskScreen, ConfirmScreen
from quanttui.tui.screens.help import HelpScreen
from quanttui.tui.screens.usage import UsageScreen
from quanttui.tui.widgets.bpw_chart import BpwChart
from tests.core.test_discover_attack import file_permissions_apply
from tests.modelgen import raw_gguf
from tests.tui.pilot_help import at_row, drained, eventually, note_ids, notes_since, until
from tests.tui.test_ab_screen import _until
from tests.tui.test_hostile_text import screen_text
from tests.tui.test_library_screen import _loaded, rendered, row_keys


def _lib(tiny, tmp_path, *labels: str) -> Path:
    d = tmp_path / "lib"
    d.mkdir()
    for label in labels or ("Q8_0", "Q4_K_M", "Q2_K"):
        shutil.copyfile(tiny.quants[label], d / f"tiny-{label}.gguf")
    return d


def notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


@pytest.mark.slow
async def test_screen_keys_work_from_the_filter(tiny, tmp_path):
    d = _lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("24GiB", "64GiB"))
    async with app.run_test(size=(100, 30)) as pilot:
        table = await _loaded(pilot)
        await pilot.press("t", "i", "n", "y", "-", "q")  # letters, digits and -_.: type
        filt = app.screen.query_one("#filter")
        await until(pilot, lambda: filt.value == "tiny-q")
        assert app.screen.focused is filt

        def footer_keys() -> None:
            footer = screen_text(app).rstrip("\n").splitlines()[-1]
            assert "Quit" in footer and "Help" in footer and "A/B" in footer and "Move" in footer

        await eventually(pilot, footer_keys)  # the footer is fitted a few frames after a change
        await pilot.press("semicolon")  # the KV type key acts, it does not type
        await until(pilot, lambda: app.library.fit_settings.type_k != "f16")
        assert app.library.fit_settings.type_k == "q8_0" and filt.value == "tiny-q"
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: app.library.fit_settings.n_ctx != 4096)
        assert app.library.fit_settings.n_ctx == 2048 and filt.value == "tiny-q"
        await pilot.press("down")  # into the table, one row down
        await until(pilot, lambda: app.screen.focused is table)
        await until(pilot, lambda: table.cursor_row == 1)
        filt.focus()
        await until(pilot, lambda: app.screen.focused is filt)
        await pilot.press("ctrl+a")  # add folder, not the input's home
        await until(pilot, lambda: isinstance(app.screen, AskScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, AskScreen))
        filt.focus()
        await until(pilot, lambda: app.screen.focused is filt)
        await pilot.press("up")
        await until(pilot, lambda: app.screen.focused is table)


@pytest.mark.slow
async def test_delete_acts_on_the_marked_files_the_filter_shows(tiny, tmp_path):
    d = _lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        keys = row_keys(table)
        for n, name in enumerate(("tiny-Q8_0.gguf", "tiny-Q2_K.gguf"), 1):
            table.move_cursor(row=keys.index(str(d / name)))
            await pilot.press("space")
            await until(pilot, lambda n=n: len(app.screen.marked) == n)
        await pilot.press(*"q2")  # the filter hides the marked Q8_0
        await until(pilot, lambda: len(row_keys(table)) == 2)
        await pilot.press("down", "down", "delete")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.is_mounted)
        files = rendered(app.screen.query_one("#confirm-files"))
        assert str(d / "tiny-Q2_K.gguf") in files and "tiny-Q8_0.gguf" not in files
        assert "1 marked file hidden by the filter: left alone" in files
        assert "1 file" in rendered(app.screen.query_one("#confirm-title"))
        await pilot.press("y")
        await _until(pilot, lambda: not (d / "tiny-Q2_K.gguf").exists())
        await _until(pilot, lambda: any(n.startswith("moved to the trash 1 file") for n in notes(app)))
        assert (d / "tiny-Q8_0.gguf").exists() and (d / "tiny-Q4_K_M.gguf").exists()


async def test_delete_or_move_on_a_model_row_says_what_to_do(tiny, tmp_path):
    d = _lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(100, 30)) as pilot:
        table = await _loaded(pilot)
        table.move_cursor(row=0)  # the model's row, not a file
        for key in ("delete", "ctrl+x"):
            said = note_ids(app)
            await pilot.press(key)
            await until(pilot, lambda said=said: notes_since(app, said))
            assert not isinstance(app.screen, (ConfirmScreen, AskScreen))
            assert notes(app)[-1] == "highlight a file, or mark files with space, first"
        assert len(list(d.glob("*.gguf"))) == 3  # nothing touched


async def test_delete_names_a_file_with_markup_closing_tag(tiny, tmp_path):
    d = _lib(tiny, tmp_path, "Q2_K")
    (d / "a[").mkdir()
    target = d / "a[" / "]b.gguf"  # the path holds `[/]`
    shutil.copyfile(tiny.quants["Q2_K"], target)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        table.move_cursor(row=row_keys(table).index(str(target)))
        await pilot.press("delete")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.is_mounted)
        assert rendered(app.screen.query_one("#confirm-files")).strip() == str(target)
        await pilot.press("y")
        await _until(pilot, lambda: not target.exists())
        assert app.is_running


@pytest.mark.slow
async def test_move_dialog_names_its_files_and_a_fresh_install_suggests_a_valid_folder(tiny, tmp_path):
    d = _lib(tiny, tmp_path, "Q8_0", "Q2_K")
    with settings_mod.update() as s:
        add_root(s, d)
    assert not models_dir().exists()  # a fresh install: the models folder is not made yet
    app = create_app(hw=hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        table.move_cursor(row=row_keys(table).index(str(d / "tiny-Q2_K.gguf")))
        await pilot.press("ctrl+x")
        await until(pilot, lambda: isinstance(app.screen, AskScreen) and app.screen.is_mounted)
        assert rendered(app.screen.query_one("#ask-files")).strip() == str(d / "tiny-Q2_K.gguf")
        suggested = Path(app.screen.query_one("#ask-value").value)
        assert suggested.parent == models_dir()
        await pilot.press("enter")
        await _until(pilot, lambda: (suggested / "tiny-Q2_K.gguf").exists())
        assert not (d / "tiny-Q2_K.gguf").exists()
        # a refused destination: no folder is made
        await _until(pilot, lambda: str(d / "tiny-Q8_0.gguf") in row_keys(table))
        table.move_cursor(row=row_keys(table).index(str(d / "tiny-Q8_0.gguf")))
        await pilot.press("ctrl+x")
        await until(pilot, lambda: isinstance(app.screen, AskScreen) and app.screen.is_mounted)
        outside = tmp_path / "outside" / "deeper"
        app.screen.query_one("#ask-value").value = str(outside)
        await pilot.press("enter")
        await _until(pilot, lambda: any("outside the library roots" in n for n in notes(app)))
        assert not (tmp_path / "outside").exists() and (d / "tiny-Q8_0.gguf").exists()
        assert "move failed" in app.screen.bar.text


async def test_vocab_only_file_is_not_runnable(tiny, tmp_path):
    d = _lib(tiny, tmp_path, "Q2_K")
    kv = {"general.architecture": "llama", "llama.block_count": 32, "llama.embedding_length": 4096}
    (d / "ggml-vocab-llama.gguf").write_bytes(raw_gguf({**kv, "tokenizer.ggml.tokens": ["a", "b"]}))
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        key = str(d / "ggml-vocab-llama.gguf")
        assert str(table.get_cell(key, "fit")) == "" and str(table.get_cell(key, "quant")) == "vocab"
        table.move_cursor(row=row_keys(table).index(key))
        await at_row(pilot, row_keys(table).index(key))

        def vocab_shown() -> None:
            fit = " ".join(rendered(app.screen.query_one("#fit")).split())
            assert "vocabulary only" in fit and "nothing to run" in fit
            detail = rendered(app.screen.query_one("#detail-facts"))
            assert "vocabulary only" in detail and "None" not in detail and "no tensors" in detail

        await eventually(pilot, vocab_shown)


@pytest.mark.slow
async def test_fit_panel_names_its_file_and_bounds_its_keys(tiny, tmp_path):
    d = _lib(tiny, tmp_path, "Q8_0")
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))  # no GPU
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        panel = app.screen.query_one("#fit")
        await _until(pilot, lambda: "highlight one of this model's files" in rendered(panel))  # the group row
        await pilot.press("down")
        await at_row(pilot, 1)
        await until(pilot, lambda: "tiny-Q8_0.gguf" in rendered(panel))
        said = note_ids(app)
        await pilot.press("right_square_bracket")  # already past the trained 2048: refused, not lowered
        await until(pilot, lambda: notes_since(app, said))  # the refusal
        assert app.library.fit_settings.n_ctx == 4096
        await pilot.press("left_square_bracket")  # 4096 -> 2048, the tiny model's trained context
        await until(pilot, lambda: app.library.fit_settings.n_ctx != 4096)
        assert app.library.fit_settings.n_ctx == 2048
        said = note_ids(app)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: notes_since(app, said))  # the refusal
        assert app.library.fit_settings.n_ctx == 2048
        assert any("trained for 2,048 tokens" in n for n in notes(app))
        saved = settings_mod.load().fit
        await pilot.press("right_curly_bracket")  # no GPU: no layers to offload, nothing saved
        await until(pilot, lambda: any("no GPU on this machine" in n for n in notes(app)))
        assert app.library.fit_settings.gpu_layers == "auto"
        assert settings_mod.load().fit == saved
        await pilot.press("up")
        await at_row(pilot, 0)
        await until(pilot, lambda: "highlight one of this model's files" in rendered(panel))
        assert "tiny-Q8_0" not in rendered(panel)


async def test_chart_says_tied_embeddings_and_output_norm(tiny, tmp_path):
    d = tmp_path / "lib"
    d.mkdir()
    shutil.copyfile(tiny.tied, d / tiny.tied.name)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        await pilot.press("down")
        await at_row(pilot, 1)
        chart = app.screen.query_one(BpwChart)
        names = [row["name"] for row in chart.bars]
        assert "output_norm" in names and "output" not in names
        await until(pilot, lambda: "tied embeddings" in rendered(chart))


async def test_disk_usage_failure_is_one_line_and_the_app_stays(tiny, tmp_path):
    d = _lib(tiny, tmp_path, "Q8_0")
    shutil.copyfile(tiny.quants["Q8_0"], d / "copy-of-Q8_0.gguf")
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        await pilot.press("ctrl+u")
        await until(pilot, lambda: isinstance(app.screen, UsageScreen))
        screen = app.screen
        await _until(pilot, lambda: "reclaimable" in rendered(screen.query_one("#dupes")))
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        extra = next(p for p in (d / "copy-of-Q8_0.gguf", d / "tiny-Q8_0.gguf") if str(p) in screen._extras())
        extra.unlink()  # gone between the plan and the confirmation
        await pilot.press("y")
        await _until(pilot, lambda: "trash duplicates failed" in screen.bar.text)
        assert app.is_running and app.screen is screen
        assert any("trash duplicates failed" in n for n in notes(app))


async def test_state_changes_only_on_the_ui_thread_and_drops_stale_scans(tiny, tmp_path):
    d = _lib(tiny, tmp_path, "Q8_0", "Q2_K")
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(100, 30)) as pilot:
        table = await _loaded(pilot)
        state = app.library
        errors: list[BaseException] = []

        def off_thread() -> None:
            try:
                state.toggle_mark(state.entries[0].path)
            except RuntimeError as e:
                errors.append(e)

        t = threading.Thread(target=off_thread)
        t.start()
        t.join()
        assert errors and state.marks == []
        before = list(state.entries)
        stale = object()  # the worker of a superseded scan
        app.post_message(app.ScanDone(worker=stale, entries=[], hardware=state.hardware, skipped=[]))
        handled = asyncio.Event()
        app.call_later(handled.set)  # after the ScanDone, in the app's own queue
        await asyncio.wait_for(handled.wait(), 30)
        await pilot.pause(0.2)
        assert state.entries == before and table.row_count == 3
        state.toggle_mark(before[0].path)
        state.set_entries(before[1:], state.hardware, ["/denied: permission denied"])
        assert state.marks == []  # a mark of a file that is gone is dropped
        await until(pilot, lambda: "skipped" in app.screen.bar.text)
        assert "1 folder skipped: /denied: permission denied" in app.screen.bar.text
        assert "1 file in 1 model" in app.screen.bar.text


async def test_files_and_models_are_counted_apart(tiny, tmp_path):
    d = _lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(100, 30)) as pilot:
        table = await _loaded(pilot)
        assert app.screen.bar.text.startswith("3 files in 1 model,")
        assert "3 files" in str(table.get_cell(row_keys(table)[0], "model"))


async def test_a_folder_the_scan_cannot_search_is_said_on_the_bar(tiny, tmp_path):
    d = _lib(tiny, tmp_path)
    closed = d / "closed"
    closed.mkdir()
    shutil.copyfile(tiny.quants["Q2_K"], closed / "hidden-Q2_K.gguf")
    os.chmod(closed, 0o000)
    try:
        with file_permissions_apply():  # the app's scan thread starts from this one and keeps its rights
            app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
            async with app.run_test(size=(160, 48)) as pilot:
                table = await _loaded(pilot)
                await _until(pilot, lambda: "skipped" in app.screen.bar.text)
                assert f"1 folder skipped: {closed}" in app.screen.bar.text
                assert table.row_count == 4  # the rest of the root is listed
    finally:
        os.chmod(closed, 0o755)


@pytest.mark.parametrize("again", ["already a root", "added"])
def test_roots_add_says_when_a_folder_is_already_a_root(tmp_path, capsys, again):
    lib = tmp_path / "lib"
    lib.mkdir()
    if again == "already a root":
        assert main(["roots", "add", str(lib)]) == 0
        capsys.readouterr()
    assert main(["roots", "add", str(lib)]) == 0
    assert capsys.readouterr().out.strip() == f"{again}: {lib}"
    assert settings_mod.load().roots.count(str(lib)) == 1
    assert os.path.isdir(lib)


@pytest.mark.slow
async def test_backspace_from_the_table_edits_the_filter(tiny, tmp_path):
    d = _lib(tiny, tmp_path)
    app = create_app([Root(d, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(80, 24)) as pilot:
        table = await _loaded(pilot)
        filt = app.screen.query_one("#filter")
        await pilot.press(*"tiny q2", "down")
        await until(pilot, lambda: app.screen.focused is table)
        assert filt.value == "tiny q2"
        await until(pilot, lambda: [Path(k).name for k in row_keys(table)[1:]] == ["tiny-Q2_K.gguf"])
        await pilot.press("backspace")  # from the table: the filter's last character goes
        await until(pilot, lambda: filt.value != "tiny q2")
        assert filt.value == "tiny q" and app.screen.focused is table
        await until(pilot, lambda: len(row_keys(table)) == 4)  # every tiny-Q file matches again
        await pilot.press("ctrl+w")  # the last word
        await until(pilot, lambda: filt.value != "tiny q")
        assert filt.value == "tiny " and app.screen.focused is table
        await pilot.press("ctrl+backspace")
        await until(pilot, lambda: filt.value != "tiny ")
        assert filt.value == "" and app.screen.focused is table
        await pilot.press("backspace")  # nothing left: nothing happens
        await drained(pilot)
        assert filt.value == "" and app.screen.focused is table and len(row_keys(table)) == 4
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = {(key, what) for _, key, what in app.screen.rows}
        assert ("⌫", "Filter: delete last character") in rows
        assert ("^w", "Filter: delete last word") in rows and ("^⌫", "Filter: delete last word") in rows
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        filt.focus()
        await until(pilot, lambda: app.screen.focused is filt)
        await pilot.press(*"q4 km")
        await until(pilot, lambda: filt.value == "q4 km")
        await pilot.press("ctrl+backspace")  # in the box: the word left of the cursor
        await until(pilot, lambda: filt.value != "q4 km")
        assert filt.value == "q4 "
        await pilot.press("backspace")
        await until(pilot, lambda: filt.value != "q4 ")
        assert filt.value == "q4" and app.screen.focused is filt
