"""Measurement records (issue 19): content identity, busy benches, one settings set per comparison,
llama-perplexity's "±", and advise's pick. No model is loaded here except where a test says so."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from quanttui.core.quality import records
from quanttui.core.quality.advise import QuantRow, _matches, advise_rows
from quanttui.core.quality.records import LoadSample, Measurement
from quanttui.core.quality.score import Stats, mean_se


def _file(path: Path, size: int = 3 << 20, seed: int = 0) -> Path:
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


# ---------------------------------------------------------------- content identity


def test_a_moved_hard_linked_or_copied_file_keeps_its_identity(tmp_path):
    a = _file(tmp_path / "a.gguf")
    cid = records.content_id(a)
    assert cid.startswith("c1:3145728:")
    (tmp_path / "sub").mkdir()
    os.link(a, tmp_path / "sub" / "link.gguf")
    assert records.content_id(tmp_path / "sub" / "link.gguf") == cid
    copy = shutil.copyfile(a, tmp_path / "copy.gguf")
    assert records.content_id(copy) == cid
    moved = tmp_path / "sub" / "moved.gguf"
    os.rename(a, moved)
    assert records.content_id(moved) == cid


def test_a_changed_byte_in_a_sampled_block_or_the_header_changes_the_identity(tmp_path):
    a = _file(tmp_path / "a.gguf")
    cid = records.content_id(a)
    for offset in (10, (3 << 20) - 5):
        b = shutil.copyfile(a, tmp_path / f"b{offset}.gguf")
        with open(b, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 1]))
        assert records.content_id(b) != cid
    assert records.content_id(_file(tmp_path / "c.gguf", seed=1)) != cid


def test_an_unreadable_file_is_left_out(tmp_path):
    assert records.content_ids([str(tmp_path / "nope.gguf")]) == {}
    with pytest.raises(OSError):
        records.content_id(tmp_path / "nope.gguf")


def test_the_identity_is_remembered_so_a_second_look_reads_nothing(tmp_path, monkeypatch):
    a = _file(tmp_path / "a.gguf")
    cid = records.content_id(a)

    def refuse(*a, **k):
        raise AssertionError("read again")

    monkeypatch.setattr(records, "_sample", refuse)
    assert records.content_id(a) == cid
    records._ids = None  # a new process: read from the file under the cache dir
    assert records.content_id(a) == cid


# ---------------------------------------------------------------- busy rule


def _sample(load: float | None, busy: float, total: float, at: float) -> LoadSample:
    return LoadSample(load, busy, total, at)


def test_a_bench_is_busy_when_others_used_the_cores_or_the_load_was_high():
    before = _sample(0.3, 100.0, 1000.0, 0.0)
    # 10 s, the bench's own 20 CPU s on 2 threads; system busy 21 s: others 0.1 core -> idle
    idle = records.busy_verdict(before, _sample(2.1, 121.0, 1020.0, 10.0), 20.0, 2)
    assert idle["busy"] is False and idle["busy_reason"] is None and idle["other_cores"] == 0.1
    # another job compiled: system busy 35 s in the same 10 s -> others 1.5 cores
    busy = records.busy_verdict(before, _sample(3.9, 135.0, 1020.0, 10.0), 20.0, 2)
    assert busy["busy"] is True and "1.5 cores" in busy["busy_reason"]
    # a run queue before it started
    queued = records.busy_verdict(
        _sample(3.75, 100.0, 1000.0, 0.0), _sample(3.0, 120.0, 1020.0, 10.0), 20.0, 2
    )
    assert queued["busy"] is True and "load average 3.75" in queued["busy_reason"]
    assert queued["load_before"] == 3.75 and queued["cpu_percent"] == 100.0


def _bench(content: str, tg: float, *, busy: bool, at: float, device: str = "cpu") -> Measurement:
    cond = {"busy": busy, "busy_reason": "x" if busy else None, "device": device, "threads": 2}
    return Measurement("bench", content, "/m", {}, {"tg_tokens_per_second": tg, "tg_stdev": 0.1}, at, cond)


def test_a_busy_record_is_never_shown_where_an_idle_one_exists():
    idle = _bench("c", 24.3, busy=False, at=1.0)
    busy = _bench("c", 5.8, busy=True, at=2.0)
    assert records.shown_bench([busy, idle]) is idle
    assert records.shown_bench([busy]) is busy
    assert records.shown_bench([busy, idle], device="gpu") is None
    assert idle.uncertainty == {"tg_tokens_per_second": 0.1}
    assert "BUSY" in busy.describe() and "2 threads" in idle.describe()


# ---------------------------------------------------------------- eval settings sets


def _eval(content: str, kld: float, ctx: int, chunks: int, at: float, ref: str = "REF") -> Measurement:
    s = {"reference": ref, "text_sha256": "t", "ctx": ctx, "chunks": chunks}
    return Measurement("eval", content, "/m", s, {"kld_mean": kld, "kld_mean_se": 0.01}, at, {})


def test_a_view_never_mixes_settings():
    ids = {"/f16": "REF", "/q3": "Q3", "/q2": "Q2", "/copy": "REF"}
    recs = {
        "Q3": [_eval("Q3", 1.0721, 256, 2, 1.0), _eval("Q3", 0.6120, 512, 5, 3.0)],
        "Q2": [_eval("Q2", 1.7412, 256, 2, 2.0)],
    }
    paths = list(ids)
    view = records.eval_view(paths, ids=ids, records=recs)  # the set covering most files
    assert view.settings["ctx"] == 256
    assert {p: m.values["kld_mean"] for p, m in view.rows.items()} == {"/q3": 1.0721, "/q2": 1.7412}
    assert view.reference_paths == ["/f16", "/copy"]
    assert [o["settings"]["ctx"] for o in view.others] == [512]
    chosen = records.eval_view(paths, view.others[0]["settings"], ids=ids, records=recs)
    assert {p: m.values["kld_mean"] for p, m in chosen.rows.items()} == {"/q3": 0.6120}
    recs["Q2"].append(_eval("Q2", 1.3418, 512, 5, 4.0))  # now both sets cover two: the newest wins
    view = records.eval_view(paths, ids=ids, records=recs)
    assert view.settings["ctx"] == 512 and view.rows["/q2"].values["kld_mean"] == 1.3418


def test_library_cells_find_figures_by_content_not_path(tmp_path):
    a = _file(tmp_path / "m-Q2_K.gguf")
    ref = _file(tmp_path / "m-F16.gguf", seed=2)
    cid, rid = records.content_id(a), records.content_id(ref)
    m = _eval(cid, 1.5, 512, 5, time.time(), ref=rid)
    records.store("eval", "k1", m)
    records.store("bench", "b1", _bench(cid, 24.3, busy=False, at=1.0))
    records.store("bench", "b2", _bench(cid, 5.8, busy=True, at=2.0))
    moved = tmp_path / "elsewhere.gguf"
    os.rename(a, moved)
    twin = shutil.copyfile(ref, tmp_path / "f16-copy.gguf")
    cells, views = records.library_cells({"g": [str(moved), str(ref), str(twin)]})
    assert cells[str(moved)].kld == 1.5 and cells[str(moved)].tg == 24.3
    assert cells[str(ref)].is_reference and cells[str(twin)].is_reference and cells[str(twin)].kld == 0.0
    assert views["g"].settings["ctx"] == 512


# ---------------------------------------------------------------- llama-perplexity's ±


def test_uncertainties_are_perplexity_cpp_s():
    rng = np.random.default_rng(0)
    n = 500
    nll_ref = rng.gamma(2.0, 1.0, n)
    nll = nll_ref + rng.normal(0.1, 0.3, n)
    kld = rng.gamma(0.5, 0.2, n)
    same = rng.random(n) < 0.8
    u = Stats(kld, same, nll, nll_ref).summary()

    def se(x):  # mean_and_uncertainty: sqrt((E[x²] - E[x]²) / (n - 1))
        return np.sqrt(((x * x).mean() - x.mean() ** 2) / (n - 1))

    assert u["kld_mean_se"] == pytest.approx(se(kld))
    assert u["kld_mean_se"] == pytest.approx(kld.std(ddof=1) / np.sqrt(n))  # the usual standard error
    assert u["ppl_se"] == pytest.approx(np.exp(nll.mean()) * se(nll))
    cov = ((nll * nll_ref).mean() - nll.mean() * nll_ref.mean()) / (n - 1)
    ln_se = np.sqrt(se(nll) ** 2 + se(nll_ref) ** 2 - 2 * cov)
    assert u["ln_ppl_ratio_se"] == pytest.approx(ln_se)
    assert u["ppl_ratio_se"] == pytest.approx(np.exp(nll.mean() - nll_ref.mean()) * ln_se)
    p = same.mean()
    assert u["top1_agreement_se"] == pytest.approx(np.sqrt(p * (1 - p) / (n - 1)))
    dp = np.exp(-nll) - np.exp(-nll_ref)
    assert u["p_diff_mean_se"] == pytest.approx(se(dp))
    assert u["p_diff_rms_se"] == pytest.approx(0.5 / np.sqrt((dp**2).mean()) * se(dp**2))
    assert mean_se(np.ones(10)) == 0.0 and mean_se(np.arange(10.0)) == 0.0  # n <= 10: 0, as there


# ---------------------------------------------------------------- advise


def _fit(gpu: bool) -> dict:
    return {
        "verdict": "fits on GPU" if gpu else "fits in RAM",
        "verdict_code": "gpu" if gpu else "cpu",
        "fully_on_gpu": gpu,
        "gpu_layers": 19 if gpu else 0,
        "layers": 19,
    }


def _ladder(tmp_path: Path, gpu: bool = False) -> tuple[list[QuantRow], dict[str, Path]]:
    files = {
        "F16": _file(tmp_path / "m-F16.gguf", 4 << 20, 1),
        "Q8_0": _file(tmp_path / "m-Q8_0.gguf", 3 << 20, 2),
        "Q2_K": _file(tmp_path / "m-Q2_K.gguf", 2 << 20, 3),
    }
    files["copy"] = shutil.copyfile(files["F16"], tmp_path / "f16-copy.gguf")
    bpw = {"F16": 16.0, "copy": 16.0, "Q8_0": 8.5, "Q2_K": 3.0}
    rows = [QuantRow(str(p), q, p.stat().st_size, bpw[q], fit=_fit(gpu)) for q, p in files.items()]
    return rows, files


def test_with_nothing_measured_nothing_is_recommended_and_the_eval_is_named(tmp_path):
    rows, files = _ladder(tmp_path)
    a = advise_rows("m", rows, 4096)
    assert a.recommended is None and "nothing measured" in a.reason
    assert a.to_measure.startswith(f"quanttui eval {files['F16']} ")
    assert str(files["Q8_0"]) in a.to_measure and str(files["Q2_K"]) in a.to_measure
    assert str(files["copy"]) not in a.to_measure  # a copy of the reference has nothing to measure


def test_a_byte_identical_copy_of_the_reference_is_never_the_pick(tmp_path):
    rows, files = _ladder(tmp_path)
    rid = records.content_id(files["F16"])
    for q, kld in (("copy", 0.0), ("Q8_0", 0.0147), ("Q2_K", 1.747)):
        records.store("eval", f"k{q}", _eval(records.content_id(files[q]), kld, 512, 5, 1.0, ref=rid))
    a = advise_rows("m", rows, 4096)
    by = {Path(r.model).name: r for r in a.rows}
    assert by["f16-copy.gguf"].is_reference and by["m-F16.gguf"].is_reference
    assert a.recommended == str(files["Q8_0"]) and "0.0147 ± 0.0100" in a.reason


def test_speed_is_shown_only_for_the_device_it_was_measured_on(tmp_path):
    rows, files = _ladder(tmp_path, gpu=True)  # e.g. advise --vram 8GiB on a CPU-only machine
    records.store("bench", "b", _bench(records.content_id(files["Q8_0"]), 24.3, busy=False, at=1.0))
    a = advise_rows("m", rows, 4096)
    q8 = next(r for r in a.rows if r.model == str(files["Q8_0"]))
    assert q8.tg is None and "measured on cpu" in q8.tg_note
    assert all(r.tg is None for r in a.rows)  # no estimate from a CPU figure either
    rows, files = _ladder(tmp_path / "cpu" if (tmp_path / "cpu").mkdir() is None else tmp_path)
    records.store("bench", "b", _bench(records.content_id(files["Q8_0"]), 24.3, busy=False, at=1.0))
    records.store("bench", "c", _bench(records.content_id(files["Q2_K"]), 5.8, busy=True, at=2.0))
    a = advise_rows("m", rows, 4096)
    by = {Path(r.model).name: r for r in a.rows}
    assert by["m-Q8_0.gguf"].tg == 24.3 and by["m-Q8_0.gguf"].tg_source == "measured"
    assert by["m-Q2_K.gguf"].tg == 5.8 and by["m-Q2_K.gguf"].tg_busy  # shown, marked: no idle one
    # the estimate for the F16 comes from the idle Q8_0, never from the busy Q2_K
    assert by["m-F16.gguf"].tg_source == "estimated"
    assert by["m-F16.gguf"].tg == pytest.approx(24.3 * (3 << 20) / (4 << 20))


@pytest.mark.parametrize(
    ("target", "hit"),
    [("gemma", True), ("GEMMA-3", True), ("gemma 270m", True), ("270M gemma", True), ("llama", False)],
)
def test_model_names_match_loosely(target, hit):
    assert _matches(target, "gemma-3 270M", "gemma3:gemma-3-270m", ["gemma-3-270m-F16.gguf"]) is hit


# ---------------------------------------------------------------- the quality budget (--max-kld)


def _budget_ladder(tmp_path: Path, klds: dict[str, tuple[float, float]], gpu: dict[str, bool]):
    """A reference and quants of decreasing size, each measured at (KLD, ±), fitting per `gpu`."""
    ref = _file(tmp_path / "m-F16.gguf", 6 << 20, 9)
    rid = records.content_id(ref)
    rows = [QuantRow(str(ref), "F16", ref.stat().st_size, 16.0, fit=_fit(gpu.get("F16", False)))]
    paths = {"F16": ref}
    for n, (q, (kld, se)) in enumerate(klds.items()):
        p = _file(tmp_path / f"m-{q}.gguf", (5 - n) << 20, 10 + n)
        paths[q] = p
        s = {"reference": rid, "text_sha256": "t", "ctx": 512, "chunks": 5}
        cond = {"tokens": 2834, "text": "default"}
        m = Measurement(
            "eval", records.content_id(p), str(p), s, {"kld_mean": kld, "kld_mean_se": se}, 1.0, cond
        )
        records.store("eval", f"e{q}", m)
        rows.append(QuantRow(str(p), q, p.stat().st_size, 8.5 - n, fit=_fit(gpu.get(q, False))))
    return rows, paths


LADDER = {"Q8_0": (0.0150, 0.0004), "Q6_K": (0.0300, 0.0010), "Q4_K_M": (0.0480, 0.0010), "Q2_K": (0.9, 0.01)}


def test_without_a_gpu_the_smallest_quant_within_the_budget_is_the_pick(tmp_path):
    rows, paths = _budget_ladder(tmp_path, LADDER, {})
    a = advise_rows("m", rows, 4096)
    assert a.recommended == str(paths["Q4_K_M"])  # Q2_K is smaller but over KLD 0.05
    assert "smallest, so fastest, of 3 quants within the budget (KLD ≤ 0.05)" in a.reason
    assert "0.0480 ± 0.0010" in a.reason and "no GPU to plan for" in a.reason and "\n" not in a.reason
    a = advise_rows("m", rows, 4096, max_kld=0.02)
    assert a.recommended == str(paths["Q8_0"])
    a = advise_rows("m", rows, 4096, max_kld=1.0)
    assert a.recommended == str(paths["Q2_K"])


def test_with_a_gpu_the_lowest_kld_fully_on_it_within_the_budget_is_the_pick(tmp_path):
    on_gpu = {"Q6_K": True, "Q4_K_M": True, "Q2_K": True}  # the Q8_0 does not fit fully
    rows, paths = _budget_ladder(tmp_path, LADDER, on_gpu)
    a = advise_rows("m", rows, 4096)
    assert a.recommended == str(paths["Q6_K"])
    assert a.reason.startswith("lowest measured KLD, 0.0300 ± 0.0010, of 2 quants fully on the GPU")
    rows, paths = _budget_ladder(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path, LADDER, {})
    for r in rows:  # the Q8_0 only partly on the GPU: the rest within the budget are not "on the GPU"
        r.fit = {**_fit(False), "verdict_code": "partial", "gpu_layers": 10}
    a = advise_rows("m", rows, 4096)
    assert a.recommended == str(paths["Q4_K_M"]) and "none within it fits fully on the GPU" in a.reason


def test_quants_alike_within_their_uncertainty_give_the_smallest(tmp_path):
    alike = {"Q8_0": (0.0200, 0.0030), "Q6_K": (0.0230, 0.0030), "Q4_K_M": (0.0480, 0.0010)}
    rows, paths = _budget_ladder(tmp_path, alike, dict.fromkeys(alike, True))
    a = advise_rows("m", rows, 4096)
    assert a.recommended == str(paths["Q6_K"])  # 0.0230 - 0.0200 < hypot(0.003, 0.003)
    assert "smallest of 2 quants whose KLDs are alike within their ±" in a.reason


def test_over_the_budget_nothing_is_picked_and_the_reason_says_how_to_allow_it(tmp_path):
    rows, _ = _budget_ladder(tmp_path, {"Q3_K_M": (1.0792, 0.02), "Q2_K": (1.6959, 0.03)}, {})
    a = advise_rows("m", rows, 4096)
    assert a.recommended is None and "within the quality budget (KLD ≤ 0.05)" in a.reason
    assert "the lowest is Q3_K_M, 1.0792 ± 0.0200: --max-kld 1.0792 would allow it" in a.reason
    assert advise_rows("m", rows, 4096, max_kld=1.0792).recommended is not None


def test_json_entries_carry_their_eval_settings_and_bench_record(tmp_path):
    rows, paths = _budget_ladder(tmp_path, LADDER, {})
    q8 = records.content_id(paths["Q8_0"])
    records.store("bench", "b8", _bench(q8, 24.3, busy=False, at=1234.0))
    noisy = _bench(records.content_id(paths["Q6_K"]), 20.0, busy=False, at=5.0)
    noisy.values["tg_stdev"] = 4.0
    records.store("bench", "b6", noisy)
    d = advise_rows("m", rows, 4096).to_dict()
    assert d["max_kld"] == 0.05
    by = {q["quant"]: q for q in d["quants"]}
    want = {"ctx": 512, "chunks": 5, "tokens": 2834, "text_sha256": "t"}
    assert by["Q8_0"]["eval"] == want and by["F16"]["eval"] == want  # the reference: its set's
    assert by["Q8_0"]["kld_stderr"] == 0.0004 and by["F16"]["kld_stderr"] is None
    b = by["Q8_0"]["bench"]
    assert (b["measured_at"], b["noisy"], b["tg_stddev"]) == (1234.0, False, 0.1)
    assert by["Q6_K"]["bench"]["noisy"] is True and "20%" in by["Q6_K"]["bench"]["noisy_reason"]
    assert by["Q2_K"]["bench"]["source"] == "estimated"  # scaled from a measured sibling by size
