"""Discovery in a hostile or damaged environment: folders that cannot be read or searched, link loops,
damaged settings. One bad folder is skipped (and reported), never fatal, never an empty library."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from quanttui.cli.main import main
from quanttui.core.library import Root, active_roots, add_root, all_roots, remove_root, scan
from quanttui.core.library.discover import discover
from quanttui.core.settings import Settings
from tests.core.test_library import _hf_cache_repo

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


@contextlib.contextmanager
def file_permissions_apply() -> Iterator[None]:
    """Folder modes are enforced as for a normal user: as root, this thread drops the capabilities that
    bypass them (and takes them back after)."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        pytest.skip("capabilities cannot be read here")
    saved = data[0].effective
    data[0].effective &= ~((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH))
    if libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data) != 0:
        pytest.skip("capabilities cannot be dropped here")
    try:
        yield
    finally:
        data[0].effective = saved
        libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data)


def _lib(tmp_path: Path, tiny) -> Path:
    d = tmp_path / "lib"
    for sub in ("ok", "blocked", "closed"):
        (d / sub).mkdir(parents=True)
        shutil.copyfile(tiny.quants["Q8_0"], d / sub / f"{sub}.gguf")
    (d / "blocked" / "inner").mkdir()
    shutil.copyfile(tiny.quants["Q2_K"], d / "blocked" / "inner" / "deep.gguf")
    return d


@pytest.mark.parametrize(("blocked_mode", "closed_mode"), [(0o444, 0o000), (0o000, 0o444), (0o111, 0o311)])
def test_folders_that_cannot_be_read_or_searched_are_skipped_and_reported(
    tiny, tmp_path, blocked_mode, closed_mode
):
    d = _lib(tmp_path, tiny)
    os.chmod(d / "blocked", blocked_mode)
    os.chmod(d / "closed", closed_mode)
    try:
        with file_permissions_apply():
            skipped: list[str] = []
            found = [c.path.name for c in discover(Root(d, "folder", False), skipped)]
            entries = scan([Root(d, "folder", False)])
    finally:
        os.chmod(d / "blocked", 0o755)
        os.chmod(d / "closed", 0o755)
    assert found == ["ok.gguf"] and [Path(e.path).name for e in entries] == ["ok.gguf"]
    assert any("/blocked" in s for s in skipped) and any("/closed" in s for s in skipped)
    assert all(s.count("\n") == 0 and "skipped" in s for s in skipped)


def test_ls_lists_the_rest_of_a_root_with_an_unsearchable_folder(tiny, tmp_path, capsys):
    d = _lib(tmp_path, tiny)
    assert main(["roots", "add", str(d)]) == 0
    capsys.readouterr()
    os.chmod(d / "blocked", 0o444)
    os.chmod(d / "closed", 0o000)
    try:
        with file_permissions_apply():
            assert main(["ls", "--json"]) == 0
    finally:
        os.chmod(d / "blocked", 0o755)
        os.chmod(d / "closed", 0o755)
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "ok.gguf" in out.out and "closed.gguf" not in out.out
    said = out.err.splitlines()
    assert any(str(d / "closed") in line and "skipped" in line for line in said)
    assert any(str(d / "blocked") in line and "skipped" in line for line in said)


def test_stores_with_unreadable_parts_list_what_they_can(tiny, tmp_path):
    hub = tmp_path / "hub"
    _hf_cache_repo(hub, "o/Good", {"g.gguf": tiny.quants["Q8_0"]}, ["a" * 40])
    _hf_cache_repo(hub, "o/Shut", {"s.gguf": tiny.quants["Q2_K"]}, ["b" * 40])
    shut = hub / "models--o--Shut" / "snapshots"
    models = tmp_path / "ollama"
    (models / "manifests" / "registry.ollama.ai" / "library" / "x").mkdir(parents=True)
    os.chmod(shut, 0o444)
    os.chmod(models / "manifests" / "registry.ollama.ai", 0o000)
    try:
        with file_permissions_apply():
            skipped: list[str] = []
            hf = [c.path.name for c in discover(Root(hub, "huggingface", True), skipped)]
            ollama = list(discover(Root(models, "ollama", True), skipped))
    finally:
        os.chmod(shut, 0o755)
        os.chmod(models / "manifests" / "registry.ollama.ai", 0o755)
    assert hf == ["g.gguf"] and ollama == []
    assert len(skipped) == 2


def test_link_loops_and_dangling_links_are_skipped(tiny, tmp_path):
    d = tmp_path / "lib"
    d.mkdir()
    shutil.copyfile(tiny.quants["Q8_0"], d / "real.gguf")
    (d / "loop.gguf").symlink_to(d / "loop.gguf")
    (d / "dangling.gguf").symlink_to(tmp_path / "nowhere.gguf")
    (d / "dirloop").symlink_to(d, target_is_directory=True)
    (d / "fifo.gguf").parent.mkdir(exist_ok=True)
    os.mkfifo(d / "fifo.gguf")
    assert [c.path.name for c in discover(Root(d, "folder", False))] == ["real.gguf"]


def test_damaged_root_settings_are_ignored_one_by_one(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    s = Settings(roots=[123, "", None, "a\0b", str(good)], hidden_roots=[["x"], 4.5])  # type: ignore[list-item]
    assert any(r.path == good for r in active_roots(s))
    assert all(isinstance(r.path, Path) for r, _ in all_roots(s))
    other = tmp_path / "other"
    other.mkdir()
    add_root(s, other)
    assert s.roots == [str(good), str(other)]
    remove_root(s, good)
    assert s.roots == [str(other)]
