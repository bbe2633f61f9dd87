"""A FIFO or a device where quanttui expects a file is refused at once with one line, never waited on
or read without end: safeopen itself, and every way a user or a folder hands quanttui a file.

Every check here runs under a timeout (a child process with timeout=, or a thread joined with one
that then opens the FIFO's other end to free it), so a regression fails instead of hanging.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quanttui.core import safeopen, settings
from quanttui.core.modelfile import GGUFError, read_header
from quanttui.core.paths import models_dir
from quanttui.core.quality.text import EvalText, QualityError
from quanttui.core.safeopen import UnsafeFileError, open_regular, read_bounded

SECONDS = 20


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _release(fifo: Path) -> None:
    """Open the FIFO's writing end and close it: a reader blocked in open() or read() gets EOF."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def _within(fn: Callable[[], Any], *fifos: Path, seconds: float = SECONDS) -> Any:
    """fn() in a thread; fails the test when it has not returned within `seconds`."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001  re-raised below
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        for f in fifos:
            _release(f)
        t.join(10)
        pytest.fail(f"still blocked after {seconds} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _limit_memory() -> None:
    """In the child: a read without end stops at 4 GiB of address space, not at the machine's RAM."""
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quanttui.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=SECONDS,
        preexec_fn=_limit_memory,
    )


# safeopen itself


def test_a_fifo_without_a_writer_is_refused_at_once(tmp_path):
    fifo = _fifo(tmp_path / "pipe")
    with pytest.raises(UnsafeFileError, match=r"^not a regular file \(a FIFO\)$"):
        _within(lambda: open_regular(fifo), fifo)
    with pytest.raises(UnsafeFileError, match=r"\(a FIFO\)"):
        _within(lambda: read_bounded(fifo, 100), fifo)


def test_the_opened_descriptor_decides_not_the_earlier_stat(tmp_path, monkeypatch):
    """A FIFO renamed over a checked file between stat() and open(): the fstat() of what was opened."""
    fifo = _fifo(tmp_path / "pipe")
    regular = tmp_path / "model.gguf"
    regular.write_bytes(b"GGUF")
    real_stat = os.stat
    monkeypatch.setattr(safeopen.os, "stat", lambda p, **kw: real_stat(regular, **kw))
    with pytest.raises(UnsafeFileError, match=r"\(a FIFO\)"):
        _within(lambda: open_regular(fifo), fifo)


def test_devices_directories_and_links_when_refused(tmp_path):
    with pytest.raises(UnsafeFileError, match=r"\(a character device\)"):
        read_bounded("/dev/zero", 1 << 20)
    with pytest.raises(UnsafeFileError, match=r"\(a directory\)"):
        read_bounded(tmp_path, 1 << 20)
    target = tmp_path / "t.txt"
    target.write_text("hello")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert read_bounded(link, 100) == b"hello"
    with pytest.raises(UnsafeFileError, match=r"\(a symbolic link\)"):
        read_bounded(link, 100, follow_symlinks=False)
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "nope", 100)


def test_a_file_over_the_bound_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 101)
    assert read_bounded(big, 101) == b"x" * 101
    with pytest.raises(UnsafeFileError, match=r"^101 bytes, more than the 100 allowed$") as e:
        read_bounded(big, 100)
    assert isinstance(e.value, OSError) and "\n" not in str(e.value)


def test_the_descriptor_reads_blocking_and_closes_on_exec(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    with open_regular(f) as fh:
        assert os.get_blocking(fh.fileno()) and not os.get_inheritable(fh.fileno())
        assert fh.read() == b"abc"


# each place a file comes in


def test_the_header_reader_refuses_a_fifo_and_a_device(tmp_path):
    fifo = _fifo(tmp_path / "m.gguf")
    with pytest.raises(GGUFError, match=r"^not a regular file \(a FIFO\), not a GGUF file$"):
        _within(lambda: read_header(fifo), fifo)
    with pytest.raises(GGUFError, match=r"\(a character device\)"):
        read_header("/dev/zero")


def test_ls_lists_a_fifo_renamed_over_a_listed_file_as_an_error_row(tiny, tmp_path, monkeypatch, capsys):
    from quanttui.cli.main import main

    scan_mod = importlib.import_module("quanttui.core.library.scan")

    folder = models_dir() / "tiny"
    folder.mkdir(parents=True)
    victim = folder / "tiny-Q8_0.gguf"
    victim.write_bytes(tiny.quants["Q8_0"].read_bytes())
    (folder / "tiny-Q2_K.gguf").write_bytes(tiny.quants["Q2_K"].read_bytes())
    fifo = _fifo(tmp_path / "pipe")
    real_discover = scan_mod.discover

    def discover_then_swap(root, skipped=None):
        yield from real_discover(root, skipped)
        if fifo.exists():
            os.replace(fifo, victim)  # listed as a file, a FIFO by the time its header is read

    monkeypatch.setattr(scan_mod, "discover", discover_then_swap)
    code = _within(lambda: main(["ls", "--json"]), fifo, victim)
    rows = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert code == 0 and victim.is_fifo()
    assert rows["tiny-Q8_0.gguf"]["error"] == "not a regular file (a FIFO), not a GGUF file"
    assert rows["tiny-Q2_K.gguf"]["error"] is None


def test_the_model_load_refuses_a_fifo_before_llama_cpp_opens_it(tmp_path):
    from quanttui.core.llama import load

    fifo = _fifo(tmp_path / "m.gguf")
    with pytest.raises(ValueError, match=r"^not a regular file \(a FIFO\)$"):
        _within(lambda: load(fifo, n_ctx=64), fifo)
    with pytest.raises(ValueError, match=r"^cannot open the model: No such file"):
        load(tmp_path / "none.gguf", n_ctx=64)


def test_the_eval_text_refuses_a_fifo_and_dev_zero(tmp_path):
    fifo = _fifo(tmp_path / "text.txt")
    with pytest.raises(QualityError, match=r"text\.txt: not a regular file \(a FIFO\)$"):
        _within(lambda: EvalText.load(fifo), fifo)
    with pytest.raises(QualityError, match=r"/dev/zero: not a regular file \(a character device\)$"):
        EvalText.load("/dev/zero")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_settings_file_that_is_a_fifo_or_dev_zero_gives_defaults_and_says_why(kind):
    path = settings.settings_path()
    path.parent.mkdir(parents=True)
    if kind == "fifo":
        _fifo(path)
    else:
        path.symlink_to("/dev/zero")
    s = _within(settings.load, path)
    assert s == settings.Settings() and "not a regular file" in (s.load_error or "")
    r = _cli("ls")
    assert r.returncode == 0
    assert "settings.json: not a regular file" in r.stderr and "using defaults" in r.stderr


def _fifo_and_dev_zero(tmp_path: Path) -> list[tuple[str, str]]:
    return [(str(_fifo(tmp_path / "pipe.gguf")), "(a FIFO)"), ("/dev/zero", "(a character device)")]


def test_inspect_and_fit_refuse_a_fifo_and_dev_zero_in_one_line(tmp_path):
    for path, what in _fifo_and_dev_zero(tmp_path):
        for cmd in (["inspect", path], ["fit", path, "--vram", "24GiB", "--ram", "64GiB"]):
            r = _cli(*cmd)
            assert r.returncode in (1, 2) and r.stdout == "", (cmd, r.stderr)
            assert r.stderr.count("\n") == 1 and f"not a regular file {what}" in r.stderr, (cmd, r.stderr)


@pytest.mark.slow
def test_eval_and_bench_refuse_a_fifo_and_dev_zero(tiny, tmp_path):
    ref = str(tiny.f16)
    for path, what in _fifo_and_dev_zero(tmp_path):
        r = _cli("eval", ref, ref, "--text", path)  # the text
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and f"not a regular file {what}" in r.stderr
        r = _cli("eval", path, ref)  # the reference
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and f"not a regular file {what}" in r.stderr
        r = _cli("eval", ref, path, "--ctx", "32", "--chunks", "1")  # a candidate: its row
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"error: cannot read {path}: not a regular file {what}" in r.stdout  # checked before loading
        r = _cli("bench", path, "--json")
        (row,) = json.loads(r.stdout)
        assert r.returncode == 1 and f"not a regular file {what}" in row["error"], r.stdout + r.stderr
