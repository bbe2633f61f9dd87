"""The path gate attacked directly: `..`, absolute names, symlinks (also in folders that do not exist
yet), prefixes that only look inside, and hostile names and digests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quanttui.core.pathgate import (
    PathRefused,
    check,
    check_all,
    join_inside,
    safe_relpath,
    top_of,
    valid_ollama_digest,
)


@pytest.fixture
def top(tmp_path) -> Path:
    t = tmp_path / "top"
    (t / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (t / "out").symlink_to(tmp_path / "outside", target_is_directory=True)
    (t / "in").symlink_to(t / "sub", target_is_directory=True)
    (t / "file-out").symlink_to(tmp_path / "outside" / "x")
    return t


@pytest.mark.parametrize(
    "rel",
    ["sub/a.gguf", "sub/../b.gguf", "in/c.gguf", "new/deeper/d.gguf", "in/new/e.gguf", "."],
)
def test_paths_that_stay_inside_pass(top, rel):
    assert str(check(top / rel, [top])).startswith(str(top.resolve()))


@pytest.mark.parametrize(
    "rel",
    ["../x", "sub/../../x", "out/x", "out/new/deeper/x", "in/../../x", "file-out", "../top-sibling/x"],
)
def test_paths_that_lead_outside_are_refused(top, rel):
    with pytest.raises(PathRefused):
        check(top / rel, [top])


def test_a_sibling_with_the_same_prefix_is_not_inside(top, tmp_path):
    (tmp_path / "top2").mkdir()
    with pytest.raises(PathRefused, match="outside the library roots"):
        check(tmp_path / "top2" / "x", [top])


def test_follow_false_judges_a_link_where_it_sits(top):
    assert check(top / "file-out", [top], follow=False) == top.resolve() / "file-out"
    with pytest.raises(PathRefused, match="symlink or `..`"):
        check(top / "out" / "x", [top], follow=False)  # its folder leads out


def test_check_all_refuses_the_whole_plan_on_one_path(top):
    with pytest.raises(PathRefused):
        check_all([top / "sub" / "a", top / "out" / "b", top / "sub" / "c"], [top])
    assert top_of(top / "sub" / "a", [top / "nope", top]) == top.resolve()


@pytest.mark.parametrize(
    "name",
    [
        "../x.gguf",
        "a/../../x.gguf",
        "/etc/passwd",
        "a//b.gguf",
        "./a.gguf",
        "a\\..\\b.gguf",
        "C:x.gguf",
        "a\x00b",
        "a\x1b[2Jb",
        "a\nb",
        "x\u202egguf",
        "",
        "a/" + "b" * 300,
        "a" * 2000,
    ],
)
def test_hostile_names_are_refused(top, name):
    with pytest.raises(PathRefused) as err:
        safe_relpath(name)
    assert "\x1b" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(PathRefused):
        join_inside(top, name)


def test_plain_names_join_inside(top):
    assert safe_relpath("dir/Model-Q4_K_M.gguf") == "dir/Model-Q4_K_M.gguf"
    assert join_inside(top, "sub/a.gguf") == top / "sub" / "a.gguf"
    with pytest.raises(PathRefused):
        join_inside(top, "out/a.gguf")  # a plain name through a planted link
    assert not (top.parent / "outside" / "a.gguf").exists()


@pytest.mark.parametrize(
    ("digest", "ok"),
    [
        ("sha256:" + "ab" * 32, True),
        ("sha256-" + "0f" * 32, True),
        ("sha256:" + "AB" * 32, False),
        ("sha256:" + "ab" * 31, False),
        ("sha256:" + "ab" * 32 + "\n", False),
        ("sha256:../../etc/passwd", False),
        ("/etc/passwd", False),
        ("sha512:" + "ab" * 32, False),
        (123, False),
        (None, False),
        (["sha256:" + "ab" * 32], False),
    ],
)
def test_ollama_digests(digest, ok):
    assert valid_ollama_digest(digest) is ok


def test_relative_tops_and_paths_are_compared_absolutely(top, monkeypatch):
    monkeypatch.chdir(top.parent)
    assert check(Path("top/sub/a"), [Path("top")]) == top.resolve() / "sub" / "a"
    with pytest.raises(PathRefused):
        check(Path("top/../x"), [Path("top")])
    assert os.path.isdir(top)
