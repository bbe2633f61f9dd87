"""The wheel holds every package of the tree, typed: each folder with an __init__.py under cli/, core/,
tui/ and themes/ is in pyproject's package list under the name its package-dir gives it, py.typed and
the Textual stylesheets are package data, and `python -m quanttui` and `--version` work."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]
TREES = ("cli", "core", "tui", "themes")


def _setuptools() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]


def _package_name(folder: Path, package_dir: dict[str, str]) -> str:
    """The name the longest package-dir entry holding `folder` gives it."""
    rel = folder.relative_to(ROOT).parts
    best = max(
        (
            (name, Path(d).parts)
            for name, d in package_dir.items()
            if rel[: len(Path(d).parts)] == Path(d).parts
        ),
        key=lambda item: len(item[1]),
    )
    return ".".join((best[0], *rel[len(best[1]) :]))


def test_every_package_folder_is_listed_with_its_package_dir():
    st = _setuptools()
    package_dir, packages = st["package-dir"], st["packages"]
    folders = sorted(p.parent for tree in TREES for p in (ROOT / tree).rglob("__init__.py"))
    assert len(folders) >= 15
    names = {_package_name(f, package_dir) for f in folders}
    assert names == set(packages), (sorted(names - set(packages)), sorted(set(packages) - names))
    assert len(packages) == len(set(packages))
    for name in packages:  # and each name resolves back to a folder that is a package
        prefix = max((k for k in package_dir if name == k or name.startswith(k + ".")), key=len)
        folder = ROOT / package_dir[prefix] / Path(*name[len(prefix) :].split(".")[1:])
        assert (folder / "__init__.py").is_file(), name
    assert package_dir["quanttui"] == "cli/package"


def test_py_typed_and_the_stylesheets_are_package_data():
    data = _setuptools()["package-data"]
    assert "py.typed" in data["quanttui"]
    assert (ROOT / "cli" / "package" / "py.typed").is_file()
    sheets = sorted(p.relative_to(ROOT / "tui") for p in (ROOT / "tui").rglob("*.tcss"))
    assert sheets
    for sheet in sheets:
        assert any(sheet.match(pattern) for pattern in data["quanttui.tui"]), sheet
        assert str(sheet.parent) == "." or f"{sheet.parent}/*.tcss" in data["quanttui.tui"]


def test_python_dash_m_quanttui_and_version():
    r = subprocess.run(
        [sys.executable, "-m", "quanttui", "--help"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: quanttui ")
    assert "--version" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "quanttui", "--version"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"quanttui {version('quanttui')}\n"


def test_version_in_process(capsys):
    import quanttui
    from quanttui.cli.main import main

    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert capsys.readouterr().out == f"quanttui {quanttui.__version__}\n"
    assert quanttui.__version__ == version("quanttui")
