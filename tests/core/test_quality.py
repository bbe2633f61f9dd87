"""eval, bench and advise on real models: tiny random ones for the mechanics, Gemma 3 270M for loss."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from quanttui.cli import quality as quality_cli
from quanttui.cli.errors import exit_code_of
from quanttui.core import llama
from quanttui.core.paths import models_dir
from quanttui.core.quality import cache
from quanttui.core.quality.bench import bench
from quanttui.core.quality.eval import evaluate
from quanttui.core.quality.host import ModelHost
from quanttui.core.quality.text import EvalText, QualityError
from tests.realmodel import real  # noqa: F401  (the session fixture)

PROSE = (
    "The river ran quietly past the mill, and the miller's daughter counted the sacks of grain as "
    "the carts came in from the fields. In the evening the lamps were lit along the bank. "
) * 6


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    quality_cli.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except quality_cli.QualityCliError as e:
        code = exit_code_of(e)  # as main() maps it
        print(f"quanttui: {e}", file=__import__("sys").stderr)
    out = capsys.readouterr()
    return code, out.out, out.err


def _text(tmp_path: Path, content: str = PROSE) -> EvalText:
    p = tmp_path / "prose.txt"
    p.write_text(content)
    return EvalText.load(p)


def _direct(path: Path, text: str, ctx: int, n_chunks: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """llama-perplexity's procedure from first principles with logits_all: per chunk, the float64
    log-probs at positions ctx/2 .. ctx-2 and the tokens they predict."""
    llm = llama.load(path, n_ctx=ctx, n_batch=ctx, logits_all=True, seed=1)
    tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
    rows, nexts = [], []
    for i in range(n_chunks):
        part = tokens[i * ctx : (i + 1) * ctx]
        part[0] = llm.token_bos()
        llm.reset()
        llm.eval(part)
        logits = np.array(llm.scores[ctx // 2 : ctx - 1], dtype=np.float64)
        m = logits.max(axis=1, keepdims=True)
        rows.append(logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))
        nexts.append(np.array(part[ctx // 2 + 1 :]))
    llm.close()
    return rows, nexts


def _exact(ref: list[np.ndarray], cand: list[np.ndarray], nexts: list[np.ndarray]) -> dict[str, float]:
    lp, lq, nx = np.concatenate(ref), np.concatenate(cand), np.concatenate(nexts)
    kld = (np.exp(lp) * (lp - lq)).sum(axis=1)
    at = np.arange(len(nx))
    nll, nll_ref = -lq[at, nx], -lp[at, nx]
    dp = np.exp(-nll) - np.exp(-nll_ref)
    return {
        "kld_mean": kld.mean(),
        "kld_median": np.median(kld),
        "kld_p99": np.percentile(kld, 99),
        "kld_max": kld.max(),
        "top1_agreement": (lp.argmax(axis=1) == lq.argmax(axis=1)).mean(),
        "ppl": np.exp(nll.mean()),
        "ppl_ratio": np.exp(nll.mean() - nll_ref.mean()),
        "p_diff_mean": dp.mean(),
        "p_diff_rms": np.sqrt((dp**2).mean()),
        "tokens_scored": len(nx),
    }


@pytest.mark.slow
def test_a_file_against_itself_loses_nothing(tiny):
    for path in (tiny.f16, tiny.quants["Q4_K_M"]):
        report = evaluate(str(path), [str(path)], ctx=64, chunks=2)
        (row,) = report.candidates
        assert row.error is None
        assert row.get("kld_mean") == 0.0 and row.get("kld_max") == 0.0
        assert row.get("top1_agreement") == 1.0
        assert row.get("ppl_ratio") == 1.0 and row.get("p_diff_rms") == 0.0
        assert row.get("tokens_scored") == 2 * 31  # positions 32..62 of each 64-token chunk


@pytest.mark.slow
def test_figures_equal_a_direct_numpy_computation_from_full_logits(tiny, tmp_path):
    text = _text(tmp_path)
    ctx, n = 64, 3
    cands = [tiny.quants[q] for q in ("Q8_0", "Q4_K_M", "Q2_K")]
    report = evaluate(str(tiny.f16), [str(c) for c in cands], text=text, ctx=ctx, chunks=n)
    ref, nexts = _direct(tiny.f16, text.content, ctx, n)
    assert report.chunks == n
    assert report.ref_ppl == pytest.approx(
        np.exp(-np.mean(np.concatenate([r[np.arange(len(x)), x] for r, x in zip(ref, nexts, strict=True)]))),
        rel=1e-6,
    )
    seen = []
    for path, row in zip(cands, report.candidates, strict=True):
        want = _exact(ref, _direct(path, text.content, ctx, n)[0], nexts)
        assert row.error is None
        assert row.get("tokens_scored") == want["tokens_scored"] == n * (ctx - 1 - ctx // 2)
        for name in (
            "kld_mean",
            "kld_median",
            "kld_p99",
            "kld_max",
            "top1_agreement",
            "p_diff_mean",
            "p_diff_rms",
        ):
            assert row.get(name) == pytest.approx(want[name], abs=1e-4), name
        for name in ("ppl", "ppl_ratio"):
            assert row.get(name) == pytest.approx(want[name], rel=1e-4), name
        seen.append(row.get("kld_mean"))
    assert seen[0] < seen[2]  # Q8_0 loses less than Q2_K even on random weights


@pytest.mark.slow
def test_second_run_comes_from_the_cache_and_a_changed_file_is_measured_again(tiny, tmp_path, monkeypatch):
    cand = shutil.copyfile(tiny.quants["Q2_K"], tmp_path / "c-Q2_K.gguf")
    first = evaluate(str(tiny.f16), [str(cand)], ctx=64, chunks=2)
    assert first.candidates[0].cached is False

    def refuse(self):
        raise AssertionError("a cached eval started the model process")

    with monkeypatch.context() as m:
        m.setattr(ModelHost, "_start", refuse)
        again = evaluate(str(tiny.f16), [str(cand)], ctx=64, chunks=2)
    assert again.candidates[0].cached is True
    assert again.candidates[0].figures == first.candidates[0].figures
    assert again.ref_ppl == pytest.approx(first.ref_ppl)
    assert [r["result"]["kld_mean"] for r in cache.measured_evals(cand)] == [
        first.candidates[0].get("kld_mean")
    ]
    # Records follow the content: a moved file (or a touched one) keeps its figures...
    moved = tmp_path / "moved" / "renamed.gguf"
    moved.parent.mkdir()
    os.rename(cand, moved)
    os.utime(moved, ns=(1, 1_000_000_000))
    with monkeypatch.context() as m:
        m.setattr(ModelHost, "_start", refuse)
        fourth = evaluate(str(tiny.f16), [str(moved)], ctx=64, chunks=2)
    assert fourth.candidates[0].cached and fourth.candidates[0].figures == first.candidates[0].figures
    rec = fourth.candidates[0].record
    assert rec.settings == {
        "reference": rec.settings["reference"],
        "text_sha256": rec.settings["text_sha256"],
        "ctx": 64,
        "chunks": 2,
    }
    assert rec.conditions["build"] and rec.conditions["threads"] >= 1 and "load_before" in rec.conditions
    # ...other content under its name is measured again, and `again` measures again in any case.
    shutil.copyfile(tiny.quants["Q4_K_M"], moved)
    assert cache.measured_evals(moved) == []
    third = evaluate(str(tiny.f16), [str(moved)], ctx=64, chunks=2)
    assert third.candidates[0].cached is False
    again = evaluate(str(tiny.f16), [str(moved)], ctx=64, chunks=2, again=True)
    assert again.candidates[0].cached is False
    assert again.candidates[0].record.measured_at > third.candidates[0].record.measured_at
    assert len(cache.measured_evals(moved)) == 1  # replaced, not added


@pytest.mark.slow
def test_a_damaged_cache_file_is_a_miss(tiny, tmp_path):
    evaluate(str(tiny.f16), [str(tiny.quants["Q8_0"])], ctx=64, chunks=1)
    for f in cache.folder("eval").glob("*.json"):
        f.write_text('{"method": 1, "result": {"kld_mean": "NaN-ish"}}')
    again = evaluate(str(tiny.f16), [str(tiny.quants["Q8_0"])], ctx=64, chunks=1)
    assert again.candidates[0].cached is False and isinstance(again.candidates[0].get("kld_mean"), float)


@pytest.mark.slow
def test_a_failed_model_is_an_error_row_and_the_others_go_on(tiny, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + os.urandom(200))
    missing = tmp_path / "missing.gguf"
    good = tiny.quants["Q8_0"]
    report = evaluate(str(tiny.f16), [str(junk), str(missing), str(good)], ctx=64, chunks=1)
    rows = report.candidates
    assert [r.model for r in rows] == [str(junk), str(missing), str(good)]
    assert rows[0].error and "junk.gguf" in rows[0].error and rows[0].get("kld_mean") is None
    assert rows[1].error and "missing.gguf" in rows[1].error
    assert rows[2].error is None and rows[2].get("kld_mean") > 0


def test_a_reference_that_cannot_load_is_one_error(tmp_path, tiny):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + os.urandom(200))
    with pytest.raises(QualityError, match="junk.gguf"):
        evaluate(str(junk), [str(tiny.f16)], ctx=64)


@pytest.mark.parametrize(
    ("ctx", "chunks", "message"),
    [
        (8, None, "--ctx 8 is too small: at least 16"),
        (4096, None, "more than the model's trained context (2048)"),
        (64, 0, "--chunks 0: at least 1"),
        (64, 10_000, "--chunks 10000: the text holds"),
    ],
)
def test_every_number_is_bounded_with_a_reason(tiny, tmp_path, capsys, ctx, chunks, message):
    (tmp_path / "t.txt").write_text(PROSE)
    argv = [
        "eval",
        str(tiny.f16),
        str(tiny.quants["Q8_0"]),
        "--text",
        str(tmp_path / "t.txt"),
        "--ctx",
        str(ctx),
    ]
    if chunks is not None:
        argv += ["--chunks", str(chunks)]
    code, out, err = _cli(capsys, *argv)
    assert code == 1 and out == ""
    assert message in err and err.count("\n") == 1


def test_texts_that_cannot_be_scored_are_refused(tiny, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("  \n")
    code, _, err = _cli(capsys, "eval", str(tiny.f16), str(tiny.f16), "--text", str(tmp_path / "empty.txt"))
    assert code == 1 and "is empty" in err
    code, _, err = _cli(capsys, "eval", str(tiny.f16), str(tiny.f16), "--text", str(tmp_path / "nope.txt"))
    assert code == 1 and "cannot read the text" in err
    (tmp_path / "short.txt").write_text("Too short.")
    code, _, err = _cli(capsys, "eval", str(tiny.f16), str(tiny.f16), "--text", str(tmp_path / "short.txt"))
    assert code == 1 and "shorter than one chunk of --ctx 512" in err


@pytest.mark.slow
def test_eval_json_shape(tiny, capsys):
    code, out, _ = _cli(
        capsys, "eval", str(tiny.f16), str(tiny.quants["Q2_K"]), "--ctx", "32", "--chunks", "2", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"reference", "text", "candidates"}
    assert set(data["reference"]) == {"model", "ppl", "ppl_se"}
    assert data["reference"]["model"] == str(tiny.f16)
    assert data["text"]["name"] == "default" and data["text"]["ctx"] == 32 and data["text"]["chunks"] == 2
    (row,) = data["candidates"]
    assert set(row) >= {
        "model",
        "kld_mean",
        "kld_median",
        "kld_p99",
        "kld_max",
        "top1_agreement",
        "ppl",
        "ppl_ratio",
        "tokens_scored",
        "seconds",
    }
    assert 0 <= row["top1_agreement"] <= 1 and row["tokens_scored"] == 2 * 15
    # llama-perplexity's "±" beside its figures, and when / under what it was measured
    assert row["kld_mean_se"] > 0 and row["top1_agreement_se"] >= 0 and row["ppl_ratio_se"] > 0
    assert row["cached"] is False and row["measured_at"] > 0 and row["conditions"]["build"]
    assert row["kld_median"] <= row["kld_p99"] <= row["kld_max"]


@pytest.mark.slow
def test_progress_reaches_the_end_and_cancel_stops_at_once(tiny, tmp_path):
    seen = []
    evaluate(
        str(tiny.f16),
        [str(tiny.quants["Q8_0"]), str(tiny.quants["Q2_K"])],
        ctx=64,
        chunks=3,
        on_progress=seen.append,
    )
    passes = [p for p in seen if p.stage != "loading"]
    assert [p.done for p in passes] == list(range(1, 10)) and {p.total for p in passes} == {9}
    assert passes[-1].eta_seconds == 0 and all(p.eta_seconds is not None for p in passes)

    fresh = [shutil.copyfile(tiny.quants[q], tmp_path / f"c-{q}.gguf") for q in ("Q8_0", "Q2_K")]
    before = cache.measured_evals(fresh[0])  # the same content as the run above: its records
    cancel = threading.Event()

    def stop_after_reference(p):
        if p.stage == "candidate":
            cancel.set()

    report = evaluate(
        str(tiny.f16),
        [str(p) for p in fresh],
        ctx=64,
        chunks=3,
        on_progress=stop_after_reference,
        cancel=cancel,
        again=True,
    )
    assert report.cancelled
    assert [r.error for r in report.candidates] == ["cancelled", "cancelled"]
    assert cache.measured_evals(fresh[0]) == before  # nothing half-measured is kept


@pytest.fixture
def idle_machine(monkeypatch):
    """Every bench counts as idle, whatever else this shared machine runs."""
    from quanttui.core.quality import records

    monkeypatch.setattr(records, "BUSY_OTHER_CORES", 1e9)
    monkeypatch.setattr(records, "BUSY_LOAD_MARGIN", 1e9)
    return records


@pytest.mark.slow
def test_bench_measures_and_caches_with_error_rows(tiny, tmp_path, capsys, idle_machine):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not gguf")
    code, out, _ = _cli(capsys, "bench", str(tiny.quants["Q8_0"]), str(junk), "--json")
    assert code == 1
    good, bad = json.loads(out)
    names = {"model", "load_seconds", "threads", "extra_buffers", "pp_stdev", "tg_stdev"}
    names |= {"pp_tokens_per_second", "tg_tokens_per_second", "measured_at", "cached", "busy", "conditions"}
    names |= {"tg_stddev", "pp_stddev", "noisy", "noisy_reason"}
    assert set(good) == names and good["tg_stddev"] == good["tg_stdev"] and isinstance(good["noisy"], bool)
    assert set(good) == names and isinstance(good["extra_buffers"], bool) and good["busy"] is False
    assert {"build", "load_before", "load_after", "cpu_percent", "other_cores", "device"} <= set(
        good["conditions"]
    )
    assert good["pp_stdev"] >= 0 and good["tg_stdev"] >= 0
    assert good["pp_tokens_per_second"] > 0 and good["tg_tokens_per_second"] > 0 and good["threads"] >= 1
    assert bad["model"] == str(junk) and "junk.gguf" in bad["error"] and bad["tg_tokens_per_second"] is None
    (again,) = bench([str(tiny.quants["Q8_0"])])
    assert again.cached and again.figures["tg_tokens_per_second"] == good["tg_tokens_per_second"]
    assert cache.measured_bench(tiny.quants["Q8_0"])["result"]["pp_tokens"] == 512
    (forced,) = bench([str(tiny.quants["Q8_0"])], reps=1, again=True)
    assert not forced.cached and forced.record.measured_at > again.record.measured_at
    assert cache.measured_bench(tiny.quants["Q8_0"])["result"]["reps"] == 1


@pytest.mark.slow
def test_a_busy_bench_is_kept_but_never_hides_an_idle_one(tiny, tmp_path, monkeypatch):
    from quanttui.core.quality import records

    model = str(tiny.quants["Q2_K"])
    monkeypatch.setattr(records, "BUSY_OTHER_CORES", -1.0)  # everything is busy
    (busy,) = bench([model], reps=1)
    assert busy.busy and busy.record.conditions["busy_reason"]
    (busy2,) = bench([model], reps=1)
    assert not busy2.cached  # a busy record is never a cache hit: the next bench measures again
    assert cache.measured_bench(model)["conditions"]["busy"] is True  # shown, as nothing idle exists
    monkeypatch.setattr(records, "BUSY_OTHER_CORES", 1e9)
    monkeypatch.setattr(records, "BUSY_LOAD_MARGIN", 1e9)
    (idle,) = bench([model], reps=1)
    assert not idle.busy and not idle.cached
    assert len(list(cache.folder("bench").glob("*.json"))) == 1  # the idle record replaced the busy one
    monkeypatch.setattr(records, "BUSY_OTHER_CORES", -1.0)
    (forced,) = bench([model], reps=1, again=True)
    assert forced.busy and forced.kept is not None  # measured again on a busy machine: the idle one stays
    assert cache.measured_bench(model)["conditions"]["busy"] is False


def _library(tiny) -> dict[str, Path]:
    folder = models_dir() / "tiny"
    folder.mkdir(parents=True)
    files = {"F16": shutil.copyfile(tiny.f16, folder / "tiny-F16.gguf")}
    for q in ("Q8_0", "Q4_K_M", "Q2_K"):
        files[q] = shutil.copyfile(tiny.quants[q], folder / f"tiny-{q}.gguf")
    return files


@pytest.mark.slow
def test_advise_picks_by_measured_kld_among_what_fits(tiny, capsys, idle_machine):
    files = _library(tiny)
    code, out, _ = _cli(capsys, "advise", str(files["Q2_K"]), "--vram", "24GiB", "--json")
    data = json.loads(out)
    assert code == 1 and data["recommended"] is None  # nothing measured: no pick
    assert "nothing measured" in data["reason"] and data["to_measure"].startswith("quanttui eval ")
    assert [q["quant"] for q in data["quants"]] == ["F16", "Q8_0", "Q4_K_M", "Q2_K"]
    assert all(q["measured"] is False and q["kld_mean"] is None for q in data["quants"])

    evaluate(str(files["Q8_0"]), [str(files["Q4_K_M"]), str(files["Q2_K"])], ctx=64, chunks=2)
    bench([str(files["Q4_K_M"])], reps=1)
    code, out, _ = _cli(capsys, "advise", "tiny-llama 3M", "--vram", "0", "--ram", "64GiB", "--json")
    data = json.loads(out)
    rows = {q["quant"]: q for q in data["quants"]}
    assert data["reference"] == os.path.realpath(files["Q8_0"])
    assert rows["Q8_0"]["reference"] and rows["Q8_0"]["kld_mean"] == 0.0
    assert rows["Q2_K"]["measured"] and rows["Q2_K"]["kld_mean"] > rows["Q4_K_M"]["kld_mean"] > 0
    assert rows["F16"]["measured"] is False and rows["F16"]["kld_mean"] is None
    # The reference (Q8_0, KLD 0 by definition) is the yardstick, not a pick; with no GPU the smallest
    # quant within the budget is (a budget both quants are within: the Q2_K, the smaller).
    budget = str(rows["Q2_K"]["kld_mean"] * 1.01)
    code, out, _ = _cli(
        capsys, "advise", "tiny-llama 3M", "--vram", "0", "--ram", "64GiB", "--json", "--max-kld", budget
    )
    data = json.loads(out)
    rows = {q["quant"]: q for q in data["quants"]}
    assert data["recommended"] == str(files["Q2_K"]) and "no GPU to plan for" in data["reason"]
    assert rows["Q4_K_M"]["eval"] == {
        "ctx": 64,
        "chunks": 2,
        "tokens": rows["Q4_K_M"]["eval"]["tokens"],
        "text_sha256": EvalText.load().sha256,
    }
    assert rows["Q4_K_M"]["eval"]["tokens"] > 128 and rows["Q4_K_M"]["kld_stderr"] > 0
    assert rows["Q4_K_M"]["tg_source"] == "measured" and rows["Q2_K"]["tg_source"] == "estimated"
    assert rows["Q4_K_M"]["bench"]["noisy"] is False and rows["Q4_K_M"]["bench"]["tg_stddev"] >= 0
    assert rows["Q2_K"]["tg_tokens_per_second"] > rows["Q4_K_M"]["tg_tokens_per_second"]  # smaller file
    budget = str(rows["Q4_K_M"]["kld_mean"] * 1.01)

    code, out, _ = _cli(capsys, "advise", "TINY llama", "--vram", "0", "--ram", "64GiB", "--max-kld", budget)
    assert code == 0 and "→ tiny-Q4_K_M.gguf" in out and "no GPU to plan for" in out  # loosely named
    assert "±" in out.split("recommended:")[1] and "±" in out.split("tiny-Q4_K_M.gguf")[1].splitlines()[0]
    assert "not measured" in out
    code, out, _ = _cli(capsys, "advise", str(files["Q2_K"]), "--vram", "0", "--ram", "1MiB", "--json")
    assert code == 1 and json.loads(out)["recommended"] is None


def test_advise_unknown_target_is_one_line(capsys):
    code, _, err = _cli(capsys, "advise", "no such model \x1b]0;x\x07")
    assert code == 1 and "no model file or group named" in err and "\x1b" not in err


@pytest.mark.slow
def test_real_model_ladder_orders_and_matches_full_vocabulary_kl(real, tmp_path):  # noqa: F811
    ctx, n = 128, 2
    cands = [real.quants[q] for q in ("Q8_0", "Q3_K_M", "Q2_K")]
    report = evaluate(str(real.f16), [str(c) for c in cands], ctx=ctx, chunks=n)
    kld = [r.get("kld_mean") for r in report.candidates]
    assert kld[0] < kld[1] < kld[2]
    top1 = [r.get("top1_agreement") for r in report.candidates]
    assert top1[0] > top1[2]
    # llama-perplexity's -16 cutoff against float64 KL over all 262,144 tokens: score.py's figure
    text = EvalText.load()
    ref, nexts = _direct(real.f16, text.content, ctx, n)
    for i in (0, 2):
        want = _exact(ref, _direct(cands[i], text.content, ctx, n)[0], nexts)
        row = report.candidates[i]
        assert row.get("top1_agreement") == want["top1_agreement"]
        assert row.get("ppl_ratio") == pytest.approx(want["ppl_ratio"], rel=1e-4)
        assert row.get("kld_mean") == pytest.approx(want["kld_mean"], rel=1e-3, abs=1e-4)


@pytest.mark.slow
def test_a_different_tokenizer_is_an_error_row(real, tiny):  # noqa: F811
    report = evaluate(str(real.f16), [str(tiny.f16), str(real.quants["Q8_0"])], ctx=64, chunks=1)
    assert "tokenizer differs" in report.candidates[0].error
    assert report.candidates[1].error is None


@pytest.mark.slow
def test_the_reference_kept_in_memory_bounds_the_chunks(tiny):
    memory = 8 * 256 * 31 * 2  # two 64-token chunks' scored positions at the fewest tokens kept
    with pytest.raises(QualityError, match="--chunks 3: at most 2 at --ctx 64"):
        evaluate(str(tiny.f16), [str(tiny.quants["Q8_0"])], ctx=64, chunks=3, memory=memory)
    report = evaluate(str(tiny.f16), [str(tiny.quants["Q8_0"])], ctx=64, memory=memory)
    assert report.chunks == 2 and report.candidates[0].get("tokens_scored") == 62


@pytest.mark.slow
def test_a_cancel_stops_a_bench_in_the_middle_of_a_model(tiny):
    cancel = threading.Event()
    models = [str(tiny.f16), str(tiny.quants["Q8_0"])]
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    rows = bench(models, reps=400, use_cache=False, cancel=cancel)  # hundreds of seconds uncancelled
    assert time.monotonic() - started < 30  # the cancel did not wait for the F16's 400 runs
    assert [r.error for r in rows] == ["cancelled", "cancelled"]
    assert cache.measured_bench(tiny.f16) is None


def _parsed(*argv: str):
    parser = argparse.ArgumentParser()
    quality_cli.add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.mark.parametrize("flag", ["--force", "--again"])
def test_force_and_its_alias_again_measure_again(flag):
    assert _parsed("eval", "a.gguf", "b.gguf", flag).again is True
    assert _parsed("bench", "a.gguf", flag).again is True
    assert _parsed("bench", "a.gguf").again is False


def test_bench_takes_llama_bench_options_and_passes_them_on(monkeypatch, capsys):
    seen = {}

    def fake(models, **kw):
        seen.update(kw, models=models)
        return []

    monkeypatch.setattr(quality_cli, "bench", fake)
    code, _, _ = _cli(capsys, "bench", "a.gguf", "-t", "1", "-r", "5", "-p", "64", "-n", "16", "--force")
    assert code == 0
    assert (seen["threads"], seen["reps"], seen["n_prompt"], seen["n_gen"], seen["again"]) == (
        1,
        5,
        64,
        16,
        True,
    )
    seen.clear()
    _cli(capsys, "bench", "a.gguf")
    assert seen["reps"] == 3 and seen["threads"] is None and "n_prompt" not in seen and not seen["again"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("-r", "0"), "-r 0: between 1 and 100 runs of each test"),
        (("-r", "101"), "-r 101: between 1 and 100"),
        (("-p", "0"), "-p 0: between 1 and 16384 prompt tokens"),
        (("-n", "100000"), "-n 100000: between 1 and 4096 generated tokens"),
        (("-t", "0"), "-t 0: between 1 and"),
        (("-t", "100000"), "(this machine's logical CPUs)"),
    ],
)
def test_every_bench_number_is_bounded_with_a_reason(capsys, monkeypatch, argv, message):
    monkeypatch.setattr(quality_cli, "bench", lambda *a, **k: pytest.fail("ran"))
    code, _, err = _cli(capsys, "bench", "a.gguf", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert quality_cli.QualityUsageError("x").exit_code == 2  # a usage error, as argparse's own


@pytest.mark.parametrize("value", ["0", "-1", "nan", "101"])
def test_the_quality_budget_is_bounded(capsys, value):
    code, _, err = _cli(capsys, "advise", "x", "--max-kld", value)
    assert code == 2 and f"--max-kld {float(value)}: above 0 and at most 100" in err
