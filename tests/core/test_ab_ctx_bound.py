"""`quanttui ab --ctx` is bounded as the A/B screen's /ctx is: by both models' trained context and by
what fits in memory, refused in one line with both numbers before either model loads."""

from __future__ import annotations

import json

import pytest

from quanttui.cli import ab as ab_cli
from quanttui.cli.main import main
from quanttui.core.ab import context
from quanttui.core.ab.context import SideFacts, default_ctx, side_facts
from quanttui.core.fit.devices import Device, Hardware
from tests.modelgen import write_tiny_model


@pytest.fixture
def no_load(monkeypatch):
    """Any model load from here on fails the test: a refusal comes before either model loads."""

    def refused(*a, **kw):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(ab_cli, "ABSession", refused)


def _ab(a, b, *args: str) -> list[str]:
    return ["ab", str(a), str(b), "--prompt", "hi", "--mode", "completion", "--max-tokens", "4", *args]


@pytest.mark.parametrize(
    ("ctx", "said"),
    [
        (
            "4096",
            "--ctx refused: 4,096 is above the context A was trained for (2,048 tokens, tiny-Q8_0.gguf)",
        ),
        ("999999999", "--ctx refused: a context of 999,999,999 tokens is out of range (64 to 16,777,216)"),
        ("16", "--ctx refused: a context of 16 tokens is out of range (64 to 16,777,216)"),
    ],
)
def test_a_context_past_training_or_the_types_bound_is_refused_before_loading(
    tiny, no_load, capsys, ctx, said
):
    assert main(_ab(tiny.quants["Q8_0"], tiny.quants["Q2_K"], "--ctx", ctx)) == 2
    err = capsys.readouterr().err
    assert err == f"quanttui: {said}\n"


def test_the_side_trained_for_less_is_the_one_named(tiny, tmp_path, no_load, capsys):
    short = write_tiny_model(tmp_path / "short.gguf", n_ctx=1024)
    assert main(_ab(tiny.quants["Q8_0"], short, "--ctx", "2048")) == 2
    assert capsys.readouterr().err == (
        "quanttui: --ctx refused: 2,048 is above the context B was trained for (1,024 tokens, short.gguf)\n"
    )


def test_a_context_that_does_not_fit_in_memory_is_refused_with_the_most_that_fits(
    tmp_path, monkeypatch, no_load, capsys
):
    long = write_tiny_model(tmp_path / "long-ctx.gguf", n_ctx=1 << 20)
    ram = Device("RAM", "ram", "cpu", 64 << 20, 64 << 20)  # 64 MiB: far less than 1M tokens of KV cache
    monkeypatch.setattr("quanttui.core.ab.plan.hardware", lambda: Hardware((), ram, "test"))
    assert main(_ab(long, long, "--ctx", str(1 << 20))) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "quanttui: --ctx refused: A (long-ctx.gguf) at a context of 1,048,576 tokens does not fit: RAM needs"
    )
    most = int(err.rsplit("the most that fits is ", 1)[1].replace(",", ""))
    assert 64 <= most < 1 << 20 and err.count("\n") == 1


def test_a_context_within_both_bounds_is_used(tiny, capsys):
    assert main([*_ab(tiny.quants["Q8_0"], tiny.quants["Q2_K"], "--ctx", "1024"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["a"]["error"] is None and out["b"]["error"] is None and 1 <= len(out["a"]["token_ids"]) <= 4


def test_without_ctx_the_pair_gets_the_default_or_what_it_was_trained_for(tiny, tmp_path, monkeypatch):
    asked: list[int] = []

    class Session:  # what the command would load, recorded instead
        def __init__(self, a, b, cfg, **kw):
            asked.append(cfg.n_ctx)
            raise ab_cli.AbCliError("stop here")

    monkeypatch.setattr(ab_cli, "ABSession", Session)
    long = write_tiny_model(tmp_path / "long.gguf", n_ctx=8192)
    assert main(_ab(long, long)) == 1
    assert main(_ab(long, tiny.quants["Q8_0"])) == 1
    assert asked == [ab_cli.DEFAULT_CTX, 2048]


def test_the_default_context_is_the_least_of_the_default_and_both_trainings(tiny, tmp_path):
    assert default_ctx({"a": SideFacts("a", 512, True), "b": SideFacts("b", None, None)}, 4096) == 512
    assert default_ctx({"a": SideFacts("a", 8192, True), "b": SideFacts("b", None, None)}, 4096) == 4096
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 10)
    assert side_facts(str(bad)) == SideFacts("broken.gguf", None, None)
    assert side_facts(str(tiny.quants["Q8_0"])) == SideFacts("tiny-Q8_0.gguf", 2048, True)
    assert context.default_mode({"a": side_facts(str(tiny.quants["Q8_0"])), "b": side_facts(str(bad))}) == (
        "completion"
    )
