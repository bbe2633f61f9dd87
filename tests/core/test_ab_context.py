"""What each side is given: independent completion prompts, a chat conversation that can be
measured and cleared, and a context length bounded by training and by memory."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from quanttui.core.ab import ABSession, GenConfig, Plan
from quanttui.core.ab.metrics import MAX_PERIOD, longest
from quanttui.core.ab.plan import MIN_CTX, ContextRefused, check_context
from quanttui.core.fit.devices import Device, Hardware
from tests.modelgen import SPECIALS, write_tiny_model

TOGETHER = Plan(False, {"a": 0, "b": 0}, "")
# 94 characters that come back as the same tokens from text (a space would come back as "▁").
PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))


def write_successor_model(path: Path, chars: str = PRINTABLE, **kw: Any) -> Path:
    """write_tiny_model's model made to answer `chars` in order, cycling, on any CPU's kernels: the
    token after a character of `chars` is the next one there, after any other token chars[0]. Its
    blocks add nothing to the residual stream, so a position's logits depend on its own token only,
    and the token picked leads the others by about 200 (a logit of 256 against dot products of random
    signs, spread 16): no kernel's rounding changes an answer, which never has EOS nor a loop shorter
    than len(chars). One block, unless `n_layer` says otherwise (4: as fast as the tiny models)."""
    path = write_tiny_model(path, **{"n_layer": 1, **kw})
    ids = [len(SPECIALS) + ord(c) for c in chars]  # byte tokens follow the specials
    reader = gguf.GGUFReader(path, "r+")
    w = {t.name: t.data for t in reader.tensors}
    embd, out = w["token_embd.weight"], w["output.weight"]
    signs = np.random.default_rng(0).choice([-1.0, 1.0], (len(ids), embd.shape[1] - 1))
    embd[:] = 0
    embd[:, 0] = 1  # every other token: one direction of its own, which leads to chars[0]
    embd[ids, 0], embd[ids, 1:] = 0, signs
    out[:] = 0
    for i, tok in enumerate(ids):
        out[ids[(i + 1) % len(ids)]] = embd[tok]
    out[ids[0], 0] = embd.shape[1] ** 0.5  # rms-normed, the other tokens' direction is 16 there
    for name, data in w.items():
        if name.endswith(("attn_output.weight", "ffn_down.weight")):
            data[:] = 0
    reader.data.flush()
    return path


def write_endless_model(path: Path, **kw: Any) -> Path:
    """write_tiny_model's model with EOS's row of the output layer zeroed: EOS's logit is exactly 0 on
    any CPU's kernels (in any quant), and the largest of 258 random others is above 0 but for a
    chance of 2**-258, so every answer runs to its max_tokens; the tiny model's own may end early."""
    path = write_tiny_model(path, **kw)
    reader = gguf.GGUFReader(path, "r+")
    next(t.data for t in reader.tensors if t.name == "output.weight")[SPECIALS.index("</s>")] = 0
    reader.data.flush()
    return path


def session(tiny, **cfg) -> ABSession:
    cfg = GenConfig(**{"max_tokens": 12, "n_ctx": 512, **cfg})
    return ABSession(str(tiny.quants["Q8_0"]), str(tiny.quants["Q2_K"]), cfg, TOGETHER, isolate=False)


def test_completion_prompts_are_independent_so_both_sides_get_the_same_input(tiny):
    s = session(tiny, mode="completion")
    s.ask("The first prompt")
    second = s.ask("The second prompt")
    assert second.a.prompt_ids == second.b.prompt_ids  # same tokenizer, same input
    fresh = session(tiny, mode="completion")
    alone = fresh.ask("The second prompt")
    assert second.a.prompt_ids == alone.a.prompt_ids
    assert (second.a.token_ids, second.b.token_ids) == (alone.a.token_ids, alone.b.token_ids)
    assert s.carried() == {"a": 0, "b": 0} and s.history == {"a": [], "b": []}
    s.close()
    fresh.close()


def test_continue_text_extends_each_sides_own_last_text(tiny):
    s = session(tiny, mode="completion")
    first = s.ask("Once upon")
    cont = s.ask(" and then", continue_text=True)
    fresh = session(tiny, mode="completion")
    for side in ("a", "b"):
        own = getattr(first, side).text
        ref = fresh.ask("Once upon" + own + " and then")
        assert getattr(cont, side).prompt_ids == getattr(ref, side).prompt_ids
        assert getattr(cont, side).token_ids == getattr(ref, side).token_ids
    s.close()
    fresh.close()


def test_chat_mode_carries_the_conversation_and_clearing_forgets_it(tiny):
    s = session(tiny, mode="chat")
    assert s.carried() == {"a": 0, "b": 0}
    t1 = s.ask("First question")
    assert s.carried() == {n: len(getattr(t1, n).prompt_ids) + len(getattr(t1, n).token_ids) for n in "ab"}
    t2 = s.ask("Second question")
    carried = s.carried()
    assert carried == {n: len(getattr(t2, n).prompt_ids) + len(getattr(t2, n).token_ids) for n in "ab"}
    assert all(carried[n] > len(getattr(t1, n).prompt_ids) for n in "ab")
    s.clear_history()
    assert s.carried() == {"a": 0, "b": 0} and s.history == {"a": [], "b": []}
    assert len(s.turns) == 2  # the record of the session stays
    t3 = s.ask("Third question")
    fresh = session(tiny, mode="chat")
    ref = fresh.ask("Third question")
    assert (t3.a.prompt_ids, t3.a.token_ids) == (ref.a.prompt_ids, ref.a.token_ids)
    again = s.regenerate()  # takes back only the third turn
    assert again.a.token_ids == t3.a.token_ids and len(s.history["a"]) == 2
    s.close()
    fresh.close()


def test_a_full_context_is_recovered_by_clearing_the_history(tiny):
    s = session(tiny, mode="chat", n_ctx=128, max_tokens=40)
    full = None
    for i in range(10):
        t = s.ask(f"Question number {i}, please answer at length.")
        if t.a.stop_reason == "context_full" and t.a.error:
            full = t
            break
    assert full is not None and "fills the context" in full.a.error
    s.clear_history()
    t = s.ask("A fresh start.")
    assert t.a.error is None and t.a.token_ids
    s.close()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "must be a whole number of tokens, not 'abc'"),
        ("12.5", "must be a whole number"),
        (2.0, "must be a whole number"),
        (True, "must be a whole number"),
        ("", "must be a whole number"),
        ("9" * 5000, "must be a whole number"),
        (0, "a context of 0 tokens is out of range (64 to 16,777,216)"),
        (-5, "out of range"),
        (MIN_CTX - 1, "out of range"),
        (999_999_999, "a context of 999,999,999 tokens is out of range"),
        ("4096", "4,096 is above the context A was trained for (2,048 tokens, tiny-Q8_0.gguf)"),
    ],
)
def test_a_context_is_refused_with_its_reason(tiny, value, reason):
    with pytest.raises(ContextRefused) as e:
        check_context(str(tiny.quants["Q8_0"]), str(tiny.quants["Q2_K"]), value)
    assert reason in str(e.value) and "\n" not in str(e.value)


def test_a_context_within_training_and_memory_is_accepted(tiny):
    a, b = str(tiny.quants["Q8_0"]), str(tiny.quants["Q2_K"])
    assert check_context(a, b, " 1024 ") == 1024
    assert check_context(a, b, 2048) == 2048  # the trained context itself


def test_a_context_that_does_not_fit_in_memory_is_refused_with_the_most_that_fits(tiny, tmp_path):
    long = str(write_tiny_model(tmp_path / "long-ctx.gguf", n_ctx=1 << 20))
    small = str(write_tiny_model(tmp_path / "small-long-ctx.gguf", n_ctx=1 << 20, n_layer=1))
    ram = Device("RAM", "ram", "cpu", 64 << 20, 64 << 20)
    hw = Hardware((), ram, "test")
    with pytest.raises(ContextRefused) as e:
        check_context(long, small, 1 << 20, hw)
    text = str(e.value)
    assert text.startswith("A (long-ctx.gguf) at a context of 1,048,576 tokens does not fit: RAM needs")
    most = int(text.rsplit("the most that fits is ", 1)[1].replace(",", ""))
    assert MIN_CTX <= most < 1 << 20 and most % 256 == 0
    assert check_context(long, small, most, hw) == most  # what it names is accepted
    with pytest.raises(ContextRefused):
        check_context(long, small, most + 256, hw)


def test_an_unreadable_side_leaves_the_bounds_to_the_other(tiny, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 10)
    assert check_context(str(bad), str(tiny.quants["Q2_K"]), 1024) == 1024
    with pytest.raises(ContextRefused, match="B was trained for"):
        check_context(str(bad), str(tiny.quants["Q2_K"]), 4096)


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "worker"])
@pytest.mark.slow
def test_stop_loops_stops_the_looping_side_now_and_keeps_the_turn(tiny, tmp_path, isolate):
    looper = write_tiny_model(tmp_path / "looper-F16.gguf", output_scale=0.0)
    steady = write_successor_model(tmp_path / "steady-F16.gguf")  # no EOS, no loop: B always goes on
    cfg = GenConfig(max_tokens=1500, n_ctx=2048, mode="completion")
    s = ABSession(str(looper), str(steady), cfg, TOGETHER, isolate=isolate)
    stop = threading.Event()

    def on_token(side: str, ids: list[int], text: str) -> None:
        if side == "a" and len(ids) >= 40:  # A has been repeating one token since its first
            stop.set()

    turn = s.ask("Once upon a time", on_token, stop_loops=stop, scoring=False)  # scores: not tested here
    assert turn.a.stop_reason == "loop" and 40 <= len(turn.a.token_ids) < 1500
    assert len(set(turn.a.token_ids)) == 1
    assert turn.b.stop_reason == "max_tokens" and len(turn.b.token_ids) == 1500  # B went on
    assert turn.b.text.startswith("fghij")  # B cycles through 94 characters: reported, not stopped
    assert longest(turn.b.token_ids).period == len(PRINTABLE)
    assert len(s.turns) == 1  # kept, unlike a cancelled turn
    again = s.ask("Once upon a time", on_token, scoring=False)  # stopping loops is not carried over
    assert again.a.stop_reason == "max_tokens"
    s.close()


def test_the_successor_model_answers_its_characters_in_order(tmp_path):
    path = write_successor_model(tmp_path / "steps.gguf", "abcdefghijklmnopqrstuvwxyz")
    cfg = GenConfig(mode="completion", max_tokens=60, n_ctx=512)
    s = ABSession(str(path), str(path), cfg, TOGETHER, isolate=False)
    after_c, after_other = s.ask("abc", scoring=False), s.ask("ABC", scoring=False)
    s.close()
    assert after_c.a.text == ("defghijklmnopqrstuvwxyzabc" * 3)[:60] and after_c.a.stop_reason == "max_tokens"
    assert after_other.a.text == ("abcdefghijklmnopqrstuvwxyz" * 3)[:60]
    assert len(PRINTABLE) > MAX_PERIOD  # cycling through these is no loop that stops a side
