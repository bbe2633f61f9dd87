"""`quanttui doctor`: the report's keys and types, its values against what llama.cpp, NVML's
detection and the paths say on the host running the tests, the Hub check's bound, the token never
shown, the extra-buffer mode followed, outside text made safe, and a missing llama.cpp reported in
its section instead of a crash."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import psutil
import pytest

from quanttui.cli.main import main
from quanttui.core import doctor
from quanttui.core import settings as settings_mod
from quanttui.core.library.roots import all_roots
from quanttui.core.llama import extra, ggml, lib, system_info, version
from quanttui.core.paths import cache_dir, config_dir, data_dir, models_dir
from tests.hubserver import HubServer

SENTINEL = "hf_DoctorSentinelTokenDoNotPrint0123456789"


def _doctor(capsys, *args: str) -> tuple[dict | str, str]:
    """The command's output (parsed when --json) and its stderr; it must succeed."""
    assert main(["doctor", *args]) == 0
    out, err = capsys.readouterr()
    return (json.loads(out) if "--json" in args else out), err


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_json_has_every_section_and_agrees_with_llama_cpp_here(capsys, monkeypatch):
    monkeypatch.delenv("QUANTTUI_EXTRA_BUFFERS", raising=False)
    r, _ = _doctor(capsys, "--json", "--no-hub")
    llama = r["llama_cpp"]
    assert llama["version"] == version() and isinstance(llama["version"], str)
    assert llama["system_info"] == system_info() and llama["system_info"]
    assert llama["gpu_offload"] is bool(lib().llama_supports_gpu_offload())
    rpc = getattr(lib(), "llama_supports_rpc", None)
    assert llama["rpc"] == (bool(rpc()) if rpc else None)
    assert r["backends"] == ggml.backends() and "CPU" in r["backends"]
    seen = ggml.devices()
    assert [(d["name"], d["kind"], d["total_bytes"]) for d in r["devices"]] == [
        (d.name, d.kind, d.total_bytes) for d in seen
    ]
    for d in r["devices"]:
        assert isinstance(d["free_bytes"], int) and isinstance(d["description"], str)
    eb = r["extra_buffers"]
    expected = extra.decide(probe=False)
    assert eb["types"] == ggml.extra_buffer_types()
    assert eb["verdict"] == expected.verdict and eb["verdict"] in ("on", "off", "untested")
    assert eb["mode"] == "auto" and eb["use"] is expected.use and eb["reason"] == expected.reason
    rec = extra.recorded()
    assert eb["decided"] == (None if rec is None else {k: rec.get(k) for k in eb["decided"]})
    assert r["ram"]["total_bytes"] == psutil.virtual_memory().total
    assert 0 < r["ram"]["free_bytes"] <= r["ram"]["total_bytes"]
    assert isinstance(r["nvml"], list)
    assert r["dirs"]["config"] == str(config_dir()) and r["dirs"]["data"] == str(data_dir())
    assert r["dirs"]["cache"] == str(cache_dir()) and r["dirs"]["models"] == str(models_dir())
    assert r["stores"] == [
        {"path": str(x.path), "kind": x.kind, "default": x.default, "state": st}
        for x, st in all_roots(settings_mod.load())
    ]
    assert r["hub"] == {"skipped": True}


def test_text_is_one_block_per_section_with_llama_cpp_facts(capsys):
    text, err = _doctor(capsys, "--no-hub")
    assert err == ""
    blocks = text.strip().split("\n\n")
    titles = [b.splitlines()[0] for b in blocks]
    for title in ("llama.cpp", "GPUs (NVML)", "RAM", "library stores", "Hugging Face Hub"):
        assert title in titles
    flat = " ".join(text.split())
    assert " ".join(system_info().split()) in flat  # wrapped, but whole
    for name in ggml.extra_buffer_types():
        assert name in flat
    for d in ggml.devices():
        assert d.name in flat
    assert max(len(line) for line in text.splitlines()) <= doctor.WIDTH


def test_extra_buffers_follow_the_environment_and_the_settings(capsys, monkeypatch):
    monkeypatch.setenv("QUANTTUI_EXTRA_BUFFERS", "off")
    r, _ = _doctor(capsys, "--json", "--no-hub")
    eb = r["extra_buffers"]
    assert eb["mode"] == "off" and eb["use"] is False and eb["verdict"] == "untested"
    assert eb["requested_by"] == "QUANTTUI_EXTRA_BUFFERS" and "QUANTTUI_EXTRA_BUFFERS" in eb["reason"]
    assert eb["types"] == ggml.extra_buffer_types()  # what the build has, used or not
    assert r["environment"]["QUANTTUI_EXTRA_BUFFERS"] == "off"
    text, _ = _doctor(capsys, "--no-hub")
    assert "off (QUANTTUI_EXTRA_BUFFERS)" in text
    monkeypatch.delenv("QUANTTUI_EXTRA_BUFFERS")
    with settings_mod.update() as s:
        s.extra_buffers = "on"
    eb = doctor.report(hub=False)["extra_buffers"]
    assert (eb["mode"], eb["use"], eb["requested_by"]) == ("on", True, "settings")


def test_the_token_is_never_shown_nor_sent(capsys, monkeypatch):
    server = HubServer([]).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", SENTINEL)
        r, err_json = _doctor(capsys, "--json")
        text, err_text = _doctor(capsys)
    finally:
        server.stop()
    hub = r["hub"]
    assert hub["token_set"] is True and hub["token_from"] == "HF_TOKEN"
    assert hub["reachable"] is True and hub["endpoint"] == server.url and "HTTP 200" in hub["detail"]
    assert "yes (HF_TOKEN)" in text
    everything = json.dumps(r) + err_json + text + err_text
    for part in (SENTINEL, SENTINEL[3:19], SENTINEL[-12:]):
        assert part not in everything
    assert server.requests and all(q["auth"] is None for q in server.requests)  # the check sends none


def test_a_token_file_counts_and_no_token_says_no(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    assert doctor.token_state() == (False, None)
    (tmp_path / "hf-home").mkdir()
    (tmp_path / "hf-home" / "token").write_text(SENTINEL + "\n")
    assert doctor.token_state() == (True, "token file")
    text = doctor.as_text(doctor.report(hub=False))
    assert SENTINEL not in text


def test_an_unreachable_hub_is_said_at_once(capsys, monkeypatch):
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    start = time.monotonic()
    r, _ = _doctor(capsys, "--json")
    took = time.monotonic() - start
    assert took < 3.0
    assert r["hub"]["reachable"] is False and r["hub"]["endpoint"] == url
    assert "offline?" in r["hub"]["detail"]
    text, _ = _doctor(capsys)
    assert "reachable         no: cannot connect: offline?" in text


def test_a_hub_that_never_answers_is_bounded(monkeypatch):
    with socket.socket() as listener:  # accepts connections (the kernel does) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        start = time.monotonic()
        hub = doctor.HubCheck(bound=0.6).result()
        took = time.monotonic() - start
    assert hub["reachable"] is False and took < 1.6
    assert "no answer" in hub["detail"]


def test_a_server_that_is_not_a_hub_is_not_called_reachable(monkeypatch):
    server = HubServer([]).start()  # answers HTTP 200, but with HTML, as a captive portal would
    server.faults.garbage_json = True
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        hub = doctor.report()["hub"]
    finally:
        server.stop()
    assert hub["reachable"] is False and "HTTP 200" in hub["detail"] and "not a Hub's answer" in hub["detail"]


def test_hub_offline_mode_asks_nothing(monkeypatch):
    server = HubServer([]).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        hub = doctor.report()["hub"]
    finally:
        server.stop()
    assert hub["reachable"] is False and "HF_HUB_OFFLINE" in hub["detail"] and server.requests == []


def test_outside_text_is_made_safe_and_json_keeps_it_exact(capsys, monkeypatch, tmp_path):
    hostile = tmp_path / "d\x1b]0;pwned\x07[bold red]x\u202e"
    monkeypatch.setenv("QUANTTUI_DATA_DIR", str(hostile))
    r, _ = _doctor(capsys, "--json", "--no-hub")
    assert r["dirs"]["data"] == str(hostile)
    text, _ = _doctor(capsys, "--no-hub")
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b]0;pwned\\x07[bold red]x\\u202e" in text


def test_without_llama_cpp_each_section_says_so_and_the_rest_is_there(tmp_path):
    """llama_cpp cannot be imported in this child: its sections are errors, the report still comes."""
    code = (
        "import sys; sys.modules['llama_cpp'] = None\n"
        "from quanttui.cli.main import main\n"
        "sys.exit(main(['doctor', '--json', '--no-hub']))\n"
    )
    env = {**os.environ, "QUANTTUI_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    for key in ("llama_cpp", "backends", "devices", "extra_buffers"):
        assert set(r[key]) == {"error"} and "llama-cpp-python is not installed" in r[key]["error"]
    assert r["ram"]["total_bytes"] == psutil.virtual_memory().total and r["dirs"]["cache"].endswith("cache")
    text = doctor.as_text(r)
    assert "llama.cpp\n  error             llama-cpp-python is not installed" in text


@pytest.mark.parametrize("width", [60, 78])
def test_text_wraps_to_the_width_asked(width):
    text = doctor.as_text(doctor.report(hub=False), width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert " ".join(system_info().split()) in " ".join(text.split())


def test_devices_come_from_a_child_process_on_a_gpu_build(monkeypatch):
    """The child lists what this process would (free memory aside), and a GPU build asks it, so the
    app never holds a CUDA context for the report; a child that fails is the section's error."""
    here, child = doctor.devices_here(), doctor.devices_in_child()
    assert [{k: d[k] for k in ("name", "description", "kind", "total_bytes")} for d in child] == [
        {k: d[k] for k in ("name", "description", "kind", "total_bytes")} for d in here
    ]
    asked: list[str] = []
    with monkeypatch.context() as mp:
        mp.setattr(doctor, "devices_in_child", lambda: asked.append("child") or child)
        mp.setattr(lib(), "llama_supports_gpu_offload", lambda: True)
        assert doctor.report(hub=False)["devices"] == child and asked == ["child"]
    with monkeypatch.context() as mp:
        mp.setattr(doctor.sys, "executable", "/bin/false")
        failed = doctor._guard(doctor.devices_in_child)
    assert set(failed) == {"error"} and "the device query exited with 1" in failed["error"]
