"""Names that claim a huge split set (`-00001-of-99999.gguf`) cost what the files on disk cost.

The count in a name is a stranger's claim: the library, `ls`, the index, inspect and a Hub listing
must grow with the parts present, and say the missing ones as a count, never as 99,998 names.
"""

from __future__ import annotations

import json

from quanttui.cli.main import main
from quanttui.core.hub import repo_variants
from quanttui.core.library import Root, scan
from quanttui.core.library.scan import index_path
from quanttui.core.modelfile import inspect_file
from quanttui.core.modelfile.split import split_parts
from quanttui.core.paths import models_dir
from tests.conftest import REPO
from tests.modelgen import raw_llama

N = 20
CLAIM = "99,998 parts (1 of 99,999 present)"


def library(split: bool) -> None:
    folder = models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    data = raw_llama(n_layer=1, n_embd=4)
    for i in range(N):
        name = f"m{i:02d}-Q4_0-00001-of-99999.gguf" if split else f"m{i:02d}-Q4_0.gguf"
        (folder / name).write_bytes(data)


def ls_json(capsys) -> tuple[str, int]:
    """What `ls --json` prints from a cold index, and the index's size afterwards."""
    index_path().unlink(missing_ok=True)
    assert main(["ls", "--json"]) == 0
    return capsys.readouterr().out, index_path().stat().st_size


def test_ls_and_its_index_grow_with_the_files_not_the_count_their_names_claim(capsys):
    library(split=False)
    plain_out, plain_index = ls_json(capsys)
    library(split=True)
    split_out, split_index = ls_json(capsys)
    assert len(split_out) < 2 * len(plain_out) and split_index < 2 * plain_index
    entries = json.loads(split_out)
    assert len(entries) == N
    for e in entries:
        assert e["missing"] == [CLAIM] and e["part_count"] == 99_999 and len(e["parts"]) == 1
        assert e["facts"]["split"]["missing"] == [CLAIM] and e["facts"]["split"]["count"] == 99_999
    assert main(["ls"]) == 0
    assert len(capsys.readouterr().out) < 200 * N


def test_a_set_with_a_few_parts_missing_still_names_them(tmp_path):
    data = raw_llama(n_layer=1, n_embd=4)
    for i in (1, 3):
        (tmp_path / f"s-{i:05d}-of-00004.gguf").write_bytes(data)
    (tmp_path / "s-00003-OF-00004.GGUF").write_bytes(data)  # another spelling of part 3
    present, missing = split_parts(tmp_path / "s-00001-of-00004.gguf")
    assert [p.name for p in present] == ["s-00001-of-00004.gguf", "s-00003-of-00004.gguf"]
    assert missing == ["s-00002-of-00004.gguf", "s-00004-of-00004.gguf"]
    (entry,) = scan([Root(tmp_path, "folder", False)], index_file=tmp_path / "index.json")
    assert [p.rsplit("/", 1)[1] for p in entry.parts] == [p.name for p in present]
    assert entry.missing == missing and entry.part_count == 4


def test_inspect_and_the_part_list_of_a_huge_claim_say_a_count(tmp_path):
    path = tmp_path / "x-Q4_0-00001-of-99999.gguf"
    path.write_bytes(raw_llama(n_layer=1, n_embd=4))
    assert split_parts(path) == ([path], [CLAIM])  # what moves and deletes check a set with
    facts = inspect_file(path).to_dict()
    assert facts["split"]["missing"] == [CLAIM] and len(json.dumps(facts)) < 20_000


def test_a_hub_listing_of_a_huge_claim_says_a_count(hub):
    hub.repos[REPO].raw_siblings = [{"rfilename": "big-Q4_0-00001-of-99999.gguf", "size": 10}]
    listing = repo_variants(REPO)
    (big,) = [v for v in listing.variants if v.first.startswith("big-")]
    assert big.missing == [CLAIM] and big.count == 99_999
    assert len(json.dumps(listing.to_dict())) < 20_000
