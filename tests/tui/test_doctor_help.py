"""Help (f1) names the doctor report and `d` opens it: collected off the UI thread (the screen draws
and takes keys while it is being collected), then shown as `quanttui doctor` prints it, wrapped to
the box at 80x24, with llama.cpp's own facts of this host; c copies it, Esc goes back to Help."""

from __future__ import annotations

import socket
import threading

import pytest

from quanttui.core import doctor
from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.core.llama import ggml, system_info
from quanttui.tui.app import create_app
from quanttui.tui.screens.help import DoctorScreen, HelpScreen
from tests.tui.pilot_help import rendered, screen_text, until


@pytest.mark.slow
async def test_help_opens_the_doctor_report_collected_off_the_ui_thread(tmp_path, monkeypatch):
    with socket.socket() as s:  # the Hub check meets a closed loopback port: no network, no wait
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    gate = threading.Event()
    real = doctor.report
    threads: list[str] = []

    def held(**kw):
        threads.append(threading.current_thread().name)
        gate.wait(30)
        return real(**kw)

    monkeypatch.setattr(doctor, "report", held)
    (tmp_path / "lib").mkdir()
    app = create_app([Root(tmp_path / "lib", "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "d  doctor report" in screen_text(app)  # named at the top of Help, whole at 80 columns
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DoctorScreen))
        screen = app.screen
        box = screen.query_one("#doctor-report")
        await until(pilot, lambda: "collecting" in rendered(box) and threads)
        assert threads[0] != threading.main_thread().name  # collected in a worker thread
        await pilot.press("c")  # the UI answers while the report is held back
        await until(pilot, lambda: any("nothing collected yet" in n.message for n in app._notifications))
        gate.set()
        await until(pilot, lambda: screen.report is not None and "llama.cpp" in rendered(box))
        r = screen.report
        assert r["llama_cpp"]["system_info"] == system_info()
        assert r["extra_buffers"]["types"] == ggml.extra_buffer_types()
        assert r["hub"]["reachable"] is False and "offline?" in r["hub"]["detail"]
        width = screen.query_one("VerticalScroll").scrollable_content_region.width
        assert max(len(line) for line in screen.text.splitlines()) <= width  # no line wraps again
        flat = " ".join(screen.text.split())
        assert " ".join(system_info().split()) in flat and "Hugging Face Hub" in flat
        shown = screen_text(app)
        assert "llama-cpp-python" in shown and "system info" in shown
        await pilot.press("c")
        await until(pilot, lambda: app.clipboard == doctor.as_text(r))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
