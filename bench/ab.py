"""A/B figures (issue 5), side by side in one run on the same two models and settings:

- A/B wall time against each model alone (goal on a GPU where both fit: <= 1.15x the slower one;
  on CPU the two sides share the cores, so the ratio is reported);
- tokens/s through the A/B engine, and through the engine inside the running TUI, against raw
  llama-cpp-python greedy generation (goal: >= 95%).
- the cost of rendering chat templates as untrusted code (sandbox, bounds, the cancel/time watch)
  against llama-cpp-python's own formatter, on a tool-calling ChatML template (`--templates`).
- cross-scoring after an answer on the real Gemma 3 270M (262k vocabulary), Q8_0 against Q2_K,
  256 tokens in completion mode: scoring seconds against generation seconds (goal <= 50%), and
  the scoring it replaced (float64 log-softmax of every row) as the baseline, on the same turn
  (`--score`; the models are built once into --models, by default a folder under the temp dir).
- the same in a four-turn chat, turn by turn: scoring that resumes from the earlier turns against
  scoring the whole conversation again, on the same turns (`--score --chat`; the model has no chat
  template, so the engine joins the turns as plain text: the conversation grows as a chat's does).
- A/B wall time with OpenMP's threads spinning against waiting passively, as the worker process
  gets them unless the user set OMP_WAIT_POLICY (`--omp`, real model).
Run: python bench/ab.py [--tokens 128] [--gpu [--shape 7b]] | --templates | --score [--tokens 256] [--chat]
  | --omp
The A/B pair runs in the worker process the app uses, so the IPC per token is in the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quanttui.core.ab import ABSession, GenConfig, Plan  # noqa: E402
from quanttui.core.ab.metrics import first_divergence  # noqa: E402
from quanttui.core.ab.side import Side  # noqa: E402
from quanttui.core.llama import LlamaLogCapture, lib  # noqa: E402
from quanttui.core.llama.lib import chat_format_module  # noqa: E402
from tests.modelgen import quantize, write_tiny_model  # noqa: E402

PROMPT = "Tell me about quantization."  # both CPU-shape quants run to 128 tokens on it (no early end)
NGL = 0  # GPU layers for every model in the run; --gpu sets -1 (all)


SHAPES = {  # llama-like shapes with random weights; 7b writes a 13 GiB F16 file first
    "cpu": dict(n_layer=8, n_embd=1024, n_ff=2816, n_head=16, n_head_kv=4),
    "0.7b": dict(n_layer=16, n_embd=2048, n_ff=5632, n_head=16, n_head_kv=4),
    "3b": dict(n_layer=26, n_embd=3072, n_ff=8192, n_head=24, n_head_kv=8),
    "7b": dict(n_layer=32, n_embd=4096, n_ff=11008, n_head=32, n_head_kv=8),
}


def _raw_generate(llm: object, n: int, out: list[float]) -> None:
    prompt = llm.tokenize(PROMPT.encode(), add_bos=True)  # type: ignore[attr-defined]
    llm.reset()  # type: ignore[attr-defined]
    stamps = []
    for _ in llm.generate(prompt, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):  # type: ignore[attr-defined]
        stamps.append(time.perf_counter())
        if len(stamps) >= n:
            break
    out.append((len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0)


def _raw_llama(path: Path) -> object:
    LlamaLogCapture.install()
    with contextlib.redirect_stderr(io.StringIO()):
        return lib().Llama(model_path=str(path), n_ctx=1024, n_gpu_layers=NGL, verbose=True, seed=1)


def raw_tokens_per_second(path: Path, n: int) -> float:
    """Plain llama-cpp-python: greedy generate, same timing rule as the engine (first to last token)."""
    llm = _raw_llama(path)
    out: list[float] = []
    _raw_generate(llm, n, out)
    llm.close()  # type: ignore[attr-defined]
    return out[0]


def raw_pair_tokens_per_second(a: Path, b: Path, n: int) -> float:
    """Plain llama-cpp-python with both models decoding in two threads: A's tokens/s."""
    llms = [_raw_llama(a), _raw_llama(b)]
    outs: list[list[float]] = [[], []]
    threads = [
        threading.Thread(target=_raw_generate, args=(llm, n, o)) for llm, o in zip(llms, outs, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for llm in llms:
        llm.close()  # type: ignore[attr-defined]
    return outs[0][0]


def engine_alone(path: Path, cfg: GenConfig) -> tuple[float, float]:
    side = Side("a", str(path), cfg, NGL)
    t = time.perf_counter()
    r = side.generate([{"role": "user", "content": PROMPT}], cfg, None, threading.Event())
    wall = time.perf_counter() - t
    side.close()
    return wall, r.tokens_per_second


def ab_wall(a: Path, b: Path, cfg: GenConfig) -> tuple[float, float, list[int]]:
    """Wall time of both sides at once, A's tokens/s meanwhile, and the token counts."""
    s = ABSession(str(a), str(b), cfg, Plan(False, {"a": NGL, "b": NGL}, ""))
    t = time.perf_counter()
    r = s.engine.run({n: [{"role": "user", "content": PROMPT}] for n in ("a", "b")})
    wall = time.perf_counter() - t
    s.close()
    return wall, r["a"].tokens_per_second, [len(r["a"].token_ids), len(r["b"].token_ids)]


def ui_tokens_per_second(a: Path, b: Path, cfg: GenConfig, gpu: bool = False) -> tuple[float, float]:
    """Tokens/s of side A while the TUI's A/B screen streams both sides (measured by the engine), and
    the CPU the UI process used meanwhile, in milliseconds a second; on the detected GPUs with `gpu`."""
    from quanttui.core.fit import hardware
    from quanttui.tui.app import create_app
    from quanttui.tui.screens.ab import ABScreen

    async def go() -> tuple[float, float]:
        app = create_app([], hardware() if gpu else hardware("0", "32GiB"))
        async with app.run_test(size=(160, 48)) as pilot:
            screen = ABScreen(str(a), str(b), cfg)
            await app.push_screen(screen)
            while screen.session is None:
                await pilot.pause(0.05)
            samples = [(time.perf_counter(), time.process_time())]
            screen.ask(PROMPT)
            # asyncio.sleep, not pilot.pause: a pause waits for the app to go idle and cost the UI
            # process 0.8 s of CPU in 3.5 s on its own, which a person's terminal never spends.
            while screen.running:
                await asyncio.sleep(0.05)
                samples.append((time.perf_counter(), time.process_time()))
            turn = screen.session.turns[-1]
            streamed = samples[0][0] + max(turn.a.seconds, turn.b.seconds)  # then scoring, no frames
            end = max((s for s in samples if s[0] <= streamed), default=samples[-1])
            cpu = (end[1] - samples[0][1]) / max(end[0] - samples[0][0], 1e-9) * 1000
            return turn.a.tokens_per_second, cpu

    return asyncio.run(go())


TOOL_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n{{ messages[0].content if messages[0].role == 'system' else '' }}"
    "\n# Tools\n<tools>{% for t in tools %}\n{{ t|tojson }}{% endfor %}</tools><|im_end|>\n"
    "{%- elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n"
    "{%- endif %}{%- for m in messages %}{%- if m.role != 'system' %}"
    "{{- '<|im_start|>' + m.role + '\n' + m.content | trim + '<|im_end|>\n' }}"
    "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)


def template_figures(turns: int = 20, repeat: int = 200) -> None:
    """Median time to make one prompt of 2*turns+1 messages: quanttui's renderer (first prompt,
    and later ones with the template compiled) against llama-cpp-python's Jinja2ChatFormatter
    built per prompt, as the engine used it before (the baseline)."""
    Jinja2ChatFormatter = chat_format_module().Jinja2ChatFormatter

    from quanttui.core.ab.template import _compiled, render_chat

    msgs = [{"role": "system", "content": "Be brief."}]
    for i in range(turns):
        msgs += [{"role": "user", "content": f"question {i} " * 20}]
        msgs += [{"role": "assistant", "content": "ok " * 50}]

    def timed(fn: object) -> float:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    def first() -> None:
        _compiled.cache_clear()
        render_chat(TOOL_TEMPLATE, msgs, bos="", eos="<|im_end|>")

    cold = timed(first)
    ours = timed(lambda: render_chat(TOOL_TEMPLATE, msgs, bos="", eos="<|im_end|>"))
    base = timed(lambda: Jinja2ChatFormatter(TOOL_TEMPLATE, "<|im_end|>", "")(messages=msgs))
    assert render_chat(TOOL_TEMPLATE, msgs, bos="", eos="<|im_end|>")[0] == (
        Jinja2ChatFormatter(TOOL_TEMPLATE, "<|im_end|>", "")(messages=msgs).prompt
    )
    print(f"chat template, {len(msgs)} messages, median of {repeat} prompts:")
    print(f"llama-cpp-python formatter (compiled per prompt) {base * 1000:8.3f} ms")
    print(f"quanttui, first prompt (compile, watched)       {cold * 1000:8.3f} ms   ratio {cold / base:.2f}x")
    print(f"quanttui, next prompts (compiled once, watched) {ours * 1000:8.3f} ms   ratio {ours / base:.2f}x")


SCORE_PROMPT = "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg"


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def _baseline_logprobs(llm: Any, tokens: list[int], start: int, rows: int = 64) -> Iterator[np.ndarray]:
    """The scoring this replaced, kept as the baseline: every position's logits asked for, the
    scored rows turned into float64 log-probabilities, `rows` at a time."""
    n_vocab, first = llm.n_vocab(), max(start - 1, 0)
    llm.reset()
    llm._ctx.kv_cache_seq_rm(-1, 0, -1)
    try:
        for i in range(0, len(tokens) - 1, llm.n_batch):
            batch = list(tokens[i : min(len(tokens) - 1, i + llm.n_batch)])
            llm._batch.set_batch(batch=batch, n_past=i, logits_all=True)
            llm._ctx.decode(llm._batch)
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(batch), n_vocab))
            for lo in range(max(first - i, 0), len(batch), rows):
                yield _log_softmax(logits[lo : lo + rows].astype(np.float64))
    finally:
        llm.reset()


def baseline_cross_score(session: ABSession, turn: Any) -> dict[str, list[float]]:
    """The baseline's KL(side || other) per position, both ways, one model after the other."""
    out = {}
    for side, other in (("a", "b"), ("b", "a")):
        r = getattr(turn, side)
        seq, start = r.prompt_ids + r.token_ids, len(r.prompt_ids)
        mine = _baseline_logprobs(session.engine.side(side).llm, seq, start)
        theirs = _baseline_logprobs(session.engine.side(other).llm, seq, start)
        kld = [(np.exp(p) * (p - q)).sum(axis=1) for p, q in zip(mine, theirs, strict=True)]
        out[side] = [max(0.0, float(v)) for part in kld for v in part]
    return out


def score_figures(folder: Path, tokens: int, repeat: int, labels: tuple[str, str]) -> None:
    """Generation, cross-scoring and the baseline scoring of one A/B turn on the real model, side by
    side, all in this process (the app runs the same engine in its worker process)."""
    from tests.realmodel import build

    models = build(folder, labels)
    a, b = (models.quants[label] for label in labels)
    cfg = GenConfig(mode="completion", max_tokens=tokens, n_ctx=1024)
    rows: dict[str, list[float]] = {"gen": [], "score": [], "apart": [], "base": [], "busy": []}
    for _ in range(repeat):
        s = ABSession(str(a), str(b), cfg, Plan(False, {"a": NGL, "b": NGL}, ""), isolate=False)
        t = time.perf_counter()
        turn = s.ask(SCORE_PROMPT, scoring=False)
        rows["gen"].append(time.perf_counter() - t)
        heard: list[tuple[int, int]] = []
        t, cpu = time.perf_counter(), time.process_time()
        s.score(turn, on_progress=lambda done, total, heard=heard: heard.append((done, total)))
        rows["score"].append(time.perf_counter() - t)
        rows["busy"].append((time.process_time() - cpu) / rows["score"][-1])
        kept = (turn.scores_a, turn.scores_b)
        s.engine.share = False  # the second answer decoded whole, as if nothing were in common
        t = time.perf_counter()
        s.score(turn)
        rows["apart"].append(time.perf_counter() - t)
        s.engine.share = True
        assert (turn.scores_a.kld, turn.scores_b.kld) == (kept[0].kld, kept[1].kld)
        turn.scores_a, turn.scores_b = kept
        t = time.perf_counter()
        base = baseline_cross_score(s, turn)
        rows["base"].append(time.perf_counter() - t)
        s.close()
        off = max(
            float(np.max(np.abs(np.subtract(sc.kld, base[n]))))
            for n, sc in (("a", turn.scores_a), ("b", turn.scores_b))
        )
        print(
            f"  run: generation {rows['gen'][-1]:6.2f} s, scoring {rows['score'][-1]:6.2f} s, "
            f"baseline {rows['base'][-1]:6.2f} s; KLD A||B {turn.scores_a.kld_mean:.4f}, "
            f"B||A {turn.scores_b.kld_mean:.4f}, top-1 {turn.scores_a.top1_agreement:.1%}; "
            f"largest difference from the baseline {off:.1e}; {len(heard)} progress reports"
        )
    m = {k: statistics.median(v) for k, v in rows.items()}
    counts = (len(turn.a.token_ids), len(turn.b.token_ids))
    where = f"CPU, {os.cpu_count()} cores"
    print(f"Gemma 3 270M (262k vocabulary), {labels[0]} vs {labels[1]}, completion mode, {where}")
    print(f"tokens generated: A {counts[0]}, B {counts[1]}; medians of {repeat}")
    gen, base, now = m["gen"], m["base"], m["score"]
    print(f"generation (both sides at once)  {gen:7.2f} s")
    print(f"baseline scoring (before)        {base:7.2f} s   ratio {base / gen:.0%} of generation")
    print(f"cross-scoring (now)              {now:7.2f} s   ratio {now / gen:.0%} of generation (goal: 50%)")
    apart = m["apart"]
    shared = first_divergence(turn.a.token_ids, turn.b.token_ids)
    print(
        f"  answers alike for {counts[0] if shared is None else shared} tokens; B's answer decoded whole "
        f"instead: {apart:.2f} s, ratio {apart / gen:.0%}"
    )
    print(f"cross-scoring against the baseline: {now / base:.0%} of its time ({base / now:.1f}x faster)")
    print(f"cores busy while cross-scoring: {m['busy']:.2f} of {os.cpu_count()}")


CHAT_QUESTIONS = (
    "Tell me about the printing press.",
    "Who was Gutenberg?",
    "What came after the press?",
    "Summarize all that in detail.",
)


def chat_score_figures(folder: Path, tokens: int, labels: tuple[str, str]) -> None:
    """A chat of four turns: per turn, generation, scoring that resumes from the earlier turns
    (now), and scoring from the start of the conversation (before), both on the same turn and
    checked equal position by position."""
    from quanttui.core.ab.kept import KeptPrefixes
    from tests.realmodel import build

    models = build(folder, labels)
    a, b = (models.quants[label] for label in labels)
    cfg = GenConfig(mode="chat", max_tokens=tokens, n_ctx=4096)
    s = ABSession(str(a), str(b), cfg, Plan(False, {"a": 0, "b": 0}, ""), isolate=False)
    engine = s.engine
    print(f"chat, {labels[0]} vs {labels[1]}, answers of up to {tokens} tokens, CPU, {os.cpu_count()} cores:")
    print("turn  prompt  generation  scoring from the start  scoring resumed (now)")
    for i, q in enumerate(CHAT_QUESTIONS, 1):
        t0 = time.perf_counter()
        turn = s.ask(q, scoring=False)
        gen = time.perf_counter() - t0
        kept, engine.kept = engine.kept, KeptPrefixes()  # type: ignore[union-attr]
        t0 = time.perf_counter()
        s.score(turn)
        before = time.perf_counter() - t0
        fresh = (turn.scores_a.kld, turn.scores_b.kld)
        engine.kept = kept  # type: ignore[union-attr]
        t0 = time.perf_counter()
        s.score(turn)
        now = time.perf_counter() - t0
        assert (turn.scores_a.kld, turn.scores_b.kld) == fresh  # the same figures, position by position
        print(
            f"{i:4d}  {len(turn.a.prompt_ids):6d}  {gen:8.2f} s  {before:8.2f} s ({before / gen:4.0%})"
            f"       {now:8.2f} s ({now / gen:4.0%})"
        )
    s.close()


def omp_figures(folder: Path, tokens: int, repeat: int, labels: tuple[str, str]) -> None:
    """A/B wall time in the app's worker process with OpenMP spinning (OMP_WAIT_POLICY=active, as a
    user could set) against passive waits (what the worker gets unless the user set it), on the
    real model: one turn answered and scored, side by side, alternating."""
    from tests.realmodel import build

    models = build(folder, labels)
    a, b = (str(models.quants[label]) for label in labels)
    cfg = GenConfig(mode="completion", max_tokens=tokens, n_ctx=1024)
    before = os.environ.get("OMP_WAIT_POLICY")
    rows: dict[str, dict[str, list[float]]] = {p: {"gen": [], "score": []} for p in ("active", "passive")}
    try:
        for _ in range(repeat):
            for policy in ("active", "passive"):
                os.environ["OMP_WAIT_POLICY"] = policy
                s = ABSession(a, b, cfg, Plan(False, {"a": NGL, "b": NGL}, ""))
                t = time.perf_counter()
                turn = s.ask(SCORE_PROMPT, scoring=False)
                rows[policy]["gen"].append(time.perf_counter() - t)
                t = time.perf_counter()
                s.score(turn)
                rows[policy]["score"].append(time.perf_counter() - t)
                s.close()
    finally:
        if before is None:
            os.environ.pop("OMP_WAIT_POLICY", None)
        else:
            os.environ["OMP_WAIT_POLICY"] = before
    print(
        f"Gemma 3 270M {labels[0]} vs {labels[1]}, {tokens} tokens, worker process, "
        f"CPU {os.cpu_count()} cores"
    )
    for policy, r in rows.items():
        gen, score = statistics.median(r["gen"]), statistics.median(r["score"])
        print(
            f"OMP_WAIT_POLICY={policy:<8} generation {gen:6.2f} s  scoring {score:6.2f} s  "
            f"turn {gen + score:6.2f} s"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=None, help="default 128, or 256 with --score")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gpu", action="store_true", help="all layers offloaded; skips the TUI figure")
    ap.add_argument("--shape", choices=sorted(SHAPES), default=None, help="default: cpu, or 0.7b with --gpu")
    ap.add_argument("--templates", action="store_true", help="only the chat template render figure")
    ap.add_argument("--score", action="store_true", help="only the cross-scoring figure, real model")
    ap.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "quanttui-bench-gemma")
    ap.add_argument("--pair", default="Q8_0,Q2_K", help="--score: the two quants, A,B")
    ap.add_argument("--chat", action="store_true", help="--score: a four-turn chat, turn by turn")
    ap.add_argument("--omp", action="store_true", help="OpenMP spinning against passive waits, real model")
    args = ap.parse_args()
    if args.omp:
        omp_figures(args.models, args.tokens or 128, args.repeat, tuple(args.pair.split(",")))  # type: ignore[arg-type]
        return
    if args.templates:
        template_figures()
        return
    if args.score:
        pair = tuple(args.pair.split(","))
        if args.chat:
            chat_score_figures(args.models, args.tokens or 192, pair)  # type: ignore[arg-type]
            return
        score_figures(args.models, args.tokens or 256, args.repeat, pair)  # type: ignore[arg-type]
        return
    args.tokens = args.tokens or 128
    global NGL
    NGL = -1 if args.gpu else 0
    shape = SHAPES[args.shape or ("0.7b" if args.gpu else "cpu")]
    with tempfile.TemporaryDirectory() as d:
        src = write_tiny_model(Path(d) / "m.gguf", **shape)
        LlamaLogCapture.install()
        a = quantize(src, Path(d) / "a-Q8_0.gguf", "Q8_0")
        b = quantize(src, Path(d) / "b-Q4_K_M.gguf", "Q4_K_M")
        cfg = GenConfig(mode="completion", max_tokens=args.tokens, n_ctx=1024)
        keys = ("raw", "raw_ab", "engine", "engine_ab", "ui", "ui_cpu", "wall_a", "wall_b", "wall_ab")
        rows: dict[str, list[float]] = {k: [] for k in keys}
        for _ in range(args.repeat):
            rows["raw"].append(raw_tokens_per_second(a, args.tokens))
            rows["raw_ab"].append(raw_pair_tokens_per_second(a, b, args.tokens))
            wa, tps = engine_alone(a, cfg)
            rows["engine"].append(tps)
            rows["wall_a"].append(wa)
            rows["wall_b"].append(engine_alone(b, cfg)[0])
            wall, tps_ab, counts = ab_wall(a, b, cfg)
            rows["wall_ab"].append(wall)
            rows["engine_ab"].append(tps_ab)
            ui_tps, ui_cpu = ui_tokens_per_second(a, b, cfg, args.gpu)
            rows["ui"].append(ui_tps)
            rows["ui_cpu"].append(ui_cpu)
    m = {k: statistics.median(v) for k, v in rows.items()}
    slower = max(m["wall_a"], m["wall_b"])
    where = "GPU, all layers offloaded" if args.gpu else "CPU"
    print(
        f"model: {shape['n_layer']} layers x {shape['n_embd']}, {args.tokens} greedy tokens, "
        f"medians of {args.repeat}, {where}"
    )
    print(f"raw llama-cpp-python   {m['raw']:8.1f} tok/s")
    print(
        f"A/B engine (A alone)   {m['engine']:8.1f} tok/s   ratio {m['engine'] / m['raw']:.1%}  (goal >= 95%)"
    )
    print(f"raw, two threads (A)   {m['raw_ab']:8.1f} tok/s   (B decodes on the same cores meanwhile)")
    two = m["raw_ab"]
    eng, ui = m["engine_ab"] / two, m["ui"] / two
    print(f"A/B engine (A, with B) {m['engine_ab']:8.1f} tok/s   ratio {eng:.1%} of raw two threads")
    print(f"A/B screen (A, with B) {m['ui']:8.1f} tok/s   ratio {ui:.1%} of raw two threads (goal >= 95%)")
    print(f"UI process CPU while both stream: {m['ui_cpu']:.0f} ms a second ({os.cpu_count()} cores)")
    print(f"tokens generated: A {counts[0]}, B {counts[1]}")
    print(f"wall: A {m['wall_a']:.2f} s, B {m['wall_b']:.2f} s, A and B together {m['wall_ab']:.2f} s")
    print(f"ratio A/B wall / slower alone = {m['wall_ab'] / slower:.2f}x  (goal on a GPU: <= 1.15x)")


if __name__ == "__main__":
    main()
