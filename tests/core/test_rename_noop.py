"""A rename to the name a model already has, and a move into the folder it is in, change nothing:
nothing is journaled or logged, and no one is told a rename happened."""

from __future__ import annotations

import shutil

import pytest

from quanttui.cli.main import main
from quanttui.core.library import Root
from quanttui.core.modelfile.split import parse_split_name
from quanttui.core.organize import OrganizeError, move, rename
from quanttui.core.organize.safety import log_path


def _lib(tiny, tmp_path):
    d = tmp_path / "lib"
    d.mkdir()
    shutil.copyfile(tiny.quants["Q8_0"], d / "q8-c.gguf")
    for p in tiny.split_parts:
        shutil.copyfile(p, d / p.name)
    return d, [Root(d, "folder", False)]


def test_rename_to_the_same_name_says_nothing_changed(tiny, tmp_path):
    d, roots = _lib(tiny, tmp_path)
    for name in ("q8-c", "q8-c.gguf"):
        with pytest.raises(OrganizeError, match="already has that name; nothing changed"):
            rename(d / "q8-c.gguf", name, roots)
    first = d / tiny.split_parts[0].name
    stem = parse_split_name(first.name).stem  # type: ignore[union-attr]
    with pytest.raises(OrganizeError, match="nothing changed"):
        rename(first, stem, roots)  # a split set keeps its stem on every part
    assert (d / "q8-c.gguf").is_file() and not log_path().exists()


def test_move_into_its_own_folder_logs_nothing(tiny, tmp_path, capsys):
    d, roots = _lib(tiny, tmp_path)
    assert move([d / "q8-c.gguf"], d, roots) == [d / "q8-c.gguf"]
    assert not log_path().exists()
    assert main(["roots", "add", str(d)]) == 0
    capsys.readouterr()
    assert main(["mv", str(d / "q8-c.gguf"), str(d)]) == 0
    assert capsys.readouterr().out == f"nothing moved: already in {d}\n"
    assert not log_path().exists() and (d / "q8-c.gguf").is_file()
