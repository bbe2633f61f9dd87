"""Library scanning over real files in every store layout quanttui knows."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from quanttui.core import settings as settings_mod
from quanttui.core.library import Root, active_roots, add_root, all_roots, remove_root, scan
from quanttui.core.library.groups import quant_from_name, strip_quant
from quanttui.core.library.roots import hf_hub_cache, llama_cpp_cache, ollama_models
from quanttui.core.library.scan import INDEX_VERSION


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def folder(path: Path) -> Root:
    return Root(path, "folder", False)


def test_scan_groups_quants_and_keeps_errors(tiny, tmp_path):
    lib = tmp_path / "lib"
    for label, path in tiny.quants.items():
        _copy(path, lib / "tiny" / f"tiny-{label}.gguf")
    (lib / "junk.gguf").write_bytes(b"not a model at all")
    entries = scan([folder(lib)])
    assert len(entries) == 5
    good = [e for e in entries if not e.error]
    assert {e.group for e in good} == {"llama:tiny-llama-3m"}
    assert [e.quant for e in good] == ["Q8_0", "Q4_K_M", "IQ4_XS", "Q2_K"]  # most bits first
    bad = [e for e in entries if e.error]
    assert len(bad) == 1 and bad[0].name == "junk.gguf" and "not a GGUF file" in bad[0].error
    im = next(e for e in good if e.quant == "IQ4_XS")
    assert im.fact("imatrix")["chunks_count"] == 125


def test_scan_is_incremental(tiny, tmp_path):
    lib = tmp_path / "lib"
    a = _copy(tiny.quants["Q8_0"], lib / "a-Q8_0.gguf")
    _copy(tiny.quants["Q2_K"], lib / "b-Q2_K.gguf")
    first = scan([folder(lib)])
    assert [e.cached for e in first] == [False, False]
    second = scan([folder(lib)])
    assert [e.cached for e in second] == [True, True]
    assert [e.facts for e in second] == [e.facts for e in first]
    shutil.copyfile(tiny.quants["Q4_K_M"], a)
    os.utime(a, ns=(1, 1_000_000_000))
    third = {Path(e.path).name: e for e in scan([folder(lib)])}
    assert third["a-Q8_0.gguf"].cached is False
    assert third["a-Q8_0.gguf"].quant == "Q4_K_M"  # the header wins over the file name
    assert third["b-Q2_K.gguf"].cached is True


def test_split_set_is_one_entry(tiny, tmp_path):
    lib = tmp_path / "lib"
    for p in tiny.split_parts:
        _copy(p, lib / p.name)
    (entry,) = scan([folder(lib)])
    assert entry.path == str(lib / tiny.split_parts[0].name)
    assert len(entry.parts) == 3 and entry.missing == []
    assert entry.size_bytes == sum(p.stat().st_size for p in tiny.split_parts)
    (lib / tiny.split_parts[2].name).unlink()
    (entry,) = scan([folder(lib)])
    assert entry.missing == [tiny.split_parts[2].name]
    assert entry.fact("split")["missing"] == [tiny.split_parts[2].name]


def _hf_cache_repo(hub: Path, repo: str, files: dict[str, Path], revisions: list[str]) -> None:
    """The layout huggingface_hub documents: blobs named by their SHA-256, snapshots of relative links,
    refs/main naming the last revision."""
    base = hub / f"models--{repo.replace('/', '--')}"
    for name, src in files.items():
        blob = base / "blobs" / hashlib.sha256(src.read_bytes()).hexdigest()
        _copy(src, blob)
        for rev in revisions:
            link = base / "snapshots" / rev / name
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(blob, link.parent), link)
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(revisions[-1])


def test_hf_cache_store(tiny):
    hub = hf_hub_cache()
    _hf_cache_repo(
        hub,
        "someone/Tiny-Llama-GGUF",
        {"tiny-Q8_0.gguf": tiny.quants["Q8_0"], "tiny-Q2_K.gguf": tiny.quants["Q2_K"]},
        ["a" * 40, "b" * 40],
    )
    roots = active_roots(settings_mod.load())
    assert any(r.kind == "huggingface" and r.path == hub for r in roots)
    entries = scan(roots)
    assert len(entries) == 2  # one blob shared by two revisions is listed once
    assert {e.origin["hf_repo"] for e in entries} == {"someone/Tiny-Llama-GGUF"}
    assert {e.origin["revision"] for e in entries} == {"b" * 40}  # the one refs/main names
    assert all(e.store == "huggingface" for e in entries)


def test_ollama_store_names_blobs(tiny):
    models = ollama_models()
    digest = "ab" * 32
    _copy(tiny.quants["Q4_K_M"], models / "blobs" / f"sha256-{digest}")
    (models / "blobs" / f"sha256-{'cd' * 32}").write_text("{}")  # a config blob, not a model
    manifest = {
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"},
            {"mediaType": "application/vnd.ollama.image.params", "digest": f"sha256:{'cd' * 32}"},
        ]
    }
    for tag in ("latest", "q4"):
        m = models / "manifests" / "registry.ollama.ai" / "library" / "tiny" / tag
        m.parent.mkdir(parents=True, exist_ok=True)
        m.write_text(json.dumps(manifest))
    (entry,) = scan(active_roots(settings_mod.load()))
    assert entry.name == "tiny:latest, tiny:q4"
    assert entry.store == "ollama" and entry.quant == "Q4_K_M"


def test_llama_cpp_cache_and_lmstudio(tiny, tmp_path):
    _copy(tiny.quants["Q8_0"], llama_cpp_cache() / "someone_Tiny-GGUF_tiny-Q8_0.gguf")
    _copy(
        tiny.quants["Q2_K"], Path.home() / ".lmstudio" / "models" / "someone" / "Tiny-GGUF" / "tiny-Q2_K.gguf"
    )
    stores = {e.store: e for e in scan(active_roots(settings_mod.load()))}
    assert set(stores) == {"llama.cpp", "lmstudio"}


def test_roots_add_remove_persist(tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    hf_hub_cache().mkdir(parents=True)
    with settings_mod.update() as s:
        add_root(s, extra)
    s = settings_mod.load()
    assert str(extra.resolve()) in s.roots
    assert {r.kind for r in active_roots(s)} == {"folder", "huggingface"}
    with settings_mod.update() as s:
        remove_root(s, hf_hub_cache())  # a default root is hidden, never deleted
        remove_root(s, extra)
    s = settings_mod.load()
    assert active_roots(s) == []
    assert hf_hub_cache().is_dir()
    states = {str(r.path): st for r, st in all_roots(s)}
    assert states[str(hf_hub_cache())] == "hidden"


def test_corrupt_settings_fall_back_and_are_kept(tmp_path):
    settings_mod.settings_path().parent.mkdir(parents=True)
    settings_mod.settings_path().write_text("{not json")
    s = settings_mod.load()
    assert s.load_error and "using defaults" in s.load_error
    with settings_mod.update() as s:
        s.theme = "quanttui-light"
    assert settings_mod.settings_path().with_suffix(".json.bad").read_text() == "{not json"
    assert settings_mod.load().theme == "quanttui-light"


def test_quant_names_in_file_names():
    assert strip_quant("Llama-3.2-1B-Instruct-Q4_K_M.gguf") == "Llama-3.2-1B-Instruct"
    assert strip_quant("Qwen3-30B-A3B-UD-Q4_K_XL-00001-of-00002.gguf") == "Qwen3-30B-A3B"
    assert strip_quant("gemma-2-9b-it.IQ3_XXS.gguf") == "gemma-2-9b-it"
    assert strip_quant("Mistral-7B-v0.3-GGUF") == "Mistral-7B-v0.3"
    assert quant_from_name("Llama-3.2-1B-Instruct-Q4_K_M.gguf") == "Q4_K_M"
    assert quant_from_name("model-bf16.gguf") == "BF16"
    assert quant_from_name("model.gguf") is None


def _index_with(entry_for: dict, lib: Path) -> None:
    """Write the library index with `entry_for[name]` as the entry of lib/name (other keys as given)."""
    from quanttui.core.library import index_path

    entries = {str(lib / name): value for name, value in entry_for.items()}
    path = index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": INDEX_VERSION, "entries": entries}))


def test_index_entries_of_the_wrong_shape_are_read_again(tiny, tmp_path):
    """An index cache edited or damaged: wrong types anywhere are re-read from the file, never a traceback."""
    from quanttui.core.library import index_path

    lib = tmp_path / "lib"
    names = [f"m{i}-Q8_0.gguf" for i in range(11)]
    for name in names:
        _copy(tiny.quants["Q8_0"], lib / name)
    good = {e.path: e for e in scan([folder(lib)])}
    raw = json.loads(index_path().read_text())["entries"]
    sig = raw[str(lib / names[0])]["sig"]
    facts = raw[str(lib / names[0])]["facts"]
    _index_with(
        {
            names[0]: ["not", "a", "dict"],
            names[1]: {"sig": sig, "facts": ["a", "list"], "error": None},
            names[2]: {"sig": "wrong", "facts": facts, "error": None},
            names[3]: {"sig": sig, "facts": {**facts, "block_count": "32"}, "error": None},
            names[4]: {"sig": sig, "facts": {**facts, "layers": [{"name": 5}]}, "error": None},
            names[5]: {"sig": sig, "facts": None, "error": 7},
            names[6]: {"sig": sig, "facts": None, "error": None},
            names[7]: {"sig": sig, "facts": {**facts, "bpw": "high", "head_count": [[1]]}, "error": None},
            names[8]: {"sig": sig, "facts": {**facts, "block_count": 10**8}, "error": None},
            names[9]: {"sig": sig, "facts": {**facts, "split": {"count": 2, "missing": 5}}, "error": None},
            names[10]: {"sig": sig, "facts": {**facts, "imatrix": {"file": ["x"]}}, "error": None},
        },
        lib,
    )
    again = scan([folder(lib)])
    assert all(not e.cached and e.error is None for e in again)
    assert {e.path: e.facts for e in again} == {p: e.facts for p, e in good.items()}
    v = INDEX_VERSION
    for broken in ([], {"version": v, "entries": []}, {"version": v, "entries": {"x": 1}}, "[" * 100_000):
        index_path().write_text(broken if isinstance(broken, str) else json.dumps(broken))
        assert [e.error for e in scan([folder(lib)])] == [None] * len(names)


def test_settings_with_wrong_types_keep_what_is_usable(tmp_path):
    """settings.json edited by hand: each bad value is dropped and named in one line, the rest kept."""
    good_root = tmp_path / "models"
    good_root.mkdir()
    settings_mod.settings_path().parent.mkdir(parents=True)
    settings_mod.settings_path().write_text(
        json.dumps(
            {
                "roots": [123, str(good_root), None, ["x"], ""],
                "hidden_roots": "x",
                "theme": 5,
                "fit": [],
                "download_to": "/etc",
                "unknown": {"a": 1},
            }
        )
    )
    s = settings_mod.load()
    assert s.roots == [str(good_root)] and s.hidden_roots == [] and s.fit == {}
    assert s.theme == settings_mod.DEFAULT_THEME and s.download_to == "library"
    assert s.load_error is not None and "\n" not in s.load_error
    assert s.load_error.endswith(
        "wrong value types in roots, hidden_roots, theme, fit, download_to; using defaults for those"
    )
    assert [r.path for r in active_roots(s)] == [good_root]
    path = settings_mod.settings_path()
    path.write_text(json.dumps({"fit": {"n_ctx": 8192, "type_k": ["q8_0"], "x": 1.5}}))
    s = settings_mod.load()
    assert s.fit == {"n_ctx": 8192} and "fit" in s.load_error
    path.write_text(json.dumps({"roots": [str(good_root)], "theme": "quanttui-light"}))
    s = settings_mod.load()
    assert s.load_error is None and s.theme == "quanttui-light"


def test_cli_ls_with_bad_settings_and_index_says_one_line(tiny, tmp_path, capsys):
    from quanttui.cli import main as cli
    from quanttui.core.library import index_path

    lib = tmp_path / "lib"
    _copy(tiny.quants["Q8_0"], lib / "a-Q8_0.gguf")
    settings_mod.settings_path().parent.mkdir(parents=True)
    settings_mod.settings_path().write_text(json.dumps({"roots": [str(lib), 123], "theme": 5}))
    index_path().parent.mkdir(parents=True, exist_ok=True)
    entries = {str(lib / "a-Q8_0.gguf"): {"facts": []}}
    index_path().write_text(json.dumps({"version": INDEX_VERSION, "entries": entries}))
    assert cli.main(["ls", "--json"]) == 0
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and "wrong value types in roots, theme" in err
    assert [e["quant"] for e in json.loads(out)] == ["Q8_0"]
