"""llama.cpp's extra buffers (AMX, CPU_REPACK): the probe, the remembered verdict, the fallback after
a crash, and loads that honour the choice. A crashing host is simulated with the failpoint
`QUANTTUI_FAILPOINT=extra-buffers-crash`, which kills a process that uses them by SIGSEGV."""

from __future__ import annotations

import json
import re

import pytest

from quanttui.core.ab import GenConfig
from quanttui.core.ab.process import ProcessEngine
from quanttui.core.llama import captured, extra, ggml, load
from quanttui.core.modelfile import inspect_file
from quanttui.core.paths import cache_dir
from quanttui.core.quality.bench import bench
from quanttui.core.settings import update

CRASH = "extra-buffers-crash"
PROMPT = [{"role": "user", "content": "Tell me about quantization."}]


@pytest.fixture
def unprobed():
    """A machine that has not probed yet."""
    (cache_dir() / "llama-machine.json").unlink(missing_ok=True)


@pytest.fixture
def crashing(monkeypatch, unprobed):
    """A host whose extra buffers crash at once, like the AMX hosts of llama.cpp#20824."""
    monkeypatch.setenv("QUANTTUI_FAILPOINT", CRASH)


def _record() -> dict:
    return next(iter(json.loads((cache_dir() / "llama-machine.json").read_text()).values()))


def test_the_probe_runs_once_and_its_verdict_is_remembered(unprobed):
    first = extra.decide()
    rec = _record()
    assert first.mode == "auto" and first.types == tuple(ggml.extra_buffer_types())
    if not first.types:
        assert first.use and "no extra buffer types" in first.reason
        return
    assert rec["source"] == "probe" and rec["verdict"] == first.verdict and 0 < rec["probe_seconds"] < 60
    assert first.verdict == "on" and first.use  # they decode like the plain path on this host
    again = extra.decide()
    assert again == first and _record()["when"] == rec["when"]  # not probed a second time


@pytest.mark.slow
def test_a_probe_that_crashes_turns_them_off_and_says_why(crashing):
    d = extra.decide()
    assert (d.use, d.verdict, d.turned_off) == (False, "off", True)
    assert "the probe crashed (killed by SIGSEGV)" in d.reason
    assert "llama.cpp#20824" in d.notice() and "quanttui doctor" in d.notice()
    assert extra.machine_notice() == d.notice()
    assert _record()["verdict"] == "off"


@pytest.mark.parametrize("where", ["env", "settings"])
def test_a_person_can_set_them_on_or_off(monkeypatch, where, unprobed):
    for mode in ("off", "on"):
        if where == "env":
            monkeypatch.setenv(extra.ENV, mode)
        else:
            with update() as s:
                s.extra_buffers = mode
        d = extra.decide()
        assert (d.use, d.mode, d.verdict) == (mode == "on", mode, "untested")
        assert mode in d.reason and not d.turned_off
    assert not (cache_dir() / "llama-machine.json").exists()  # no probe when a person decided


def test_an_unknown_mode_is_auto(monkeypatch):
    monkeypatch.setenv(extra.ENV, "sometimes")
    assert extra.decide().mode == "auto"


def _extra_buffers_in(lines: list[str]) -> set[str]:
    names = set(ggml.extra_buffer_types())
    found = {m.group(1) for m in map(re.compile(r"(\S+) model buffer size").search, lines) if m}
    return found & names


def test_loads_use_them_or_not_as_asked_and_as_llama_cpp_places_them(tiny):
    """With them on, llama.cpp makes exactly the extra buffers ggml.placement predicts for the
    file's matrices on this host; with them off, none."""
    path = tiny.quants["Q4_K_M"]
    facts = inspect_file(path).to_dict()
    expected = set()
    for layer in facts["layers"]:
        if layer["name"] == "token_embd":
            continue  # read by row (GET_ROWS): never in an extra buffer
        for t, ne0, ne1, ne2, _ in layer["matrices"]:
            where = ggml.placement(t, ne0, ne1, ne2)
            if where:
                expected.add(where[0])
    for on in (True, False):
        with captured() as lines:
            load(path, extra_buffers=on, n_ctx=256).close()
        assert _extra_buffers_in(lines) == (expected if on else set())


@pytest.mark.slow
def test_a_bench_that_crashes_with_them_falls_back_once_and_gives_the_figures(tiny, crashing):
    extra.record("on", "pretend an earlier probe passed")  # the crash comes at the first real load
    [result] = bench([str(tiny.quants["Q4_K_M"])], reps=1)
    assert result.error is None and result.figures["tg_tokens_per_second"] > 0
    assert result.figures["extra_buffers"] is False
    rec = _record()
    assert rec["verdict"] == "off" and rec["source"] == "crash" and "SIGSEGV" in rec["reason"]
    [notice] = extra.take_notices()
    assert "retried without them" in notice and "llama.cpp#20824" in notice
    assert extra.take_notices() == []  # said once


@pytest.mark.slow
def test_an_ab_pair_that_crashes_with_them_answers_without_them(tiny, crashing):
    extra.record("on", "pretend an earlier probe passed")
    cfg = GenConfig(max_tokens=8, n_ctx=512, mode="completion")
    engine = ProcessEngine(str(tiny.quants["Q8_0"]), str(tiny.quants["Q4_K_M"]), cfg)
    try:
        assert engine.errors() == {}
        results = engine.run({"a": PROMPT, "b": PROMPT})
        assert all(r.error is None and r.token_ids for r in results.values())
        assert engine.extra.notice and "retried without them" in engine.extra.notice
        assert _record()["verdict"] == "off"
    finally:
        engine.close()


@pytest.mark.slow
def test_forced_on_a_crash_is_that_sides_error_naming_the_cause_and_the_log(tiny, crashing, monkeypatch):
    monkeypatch.setenv(extra.ENV, "on")
    cfg = GenConfig(max_tokens=8, n_ctx=512, mode="completion")
    engine = ProcessEngine(str(tiny.quants["Q8_0"]), str(tiny.quants["Q4_K_M"]), cfg)
    try:
        errors = engine.errors()
        assert "killed by SIGSEGV" in errors["a"]
        if extra.decide().types:
            assert "were set on; they crash on some CPUs (llama.cpp#20824)" in errors["a"]
        assert "ab-worker.log" in errors["a"]
        assert not (cache_dir() / "llama-machine.json").exists()  # a person's choice is not overruled
    finally:
        engine.close()


def test_an_abort_or_an_oom_kill_is_not_blamed_on_extra_buffers():
    choice = extra.WorkerChoice()
    choice.decision = extra.Decision(True, "auto", "on", "probed", ("AMX",))
    assert not choice.fall_back(-9, "while answering")  # SIGKILL: the OOM killer, or a cancel
    assert not choice.fall_back(-6, "while answering")  # SIGABRT: an assert or CUDA's OOM
    assert not choice.fall_back(1, "while answering")
    assert choice.fall_back(-11, "while answering") and not choice.decision.use


@pytest.mark.slow
def test_the_cli_says_once_that_they_are_off_and_why(tiny, crashing, capsys):
    from quanttui.cli import main as cli

    assert cli.main(["bench", str(tiny.quants["Q4_K_M"])]) == 0
    out, err = capsys.readouterr()
    notes = [line for line in err.splitlines() if "buffers are off on this machine" in line]
    assert len(notes) == 1 and "the probe crashed (killed by SIGSEGV)" in notes[0]
    assert "tiny-Q4_K_M.gguf" in out and "error" not in out


@pytest.mark.slow
def test_the_cli_flag_sets_the_mode_for_the_model_processes(tiny, crashing, capsys):
    from quanttui.cli import main as cli

    assert cli.main(["bench", str(tiny.quants["Q4_K_M"]), "--extra-buffers", "off", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert "error" not in row and row["tg_tokens_per_second"] > 0 and row["extra_buffers"] is False
    assert not (cache_dir() / "llama-machine.json").exists()  # asked for: no probe, no crash
