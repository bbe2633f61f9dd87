"""The CLI attacked with hostile names: plain output never carries a raw control, C1, bidi or
undecodable character; `--json` keeps the exact values; errors are one cleaned line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from quanttui.cli import library as library_cli
from quanttui.cli.main import main
from quanttui.core.errors import QuanttuiError
from quanttui.core.paths import cache_dir, models_dir
from tests.modelgen import write_tiny_model

# What an adversary puts in general.name: retitle the window, write the clipboard (OSC 52), plant an
# OSC 8 link, clear the screen, a C1 CSI, a bidi override, and markup.
HOSTILE_NAMES = {
    "title": "T\x1b]0;pwned\x07",
    "clipboard": "C\x1b]52;c;cm0gLXJmIH4=\x07",
    "link": "L\x1b]8;;file:///etc/passwd\x1b\\click\x1b]8;;\x1b\\",
    "clear": "K\x1b[2J\x1b[H",
    "c1": "C1\x9b31m",
    "bidi": "B\u202egpj.exe",
    "markup": "[/][bold]M[link=file:///etc/passwd]x[/link][@click=app.quit]q",
}
HOSTILE_FILES = ["x[bold]y.gguf", "[@click=app.quit]q.gguf", "e\x1b[31mvil.gguf", "n\u202eman.gguf"]
RAW = ["\x1b", "\x07", "\x9b", "\u202e", "\udcff", "\x00"]


def assert_no_raw(text: str) -> None:
    for ch in RAW:
        assert ch not in text, repr(ch)


def write_arch_model(path: Path, arch: str, name: str) -> Path:
    """A small GGUF whose architecture string is hostile (for the library and inspect, not llama.cpp)."""
    w = gguf.GGUFWriter(path, arch)
    w.add_name(name)
    w.add_block_count(1)
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tensor("token_embd.weight", np.zeros((16, 64), dtype=np.float16))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((64, 64), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def hostile(tiny) -> Path:
    """quanttui's models folder holding models with hostile names and hostile file names."""
    d = models_dir()
    d.mkdir(parents=True)
    for key, name in HOSTILE_NAMES.items():
        write_tiny_model(d / f"name-{key}.gguf", name=name)
    for fname in HOSTILE_FILES:
        shutil.copyfile(tiny.quants["Q2_K"], d / fname)
    write_arch_model(d / "arch.gguf", "ll\x1b]0;arch\x07[/]ama", "arch \x1b[5m")
    return d


def test_inspect_plain_shows_escapes_and_json_keeps_the_exact_name(hostile, capsys):
    for key, name in HOSTILE_NAMES.items():
        path = hostile / f"name-{key}.gguf"
        assert main(["inspect", str(path)]) == 0
        out = capsys.readouterr().out
        assert_no_raw(out)
        model_line = next(line for line in out.splitlines() if line.strip().startswith("model"))
        assert model_line.split(None, 1)[1] == name.encode("unicode_escape").decode().replace("\\\\", "\\")
        assert main(["inspect", str(path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["name"] == name
    assert main(["inspect", str(hostile / "arch.gguf")]) == 0
    out = capsys.readouterr().out
    assert_no_raw(out)
    assert "ll\\x1b]0;arch\\x07[/]ama" in out and "arch \\x1b[5m" in out
    assert main(["inspect", str(hostile / "arch.gguf"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["architecture"] == "ll\x1b]0;arch\x07[/]ama"


def test_ls_plain_escapes_every_hostile_name(hostile, capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert_no_raw(out)
    assert "x[bold]y.gguf" in out and "[@click=app.quit]q.gguf" in out
    assert "e\\x1b[31mvil.gguf" in out and "n\\u202eman.gguf" in out
    assert "\narch \\x1b[5m\n" in out  # the group named by general.name
    assert "ll\\x1b]0;a" in out  # the architecture, escaped before it is cut to its column
    assert main(["ls", "--json"]) == 0
    names = {Path(e["path"]).name for e in json.loads(capsys.readouterr().out)}
    assert set(HOSTILE_FILES) <= names


def test_a_hostile_error_and_an_argument_are_one_clean_line(hostile, tmp_path, capsys):
    bad = tmp_path / "bad\x1b]0;x\x07.gguf"
    bad.write_bytes(b"\x1b]0;pwned\x07 not a gguf")
    assert main(["inspect", str(bad)]) == 1
    err = capsys.readouterr().err
    assert_no_raw(err)
    assert err.count("\n") == 1 and "bad\\x1b]0;x\\x07.gguf" in err
    with pytest.raises(SystemExit) as exit_:
        main(["ls", "extra\x1b]0;pwned\x07", "\x9b2J"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert_no_raw(err)
    assert "unrecognized arguments: extra\\x1b]0;pwned\\x07 \\x9b2J" in err


def test_every_quanttui_error_is_one_line_exit_1(monkeypatch, capsys):
    class Refused(QuanttuiError):
        pass

    def refuse(roots, **kw):
        raise Refused("refused /x/\x1b]0;pwned\x07 [bold]")

    monkeypatch.setattr(library_cli, "scan", refuse)
    assert main(["ls"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "quanttui: refused /x/\\x1b]0;pwned\\x07 [bold]\n"


def test_an_unexpected_exception_is_one_line_and_the_traceback_is_kept(monkeypatch, capsys):
    def boom(roots, **kw):
        raise RuntimeError("boom \x1b]0;pwned\x07")

    monkeypatch.setattr(library_cli, "scan", boom)
    assert main(["ls"]) == 1
    err = capsys.readouterr().err
    assert_no_raw(err)
    log = cache_dir() / "errors.log"
    assert err == f"quanttui: unexpected error: RuntimeError: boom \\x1b]0;pwned\\x07 (traceback in {log})\n"
    kept = log.read_text()
    assert "Traceback (most recent call last)" in kept and "in boom" in kept


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "quanttui.cli.main", *args], capture_output=True, env=env, timeout=120
    )


def test_undecodable_file_names_under_a_strict_utf8_stdout(tiny, tmp_path):
    d = models_dir()
    d.mkdir(parents=True)
    raw = os.fsencode(d) + b"/caf\xff-\xfe.gguf"
    shutil.copyfile(tiny.quants["Q2_K"], raw)
    name = os.fsdecode(raw)
    env = os.environ | {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    r = _run("ls", env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode("utf-8")  # strict: every byte written is UTF-8
    assert "caf\\xff-\\xfe.gguf" in out and b"Traceback" not in r.stderr
    r = _run("ls", "--json", env=env)
    assert r.returncode == 0, r.stderr
    paths = [e["path"] for e in json.loads(r.stdout.decode("utf-8"))]
    assert name in paths  # the JSON carries the exact (surrogate-escaped) name
    r = _run("inspect", name, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode("utf-8").startswith(f"{d}/caf\\xff-\\xfe.gguf\n")
    bad = os.fsencode(tmp_path) + b"/\xff.gguf"
    Path(os.fsdecode(bad)).write_bytes(b"nope")
    r = _run("inspect", os.fsdecode(bad), env=env)
    assert r.returncode == 1 and r.stdout == b""
    err = r.stderr.decode("utf-8")
    assert err.count("\n") == 1 and "/\\xff.gguf" in err and "Traceback" not in err
