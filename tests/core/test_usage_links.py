"""Disk usage counts only the bytes that live inside the roots: a link planted in a root that points
to a file outside every root counts 0 bytes (deleting it frees nothing) and is listed on its own."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from quanttui.cli.main import main
from quanttui.core import format as fmt
from quanttui.core.library import Root, scan
from quanttui.core.organize import disk_usage
from quanttui.core.organize.usage import OutsideLink


def _layout(tiny, tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """A root with one real model and a link to a bigger model in a folder outside every root."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = Path(shutil.copyfile(tiny.quants["Q8_0"], outside / "victim.gguf"))
    lib = tmp_path / "lib"
    lib.mkdir()
    real = Path(shutil.copyfile(tiny.quants["Q2_K"], lib / "real.gguf"))
    link = lib / "link.gguf"
    link.symlink_to(victim)
    assert victim.stat().st_size > real.stat().st_size  # counting it would show
    return lib, real, link, victim


def test_a_link_out_of_the_roots_counts_no_bytes_and_is_listed(tiny, tmp_path):
    lib, real, link, victim = _layout(tiny, tmp_path)
    roots = [Root(lib, "folder", False)]
    entries = scan(roots)
    assert sorted(Path(e.path).name for e in entries) == ["link.gguf", "real.gguf"]  # still in the library
    u = disk_usage(entries, roots)
    assert u.total == real.stat().st_size
    assert u.roots == {str(lib): real.stat().st_size}
    assert sum(u.groups.values()) == sum(u.quants.values()) == real.stat().st_size
    assert [(o.path, o.target, o.size) for o in u.outside_links] == [
        (str(link), str(victim), victim.stat().st_size)
    ]
    assert u.outside_bytes == victim.stat().st_size
    u.outside_links.append(OutsideLink(str(lib / "again.gguf"), str(victim), victim.stat().st_size))
    assert u.outside_bytes == victim.stat().st_size  # two links to one file: its size once
    # The same without naming the roots: the entries' own roots bound what counts.
    assert disk_usage(entries).total == real.stat().st_size


def test_links_inside_the_roots_count_their_data_once(tiny, tmp_path):
    """A link to a file in another root, or a relative link within one, is data inside the roots."""
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    r1.mkdir()
    r2.mkdir()
    a = Path(shutil.copyfile(tiny.quants["Q8_0"], r1 / "a.gguf"))
    (r2 / "to-a.gguf").symlink_to(a)
    (r1 / "rel.gguf").symlink_to("a.gguf")
    roots = [Root(r1, "folder", False), Root(r2, "folder", False)]
    u = disk_usage(scan(roots), roots)
    assert u.total == a.stat().st_size and u.outside_links == []


def test_a_file_under_a_linked_folder_outside_counts_no_bytes(tiny, tmp_path):
    lib, real, link, victim = _layout(tiny, tmp_path)
    link.unlink()
    roots = [Root(lib, "folder", False)]
    entries = scan(roots)
    # An entry whose part is reached through a folder link that leads out (as a crafted index could say).
    entries[0].parts = [str(lib / "out" / "victim.gguf")]
    (lib / "out").symlink_to(victim.parent, target_is_directory=True)
    u = disk_usage(entries, roots)
    assert u.total == 0 and [o.size for o in u.outside_links] == [victim.stat().st_size]


def test_cli_du_json_counts_only_inside_bytes_and_names_the_link(tiny, tmp_path, capsys):
    lib, real, link, victim = _layout(tiny, tmp_path)
    assert main(["roots", "add", str(lib)]) == 0
    capsys.readouterr()
    assert main(["du", "--json"]) == 0
    u = json.loads(capsys.readouterr().out)
    assert u["total"] == real.stat().st_size
    assert sum(u["roots"].values()) == sum(u["groups"].values()) == real.stat().st_size
    assert u["outside_links"] == [{"path": str(link), "target": str(victim), "size": victim.stat().st_size}]
    assert os.path.exists(victim)


def test_cli_du_says_how_many_links_were_left_out(tiny, tmp_path, capsys):
    lib, real, link, victim = _layout(tiny, tmp_path)
    assert main(["roots", "add", str(lib)]) == 0
    capsys.readouterr()
    assert main(["du"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"total {fmt.size(real.stat().st_size)}"
    assert f"1 link to files outside the roots, not counted ({fmt.size(victim.stat().st_size)} there" in out
