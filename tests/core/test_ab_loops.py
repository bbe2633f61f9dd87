"""Loops at any length (issue 19 item 4): repeated spans of any period up to half the answer, from
two whole repeats for long periods (three for short ones), found in O(n log n), and the longest one
reported with its period and repeats in the CLI's JSON, the session's Markdown and the pane."""

from __future__ import annotations

import json
import random

from quanttui.cli.main import main
from quanttui.core.ab.metrics import LONG_PERIOD, Loop, longest, longest_loop, loop_at_end, loops, runs
from quanttui.core.ab.side import SideResult
from quanttui.core.paths import data_dir
from quanttui.tui.widgets.chat_pane import meters
from tests.realmodel import real  # noqa: F401  (the session fixture)


def brute_runs(ids: list[int]) -> set[tuple[int, int, int]]:
    """Every maximal run of every period, checked position by position (O(n^2))."""
    n, out = len(ids), set()
    for p in range(1, n // 2 + 1):
        run = 0
        for i in range(p, n + 1):
            if i < n and ids[i] == ids[i - p]:
                run += 1
                continue
            need = 2 * p if p > LONG_PERIOD else max(3 * p, 6)
            if run + p >= need:
                out.add((i - run - p, i, p))
            run = 0
    return out


def test_runs_are_exactly_the_brute_force_ones():
    rng = random.Random(7)
    for _ in range(600):
        n = rng.randint(0, 90)
        ids = [rng.randrange(rng.choice([1, 2, 3, 6])) for _ in range(n)]
        if n > 6 and rng.random() < 0.6:  # a block said several times in the middle
            block = [rng.randrange(9) for _ in range(rng.randint(1, 35))]
            ids = ids[: n // 3] + block * rng.randint(2, 4) + ids[n // 3 :]
        assert {(lp.start, lp.end, lp.period) for lp in runs(ids)} == brute_runs(ids), ids


def test_a_long_passage_said_twice_is_a_loop_and_a_short_one_needs_three():
    passage = list(range(100, 140))  # 40 tokens, a period over LONG_PERIOD
    ids = [1, 2, 3] + passage * 2 + [9]
    assert longest(ids) == Loop(3, 83, 40)
    assert longest(ids).repeats == 2 and longest(ids).describe() == "80 tokens (40 × 2)"
    short = list(range(10, 20))  # 10 tokens: twice is not yet a loop, three times is
    assert longest_loop([0, *short * 2, 0]) == 0
    lp = longest([0, *short * 3, 0])
    assert (lp.start, lp.end, lp.period, lp.repeats) == (1, 31, 10, 3)
    assert longest_loop([7] * 6) == 6 and longest_loop([7] * 5) == 0
    # a part repeat at the end belongs to the span, not to the whole repeats
    lp = longest(passage * 3 + passage[:25])
    assert (lp.length, lp.period, lp.repeats) == (145, 40, 3)


def test_any_period_up_to_half_the_answer():
    rng = random.Random(3)
    for period in (17, 65, 200, 512):
        block = rng.sample(range(100_000), period)
        ids = rng.sample(range(200_000, 300_000), 30) + block * 2
        lp = longest(ids)
        assert (lp.start, lp.end, lp.period) == (30, 30 + 2 * period, period)
    assert longest_loop(list(range(50)) + list(range(50))[:49]) == 0  # not two whole repeats


def test_overlapping_spans_keep_the_longest_and_the_shortest_period():
    ids = [5, 6] + [1, 2, 3] * 4 + [9]
    (lp,) = loops(ids)
    assert (lp.start, lp.end, lp.period) == (2, 14, 3)  # not the 6-period run over the same span
    a, b = list(range(20, 40)), list(range(60, 63))
    found = loops(a * 2 + [0] + b * 5)
    assert [(x.period, x.repeats) for x in found] == [(20, 2), (3, 5)]


def test_stopping_still_wants_a_tight_cycle():
    assert loop_at_end([4] * 40) and not loop_at_end(list(range(40)))
    assert not loop_at_end(list(range(100)) * 4)  # a long passage said four times is reported, not stopped
    assert loop_at_end([0] + list(range(8)) * 5)


def test_the_pane_and_the_result_name_period_and_repeats():
    ids = list(range(100, 150)) * 2
    r = SideResult("a", "m.gguf", text="x" * len(ids), token_ids=ids, stop_reason="max_tokens")
    d = r.to_dict()
    assert (d["longest_loop"], d["loop_period"], d["loop_repeats"]) == (100, 50, 2)
    assert "longest loop 100 tokens (50 × 2)" in meters(r)
    plain = SideResult("b", "m.gguf", token_ids=list(range(30)))
    assert plain.to_dict()["loop_period"] is None and "longest loop 0 ·" in meters(plain)


def test_gemma_f16_repeating_a_paragraph_shows_its_loop(real, capsys):  # noqa: F811
    """Gemma 3 270M F16, greedy, says the same paragraph over and over after "The capital of France
    is": the old detector (periods up to 64, three repeats) showed "longest loop 0"."""
    a, b = str(real.f16), str(real.quants["Q2_K"])
    args = ["ab", a, b, "--prompt", "The capital of France is", "--mode", "completion"]
    assert main([*args, "--max-tokens", "256", "--ctx", "1024", "--json", "--save"]) == 0
    d = json.loads(capsys.readouterr().out)["a"]
    ids, period, repeats = d["token_ids"], d["loop_period"], d["loop_repeats"]
    assert period is not None and LONG_PERIOD < period <= 128 and repeats >= 3, d["text"]
    assert d["longest_loop"] >= 3 * period and d["longest_loop"] >= len(ids) // 2
    lp = longest(ids)
    assert ids[lp.start : lp.start + period] == ids[lp.start + period : lp.start + 2 * period]
    (saved,) = (data_dir() / "sessions").glob("*.md")
    assert f"longest loop {d['longest_loop']} tokens ({period} × {repeats})" in saved.read_text()
