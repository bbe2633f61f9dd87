"""The app says once a run that llama.cpp's extra buffers are off on this machine, and why; and says
a fallback that a model process's crash made."""

from __future__ import annotations

from quanttui.core.llama import extra
from quanttui.tui.app import create_app
from tests.tui.pilot_help import notes, until


async def test_a_machine_whose_extra_buffers_crashed_is_told_once(tmp_path):
    extra.record("off", "the probe crashed (killed by SIGSEGV) decoding with the AMX buffers on")
    app = create_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        said = lambda: [n for n in notes(app) if "buffers are off on this machine" in n]  # noqa: E731
        await until(pilot, lambda: len(said()) == 1)
        assert "killed by SIGSEGV" in said()[0] and "llama.cpp#20824" in said()[0]
        app.say_extra_buffers()  # again, after a model loads: not said twice
        await pilot.pause()
        assert len(said()) == 1


async def test_a_fallback_made_by_a_crash_is_said_and_a_machine_that_works_says_nothing(tmp_path):
    extra.record("on", "probed: the CPU_REPACK buffers decode like the plain CPU path")
    app = create_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert not [n for n in notes(app) if "buffers" in n]
        choice = extra.WorkerChoice()
        choice.decision = extra.decide(probe=False)
        assert choice.fall_back(-11, "while answering")  # what a worker's SIGSEGV does in auto
        app.say_extra_buffers()
        await until(pilot, lambda: any("retried without them" in n for n in notes(app)))
