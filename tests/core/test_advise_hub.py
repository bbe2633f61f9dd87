"""`advise hf:OWNER/REPO` against the loopback Hub: sizes and fit from remote headers (range reads),
quality only as the quant type's typical figure from llama.cpp's published table, never as measured."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from quanttui.core.modelfile import inspect_file
from quanttui.core.quality import typical
from tests.conftest import REPO
from tests.core.test_quality import _cli
from tests.hubserver import Faults, HubRepo
from tests.modelgen import quantize

LADDER = "someone/Ladder-GGUF"
README = Path("/tmp/llama-cpp-python-src/vendor/llama.cpp/tools/perplexity/README.md")




@pytest.fixture(scope="module")
def f32(tiny, tmp_path_factory) -> Path:
    """An F32 file: a type llama.cpp's scoreboard does not list."""
    return quantize(tiny.f16, tmp_path_factory.mktemp("f32") / "tiny-F32.gguf", "F32")


@pytest.fixture
def ladder(hub, tiny, f32) -> HubRepo:
    """A second repo on the loopback Hub: F32 (no typical figure), Q8_0, Q4_K_M, Q2_K, IQ4_XS (imatrix)."""
    files = {f"ladder-{q}.gguf": tiny.quants[q] for q in ("Q8_0", "Q4_K_M", "Q2_K", "IQ4_XS")}
    repo = HubRepo(LADDER, files | {"ladder-F32.gguf": f32})
    hub.repos[LADDER] = repo
    return repo


def _advise(capsys, target: str, *more: str) -> tuple[int, dict]:
    code, out, err = _cli(capsys, "advise", target, "--json", *more)
    assert err == ""
    return code, json.loads(out)


def test_json_sizes_and_fit_from_headers_quality_typical_never_measured(hub, tiny, capsys):
    code, data = _advise(capsys, f"hf:{REPO}", "--vram", "24GiB", "--ram", "64GiB")
    assert code == 0 and data["group"] == f"hf:{REPO}" and data["reference"] is None and data["eval"] is None
    assert data["hub"]["repo"] == REPO and data["hub"]["revision"] == hub.repos[REPO].sha
    src = data["hub"]["typical_source"]
    assert src["file"] == "tools/perplexity/README.md" and src["model"] == "LLaMA 3 8B"
    assert "MIT" in src["license"] and src["text"] == "Wikitext-2 test set"
    rows = {q["quant"]: q for q in data["quants"]}
    assert set(rows) == {"Q8_0", "Q4_K_M", "Q2_K", "IQ4_XS", "tiny-split"}
    for q in data["quants"]:
        assert q["measured"] is False and q["reference"] is False
        assert q["kld_mean"] is None and q["top1_agreement"] is None and q["ppl_ratio"] is None
        assert q["tg_tokens_per_second"] is None and q["fit"]["verdict_code"] == "gpu"
        assert q["typical"]["measured"] is False and q["typical"]["model"] == "LLaMA 3 8B"
        assert "tools/perplexity/README.md" in q["typical"]["source"]
    for label in ("Q8_0", "Q4_K_M", "Q2_K", "IQ4_XS"):
        local = inspect_file(tiny.quants[label])
        assert rows[label]["size_bytes"] == tiny.quants[label].stat().st_size
        assert rows[label]["bpw"] == pytest.approx(local.bpw)
        assert rows[label]["model"] == f"hf:{REPO}/tiny-{label}.gguf"
    split = rows["tiny-split"]
    assert split["size_bytes"] == sum(p.stat().st_size for p in tiny.split_parts)
    assert split["typical"]["quant_type"] == "F16"  # the header's file type, not the name
    # The scoreboard's own figures: Q4_K_M without an imatrix, IQ4_XS with the Wikitext 10m one.
    assert (rows["Q4_K_M"]["typical"]["kld_mean"], rows["Q4_K_M"]["typical"]["imatrix"]) == (0.031273, None)
    assert rows["Q4_K_M"]["typical"]["delta_ppl"] == 0.175482
    assert rows["Q4_K_M"]["typical"]["ppl_ratio"] == pytest.approx(1.028160, abs=1e-6)  # the README's ratio
    iq4 = rows["IQ4_XS"]["typical"]
    assert (iq4["kld_mean"], iq4["imatrix"]) == (0.036334, "WT 10m")
    assert rows["Q8_0"]["typical"]["ppl_ratio"] == pytest.approx(1.000425, abs=1e-6)
    # Everything fits fully: the lowest typical KLD wins (the F16 split set's is the downcast alone).
    assert data["recommended"] == split["model"]
    assert "typical, not measured" in data["reason"] and "measured KLD" not in data["reason"]


def test_no_whole_file_is_downloaded(hub, ladder, f32, capsys):
    code, data = _advise(capsys, f"hf:{LADDER}", "--vram", "24GiB", "--ram", "64GiB")
    assert code == 0 and len(data["quants"]) == 5
    gets = [r for r in hub.requests if "/resolve/" in r["path"] and r["method"] == "GET"]
    assert gets and all(r["range"] and r["range"].startswith("bytes=") for r in gets)
    assert hub.bytes_sent("/ladder-F32.gguf") < f32.stat().st_size // 4


def test_unknown_quant_type_has_no_typical_figure(hub, ladder, capsys):
    code, data = _advise(capsys, f"hf:{LADDER}", "--vram", "24GiB", "--ram", "64GiB")
    rows = {q["quant"]: q for q in data["quants"]}
    assert rows["F32"]["typical"] is None and rows["F32"]["measured"] is False
    assert rows["F32"]["fit"]["fully_on_gpu"] and rows["F32"]["bpw"] > rows["Q8_0"]["bpw"]
    assert all(rows[q]["typical"]["kld_mean"] > 0 for q in ("Q8_0", "Q4_K_M", "Q2_K", "IQ4_XS"))
    # A known typical KLD beats an unknown one with more bits per weight.
    assert data["recommended"] == f"hf:{LADDER}/ladder-Q8_0.gguf"
    code, out, _ = _cli(capsys, "advise", f"hf:{LADDER}", "--vram", "24GiB", "--ram", "64GiB")
    line = next(x for x in out.splitlines() if "ladder-F32.gguf" in x)
    assert "not listed" in line and "(typical)" not in line


def test_table_marks_each_figure_typical_and_names_the_source(hub, ladder, capsys):
    code, out, err = _cli(capsys, "advise", f"hf:{LADDER}", "--vram", "24GiB", "--ram", "64GiB")
    assert code == 0 and err == ""
    lines = out.splitlines()
    row = {q: next(x for x in lines if f"ladder-{q}.gguf" in x) for q in ("Q8_0", "Q4_K_M", "Q2_K", "IQ4_XS")}
    assert "~0.0014 (typical)" in row["Q8_0"] and "~1.000 (typical)" in row["Q8_0"]
    assert "~0.0313 (typical)" in row["Q4_K_M"] and "~1.028 (typical)" in row["Q4_K_M"]
    assert "~0.4451 (typical)" in row["Q2_K"] and "~0.0363 (typical)" in row["IQ4_XS"]
    assert row["Q8_0"].startswith("  → ")
    assert "quality: not measured" in lines[1]
    foot = lines[-1]
    assert foot.startswith("¹ typical for the quant type, not measured on this model")
    assert "llama.cpp tools/perplexity/README.md" in foot and "LLaMA 3 8B" in foot and "MIT" in foot
    pick = next(x for x in lines if x.startswith("recommended:"))
    assert "ladder-Q8_0.gguf" in pick and "typical, not measured" in pick


def _kib(n: int) -> str:
    return f"{n}KiB"


def test_pick_follows_the_rule_as_vram_varies(hub, ladder, capsys):
    """Sweep --vram across the window where the quants stop fitting; at every step the pick is the
    lowest typical KLD among those fully on the GPU, else among those with the most layers there."""

    def at(kib: int) -> dict:
        return _advise(capsys, f"hf:{LADDER}", "--vram", _kib(kib), "--ram", "64GiB")[1]

    def bisect(ok, lo: int, hi: int) -> int:  # the least MiB for which ok() holds, in KiB
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(at(mid << 10)) else (mid + 1, hi)
        return lo << 10

    first = bisect(lambda d: any(q["fit"]["gpu_layers"] for q in d["quants"]), 0, 24 << 10)
    last = bisect(lambda d: all(q["fit"]["fully_on_gpu"] for q in d["quants"]), first >> 10, 24 << 10)
    assert first < last
    seen: set[tuple[str, str]] = set()
    for kib in [first - 1024, *range(first - 1024, last + 1, 256), last]:
        d = at(kib)
        fits = [q for q in d["quants"] if q["fit"]["verdict_code"] != "no_fit"]
        full = [q for q in fits if q["fit"]["fully_on_gpu"]]
        most = max(q["fit"]["gpu_layers"] for q in fits)
        pool = full or [q for q in fits if q["fit"]["gpu_layers"] == most]
        known = [q for q in pool if q["typical"] is not None]
        best = min(known, key=lambda q: q["typical"]["kld_mean"])
        assert d["recommended"] == best["model"], (kib, d["reason"])
        assert "typical, not measured" in d["reason"]
        case = "full" if full else "layers" if most else "ram"
        assert {"full": "fit fully on the GPU", "layers": "the most layers on the GPU", "ram": "none fits"}[
            case
        ] in d["reason"]
        seen.add((case, best["quant"]))
    assert {("full", "Q8_0"), ("full", "Q4_K_M"), ("full", "Q2_K"), ("ram", "Q8_0")} <= seen
    assert any(case == "layers" for case, _ in seen)

    code, d = _advise(capsys, f"hf:{LADDER}", "--vram", "0", "--ram", "1MiB")
    assert code == 1 and d["recommended"] is None and "none of the quants fits" in d["reason"]


def test_an_unreachable_hub_is_one_line(monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    code, out, err = _cli(capsys, "advise", f"hf:{REPO}", "--vram", "24GiB")
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "cannot reach the Hub" in err and "Traceback" not in err


def test_hostile_names_are_refused_or_shown_cleaned(hub, ladder, tiny, capsys):
    evil = "ladder-\u202eQ4_K_M\x1b]0;pwn\x07.gguf"
    ladder.raw_siblings = [
        {"rfilename": "../../\x1b[31mescape-Q2_K.gguf", "size": 10},
        {"rfilename": evil, "size": 10},
    ]
    bidi = "ladder-\u202eIQ4_XS.gguf"  # listed as a real file the Hub would serve
    ladder.files[bidi] = tiny.quants["IQ4_XS"]
    code, out, err = _cli(capsys, "advise", f"hf:{LADDER}", "--vram", "24GiB", "--ram", "64GiB")
    assert code == 0 and err == ""
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", out)
    skipped = [x for x in out.splitlines() if x.startswith("  skipped: ")]
    assert len(skipped) == 3 and any("\\x1b]0;pwn\\x07" in x for x in skipped)
    assert any("ladder-\\u202eIQ4_XS.gguf" in x for x in skipped)
    assert "ladder-Q8_0.gguf" in out.split("recommended: ")[1]  # the rest of the repo is advised as usual
    code, data = _advise(capsys, f"hf:{LADDER}", "--vram", "24GiB", "--ram", "64GiB")
    assert {r["name"] for r in data["hub"]["refused"]} == {"../../\x1b[31mescape-Q2_K.gguf", evil, bidi}
    assert len(data["quants"]) == 5 and not any(bidi in q["model"] for q in data["quants"])

    code, out, err = _cli(capsys, "advise", "hf:../\x1b]0;x\x07/repo")
    assert code == 1 and "\x1b" not in err and err.count("\n") == 1


def test_one_unreadable_header_is_one_error_row(hub, ladder, capsys):
    hub.faults = Faults(status=500, only="ladder-Q8_0.gguf")
    code, data = _advise(capsys, f"hf:{LADDER}", "--vram", "24GiB", "--ram", "64GiB")
    rows = {q["quant"]: q for q in data["quants"]}
    assert "HTTP 500" in rows["Q8_0"]["error"] and rows["Q8_0"]["fit"] is None
    assert rows["Q8_0"]["typical"]["kld_mean"] == 0.001355  # the type is still known from the name
    assert all(rows[q]["fit"]["fully_on_gpu"] for q in ("Q4_K_M", "Q2_K", "IQ4_XS", "F32"))
    assert code == 0 and data["recommended"] == f"hf:{LADDER}/ladder-Q4_K_M.gguf"
    code, out, _ = _cli(capsys, "advise", f"hf:{LADDER}", "--vram", "24GiB", "--ram", "64GiB")
    assert re.search(r"ladder-Q8_0\.gguf .*error: .*HTTP 500", out)


def test_typical_table_is_the_readme_scoreboard_verbatim():
    """Every shipped row equals llama.cpp's README row (when the sdist's copy is at hand)."""
    if not README.is_file():
        pytest.skip("the llama-cpp-python sdist is not unpacked here")
    section = README.read_text(encoding="utf-8").split("## LLaMA 3 8b Scoreboard", 1)[1].split("\n## ", 1)[0]
    found = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and re.fullmatch(r"[a-zA-Z0-9_]+", cells[0]) and cells[0] != "Quantization":
            found.append(cells)
    shipped = typical.table()["rows"]
    assert len(found) == len(shipped) == 46

    def num(cell: str) -> float:
        return float(cell.split("±")[0].replace("%", ""))

    for cells, row in zip(found, shipped, strict=True):
        assert row["quant"] == cells[0].upper()
        assert row["imatrix"] == (None if cells[1] == "None" else cells[1])
        figures = [row["size_gib"], row["ppl"], row["delta_ppl"], row["kld_mean"]]
        assert figures == [num(c) for c in cells[2:6]]
        assert [row["mean_dp_percent"], row["rms_dp_percent"]] == [num(c) for c in cells[6:]]
    assert typical.typical_for("BF16") is None and typical.typical_for(None) is None
    assert typical.typical_for("q4_k_m", imatrix=True)["imatrix"] == "WT 10m"
