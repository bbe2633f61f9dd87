"""The Quality view at 80x24, 100x30 and 160x48: opened from the Library on a model's row, eval run
from the screen with the recommended quant marked, cancel that stops the model process, a model that
fails as one error row, and the Library's KLD column once measured."""

from __future__ import annotations

import os
import shutil

import psutil
import pytest

from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from quanttui.tui.screens.library import LibraryScreen
from quanttui.tui.screens.quality import QualityScreen
from quanttui.tui.widgets.kld_chart import KldChart, Point, layout
from quanttui.tui.widgets.model_table import ModelTable
from quanttui.tui.widgets.quality_table import QualityTable
from tests.tui.pilot_help import SIZES, eventually, rendered, screen_text, until
from tests.tui.test_library_screen import _loaded

pytestmark = pytest.mark.slow

QUANTS = ("Q8_0", "Q4_K_M", "Q2_K")


@pytest.fixture
def lib(tiny, tmp_path):
    d = tmp_path / "lib"
    d.mkdir()
    shutil.copyfile(tiny.f16, d / "tiny-F16.gguf")
    for label in QUANTS:
        shutil.copyfile(tiny.quants[label], d / f"tiny-{label}.gguf")
    return d


def _app(lib):
    return create_app([Root(lib, "folder", False)], hardware("0", "32GiB"))


async def _open(pilot, **kw) -> QualityScreen:
    """The Quality view of the library's one model, opened with ctrl+k on the model's row."""
    table = await _loaded(pilot)
    table.focus()
    table.move_cursor(row=0)
    if kw:
        group = pilot.app.library.entries[0].group
        await pilot.app.push_screen(QualityScreen(group, **kw))
    else:
        await pilot.press("ctrl+k")
    await until(pilot, lambda: isinstance(pilot.app.screen, QualityScreen))
    screen = pilot.app.screen
    await until(pilot, lambda: screen.advice is not None)
    first = os.path.basename(screen.advice.rows[0].model)
    await until(pilot, lambda: first in screen_text(pilot.app))  # the table's rows are drawn
    return screen


def _workers() -> list[psutil.Process]:
    me = psutil.Process(os.getpid())
    return [c for c in me.children(recursive=True) if "quanttui.core.quality.worker" in " ".join(c.cmdline())]


def _row_text(table: QualityTable, path: str) -> str:
    return " ".join(str(c) for c in table.get_row(path))


@pytest.mark.parametrize("size", SIZES)
async def test_eval_from_the_quality_view_marks_the_recommended_quant(lib, size):
    app = _app(lib)
    async with app.run_test(size=size) as pilot:
        screen = await _open(pilot)

        def unmeasured() -> None:
            text = screen_text(app)
            assert "not measured" in text and "tiny-Q2_K.gguf" in text
            assert "nothing measured yet" in rendered(screen.query_one(KldChart))
            footer = text.rstrip("\n").splitlines()[-1]
            assert footer.lstrip().startswith("^q Quit") and "f1 Help" in footer and "e Eval" in footer

        await eventually(pilot, unmeasured)  # the footer is fitted a few frames after the screen shows
        screen.eval_ctx, screen.eval_chunks = 64, 2
        await pilot.press("e")
        await until(pilot, lambda: screen.running is None and "eval done" in screen.status, tries=1200)
        await until(pilot, lambda: screen.advice.reference is not None)
        advice, table = screen.advice, screen.query_one(QualityTable)
        assert advice.reference == str((lib / "tiny-F16.gguf").resolve())
        klds = {os.path.basename(r.model): r.quality["kld_mean"] for r in advice.rows}
        assert klds["tiny-F16.gguf"] == 0.0 and all(klds[f"tiny-{q}.gguf"] > 0 for q in QUANTS)
        assert advice.recommended and advice.reason

        def measured() -> None:
            marked = [k.value for k in table.rows if _row_text(table, k.value).startswith("→")]
            assert marked == [advice.recommended]
            text = screen_text(app)
            assert f"recommended: {os.path.basename(advice.recommended)}" in text
            assert "reference" in text  # the reference's KLD cell
            assert table.virtual_size.width <= table.size.width  # no column runs past the screen
            chart = rendered(screen.query_one(KldChart))
            assert "KLD (log scale)" in chart and chart.count("●") + chart.count("◆") == len(QUANTS)
            assert "reference F16 (KLD 0 by definition) not plotted" in chart  # said, not left out silently

        await eventually(pilot, measured)
        assert _workers() == []  # the model process ended with the eval


async def test_esc_cancels_a_running_eval_and_its_model_process_then_goes_back(lib):
    app = _app(lib)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open(pilot, ctx=64)  # every chunk of the default text: a long run
        await pilot.press("e")
        await until(pilot, lambda: "chunk passes" in screen.status, tries=1200)
        assert _workers()
        await pilot.press("escape")
        await until(pilot, lambda: screen.running is None, tries=1200)
        await until(pilot, lambda: "eval cancelled" in screen.status)
        assert app.screen is screen  # the first Esc cancels, it does not leave
        for _ in range(100):
            if not _workers():
                break
            await pilot.pause(0.05)
        assert _workers() == []
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, LibraryScreen))


async def test_a_model_that_fails_is_an_error_row_and_the_others_are_measured(lib):
    app = _app(lib)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await _open(pilot, ctx=64, chunks=1)
        gone = lib / "tiny-Q2_K.gguf"
        gone.unlink()  # removed after the scan: the Library still lists it
        await pilot.press("e")
        await until(pilot, lambda: screen.running is None and "eval done" in screen.status, tries=1200)
        assert "1 failed" in screen.status
        await until(pilot, lambda: screen.advice.reference is not None)
        table = screen.query_one(QualityTable)

        def error_row() -> None:
            assert "error" in _row_text(table, str(gone))
            notes = rendered(screen.query_one("#q-notes"))
            assert "error tiny-Q2_K.gguf: cannot read" in notes

        await eventually(pilot, error_row)
        measured = [r for r in screen.advice.rows if r.quality and not r.is_reference]
        assert sorted(os.path.basename(r.model) for r in measured) == ["tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf"]


async def test_the_library_shows_kld_once_measured(lib):
    app = _app(lib)
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        assert "kld" not in table.columns  # nothing measured: no empty column
        screen = await _open(pilot, ctx=64, chunks=1)
        await pilot.press("e")
        await until(pilot, lambda: screen.running is None and "eval done" in screen.status, tries=1200)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, LibraryScreen))
        table = app.screen.query_one(ModelTable)
        await until(pilot, lambda: "kld" in table.columns)
        cells = {
            k.value: str(table.get_row(k.value)[[c.value for c in table.columns].index("kld")])
            for k in table.rows
            if not k.value.startswith("group:")
        }
        assert cells[str(lib / "tiny-F16.gguf")] == "ref"
        for q in QUANTS:
            kld, se = cells[str(lib / f"tiny-{q}.gguf")].split("±")  # 160 columns: room for the ±
            assert float(kld) > 0 and float(se) >= 0
        await until(pilot, lambda: "KLD" in screen_text(app))


async def test_the_quality_view_is_in_the_palette_and_needs_a_model_row(lib):
    app = _app(lib)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot)
        titles = [c.title for c in app.screen.system_commands()]
        assert "Quality view" in titles
        app.screen.query_one(ModelTable).move_cursor(row=2)  # one of the model's files
        await pilot.press("ctrl+k")
        await until(pilot, lambda: isinstance(app.screen, QualityScreen))
        titles = [c.title for c in app.screen.system_commands()]
        assert "Quality: run the eval" in titles and "Quality: run the bench" in titles


def test_the_chart_places_size_right_and_kld_up():
    pts = [Point("Q8_0", 300, 0.01), Point("Q4_K_M", 200, 0.1), Point("Q2_K", 100, 1.0, recommended=True)]
    placed = {p.label: (col, row) for col, row, p in layout(pts, 41, 11)}
    assert placed == {"Q2_K": (0, 0), "Q4_K_M": (20, 5), "Q8_0": (40, 10)}  # log scale: 0.1 is midway


async def test_the_chart_says_what_it_leaves_out_in_a_line_of_its_own():
    from textual.app import App

    class One(App):
        def compose(self):
            yield KldChart()

    app = One()
    async with app.run_test(size=(60, 14)) as pilot:
        chart = app.query_one(KldChart)
        chart.points = [Point("Q4_K_M", 200, 0.1), Point("Q2_K", 100, 1.0, recommended=True)]
        chart.footnote = "reference [b]Q8\x1b[2J_0[/b] (KLD 0 by definition) not plotted"

        def two_line_footnote() -> None:
            lines = rendered(chart).splitlines()  # 60 columns: the footnote takes two lines
            assert " ".join(s.strip() for s in lines[-2:]) == (
                "reference [b]Q8\\x1b[2J_0[/b] (KLD 0 by definition) not plotted"
            )
            assert "└" in lines[-4] and sum(line.count("●") + line.count("◆") for line in lines) == 2

        await eventually(pilot, two_line_footnote)
        chart.footnote = "reference Q8_0 (KLD 0 by definition) not plotted"

        def one_line_footnote() -> None:
            lines = rendered(chart).splitlines()
            assert lines[-1].rstrip() == " " * 10 + chart.footnote  # under the plot, past the KLD labels
            assert "└" in lines[-3]

        await eventually(pilot, one_line_footnote)
        chart.footnote = ""
        await until(pilot, lambda: "└" in rendered(chart).splitlines()[-2])  # the plot takes the line


async def test_outside_names_are_shown_cleaned_never_as_markup(lib, tiny):
    evil = "tiny-[bold]x[red]y\x1b[2J-Q8_0.gguf"
    shutil.copyfile(tiny.quants["Q8_0"], lib / evil)
    app = _app(lib)
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        entry = next(e for e in app.library.entries if e.name == evil)
        await app.push_screen(QualityScreen(entry.group))
        screen = app.screen
        await until(pilot, lambda: screen.advice is not None)
        await until(pilot, lambda: "tiny-[bold]x[red]y" in screen_text(app))  # once the rows are drawn
        assert "\x1b" not in screen_text(app)


# ---------------------------------------------------------------- measured figures at every width (issue 19)


def _seed(lib, *, busy_q2: bool = True, other_set: bool = True) -> dict[str, str]:
    """Records as eval and bench leave them (no model run): KLDs with their ± under ctx 512 × 5 and,
    for the Q8_0 only, under ctx 256 × 2; an idle bench of the Q8_0 and a busy one of the Q2_K."""
    from quanttui.core.quality import records
    from quanttui.core.quality.records import Measurement

    ids = {q: records.content_id(lib / f"tiny-{q}.gguf") for q in ("F16", *QUANTS)}
    figures = {"Q8_0": (0.0149, 0.0003), "Q4_K_M": (0.0412, 0.0011), "Q2_K": (1.6959, 0.0231)}
    for q, (kld, se) in figures.items():
        s = {"reference": ids["F16"], "text_sha256": "t", "ctx": 512, "chunks": 5}
        cond = {"tokens": 2834, "text": "default", "build": "b1", "threads": 2}
        values = {"kld_mean": kld, "kld_mean_se": se, "top1_agreement": 0.9, "ppl_ratio": 1.01}
        records.store("eval", f"e{q}", Measurement("eval", ids[q], "/x", s, values, 1.7e9, cond))
    if other_set:
        s = {"reference": ids["F16"], "text_sha256": "t", "ctx": 256, "chunks": 2}
        values = {"kld_mean": 0.0222, "kld_mean_se": 0.0009}
        records.store(
            "eval", "old", Measurement("eval", ids["Q8_0"], "/x", s, values, 1.6e9, {"tokens": 2834})
        )
    for q, tg, busy in (("Q8_0", 55.1, False), ("Q2_K", 5.8, busy_q2)):
        cond = {"busy": busy, "busy_reason": "other processes used 1.5 cores while it ran" if busy else None}
        cond |= {"device": "cpu", "threads": 2, "build": "b1"}
        values = {"tg_tokens_per_second": tg, "tg_stdev": 0.4, "pp_tokens_per_second": 900.0, "pp_stdev": 3.0}
        records.store("bench", f"b{q}", Measurement("bench", ids[q], "/x", {}, values, 1.7e9, cond))
    return ids


def test_the_library_plans_kld_at_every_width_and_what_a_person_came_for_at_80_and_100():
    from quanttui.tui.widgets.model_table import KLD_WIDE, plan_columns

    for width in range(20, 200):
        keys = dict(plan_columns(width, 40, measured=True))
        assert "kld" in keys, width
        assert sum(w + 2 for w in keys.values()) <= max(width, 8 + 2 + 8), width
    at80 = dict(plan_columns(78, 40, measured=True))  # 80 columns, no side pane
    assert list(at80) == ["model", "quant", "size", "fit", "kld", "tg"] and at80["kld"] == KLD_WIDE
    at100 = dict(plan_columns(57, 40, measured=True))  # 100 columns: the side pane takes 40
    assert {"quant", "size", "fit", "kld"} <= set(at100) and "bpw" not in at100 and "params" not in at100


@pytest.mark.parametrize("size", SIZES)
async def test_measured_figures_show_with_their_uncertainty_at_every_width(lib, size, tmp_path_factory):
    _seed(lib)
    app = _app(lib)
    out = tmp_path_factory.getbasetemp() / "screens"
    out.mkdir(exist_ok=True)
    async with app.run_test(size=size) as pilot:
        table = await _loaded(pilot)
        await until(pilot, lambda: "kld" in table.columns and table.measured)

        def library() -> None:
            text = screen_text(app)
            (out / f"library-{size[0]}x{size[1]}.txt").write_text(text)
            assert "KLD" in text and "0.0149" in text and "1.6959" in text and "ref" in text
            assert "tiny-Q2_K" in text or "Q2_K" in text
            if "tg" in table.columns:
                assert "5.8!" in text  # a busy speed is marked
            wide = dict(table._planned)["kld"] >= 13
            assert ("0.0149±0.0003" in text) is wide

        await eventually(pilot, library)
        (out / f"library-{size[0]}x{size[1]}.txt").write_text(screen_text(app))
        assert table.measured_records[str(lib / "tiny-Q2_K.gguf")].bench.busy

        table.focus()
        table.move_cursor(row=0)
        await pilot.press("ctrl+k")
        await until(pilot, lambda: isinstance(app.screen, QualityScreen))
        screen = app.screen
        await until(pilot, lambda: screen.advice is not None)

        def quality() -> None:
            text = screen_text(app)
            (out / f"quality-{size[0]}x{size[1]}.txt").write_text(text)
            flat = " ".join(line.strip() for line in text.splitlines())
            assert "tiny-F16.gguf as reference, default text, ctx 512 × 5 chunks (2,834 tokens), 20" in flat
            assert "s: 1 other set (ctx 256 × 2)" in flat
            assert "0.0149±0.0003" in text  # the table's KLD ± se
            assert "tiny-Q2_K.gguf tok/s measured while busy (other processes used 1.5 cores" in flat
            chart = rendered(screen.query_one(KldChart))
            assert chart.count("●") + chart.count("◆") == 3 and "F16" not in chart.replace(
                "reference F16", ""
            )
            for q in QUANTS:  # every label is drawn, none lost to another
                assert q in chart, (q, chart)

        await eventually(pilot, quality)
        (out / f"quality-{size[0]}x{size[1]}.txt").write_text(screen_text(app))
        await pilot.press("s")  # the other settings set
        await until(pilot, lambda: screen.advice.eval_settings.get("ctx") == 256)
        await eventually(pilot, lambda: _assert_in("ctx 256 × 2 chunks", screen_text(app)))
        assert screen.advice.rows and "0.0222±0.0009" in _row_text(
            screen.query_one(QualityTable), str(lib / "tiny-Q8_0.gguf")
        )


def _assert_in(part: str, text: str) -> None:
    assert part in text


async def test_with_nothing_measured_the_view_says_what_to_measure(lib):
    app = _app(lib)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open(pilot)
        await eventually(
            pilot, lambda: _assert_in("to measure: quanttui eval", screen_text(app).replace("\n", " "))
        )
        assert screen.advice.recommended is None and screen.advice.to_measure
