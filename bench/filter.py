"""The Library at 40,000 files (issue 17): the first display after a scan, and one filter keystroke.

Goal: a keystroke under 100 ms at 40,000 files, the first display (what follows the scan) a second or
two. The entries are synthetic: one real tiny model's facts, renamed into 4,000 models of 10 quants
each under six stores, a few unreadable and a few split, so no 40,000 files are written (the scan
itself is bench/scan.py's). Every figure runs until the screen has drawn the result (the table's
dimension update and the frame after it), as a person waits for it; a keystroke is posted as the
terminal sends it, and its figure includes any wait for the filter's coalescing (DEBOUNCE after the
last refill). CPU time is printed beside wall time: other programs on a busy machine stretch the
wall time more.

The keys are typed `--rounds` times, each round in a fresh app, and the keystrokes' median and 90th
percentile printed beside the 100 ms goal. `--against REV` does the same in the same process with git
revision REV's ModelTable in the Library screen, rounds alternating with this tree's (the collector's
frozen objects thawed before each of REV's rounds, as REV freezes none), and the same table steps side
by side, with ratios (a revision before the 500-row window takes minutes at 40,000 files: `--n` lower).
`--profile` prints cProfile's top functions for the first display and one keystroke.
Run: python bench/filter.py [--n 40000] [--against HEAD] [--rounds 3] [--profile] [--rows N] [--keys N]
[--app-only] (the whole app of an older tree: run this file with that tree's package first on PYTHONPATH)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import importlib.util
import io
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.text import Text  # noqa: E402
from textual import events  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402

from quanttui.core.fit import FitSettings, estimate, hardware  # noqa: E402
from quanttui.core.library import LibraryEntry, Root  # noqa: E402
from quanttui.core.library.scan import read_facts, sort_entries  # noqa: E402
from quanttui.core.llama.tinymodel import write_tiny_model  # noqa: E402
from quanttui.tui.app import create_app  # noqa: E402
from quanttui.tui.widgets import model_table  # noqa: E402
from quanttui.tui.widgets.fit_panel import verdict_cell  # noqa: E402

FAMILIES = ("Llama-3.1", "Mistral", "Qwen2.5", "gemma-3", "Phi-4", "DeepSeek-R1", "SmolLM3", "granite-3.3")
QUANTS = (
    ("F16", 16.0), ("Q8_0", 8.5), ("Q6_K", 6.56), ("Q5_K_M", 5.69), ("Q5_K_S", 5.54),
    ("Q4_K_M", 4.85), ("Q4_K_S", 4.58), ("IQ4_XS", 4.25), ("Q3_K_M", 3.91), ("Q2_K", 3.35),
)  # fmt: skip
STORES = ("quanttui", "hf-cache", "lmstudio", "ollama", "folder", "gpt4all")
KEYS = ("m", "m3", "m3 q4", "m3", "m", "")  # the table's queries: typed, then erased
PRESSES = ("m", "3", "space", "q", "4", "backspace", "backspace", "backspace", "backspace", "backspace")
GOAL_MS = 100.0


def make_entries(n: int, facts: dict[str, Any], distinct: bool = False) -> list[LibraryEntry]:
    """`n` entries in models of len(QUANTS) files, in the order the scan returns them. The files of one
    architecture and quant share a facts dict unless `distinct` (a scan's index gives each its own:
    millions of objects for the garbage collector to visit)."""
    shared: dict[tuple[str, str], dict[str, Any]] = {}
    out = []
    for i in range(n):
        g, (quant, bpw) = divmod(i, len(QUANTS))[0], QUANTS[i % len(QUANTS)]
        family = FAMILIES[g % len(FAMILIES)]
        label = f"{family} {g % 70 + 1}B ft{g}"
        name = f"{family}-{g % 70 + 1}B-ft{g}-{quant}.gguf"
        store = STORES[g % len(STORES)]
        path = f"/data/{store}/models/{family}/{name}"
        f = shared.setdefault((family, quant), facts | {"file_type": quant, "bpw": bpw, "basename": family})
        f = json.loads(json.dumps(f)) if distinct else f
        error = "truncated: the header ends early" if i % 997 == 0 else None
        parts = [path, path + "-2"] if i % 1009 == 0 else [path]
        out.append(
            LibraryEntry(
                path=path,
                parts=parts,
                missing=[],
                root=f"/data/{store}",
                store=store,
                size_bytes=int(bpw * 1e9 * (g % 70 + 1) / 8),
                origin={},
                facts=None if error else f,
                error=error,
                group=f"llama:{label.lower()}",
                group_label=label,
            )
        )
    return sort_entries(out)


def table_class(rev: str | None) -> type:
    """This tree's ModelTable, or git revision `rev`'s loaded beside it (same package, other name)."""
    if rev is None:
        return model_table.ModelTable
    show = ["git", "show", f"{rev}:tui/widgets/model_table.py"]
    src = subprocess.run(show, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    name = "quanttui.tui.widgets._bench_model_table"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    module.__package__ = "quanttui.tui.widgets"
    sys.modules[name] = module
    exec(compile(src, f"{rev}:model_table.py", "exec"), module.__dict__)
    return module.ModelTable


async def settled(table: Any) -> None:
    """Until the table has applied what it was given (a pending refill done) and the screen has drawn
    it: the frame after, as a person sees it (not an idle wait, which sleeps in steps)."""
    while getattr(table, "refill_pending", False):
        await asyncio.sleep(0.001)
    await table.wait_for_refresh()


class GcClock:
    """The time the garbage collector ran (its full collections counted apart): a step that allocates
    can pay for a collection of everything the process holds."""

    def __init__(self) -> None:
        self.ms, self.full, self._at = 0.0, 0, 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._at = time.perf_counter()
            return
        self.ms += (time.perf_counter() - self._at) * 1000
        self.full += info["generation"] == 2

    def take(self) -> str:
        said = f"gc {self.ms:6.1f} ms" + (f" ({self.full} full)" if self.full else "")
        self.ms, self.full = 0.0, 0
        return said


GC = GcClock()


@dataclass
class Took:
    """A step's wall time (what a person waits) and the process's CPU time in it (the work, which other
    programs on a busy machine do not inflate as much), in ms; and the collector's share."""

    wall: float
    cpu: float
    gc: str

    def __str__(self) -> str:
        return f"{self.wall:8.1f} ms wall {self.cpu:8.1f} ms CPU   {self.gc}"


async def timed(step: Callable[[], Awaitable[None]], profile: cProfile.Profile | None = None) -> Took:
    GC.take()
    t, c = time.perf_counter(), time.process_time()
    if profile:
        profile.enable()
    await step()
    if profile:
        profile.disable()
    return Took((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000, GC.take())


def top(profile: cProfile.Profile, title: str, n: int = 14) -> None:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(n)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    print(f"\n--- profile: {title} (cumulative) ---")
    print("\n".join(lines[2 : 6 + n]))


def fit_cells(entries: list[LibraryEntry]) -> dict[str, Text]:
    """Every file's Fit cell, ready made (the same for both tables): one estimate per model family and
    quant, which make_entries' facts differ by."""
    hw, settings, known = hardware("0", "32GiB"), FitSettings(), {}
    cells = {}
    for e in entries:
        if e.facts:
            kind = (e.fact("basename"), e.quant)
            if kind not in known:
                known[kind] = verdict_cell(estimate(e.facts, settings, hw, search=False))
            cells[e.path] = known[kind]
    return cells


@contextlib.contextmanager
def in_library(cls: type) -> Iterator[None]:
    """The Library screen builds and queries `cls` as its table while this lasts; its Refilled message
    is this tree's, which the screen handles."""
    from quanttui.tui.screens import library

    if cls is model_table.ModelTable:
        yield
        return
    cls.Refilled = model_table.ModelTable.Refilled
    was, library.ModelTable = library.ModelTable, cls  # type: ignore[attr-defined]
    try:
        yield
    finally:
        library.ModelTable = was  # type: ignore[attr-defined]


async def whole_app(
    entries: list[LibraryEntry], folder: Path, profile: bool, presses: int, cls: type, say: bool
) -> tuple[Took, list[Took]]:
    """The real Library screen with table class `cls`: a finished scan's entries arrive, then keys are
    typed into the filter, each after the screen has drawn the last. Each key's line printed if `say`."""
    hw = hardware("0", "32GiB")
    app = create_app([Root(folder, "folder", False)], hw)
    keys: list[Took] = []
    with in_library(cls):
        async with app.run_test(size=(160, 48)) as pilot:
            while app.library.scan.running or not app.screen.query(cls):
                await pilot.pause(0.01)
            table = app.screen.table
            prof = cProfile.Profile() if profile else None

            async def arrive() -> None:
                app.library.set_entries(entries, hw, [])
                await settled(table)

            first = await timed(arrive, prof)
            if say:
                print(f"  first display (after the scan)   {first}")
            if prof:
                top(prof, "first display, whole app")
            await pilot.press("slash")
            await pilot.pause()
            filt = app.screen.query_one("#filter")
            for n, key in enumerate(PRESSES[:presses]):
                char = {"space": " ", "backspace": None}.get(key, key)
                want = filt.value + char if char else filt.value[:-1]

                async def press(key: str = key, char: str | None = char, want: str = want) -> None:
                    app.post_message(events.Key(key, char))
                    while filt.value != want or table.query_text != want.strip():
                        await asyncio.sleep(0.001)
                    await settled(table)

                prof = cProfile.Profile() if profile and n == 1 else None
                took = await timed(press, prof)
                keys.append(took)
                if say:
                    print(f"  {key:9} -> {filt.value!r:8} rows {table.row_count:5,} {took}")
                if prof:
                    top(prof, f"keystroke to {filt.value!r}, whole app")
    return first, keys


def spread(keys: list[Took]) -> tuple[float, float, float, float]:
    """Median and 90th percentile of the keystrokes' wall and CPU times."""
    walls, cpus = [k.wall for k in keys], [k.cpu for k in keys]

    def p90(xs: list[float]) -> float:
        return statistics.quantiles(xs, n=10)[-1] if len(xs) > 1 else xs[0]

    return statistics.median(walls), p90(walls), statistics.median(cpus), p90(cpus)


async def app_rounds(entries: list[LibraryEntry], folder: Path, args: argparse.Namespace) -> None:
    """The whole app's keystrokes, `args.rounds` times, alternating with REV's table when asked."""
    limit = getattr(model_table, "ROW_LIMIT", None)  # None: a tree from before the limit
    typed = " ".join(PRESSES[: args.keys])
    print(f"\nwhole app, {len(entries):,} files at 160x48 (ROW_LIMIT {limit}), keys: {typed}")
    tables = [("this tree", table_class(None))]
    if args.against:
        tables.insert(0, (args.against, table_class(args.against)))
    got: dict[str, list[Took]] = {name: [] for name, _ in tables}
    for r in range(args.rounds):
        for name, cls in tables:
            gc.collect()
            if cls is not model_table.ModelTable:
                gc.unfreeze()  # as REV's process had it: nothing frozen
            say = r == 0 or args.verbose
            if say:
                print(f" {name}, round {r + 1}")
            first, keys = await whole_app(entries, folder, args.profile and r == 0, args.keys, cls, say)
            got[name] += keys
    print(f"\n per keystroke over {args.rounds} rounds of {args.keys} keys (goal < {GOAL_MS:.0f} ms), ms")
    print(f"  {'':12} {'median wall':>12} {'p90 wall':>9} {'median CPU':>11} {'p90 CPU':>8}")
    figures = {name: spread(keys) for name, keys in got.items()}
    for name, f in figures.items():
        print(f"  {name:12} {f[0]:12.1f} {f[1]:9.1f} {f[2]:11.1f} {f[3]:8.1f}")
    this = figures["this tree"]
    if args.against:
        was = figures[args.against]
        ratios = "  ".join(f"{a / b:5.1f}x" for a, b in zip(was, this, strict=True))
        print(f"  {'ratio':12} {ratios}   ({args.against} / this tree)")
    verdict = "under" if this[1] < GOAL_MS else "over"
    median, p90 = this[0] / GOAL_MS, this[1] / GOAL_MS
    print(f"  this tree, wall: median {median:.2f} and p90 {p90:.2f} of the goal, {verdict}")


class TableApp(App):
    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def compose(self) -> ComposeResult:
        yield self.cls(id="models")


async def table_steps(cls: type, entries: list[LibraryEntry], fits: dict[str, Text], profile: bool) -> dict:
    """The ModelTable alone: load, each query, a mark, a sort; the time of each step."""
    out: dict[str, Took] = {}
    app = TableApp(cls)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.query_one(cls)

        async def load() -> None:
            table.load(entries, fits, [])
            await settled(table)

        out["first display"] = await timed(load)
        for i, q in enumerate(KEYS):
            prof = cProfile.Profile() if profile and i == 1 else None

            async def query(q: str = q) -> None:
                table.set_query(q)
                getattr(table, "flush", lambda: None)()  # the work, not the coalescing delay
                await settled(table)

            out[f"query {q!r}"] = await timed(query, prof)
            if prof:
                top(prof, f"keystroke to {q!r}, {cls.__module__}")

        async def mark() -> None:
            table.set_marks([entries[5].path])
            await settled(table)

        async def sort() -> None:
            table.cycle_sort()
            await settled(table)

        out["mark a file"] = await timed(mark)
        out["next sort"] = await timed(sort)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40_000)
    parser.add_argument("--against", metavar="REV", help="also time git revision REV's ModelTable")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--rows", type=int, help="this tree's ROW_LIMIT, for a sweep")
    parser.add_argument("--keys", type=int, default=len(PRESSES), help="how many of the keys to type")
    parser.add_argument("--app-only", action="store_true", help="the whole app's steps only")
    parser.add_argument("--rounds", type=int, default=3, help="times the keys are typed, each in a fresh app")
    parser.add_argument("--verbose", action="store_true", help="every round's keystrokes, not the first's")
    parser.add_argument(
        "--distinct-facts", action="store_true", help="one facts dict per file, as a scan gives (GBs)"
    )
    args = parser.parse_args()
    if args.rows:
        model_table.ROW_LIMIT = args.rows
    with tempfile.TemporaryDirectory() as d:
        facts, error = read_facts(write_tiny_model(Path(d) / "tiny-F16.gguf"))
        assert facts is not None, error
        entries = make_entries(args.n, facts, distinct=args.distinct_facts)
        (Path(d) / "empty").mkdir()
        await app_rounds(entries, Path(d) / "empty", args)
    if args.app_only:
        return
    fits = fit_cells(entries)
    new = await table_steps(table_class(None), entries, fits, args.profile)
    old = await table_steps(table_class(args.against), entries, fits, args.profile) if args.against else {}
    print(f"\nModelTable alone, {args.n:,} files (goal: a keystroke < {GOAL_MS:.0f} ms), wall/CPU ms")
    head = f"  {'step':16} {'this tree':>17}"
    print(head + (f" {args.against:>17} {'ratio':>13}   this tree's gc" if old else "   gc"))
    for step, took in new.items():
        line = f"  {step:16} {took.wall:8.1f} {took.cpu:8.1f}"
        if old:
            was = old[step]
            line += f" {was.wall:8.1f} {was.cpu:8.1f} {was.wall / took.wall:6.1f}x {was.cpu / took.cpu:5.1f}x"
        print(f"{line}   {took.gc}")


if __name__ == "__main__":
    asyncio.run(main())
