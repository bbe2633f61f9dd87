"""SVG snapshots of every screen (pytest-textual-snapshot's `snap_compare`), in both themes, at the
sizes issue 20 names: 80x24, 100x30 and 160x48.

Regenerate every snapshot after a deliberate change to a screen (then look at the diff of the SVGs):

    .venv/bin/pytest tests/tui/test_snapshots.py --snapshot-update

(about a minute; not under -n: syrupy then keeps SVGs no test uses any more, a renamed test's old one.)
A failing run writes snapshot_report.html in the current folder (`--snapshot-report PATH` puts it
elsewhere): each mismatch, stored and new screen side by side, and a "Show difference" switch that
overlays them. The SVGs are in __snapshots__/test_snapshots/, one per test and parameters.

What is drawn must not depend on the run, the worker or the machine:
- every folder quanttui looks at (the library, HOME, config, data, cache, the Hub and llama.cpp
  caches) sits under /tmp/quanttui-snapshots/<test>, made afresh by the test under a lock (a second
  run of the same test elsewhere waits), not under pytest's numbered tmp_path;
- the hardware is fixed (no GPU, 32 GiB) and llama.cpp's extra buffers are off by request, so no
  machine verdict is said; the Doctor report's machine sections (CPU, llama.cpp build, devices, RAM,
  extra buffers) are replaced with fixed ones; its folders, stores and environment are the test's;
- the Hub is the loopback test Hub (tests/hubserver.py), whose address is not on the Hub screen;
- a focused text box's cursor is kept still (it blinks on a timer);
- the A/B screen is shown loaded, before a prompt: an answer's meters carry tokens per second.

Which snapshots (28, about a second each): every screen at 80x24 and 160x48 in the dark theme; the
Library and Help at all three sizes in both themes. The whole matrix, 10 screens x 3 sizes x 2 themes,
would be 60: EVERY and DARK below choose.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from textual.pilot import Pilot
from textual.widgets import Input

from quanttui.core import doctor
from quanttui.core import settings as settings_mod
from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.themes import QUANT_DARK, QUANT_LIGHT
from quanttui.tui.app import QuantApp, create_app
from quanttui.tui.screens.ab import ABScreen
from quanttui.tui.screens.dialogs import ConfirmScreen
from quanttui.tui.screens.downloads import DownloadsScreen
from quanttui.tui.screens.help import DoctorScreen, HelpScreen
from quanttui.tui.screens.hub import HubScreen
from quanttui.tui.screens.library import LibraryScreen
from quanttui.tui.screens.quality import QualityScreen
from quanttui.tui.screens.usage import UsageScreen
from tests.tui.pilot_help import at_row, rendered, screen_text, until
from tests.tui.test_library_screen import _loaded, row_keys

pytestmark = pytest.mark.snapshot

BASE = Path("/tmp/quanttui-snapshots")
THEME_IDS = {QUANT_DARK.name: "dark", QUANT_LIGHT.name: "light"}
ALL_SIZES = [(80, 24), (100, 30), (160, 48)]


def _matrix(sizes: list[tuple[int, int]], themes: list[str]) -> list[Any]:
    return [
        pytest.param(size, theme, id=f"{size[0]}x{size[1]}-{THEME_IDS[theme]}")
        for theme in themes
        for size in sizes
    ]


EVERY = _matrix(ALL_SIZES, [QUANT_DARK.name, QUANT_LIGHT.name])  # the Library and Help
DARK = _matrix([(80, 24), (160, 48)], [QUANT_DARK.name])  # every other screen

Steps = Callable[[Pilot], Awaitable[None]]


@pytest.fixture
def fixed(request: pytest.FixtureRequest, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's folder under BASE (named after the test and its parameters), empty: every
    environment variable the `isolated` fixture pointed into tmp_path points here instead."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name.removeprefix("test_")).strip("-")
    BASE.mkdir(exist_ok=True)
    folder = BASE / name
    with FileLock(str(BASE / f"{name}.lock")):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for key, value in list(os.environ.items()):
            if value.startswith(str(isolated)):
                monkeypatch.setenv(key, str(folder) + value[len(str(isolated)) :])
        (folder / "home").mkdir()
        monkeypatch.setenv("QUANTTUI_EXTRA_BUFFERS", "off")  # asked for: no machine verdict is said
        yield folder
        shutil.rmtree(folder, ignore_errors=True)


def _library(tiny, folder: Path) -> Path:
    """Three quants of the tiny model (one group), a damaged file and a 3-part split set."""
    d = folder / "lib"
    d.mkdir()
    for label in ("Q8_0", "Q4_K_M", "Q2_K"):
        shutil.copyfile(tiny.quants[label], d / f"tiny-{label}.gguf")
    (d / "broken.gguf").write_bytes(tiny.quants["Q8_0"].read_bytes()[:500])
    (d / "split").mkdir()
    for part in tiny.split_parts:
        shutil.copyfile(part, d / "split" / part.name)
    return d


def _app(theme: str, roots: list[Root] | None) -> QuantApp:
    """The app on `roots` (None: the configured ones), fixed hardware, started in `theme`."""
    with settings_mod.update() as s:
        s.theme = theme
    return create_app(roots, hardware("0", "32GiB"))


def _still(app: QuantApp) -> None:
    """Stop the blinking of every text box's cursor on the screen (shown, not blinking)."""
    for box in app.screen.query(Input):
        box.cursor_blink = False


def _snap(snap_compare, app: QuantApp, size: tuple[int, int], steps: Steps) -> None:
    async def run_before(pilot: Pilot) -> None:
        await steps(pilot)
        _still(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


async def _on_library(pilot: Pilot, row: int | None = None):
    """The Library once scanned, its panes following the cursor; on `row` if given."""
    await until(pilot, lambda: isinstance(pilot.app.screen, LibraryScreen))
    table = await _loaded(pilot)
    if row is not None:
        table.move_cursor(row=row)
        await at_row(pilot, row)
    return table


async def _pushed(pilot: Pilot, key: str, kind: type) -> Any:
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, kind) and pilot.app.screen.is_mounted)
    return pilot.app.screen


# the Library and Help: every size, both themes ---------------------------------------------------------


@pytest.mark.parametrize(("size", "theme"), EVERY)
def test_library(snap_compare, fixed, tiny, size, theme):
    """A group of three quants, a damaged file and a split set; the cursor on the Q8_0 file."""
    app = _app(theme, [Root(_library(tiny, fixed), "folder", False)])

    async def steps(pilot: Pilot) -> None:
        await _on_library(pilot, row=1)

    _snap(snap_compare, app, size, steps)


@pytest.mark.parametrize(("size", "theme"), EVERY)
def test_help(snap_compare, fixed, tiny, size, theme):
    """Help (f1) over the Library: every key of the Library and of the app."""
    app = _app(theme, [Root(_library(tiny, fixed), "folder", False)])

    async def steps(pilot: Pilot) -> None:
        await _on_library(pilot)
        await _pushed(pilot, "f1", HelpScreen)

    _snap(snap_compare, app, size, steps)


# every other screen: 80x24 and 160x48, dark -------------------------------------------------------------


@pytest.mark.parametrize(("size", "theme"), DARK)
def test_library_empty(snap_compare, fixed, size, theme):
    """The first screen of a new install: no models, the folders looked in."""
    app = _app(theme, None)

    async def steps(pilot: Pilot) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, LibraryScreen))
        await until(pilot, lambda: "No GGUF models found." in screen_text(pilot.app))
        await until(pilot, lambda: not pilot.app.library.scan.running)

    _snap(snap_compare, app, size, steps)


@pytest.mark.parametrize(("size", "theme"), DARK)
def test_doctor(snap_compare, fixed, tiny, monkeypatch, size, theme):
    """Help, then d: the doctor report, with fixed machine sections and no Hub check."""
    for key in doctor.ENV_SHOWN:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("QUANTTUI_EXTRA_BUFFERS", "off")
    real_report = doctor.report

    def report(**_: Any) -> dict[str, Any]:
        r = real_report(hub=False)
        return r | {
            "quanttui": {
                "version": "0.1.0",
                "python": "3.11.9",
                "executable": "/opt/quanttui/bin/python",
                "platform": "Linux-6.8.0-x86_64-with-glibc2.39",
            },
            "llama_cpp": {
                "version": "0.3.36",
                "system_info": "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | OPENMP = 1 |",
                "gpu_offload": False,
                "rpc": False,
            },
            "backends": ["CPU"],
            "devices": [
                {
                    "name": "CPU",
                    "description": "Example CPU @ 3.00GHz",
                    "kind": "cpu",
                    "total_bytes": 32 << 30,
                    "free_bytes": 24 << 30,
                }
            ],
            "nvml": [],
            "ram": {"total_bytes": 32 << 30, "free_bytes": 24 << 30},
            "extra_buffers": {
                "use": False,
                "mode": "off",
                "verdict": "untested",
                "reason": "set to off (QUANTTUI_EXTRA_BUFFERS)",
                "types": ["CPU_REPACK"],
                "requested_by": "QUANTTUI_EXTRA_BUFFERS",
                "turned_off": False,
                "decided": None,
            },
        }

    monkeypatch.setattr(doctor, "report", report)
    app = _app(theme, [Root(_library(tiny, fixed), "folder", False)])

    async def steps(pilot: Pilot) -> None:
        await _on_library(pilot)
        await _pushed(pilot, "f1", HelpScreen)
        screen = await _pushed(pilot, "d", DoctorScreen)
        await until(pilot, lambda: screen.report is not None and "library stores" in screen.text)
        await until(pilot, lambda: "library stores" in rendered(screen.query_one("#doctor-report")))

    _snap(snap_compare, app, size, steps)


@pytest.mark.parametrize(("size", "theme"), DARK)
def test_hub(snap_compare, fixed, hub, size, theme):
    """ctrl+f, a search for "tiny" on the loopback Hub: two repositories."""
    app = _app(theme, [Root(fixed / "home", "folder", False)])

    async def steps(pilot: Pilot) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, LibraryScreen))
        screen = await _pushed(pilot, "ctrl+f", HubScreen)
        await until(pilot, lambda: screen.focused is not None)
        await pilot.press(*"tiny", "enter")
        await until(pilot, lambda: screen.query_one("#hub-results").row_count == 2)
        await until(pilot, lambda: "2 repositories" in rendered(screen.query_one("#hub-status")))

    _snap(snap_compare, app, size, steps)


@pytest.mark.parametrize(("size", "theme"), DARK)
def test_downloads(snap_compare, fixed, size, theme):
    """ctrl+g with nothing downloaded yet."""
    app = _app(theme, [Root(fixed / "home", "folder", False)])

    async def steps(pilot: Pilot) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, LibraryScreen))
        await until(pilot, lambda: not pilot.app.library.scan.running)
        await _pushed(pilot, "ctrl+g", DownloadsScreen)
        await until(pilot, lambda: "no downloads yet" in screen_text(pilot.app))

    _snap(snap_compare, app, size, steps)


@pytest.mark.parametrize(("size", "theme"), DARK)
def test_disk_usage(snap_compare, fixed, tiny, size, theme):
    """ctrl+u on the Library: by root, model and quant; no duplicates."""
    app = _app(theme, [Root(_library(tiny, fixed), "folder", False)])

    async def steps(pilot: Pilot) -> None:
        await _on_library(pilot)
        screen = await _pushed(pilot, "ctrl+u", UsageScreen)
        await until(pilot, lambda: "no duplicate files" in rendered(screen.query_one("#dupes")))
        await until(pilot, lambda: screen.bar.running is None)

    _snap(snap_compare, app, size, steps)


@pytest.mark.parametrize(("size", "theme"), DARK)
def test_quality(snap_compare, fixed, tiny, size, theme):
    """ctrl+k on the model's row: its quants, nothing measured yet."""
    app = _app(theme, [Root(_library(tiny, fixed), "folder", False)])

    async def steps(pilot: Pilot) -> None:
        table = await _on_library(pilot, row=0)
        table.focus()
        screen = await _pushed(pilot, "ctrl+k", QualityScreen)
        await until(pilot, lambda: screen.advice is not None)
        first = Path(screen.advice.rows[0].model).name
        await until(pilot, lambda: first in screen_text(pilot.app))

    _snap(snap_compare, app, size, steps)


@pytest.mark.slow
@pytest.mark.parametrize(("size", "theme"), DARK)
def test_ab(snap_compare, fixed, tiny, size, theme):
    """The A/B screen on the Q8_0 and the Q4_K_M, both loaded, before a prompt."""
    lib = _library(tiny, fixed)
    app = _app(theme, [Root(lib, "folder", False)])

    async def steps(pilot: Pilot) -> None:
        await _on_library(pilot)
        screen = ABScreen(str(lib / "tiny-Q8_0.gguf"), str(lib / "tiny-Q4_K_M.gguf"))
        await pilot.app.push_screen(screen)
        prompt = screen.query_one("#ab-prompt")
        await until(pilot, lambda: not prompt.disabled and screen.session is not None, tries=1200)
        await until(pilot, lambda: screen.focused is prompt)
        await until(
            pilot,
            lambda: (
                "each prompt stands alone" in screen_text(pilot.app) or "carries" in screen_text(pilot.app)
            ),
        )

    _snap(snap_compare, app, size, steps)


@pytest.mark.parametrize(("size", "theme"), DARK)
def test_confirm_delete(snap_compare, fixed, tiny, size, theme):
    """Delete on the Q2_K file: the dialog names the file and what it frees."""
    lib = _library(tiny, fixed)
    app = _app(theme, [Root(lib, "folder", False)])

    async def steps(pilot: Pilot) -> None:
        table = await _on_library(pilot)
        row = row_keys(table).index(str(lib / "tiny-Q2_K.gguf"))
        table.move_cursor(row=row)
        await at_row(pilot, row)
        table.focus()
        await _pushed(pilot, "delete", ConfirmScreen)

    _snap(snap_compare, app, size, steps)
