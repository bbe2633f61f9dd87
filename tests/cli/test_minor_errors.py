"""Failures a person can cause by accident end in one line saying what and where, exit 1: a config dir
that is a file, and a file name so long that a temporary name built from it would not fit."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from quanttui.cli.main import main
from quanttui.core import settings
from quanttui.core.organize.journal import NAME_MAX, bounded_name, journal_dir


def test_roots_add_with_the_config_dir_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    not_a_dir = tmp_path / "config-file"
    not_a_dir.write_text("oops")
    monkeypatch.setenv("QUANTTUI_CONFIG_DIR", str(not_a_dir))
    assert main(["roots", "add", str(lib)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected" not in err
    assert f"cannot save the settings to {not_a_dir / 'settings.json'}" in err
    assert f"{not_a_dir} is a file, not a folder" in err
    assert not_a_dir.read_text() == "oops"


def test_a_settings_file_that_cannot_be_replaced_is_one_line_and_leaves_no_temp_file(tmp_path):
    (tmp_path / "config" / "settings.json").mkdir(parents=True)  # something in the file's place
    with pytest.raises(OSError, match=r"^cannot save the settings to .*settings\.json: Is a directory$"):
        settings.save(settings.Settings(theme="x"))  # an OSError still: the app's callers catch those
    assert sorted(p.name for p in (tmp_path / "config").iterdir()) == ["settings.json"]


def test_bounded_names_fit_with_their_mark_and_stay_distinct():
    assert bounded_name("model.gguf") == "model.gguf"
    long_a, long_b = "a" * 245 + "-x.gguf", "a" * 245 + "-y.gguf"
    for name in (long_a, long_b, "é" * 125 + ".gguf", os.fsdecode(b"\xff" * 250) + ".gguf"):
        short = bounded_name(name)
        assert len(os.fsencode(f".{short}.link-4194304")) <= NAME_MAX
        assert short == bounded_name(name) and short[:8] == name[:8]
        os.fsencode(short)  # cut at a character, never inside one
    assert bounded_name(long_a) != bounded_name(long_b)


def test_dedupe_link_of_a_file_with_a_250_byte_name(tiny, tmp_path, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    keep = Path(shutil.copyfile(tiny.quants["Q2_K"], lib / "a.gguf"))
    extra = Path(shutil.copyfile(tiny.quants["Q2_K"], lib / ("b" * 245 + ".gguf")))
    os.utime(keep, ns=(1, 1))  # the oldest is the one kept
    assert main(["roots", "add", str(lib)]) == 0
    rc = main(["dedupe", "--apply", "link", "--yes"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert extra.stat().st_ino == keep.stat().st_ino
    assert sorted(p.name for p in lib.iterdir()) == sorted([keep.name, extra.name])
    assert not journal_dir().exists() or list(journal_dir().iterdir()) == []
