"""Hostile and damaged headers: a value of the wrong type for every key facts and fit read.

Each file is one file's problem: a one-line GGUFError or facts with the bad value left out (and
noted), never another exception; fit on those facts is an estimate or a one-line FitError; work
and memory stay bounded by the file's real size, whatever counts the header claims.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from quanttui.cli import main as cli
from quanttui.core.errors import QuanttuiError
from quanttui.core.fit import FitError, FitSettings, estimate, fit_pair
from quanttui.core.fit.devices import Device, Hardware
from quanttui.core.library.groups import group_of
from quanttui.core.library.scan import LibraryEntry, sort_entries
from quanttui.core.modelfile import GGUFError, inspect_file, read_header
from quanttui.core.modelfile.checks import facts_problem
from quanttui.core.modelfile.values import EAGER_ITEMS_BUDGET, ArrayRef
from tests.modelgen import HEADER_KEYS, WRONG_VALUES, raw_gguf, raw_llama

ROOT = Path(__file__).resolve().parents[2]
GPU = Hardware(
    (Device("GPU 0", "gpu", "cuda", 8 << 30, 8 << 30),),
    Device("RAM", "ram", "cpu", 32 << 30, 32 << 30),
    "test",
)

def _check(path: Path) -> dict | None:
    """Inspect, group, sort, serialize and fit one file; any failure must be a one-line QuanttuiError."""
    try:
        facts = inspect_file(path)
    except QuanttuiError as e:
        assert "\n" not in str(e) and str(e)
        return None
    d = facts.to_dict()
    assert facts_problem(d) is None  # what inspect produces is what the index accepts
    json.dumps(d)
    key, label = group_of(d, path.name, {}, path.parent.name)
    entry = LibraryEntry(str(path), [str(path)], [], "/", "folder", 1, {}, d, None, key, label)
    sort_entries([entry, entry])
    for settings in (FitSettings(), FitSettings(n_ctx=32768, gpu_layers=3)):
        try:
            estimate(d, settings, GPU)
        except QuanttuiError as e:
            assert "\n" not in str(e)
    try:
        fit_pair(d, d, FitSettings(n_ctx=65536), GPU)
    except QuanttuiError as e:
        assert "\n" not in str(e)
    return d


@pytest.mark.parametrize("key", HEADER_KEYS)
def test_every_key_with_every_wrong_type(tmp_path, key):
    """The fuzz of value types: 38 keys x 22 values, through inspect, groups, sort, JSON and fit."""
    for name, value in WRONG_VALUES.items():
        path = tmp_path / f"{name}.gguf"
        path.write_bytes(raw_llama({key: value}))
        try:
            d = _check(path)
        except Exception as e:  # noqa: BLE001 - the point of the test: say which case escaped
            raise AssertionError(f"{key} = {name}: {type(e).__name__}: {e}") from e
        if d is not None and key.startswith("llama.") and name in ("str", "float", "nested"):
            assert any(n.startswith(key) for n in d["ignored"]), (key, name, d["ignored"])


def test_wrong_types_are_left_out_and_said(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(
        raw_llama(
            {
                "general.file_type": "Q4_K_M",
                "llama.block_count": "2",
                "llama.attention.head_count": [[4], [4]],
                "llama.context_length": 4096.0,
                "tokenizer.ggml.bos_token_id": True,
            }
        )
    )
    f = inspect_file(path)
    assert (f.file_type, f.file_type_id, f.block_count, f.head_count) == (None, None, None, None)
    assert (f.context_length, f.bos_token_id, f.embedding_length) == (None, None, 64)
    assert sorted(f.ignored) == [
        "general.file_type: a string, not an integer",
        "llama.attention.head_count: array items must be integers from 0 to 65,536",
        "llama.block_count: a string, not an integer",
        "llama.context_length: a float, not an integer",
        "tokenizer.ggml.bos_token_id: a boolean, not an integer",
    ]
    with pytest.raises(FitError, match="no usable block_count"):
        estimate(f.to_dict(), FitSettings(), GPU)


def test_huge_block_count_in_a_tiny_file_costs_nothing(tmp_path):
    """448 bytes claiming 10**8 blocks took `fit` 2 minutes and 4.7 GB: the claim is refused."""
    tiny = tmp_path / "tiny.gguf"
    tiny.write_bytes(raw_gguf({"general.architecture": "llama", "llama.block_count": 100_000_000,
                               "llama.embedding_length": 4096}))  # fmt: skip
    f = inspect_file(tiny)
    assert f.block_count is None and f.vocab_only is True
    assert f.ignored == ["llama.block_count: 100,000,000 is out of range (1 to 4,096)"]
    # Within the range but more blocks than the file has tensors: refused too.
    more = tmp_path / "more.gguf"
    more.write_bytes(raw_llama({"llama.block_count": 4000}))
    f = inspect_file(more)
    assert f.block_count is None and f.ignored == ["llama.block_count: 4,000 blocks but only 7 tensors"]
    with pytest.raises(FitError, match="no usable block_count"):
        estimate(f.to_dict(), FitSettings(), GPU)


def test_vocab_only_file_is_not_a_model(tmp_path):
    path = tmp_path / "ggml-vocab-llama.gguf"
    kv = {"general.architecture": "llama", "llama.block_count": 32, "llama.embedding_length": 4096}
    path.write_bytes(raw_gguf({**kv, "tokenizer.ggml.tokens": ["a", "b"]}))
    f = inspect_file(path)
    assert f.vocab_only is True and f.tensor_count == 0 and f.block_count == 32
    with pytest.raises(FitError, match="vocabulary-only"):
        estimate(f.to_dict(), FitSettings(), GPU)
    real = tmp_path / "real.gguf"
    real.write_bytes(raw_llama())
    assert inspect_file(real).vocab_only is False


@pytest.mark.parametrize(
    "name", ["blk." + "9" * 5000 + ".weight", "blk.4096.attn_q.weight", "blk.007.x", "blk.-1.x", "blk..x"]
)
def test_tensor_names_that_are_not_layers(tmp_path, name):
    path = tmp_path / "m.gguf"
    tensors = [("token_embd.weight", (64, 16), 0), ("blk.0.attn_q.weight", (64, 64), 0), (name, (64,), 0)]
    path.write_bytes(raw_gguf({"general.architecture": "llama", "llama.block_count": 1,
                               "llama.embedding_length": 64}, tensors))  # fmt: skip
    f = inspect_file(path)
    assert [layer.name for layer in f.layers] == ["token_embd", "blk.0", "other"]
    assert estimate(f.to_dict(), FitSettings(), GPU).n_layer == 1


def test_eager_arrays_have_one_budget_per_header(tmp_path):
    """Hundreds of arrays just under the eager size: the first are lists, the rest stay lazy."""
    n = 2 * EAGER_ITEMS_BUDGET // 4000 + 2
    kv = {f"x.arr{i}": list(range(4000)) for i in range(n)}
    path = tmp_path / "m.gguf"
    path.write_bytes(raw_gguf({"general.architecture": "llama", **kv}))
    h = read_header(path)
    eager = [v for v in h.metadata.values() if isinstance(v, list)]
    lazy = [v for v in h.metadata.values() if isinstance(v, ArrayRef)]
    assert sum(len(v) for v in eager) <= EAGER_ITEMS_BUDGET and len(lazy) >= n // 2
    assert h.array_len("x.arr0") == 4000 and h.array_len(f"x.arr{n - 1}") == 4000


def test_nested_arrays_are_bounded(tmp_path):
    """Millions of tiny inner arrays are refused after a fixed number, without building them."""
    many = raw_gguf({"x": [[1]] * 70_000})
    path = tmp_path / "nested.gguf"
    path.write_bytes(many)
    with pytest.raises(GGUFError, match="arrays inside arrays"):
        read_header(path)
    deep = tmp_path / "deep.gguf"
    deep.write_bytes(raw_gguf({"x": [[[[[1]]]]]}))
    with pytest.raises(GGUFError, match="nested deeper"):
        read_header(deep)
    fine = tmp_path / "fine.gguf"
    fine.write_bytes(raw_gguf({"x": [[1, 2], ["a"]], "y": 7}))
    h = read_header(fine)
    assert h.metadata["x"] == [[1, 2], ["a"]] and h.metadata["y"] == 7


# Peak RSS from VmHWM, which starts afresh at exec (ru_maxrss would keep pytest's own peak).
_BOUNDED = """
import re, sys
from quanttui.core.fit import FitError, FitSettings, estimate, hardware
from quanttui.core.modelfile import GGUFError, inspect_file
try:
    facts = inspect_file(sys.argv[1]).to_dict()
    estimate(facts, FitSettings(), hardware("24GiB", "64GiB"))
except (GGUFError, FitError) as e:
    print("error:", e)
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) // 1024)
"""


def _peak_mib(path: Path) -> tuple[int, str]:
    out = subprocess.run(
        [sys.executable, "-c", _BOUNDED, str(path)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0 and not out.stderr, out.stderr
    *lines, peak = out.stdout.strip().splitlines()
    return int(peak), "\n".join(lines)


def test_hostile_headers_take_memory_like_a_normal_one(tmp_path):
    """Peak memory of inspect + fit: a claim of 10**8 blocks, 2 MB of nested arrays, and a normal file."""
    normal = tmp_path / "normal.gguf"
    normal.write_bytes(raw_llama())
    blocks = tmp_path / "blocks.gguf"
    blocks.write_bytes(raw_gguf({"general.architecture": "llama", "llama.block_count": 100_000_000,
                                 "llama.embedding_length": 4096}))  # fmt: skip
    nested = tmp_path / "nested.gguf"
    nested.write_bytes(raw_gguf({"x": [[]] * 200_000}))
    base, _ = _peak_mib(normal)
    for path in (blocks, nested):
        peak, said = _peak_mib(path)
        assert said.startswith("error:") and len(said.splitlines()) == 1
        assert peak < base + 64, (path.name, peak, base)


_RACE = """
import os, sys, threading
from quanttui.core.modelfile import GGUFError, read_header
path, data = sys.argv[1], open(sys.argv[1], "rb").read()
stop = False
def truncate():
    while not stop:
        with open(path, "r+b") as f:
            f.truncate(4096)
        with open(path, "r+b") as f:
            f.write(data)
t = threading.Thread(target=truncate)
t.start()
outcomes = set()
try:
    for _ in range(150):
        try:
            read_header(path)
            outcomes.add("ok")
        except GGUFError as e:
            assert "\\n" not in str(e)
            outcomes.add(type(e).__name__)
finally:
    stop = True
    t.join()
print(sorted(outcomes))
"""


def test_truncation_while_reading_is_an_error_not_a_signal(tmp_path):
    """A file cut short by another process while its header is read: an error line, never SIGBUS."""
    from tests.modelgen import write_vocab_header

    path = write_vocab_header(tmp_path / "vocab.gguf", n_tokens=40_000, n_merges=40_000)
    out = subprocess.run(
        [sys.executable, "-c", _RACE, str(path)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert not out.stderr
    outcomes = set(json.loads(out.stdout.replace("'", '"')))
    assert outcomes <= {"ok", "TruncatedError", "CorruptError", "NotGGUFError", "GGUFError"}


def test_file_that_shrinks_between_stat_and_read(tmp_path, monkeypatch):
    """The size seen at open is larger than what the reads return: a one-line truncation error."""
    path = tmp_path / "m.gguf"
    path.write_bytes(raw_llama())
    real_fstat = os.fstat

    class Bigger:
        def __init__(self, st: os.stat_result):
            self.st_size = st.st_size + (2 << 20)

    monkeypatch.setattr(os, "fstat", lambda fd: Bigger(real_fstat(fd)))
    with pytest.raises(GGUFError, match=r"^file shrank to [\d,]+ bytes while being read"):
        read_header(path)


def test_values_of_split_keys_never_break_the_set(tmp_path):
    """`split.no` of the wrong type in one part: the set still reads or fails with one line."""
    for no in ("1", -1, [0], 1.0):
        d = tmp_path / f"set-{no!r}"
        d.mkdir()
        parts = [d / f"m-0000{i}-of-00002.gguf" for i in (1, 2)]
        parts[0].write_bytes(raw_llama({"split.no": 0, "split.count": 2, "split.tensors.count": 9}))
        parts[1].write_bytes(raw_gguf({"split.no": no}, [("blk.1.attn_k.weight", (64, 64), 0)]))
        f = inspect_file(parts[1])
        assert f.split is not None and f.split["tensors_count"] == 9 and f.tensor_count == 8


@pytest.mark.parametrize(
    "kv",
    [
        {"llama.block_count": "2"},
        {"llama.attention.head_count": [[1, 2], [3]]},
        {"general.file_type": "Q4_0", "general.name": "\x1b]52;c;b3duZWQ=\x07evil"},
        {"llama.block_count": 100_000_000},
    ],
    ids=["block_count_str", "heads_nested", "ftype_str_and_osc_name", "block_count_huge"],
)
def test_cli_inspect_ls_fit_give_one_line(tmp_path, capsys, kv):
    models = tmp_path / "models"
    models.mkdir()
    path = models / "bad.gguf"
    path.write_bytes(raw_llama(kv))
    (models / "good.gguf").write_bytes(raw_llama())
    assert cli.main(["inspect", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "\x1b" not in out
    assert cli.main(["inspect", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(path)
    assert cli.main(["roots", "add", str(models)]) == 0
    capsys.readouterr()
    assert cli.main(["ls", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and {e["name"] for e in json.loads(out)} >= {"bad.gguf", "good.gguf"}
    rc = cli.main(["fit", str(path), "--vram", "8GiB", "--ram", "32GiB"])
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "unexpected" not in err and "Traceback" not in err
    assert rc in (0, 1) or (rc == 2 and len(err.strip().splitlines()) == 1)


def test_bad_header_bytes_struct_shapes(tmp_path):
    """Type ids and shapes from a mutated header: never a struct or overflow error."""
    data = bytearray(raw_llama())
    at = data.index(b"llama.block_count") + len(b"llama.block_count")
    for vtype in range(0, 14):
        struct.pack_into("<I", data, at, vtype)
        path = tmp_path / f"t{vtype}.gguf"
        path.write_bytes(bytes(data))
        _check(path)


def test_a_file_cut_after_the_header_is_one_line(tmp_path):
    path = tmp_path / "cut.gguf"
    path.write_bytes(raw_llama()[:2000])
    with pytest.raises(GGUFError) as e:
        inspect_file(path)
    assert "\n" not in str(e.value)


def test_fit_plain_output_cleans_the_path(tmp_path, capsys):
    path = tmp_path / "m\x1b]0;owned\x07\u202e.gguf"
    path.write_bytes(raw_llama())
    assert cli.main(["fit", str(path), "--vram", "8GiB", "--ram", "32GiB"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "\x1b" not in out and "\u202e" not in out
    assert out.splitlines()[0].endswith("m\\x1b]0;owned\\x07\\u202e.gguf")
    assert cli.main(["fit", str(tmp_path / "gone\x1b[2J.gguf")]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and err.count("\n") == 1 and "gone\\x1b[2J.gguf" in err
