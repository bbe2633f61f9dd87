"""A file manager never loses a user's only copy (issue 17, items 1 and 3).

Dedupe decides per model: two split sets are duplicates only when every part is, the kept set stays
whole, and its delete of the extras never reaches a kept copy (the delete expands a file to its set).
Staging a delete never lets one file take another's place: files of one name get their own folders,
sets of one label their own stage, and no move replaces an existing file. Every test checks where the
content of every original is afterwards: still in the library, or in the trash.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir

from quanttui.cli.main import main
from quanttui.core.library import Root
from quanttui.core.library.roots import hf_hub_cache
from quanttui.core.organize import OrganizeError, execute_delete, find_duplicates, recover_interrupted
from quanttui.core.organize import dedupe as dedupe_mod
from quanttui.core.organize import delete as delete_mod
from quanttui.core.organize.delete_plan import DeletePlan, DeleteUnit
from quanttui.core.organize.journal import journal_dir
from tests.core.test_library import _hf_cache_repo
from tests.core.test_organize_recover import run_killed


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trash_files() -> Path:
    return Path(os.environ["HOME"]) / ".local" / "share" / "Trash" / "files"


def trashed() -> list[str]:
    """The content of every file in the trash, sorted."""
    top = trash_files()
    return sorted(sha(p) for p in top.rglob("*") if p.is_file()) if top.exists() else []


def contents(*tops: Path) -> list[str]:
    """The content of every model file under `tops` (links followed, each real file once), sorted."""
    reals = {os.path.realpath(p) for top in tops for p in top.rglob("*.gguf") if p.is_file()}
    return sorted(sha(Path(r)) for r in reals)


def no_leftovers(*tops: Path) -> None:
    for top in tops:
        assert not [p for p in top.rglob("*") if ".quanttui-deleting-" in p.name]
    assert not journal_dir().exists() or list(journal_dir().iterdir()) == []


def _age(path: Path, seconds: int) -> None:
    t = 1_700_000_000 + seconds
    os.utime(path, (t, t))


def _set(folder: Path, tiny, *, differ: int | None = None) -> list[Path]:
    """A copy of the tiny 3-part split set in `folder`; with `differ`, that part's last byte flipped."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for k, src in enumerate(tiny.split_parts):
        dst = Path(shutil.copyfile(src, folder / src.name))
        if k == differ:
            data = bytearray(dst.read_bytes())
            data[-1] ^= 0xFF
            dst.write_bytes(bytes(data))
        parts.append(dst)
    return parts


def _crossed(tmp_path: Path, tiny, n: int = 2) -> tuple[Path, list[list[Path]]]:
    """`n` identical split sets whose ages cross part by part: set k holds the oldest copy of part k
    (so a per-part choice keeps a part of every set and marks a part of every set an extra)."""
    lib = tmp_path / "lib"
    sets = [_set(lib / chr(ord("A") + i), tiny) for i in range(n)]
    for i, parts in enumerate(sets):
        for k, part in enumerate(parts):
            _age(part, 10 if k % n == i else 100 + i)
    return lib, sets


def _whole(groups: list, sets: list[list[Path]]) -> tuple[list[Path], list[list[Path]]]:
    """(the kept set, the extra sets) the groups name; each must be a whole set of `sets`."""
    keep = [g.keep for g in groups]
    assert keep in sets, keep
    extras = [list(col) for col in zip(*(g.extras for g in groups), strict=True)]
    assert all(e in sets for e in extras) and keep not in extras, extras
    numbers = [g.part for g in groups]
    assert numbers == sorted(set(numbers)) and len({g.parts for g in groups}) == 1  # one set's parts
    return keep, extras


# Dedupe: whole sets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_dedupe_keeps_one_whole_set_when_the_part_ages_cross(tiny, tmp_path, n):
    lib, sets = _crossed(tmp_path, tiny, n)
    groups = find_duplicates([p for s in sets for p in s], roots=[Root(lib, "folder", False)])
    keep, extras = _whole(groups, sets)
    assert len(extras) == n - 1 and sets[0] == keep  # the set with the oldest part, then by name


@pytest.mark.parametrize("n", [2, 3])
def test_cli_dedupe_delete_leaves_one_whole_set_in_the_library(tiny, tmp_path, capsys, n):
    lib, sets = _crossed(tmp_path, tiny, n)
    one = sorted(sha(p) for p in sets[0])
    assert main(["roots", "add", str(lib)]) == 0
    assert main(["dedupe", "--apply", "delete", "--yes"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith(f"moved to the trash {3 * (n - 1)} files")
    left = [s for s in sets if all(p.exists() for p in s)]
    assert len(left) == 1 and all(not any(p.exists() for p in s) for s in sets if s != left[0])
    assert contents(lib) == one  # one whole, usable set stays
    assert trashed() == sorted(one * (n - 1))  # the others, each whole, in the trash
    no_leftovers(lib)


def test_cli_dedupe_link_makes_every_part_a_link_and_keeps_each_set_whole(tiny, tmp_path, capsys):
    lib, (a, b) = _crossed(tmp_path, tiny)
    before, kept = [sha(p) for p in a], [p.stat().st_ino for p in a]
    assert main(["roots", "add", str(lib)]) == 0
    assert main(["dedupe", "--apply", "link", "--yes"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("linked 3 extras to their kept copy")
    assert [sha(p) for p in a] == [sha(p) for p in b] == before  # every name, every part
    assert [p.stat().st_ino for p in a] == kept  # the kept set is not touched, not one part replaced
    assert [p.stat().st_ino for p in b] == kept  # the extra set: links to it, part for part
    assert trashed() == []


@pytest.mark.parametrize("differ", [0, 1, 2])
def test_sets_with_one_part_differing_are_not_duplicates(tiny, tmp_path, capsys, differ):
    lib = tmp_path / "lib"
    a, b = _set(lib / "A", tiny), _set(lib / "B", tiny, differ=differ)
    for p in a:
        _age(p, 10)  # A is older: a per-part choice would mark B's equal parts extras and take all of B
    before = contents(lib)
    assert find_duplicates([*a, *b], roots=[Root(lib, "folder", False)]) == []
    assert main(["roots", "add", str(lib)]) == 0
    assert main(["dedupe", "--apply", "delete", "--yes"]) == 0
    assert "no duplicates" in capsys.readouterr().out
    assert contents(lib) == before and all(p.exists() for p in [*a, *b]) and trashed() == []


def test_a_set_missing_a_part_is_not_a_duplicate_of_a_whole_one(tiny, tmp_path):
    lib = tmp_path / "lib"
    a, b = _set(lib / "A", tiny), _set(lib / "B", tiny)
    b[2].unlink()
    assert find_duplicates([*a, *b[:2]]) == []
    c = _set(lib / "C", tiny)
    c[2].unlink()  # two sets missing the same part are identical as they are
    keep, extras = _whole(find_duplicates([*b[:2], *c[:2]]), [b[:2], c[:2]])
    assert len(extras) == 1


def test_hard_links_count_once_and_a_set_of_links_to_the_kept_one_is_linked(tiny, tmp_path):
    lib = tmp_path / "lib"
    a = _set(lib / "A", tiny)
    (lib / "B").mkdir()
    b = [lib / "B" / p.name for p in a]
    for src, dst in zip(a, b, strict=True):
        os.link(src, dst)
    c = _set(lib / "C", tiny)
    for p in c:
        _age(p, 10)
    groups = find_duplicates([*a, *b, *c])
    assert [g.keep for g in groups] == c
    # A and B are one copy under two names: both go (or are linked) for the data to be reclaimed.
    assert [g.extras for g in groups] == [[x, y] for x, y in zip(a, b, strict=True)]
    assert all(g.linked == [] for g in groups)
    (lib / "D").mkdir()
    d = [lib / "D" / p.name for p in c]
    for src, dst in zip(c, d, strict=True):
        os.link(src, dst)  # D: C's inodes under D's names
    groups = find_duplicates([*a, *c, *d])
    assert [g.keep for g in groups] == c and [g.linked for g in groups] == [[x] for x in d]


def _hf_twice(tmp_path: Path, tiny) -> tuple[Path, list[list[Path]]]:
    """The tiny split set in two Hugging Face repos (blobs of their own) of the cache quanttui lists."""
    hub = hf_hub_cache()
    files = {f"split/{p.name}": p for p in tiny.split_parts}
    sets = []
    for i, repo in enumerate(("o/R1", "o/R2")):
        _hf_cache_repo(hub, repo, files, ["a" * 40])
        snap = hub / f"models--o--{repo[2:]}" / "snapshots" / ("a" * 40) / "split"
        parts = [snap / p.name for p in tiny.split_parts]
        for k, p in enumerate(parts):
            t = 1_700_000_000 + (10 if k % 2 == i else 100)
            os.utime(os.path.realpath(p), (t, t))
        sets.append(parts)
    return hub, sets


def test_cli_dedupe_delete_of_a_set_duplicated_in_the_hf_cache_keeps_one_repo_whole(tiny, tmp_path, capsys):
    hub, sets = _hf_twice(tmp_path, tiny)
    one = sorted(sha(p) for p in sets[0])
    groups = find_duplicates([p for s in sets for p in s])
    keep, extras = _whole(groups, sets)
    assert main(["dedupe", "--apply", "delete", "--yes"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("moved to the trash 3 files")
    assert all(p.exists() for p in keep) and not any(os.path.lexists(p) for p in extras[0])
    assert contents(hub) == one and trashed() == one
    info = scan_cache_dir(hub)
    assert not info.warnings and len(info.repos) == 1  # the emptied repo went whole, the other is intact
    no_leftovers(hub)


def test_cli_dedupe_delete_of_an_hf_set_and_a_folder_copy(tiny, tmp_path, capsys):
    hub, (r1, r2) = _hf_twice(tmp_path, tiny)
    shutil.rmtree(hub / "models--o--R2")
    lib = tmp_path / "lib"
    folder = _set(lib / "F", tiny)
    for k, p in enumerate(folder):  # the folder holds the oldest copy of part 2 only
        _age(p, 5 if k == 1 else 200)
    one = sorted(sha(p) for p in folder)
    assert main(["roots", "add", str(lib)]) == 0
    assert main(["dedupe", "--apply", "delete", "--yes"]) == 0
    kept = [s for s in (r1, folder) if all(p.exists() for p in s)]
    assert len(kept) == 1 and sorted(contents(hub) + contents(lib)) == one and trashed() == one
    no_leftovers(hub, lib)


def test_cli_dedupe_never_takes_another_revisions_file_of_the_same_name(tiny, tmp_path, capsys):
    """Revision a's `m.gguf` is a copy of a folder file, revision b's `m.gguf` other data: the delete of
    a duplicate must not reach b's file (a delete of an HF file once took the name in every revision)."""
    hub, lib = hf_hub_cache(), tmp_path / "lib"
    _hf_cache_repo(hub, "o/r", {"m.gguf": tiny.quants["Q2_K"]}, ["a" * 40])
    _hf_cache_repo(hub, "o/r", {"m.gguf": tiny.quants["Q8_0"]}, ["b" * 40])
    lib.mkdir()
    _age(Path(shutil.copyfile(tiny.quants["Q2_K"], lib / "m.gguf")), 5)  # the oldest copy
    other = hub / "models--o--r" / "snapshots" / ("b" * 40) / "m.gguf"
    every = contents(hub, lib)
    assert main(["roots", "add", str(lib)]) == 0
    assert main(["dedupe", "--apply", "delete", "--yes"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("moved to the trash 1 file")
    assert sha(other) == sha(tiny.quants["Q8_0"])  # still in the library, not in the trash
    assert trashed() == [sha(tiny.quants["Q2_K"])]
    assert sorted(contents(hub, lib) + trashed()) == every  # each content somewhere, once
    no_leftovers(hub, lib)


# Dedupe: the final guard ----------------------------------------------------------------------------


def _per_part(a: list[Path], b: list[Path]) -> list:
    """The groups a per-part choice made for the crossed sets: keep A's part 1, B's part 2, ..."""
    out = []
    for k, (pa, pb) in enumerate(zip(a, b, strict=True)):
        keep, extra = (pa, pb) if k % 2 == 0 else (pb, pa)
        out.append(dedupe_mod.DuplicateGroup(sha(pa), pa.stat().st_size, keep, [extra]))
    return out


def test_the_guard_refuses_a_delete_of_extras_that_reaches_a_kept_copy(tiny, tmp_path):
    lib, (a, b) = _crossed(tmp_path, tiny)
    roots = [Root(lib, "folder", False)]
    before = contents(lib)
    with pytest.raises(OrganizeError, match="would remove this kept copy; nothing was deleted"):
        dedupe_mod.plan_delete_extras(_per_part(a, b), roots)
    assert contents(lib) == before and trashed() == []
    plan = dedupe_mod.plan_delete_extras(find_duplicates([*a, *b], roots=roots), roots)
    execute_delete(plan, roots)
    assert contents(lib) == sorted(sha(p) for p in a) and trashed() == contents(lib)


def test_the_guard_refuses_a_delete_that_takes_data_dedupe_did_not_find(tiny, tmp_path):
    lib = tmp_path / "lib"
    a, b = _set(lib / "A", tiny), _set(lib / "B", tiny, differ=2)
    roots = [Root(lib, "folder", False)]
    groups = [dedupe_mod.DuplicateGroup(sha(a[0]), a[0].stat().st_size, a[0], [b[0]])]
    with pytest.raises(OrganizeError, match="not a duplicate dedupe found; nothing was deleted"):
        dedupe_mod.plan_delete_extras(groups, roots)  # B's part 3 has no other copy
    assert all(p.exists() for p in [*a, *b]) and trashed() == []


def test_the_guard_refuses_a_kept_copy_under_a_folder_the_delete_removes(tiny, tmp_path):
    hub, (r1, r2) = _hf_twice(tmp_path, tiny)
    plan = DeletePlan(units=[DeleteUnit("x", links=[r2[0]], dirs=[hub / "models--o--R1"])])
    groups = [dedupe_mod.DuplicateGroup(sha(r1[0]), r1[0].stat().st_size, r1[0], [r2[0]])]
    with pytest.raises(OrganizeError, match="would remove this kept copy"):
        dedupe_mod.check_extras_plan(plan, groups)
    assert all(p.exists() for p in [*r1, *r2])


# Staging: no file takes another's place ---------------------------------------------------------


def _split_linked_to_same_names(tmp_path: Path, tiny) -> tuple[list[Root], Path, list[Path]]:
    """An HF snapshot of a 2-part set whose links lead to `lib/p1/m.gguf` and `lib/p2/m.gguf`: one
    delete unit of two files of one name."""
    lib, hub = tmp_path / "lib", hf_hub_cache()
    data = []
    for k, src in enumerate(tiny.split_parts[:2], 1):
        (lib / f"p{k}").mkdir(parents=True)
        data.append(Path(shutil.copyfile(src, lib / f"p{k}" / "m.gguf")))
    snap = hub / "models--o--r" / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    (hub / "models--o--r" / "refs").mkdir()
    (hub / "models--o--r" / "refs" / "main").write_text("c" * 40)
    for k, target in enumerate(data, 1):
        (snap / f"m-0000{k}-of-00002.gguf").symlink_to(target)
    return [Root(hub, "huggingface", True), Root(lib, "folder", False)], snap / "m-00001-of-00002.gguf", data


def test_rm_of_a_set_whose_files_share_a_name_loses_neither(tiny, tmp_path, capsys):
    roots, target, data = _split_linked_to_same_names(tmp_path, tiny)
    both = sorted(sha(p) for p in data)
    assert main(["roots", "add", str(roots[1].path)]) == 0
    capsys.readouterr()
    assert main(["rm", str(target), "--yes"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("moved to the trash 2 files")
    assert not any(p.exists() for p in data)
    assert trashed() == both  # each content once: neither staged file replaced the other
    no_leftovers(roots[0].path, roots[1].path)


def test_rm_of_a_file_whose_other_revisions_link_two_same_named_files_keeps_every_content(tiny, tmp_path):
    """The attacker's layout: revisions 1 and 2 link `m.gguf` to `lib/p1/m.gguf` and `lib/p2/m.gguf`,
    revision 3 to a blob; whatever the delete takes is in the trash, the rest in the library."""
    lib, hub = tmp_path / "lib", hf_hub_cache()
    repo = hub / "models--o--r"
    _hf_cache_repo(hub, "o/r", {"m.gguf": tiny.quants["Q2_K"]}, ["3" * 40])
    for k, src in enumerate((tiny.quants["Q8_0"], tiny.quants["Q4_K_M"]), 1):
        (lib / f"p{k}").mkdir(parents=True)
        target = shutil.copyfile(src, lib / f"p{k}" / "m.gguf")
        (repo / "snapshots" / (str(k) * 40)).mkdir()
        (repo / "snapshots" / (str(k) * 40) / "m.gguf").symlink_to(target)
    every = contents(hub, lib)
    assert len(every) == 3
    assert main(["roots", "add", str(lib)]) == 0
    assert main(["rm", str(repo / "snapshots" / ("3" * 40) / "m.gguf"), "--yes"]) == 0
    assert sorted(contents(hub, lib) + trashed()) == every  # each content somewhere, once
    no_leftovers(hub, lib)


@pytest.mark.parametrize("permanent", [False, True], ids=["trash", "permanent"])
def test_two_sets_of_one_name_in_one_hf_repo_are_deleted_together(tiny, tmp_path, capsys, permanent):
    """`Q4/...` and `Q8/...` of one repo: two delete units of one label, staged side by side."""
    hub = hf_hub_cache()
    q4, q8 = "Q4/m-0000{}-of-00002.gguf", "Q8/m-0000{}-of-00002.gguf"
    files = {q4.format(1): tiny.split_parts[0], q4.format(2): tiny.split_parts[1]}
    files |= {q8.format(1): tiny.split_parts[2], q8.format(2): tiny.quants["Q8_0"]}
    files |= {"Q4/model.gguf": tiny.quants["Q2_K"], "Q8/model.gguf": tiny.quants["IQ4_XS"]}
    files["other.gguf"] = tiny.quants["Q4_K_M"]
    _hf_cache_repo(hub, "o/r", files, ["a" * 40])
    snap = hub / "models--o--r" / "snapshots" / ("a" * 40)
    gone = sorted({sha(p) for p in files.values()} - {sha(tiny.quants["Q4_K_M"])})
    targets = [snap / "Q4" / "m-00001-of-00002.gguf", snap / "Q8" / "m-00001-of-00002.gguf"]
    targets += [snap / "Q4" / "model.gguf", snap / "Q8" / "model.gguf"]
    assert main(["rm", *map(str, targets), "--yes", *(["--permanent"] if permanent else [])]) == 0
    assert capsys.readouterr().err == ""
    assert contents(hub) == [sha(tiny.quants["Q4_K_M"])] and (snap / "other.gguf").exists()
    assert trashed() == ([] if permanent else gone)
    assert not scan_cache_dir(hub).warnings
    no_leftovers(hub)


def test_staging_never_moves_a_file_over_another(tmp_path, monkeypatch):
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.write_bytes(b"GGUF a")
    b.write_bytes(b"GGUF b")
    with pytest.raises(FileExistsError):
        delete_mod.move_no_replace(a, b)
    assert a.read_bytes() == b"GGUF a" and b.read_bytes() == b"GGUF b"

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "hard links not allowed here")

    monkeypatch.setattr(os, "link", no_links)  # a filesystem without hard links: checked, then renamed
    with pytest.raises(FileExistsError):
        delete_mod.move_no_replace(a, b)
    assert a.read_bytes() == b"GGUF a" and b.read_bytes() == b"GGUF b"
    delete_mod.move_no_replace(a, tmp_path / "c.gguf")
    assert not a.exists() and (tmp_path / "c.gguf").read_bytes() == b"GGUF a"


def test_a_plan_of_two_same_named_files_stages_each_in_a_folder_of_its_own(tmp_path):
    """The staging itself, with a plan made by hand: the journal names a different staged path per
    file, and both contents reach the trash."""
    lib = tmp_path / "lib"
    files = []
    for k in (1, 2):
        (lib / f"p{k}").mkdir(parents=True)
        files.append(lib / f"p{k}" / "m.gguf")
        files[-1].write_bytes(f"GGUF {k}".encode())
    roots = [Root(lib, "folder", False)]
    execute_delete(DeletePlan(units=[DeleteUnit("m.gguf", files=list(files))]), roots)
    assert not any(p.exists() for p in files)
    assert trashed() == sorted(hashlib.sha256(f"GGUF {k}".encode()).hexdigest() for k in (1, 2))
    no_leftovers(lib)


# Staging across kill -9 ----------------------------------------------------------------------------

KILL_STEPS = {  # the steps where the second file of the name is staged, and after
    False: {
        "delete:stage-linked:1": "back",
        "delete:stage-linked:2": "back",
        "delete:staged:2": "back",
        "delete:trash:1": "back",
        "delete:trashed:1": "gone",
    },
    True: {"delete:stage-linked:2": "back", "delete:staged:2": "back"},
}


@pytest.mark.parametrize(("permanent", "step"), [(p, s) for p, steps in KILL_STEPS.items() for s in steps])
def test_a_same_named_set_killed_at_each_staging_step_is_put_back_or_finished(
    tiny, tmp_path, permanent, step
):
    roots, target, data = _split_linked_to_same_names(tmp_path, tiny)
    before = {str(p): sha(p) for p in data}
    links = sorted(os.readlink(p) for p in target.parent.iterdir())
    code = (
        "from pathlib import Path\nfrom quanttui.core.library import Root\n"
        "from quanttui.core.organize import execute_delete, plan_delete\n"
        f"roots = [Root(Path({str(roots[0].path)!r}), 'huggingface', True), "
        f"Root(Path({str(roots[1].path)!r}), 'folder', False)]\n"
        f"execute_delete(plan_delete([Path({str(target)!r})], roots, permanent={permanent}), roots)\n"
    )
    run_killed(code, step)
    if step.startswith("delete:stage-linked"):
        staged = [p for p in roots[1].path.rglob("m.gguf") if ".quanttui-deleting-" in str(p)]
        assert any(p.stat().st_nlink == 2 for p in staged)  # the kill left both names of one file
    lines = recover_interrupted()
    if KILL_STEPS[permanent][step] == "back":
        assert {str(p): sha(p) for p in data} == before  # every file where it was, with its content
        assert sorted(os.readlink(p) for p in target.parent.iterdir()) == links
        assert all(p.stat().st_nlink == 1 for p in data)
        assert trashed() == []
    else:
        assert not any(p.exists() for p in data) and any("completed" in line for line in lines)
        assert trashed() == ([] if permanent else sorted(before.values()))
    no_leftovers(roots[0].path, roots[1].path)
    assert recover_interrupted() == []


def test_an_old_journal_without_numbered_folders_is_still_rolled_back(tmp_path):
    """A journal written before stages had a number per set (`.quanttui-deleting-ID/SET/`)."""
    lib = tmp_path / "lib"
    stage = lib / ".quanttui-deleting-delete-1-x" / "m.gguf (2 files)"
    stage.mkdir(parents=True)
    origs = [lib / "m-00001-of-00002.gguf", lib / "m-00002-of-00002.gguf"]
    for k, p in enumerate(origs):
        (stage / p.name).write_bytes(f"GGUF {k}".encode())
    moves = [[str(p), str(stage / p.name)] for p in origs]
    unit = {"label": "m.gguf", "stage": str(stage), "moves": moves}
    unit |= {"links": [], "refs": [], "manifests": [], "dirs": []}
    data = {"op": "delete", "pid": 2**22 + 7, "permanent": False, "state": "staging", "done": []}
    journal_dir().mkdir(parents=True)
    (journal_dir() / "delete-1-x.json").write_text(json.dumps({**data, "units": [unit]}))
    lines = recover_interrupted()
    assert any("2 file(s) put back" in line for line in lines)
    assert [p.read_bytes() for p in origs] == [b"GGUF 0", b"GGUF 1"]
    assert sorted(p.name for p in lib.iterdir()) == [p.name for p in origs]
    no_leftovers(lib)


def test_mv_of_two_files_of_one_name_into_one_folder_is_refused_and_both_stay(tmp_path, capsys):
    """`mv p1/m.gguf p2/m.gguf dest`: the second would replace the first; nothing moves."""
    from quanttui.cli.main import main

    root = tmp_path / "lib"
    for name, body in (("p1", b"GGUF one"), ("p2", b"GGUF two")):
        (root / name).mkdir(parents=True)
        (root / name / "m.gguf").write_bytes(body)
    (root / "dest").mkdir()
    assert main(["roots", "add", str(root)]) == 0
    assert main(["mv", str(root / "p1" / "m.gguf"), str(root / "p2" / "m.gguf"), str(root / "dest")]) == 1
    err = capsys.readouterr().err
    assert "would both become" in err and err.count("\n") == 1
    assert (root / "p1" / "m.gguf").read_bytes() == b"GGUF one"
    assert (root / "p2" / "m.gguf").read_bytes() == b"GGUF two"
    assert list((root / "dest").iterdir()) == []
