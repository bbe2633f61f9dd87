"""A hostile Hub against quanttui's names: file names and repo ids that lead outside, links planted in
the models folder, ESC and invisible characters in ids and names.

Each attack asserts what an adversary would want did not happen: no file outside the models folder
(or the caches), no request for a refused name, no raw ESC on the terminal and no traceback.
Helpers here are shared with test_hub_limits.py.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from quanttui.cli.main import main
from quanttui.core.hub import (
    HubError,
    NameRefused,
    RemoteFile,
    Variant,
    pull,
    repo_variants,
)
from quanttui.core.library.roots import hf_hub_cache
from quanttui.core.paths import cache_dir, models_dir
from quanttui.tui.downloads import DownloadJob, run_job
from tests.conftest import REPO
from tests.hubserver import HubRepo

ESC = "\x1b"
LADDER = ["Q8_0", "Q4_K_M", "Q2_K", "IQ4_XS", "tiny-split"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def size_of(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def all_files(top: Path) -> set[Path]:
    return {p for p in top.rglob("*") if p.is_file() or p.is_symlink()}


def outside_boxes(tmp_path: Path, before: set[Path]) -> set[Path]:
    """Files that appeared under the test's folder but outside the models folder and the caches."""
    boxes = [models_dir(), cache_dir(), hf_hub_cache()]
    return {p for p in all_files(tmp_path) - before if not any(p.is_relative_to(b) for b in boxes)}


def one_line(text: str) -> str:
    """The single non-empty line of `text` (an assertion when there are more, or a traceback)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text and ESC not in text
    return lines[0]


def variant(label: str) -> Variant:
    return next(v for v in repo_variants(REPO).variants if v.label == label)


def in_thread(fn, guard: float = 60.0) -> BaseException | None:
    """Run `fn` in a thread; the exception it raised. The join timeout only guards against a hang."""
    box: list[BaseException | None] = [None]

    def run() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box[0] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(guard)
    assert not t.is_alive(), "hung"
    return box[0]


def hostile_names(tmp_path: Path) -> list[str]:
    return [
        "../../../../escaped.gguf",
        "sub/../../../../../escaped.gguf",
        str(tmp_path / "outside" / "abs.gguf"),
        "a\\..\\..\\..\\..\\escaped.gguf",
        "./tiny-dot.gguf",
        "deep//escaped.gguf",
        f"tiny-{ESC}]0;pwned\x07-Q4_0.gguf",
        f"tiny-{ESC}]52;c;ZXZpbA==\x07.gguf",
        "tiny-\x00-Q4_0.gguf",
        "tiny-\u202eflip-Q4_0.gguf",
    ]


# names ---------------------------------------------------------------------------------------------


def test_hostile_file_names_are_refused_in_the_listing(hub, tiny, tmp_path):
    bad = hostile_names(tmp_path)
    for name in bad:
        hub.repos[REPO].files[name] = tiny.quants["Q2_K"]
    listing = repo_variants(REPO)
    assert sorted(r.name for r in listing.refused) == sorted(bad)  # exact names, for --json
    for r in listing.refused:
        assert ESC not in r.reason and "\x00" not in r.reason and "\n" not in r.reason
    offered = {f.name for v in listing.variants for f in v.files}
    assert not offered & set(bad)
    assert sorted(v.label for v in listing.variants) == sorted(LADDER)


def test_pull_never_writes_outside_the_models_folder(hub, tiny, tmp_path, capfd):
    bad = hostile_names(tmp_path)
    size = tiny.quants["Q2_K"].stat().st_size
    for name in bad:
        hub.repos[REPO].files[name] = tiny.quants["Q2_K"]
    before = all_files(tmp_path)
    for name in bad:
        assert main(["pull", REPO, name]) == 1  # the CLI: one line, the reason
        err = capfd.readouterr().err
        assert "refused" in err.splitlines()[-1] and "Traceback" not in err and ESC not in err
        for to in ("library", "hf-cache"):  # a caller that skipped the listing is refused too
            with pytest.raises(NameRefused):
                pull(REPO, [RemoteFile(name, size, None)], to=to)
        posts: list[tuple] = []
        job = DownloadJob(REPO, Variant("x", [RemoteFile(name, size, None)]))
        run_job(job, lambda *a, posts=posts: posts.append(a))
        assert posts[-1][3] == "failed" and ESC not in posts[-1][4] and "\n" not in posts[-1][4]
    assert outside_boxes(tmp_path, before) == set()
    assert not (tmp_path / "outside").exists()
    assert not any(r["path"].endswith("escaped.gguf") for r in hub.requests)  # never even asked for


@pytest.mark.parametrize(
    "repo",
    ["../../etc", "someone/../../x", "/abs/repo", "a/b/c", "owner/..", f"o{ESC}[2J/repo", "owner--x/y", "x"],
)
def test_hostile_repo_ids_are_refused(hub, tiny, tmp_path, capfd, repo):
    before = all_files(tmp_path)
    f = RemoteFile("tiny-Q2_K.gguf", tiny.quants["Q2_K"].stat().st_size, None)
    with pytest.raises(NameRefused):
        pull(repo, [f])
    with pytest.raises(NameRefused):
        repo_variants(repo)
    assert main(["pull", repo, "Q2_K"]) == 1
    assert "not a repository id" in one_line(capfd.readouterr().err)
    assert main(["inspect", f"hf:{repo}/tiny-Q2_K.gguf"]) == 1
    one_line(capfd.readouterr().err)
    assert outside_boxes(tmp_path, before) == set()
    assert not models_dir().exists() or all_files(models_dir()) == set()


def test_a_link_planted_in_the_models_folder_is_not_followed(hub, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    owner = models_dir() / REPO.split("/")[0]
    owner.parent.mkdir(parents=True)
    owner.symlink_to(outside, target_is_directory=True)
    with pytest.raises(HubError, match="leads outside the models folder"):
        pull(REPO, variant("Q2_K").files)
    assert list(outside.iterdir()) == []
    owner.unlink()
    folder = models_dir() / REPO
    folder.mkdir(parents=True)
    victim = outside / "victim"
    victim.write_bytes(b"keep me")
    (folder / ".tiny-Q2_K.gguf.partial").symlink_to(victim)
    with pytest.raises(HubError, match="leads outside the models folder"):
        pull(REPO, variant("Q2_K").files)
    assert victim.read_bytes() == b"keep me"


def test_esc_in_repo_ids_prints_escaped_and_json_stays_exact(hub, tiny, capfd):
    evil = f"evil/{ESC}]0;pwned\x07Tiny-{ESC}[2J-GGUF\u202e"
    hub.repos[evil] = HubRepo(evil, {"x-Q8_0.gguf": tiny.quants["Q8_0"]}, downloads=10_000)
    assert main(["search", "tiny"]) == 0
    out = capfd.readouterr().out
    assert ESC not in out and "\x07" not in out and "\u202e" not in out
    assert "evil/\\x1b]0;pwned\\x07Tiny-\\x1b[2J-GGUF\\u202e" in out
    assert main(["search", "tiny", "--json"]) == 0
    assert json.loads(capfd.readouterr().out)[0]["repo"] == evil
    assert main(["pull", evil, "Q8_0"]) == 1  # such an id never becomes a folder
    assert "not a repository id" in one_line(capfd.readouterr().err)


def test_names_that_read_as_other_names_are_refused_and_shown_escaped(hub, tiny, capfd):
    """Zero-width, line-separator and bidi characters make a name look like another: refused, and the
    refusal names the file with them escaped."""
    for name in ("tiny\u200b-Q5_0.gguf", "tiny\u2028-Q5_0.gguf", "tiny\ufeff-Q5_0.gguf"):
        hub.repos[REPO].files[name] = tiny.quants["Q2_K"]
        assert main(["pull", REPO, name]) == 1
        out = capfd.readouterr()
        assert "\\u" in out.err and not any(c in out.out + out.err for c in "\u200b\u2028\ufeff")
        assert not (models_dir() / REPO / name).exists()
