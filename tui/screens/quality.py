"""The Quality view of one model group: each quant's size, bpw, fit at the Library's fit settings,
measured KLD ± its uncertainty / top-1 / perplexity ratio and tokens/s, the recommended quant and why
(or, with no pick, what to measure), and a chart of KLD against size. The figures are one eval
settings set (reference, text, ctx × chunks: said above the table with when it was measured); `s`
switches to the group's other sets. `e` runs the eval of the group's quants against its
highest-precision file, `b` the bench, `r` measures the highlighted quant again (its eval under the
shown settings and its bench), `R` every quant whose bench was busy or noisy or whose figures came
from another llama.cpp build; each in a worker that posts typed messages; Esc cancels a run (the
worker's cancelled_event is the eval's or bench's cancel), or goes back when none runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ...core.fit import FitResult
from ...core.format import plural
from ...core.library import LibraryEntry
from ...core.quality import records
from ...core.quality.advise import Advice, QuantRow, advise_rows, noisy_bench
from ...core.quality.bench import bench
from ...core.quality.eval import Progress, evaluate
from ...core.quality.text import EvalText, QualityError
from ..safe import safe
from ..state import library_state, quanttui_app, runnable
from ..widgets.key_footer import KeyFooter
from ..widgets.kld_chart import KldChart, Point
from ..widgets.quality_table import QualityTable


def fit_dict(result: FitResult | None) -> dict[str, Any] | None:
    """A FitResult in the shape advise's rows hold."""
    if result is None:
        return None
    return {
        "verdict": result.verdict,
        "verdict_code": result.verdict_code,
        "fully_on_gpu": result.verdict_code == "gpu",
        "gpu_layers": result.gpu_layers,
        "layers": result.n_layer + 1,
    }


def group_advice(
    label: str,
    members: list[LibraryEntry],
    fits: dict[str, FitResult | None],
    ctx: int,
    settings: str | None = None,
) -> Advice:
    """advise's table and rule for a group the Library already scanned, with the Library's verdicts."""
    rows = []
    for e in members:
        row = QuantRow(
            e.path, e.quant, e.size_bytes, e.fact("bpw"), fit=fit_dict(fits.get(e.path)), error=e.error
        )
        if row.fit is None and row.error is None:
            row.error = "vocabulary only: not a model" if e.fact("vocab_only") else "no fit verdict"
        rows.append(row)
    return advise_rows(label, rows, ctx, settings)


def stale_rows(advice: Advice) -> dict[str, str]:
    """Path -> why to measure it again: its bench busy or noisy, or a figure from another llama.cpp
    build than this one."""
    build = records.build_conditions().get("build")
    out: dict[str, str] = {}
    for r in advice.rows:
        why = []
        if r.tg_source == "measured" and r.tg_record is not None:
            noisy, reason = noisy_bench(r.tg_record)
            if noisy:
                why.append(f"bench {reason}")
            if r.tg_record.conditions.get("build") not in (None, build):
                why.append("bench from another llama.cpp build")
        qr = r.quality_record
        if qr is not None and qr.conditions.get("build") not in (None, build):
            why.append("eval from another llama.cpp build")
        if why:
            out[r.model] = "; ".join(why)
    return out


def _eta(seconds: float | None) -> str:
    return f", about {seconds:.0f} s left" if seconds is not None else ""


class QualityScreen(Screen[None]):
    """One model group's quants and what each loses; holds the run in progress (its worker)."""

    @dataclass
    class AdviceReady(Message):
        """The group's table and pick, read from the cached results off the UI thread, and the quants
        to measure again (`stale_rows`)."""

        worker: Worker[None]
        advice: Advice
        stale: dict[str, str] = field(default_factory=dict)

    @dataclass
    class JobProgress(Message):
        """How far the eval or bench has come; a newer one replaces an unhandled older one."""

        worker: Worker[None]
        kind: str  # "eval" or "bench"
        done: int
        total: int
        model: str
        text: str
        eta_seconds: float | None

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, QualityScreen.JobProgress)

    @dataclass
    class JobDone(Message):
        """An eval or bench ended: one line per failed model (path -> error), cancelled or not, or the
        one-line error that stopped it all."""

        worker: Worker[None]
        kind: str
        errors: dict[str, str] = field(default_factory=dict)
        cancelled: bool = False
        error: str | None = None

    BINDINGS = [
        Binding("e", "eval", "Eval", id="quality.eval"),
        Binding("b", "bench", "Bench", id="quality.bench"),
        Binding("r", "again", "Again", id="quality.again"),
        Binding("R", "again_stale", "Again: busy/old", id="quality.again_stale"),
        Binding("s", "switch_settings", "Settings", id="quality.settings"),
        Binding("escape", "back_or_cancel", "Back / cancel", id="quality.back"),
    ]
    DEFAULT_CSS = """
    QualityScreen #q-body { padding: 0 1; }
    QualityScreen #q-about, QualityScreen #q-pick, QualityScreen #q-notes { height: auto; }
    QualityScreen QualityTable { height: auto; max-height: 50%; }
    QualityScreen KldChart { min-height: 7; max-height: 20; }
    QualityScreen #q-status { height: 1; background: $panel; padding: 0 1; }
    QualityScreen #q-status-text { width: 1fr; }
    QualityScreen #q-status ProgressBar { width: 32; }
    """

    def __init__(self, group: str, *, ctx: int | None = None, chunks: int | None = None) -> None:
        super().__init__()
        self.group = group
        self.eval_ctx, self.eval_chunks = ctx, chunks
        self.advice: Advice | None = None
        self.errors: dict[str, str] = {}
        self.running: str | None = None
        self._at_model = ""  # the model the run is at; when it moves on, the one before is measured
        self._job: Worker[None] | None = None  # the run; messages of any other worker are dropped
        self._advice: Worker[None] | None = None  # the same for the table's advice
        self.status = ""  # what the status line says, as plain text
        self.settings_key: str | None = None  # the eval settings set shown (None: the one covering most)
        self.stale: dict[str, str] = {}  # path -> why `R` measures it again

    def compose(self) -> ComposeResult:
        self.state = library_state(self)
        yield Header()
        with Vertical(id="q-body"):
            yield Static(id="q-about")
            yield QualityTable(id="q-table")
            yield Static(id="q-pick")
            yield Static(id="q-notes")
            yield KldChart(id="q-chart")
        with Horizontal(id="q-status"):
            yield Static(id="q-status-text")
            yield ProgressBar(id="q-progress", show_eta=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False
        self.sub_title = f"Quality: {self.label}"
        self._say(Text("e: eval against the highest-precision file   b: bench   esc: back"))
        self.refresh_advice()
        self.query_one(QualityTable).focus()

    # what the screen shows ------------------------------------------------------------------------

    @property
    def members(self) -> list[LibraryEntry]:
        return [e for e in self.state.entries if e.group == self.group]

    @property
    def label(self) -> str:
        m = self.members
        return m[0].group_label if m else self.group

    def _say(self, text: Text) -> None:
        self.status = text.plain
        self.query_one("#q-status-text", Static).update(text)

    def refresh_advice(self) -> None:
        members = self.members
        fits = {e.path: self.state.fits.get(e.path) for e in members}
        self._advice = self._advice_worker(
            self.label, members, fits, self.state.fit_settings.n_ctx, self.settings_key
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="quality-advice", name="quality table")
    def _advice_worker(
        self,
        label: str,
        members: list[LibraryEntry],
        fits: dict[str, FitResult | None],
        ctx: int,
        settings: str | None,
    ) -> None:
        worker: Worker[None] = get_current_worker()
        advice = group_advice(label, members, fits, ctx, settings)
        self.post_message(self.AdviceReady(worker, advice, stale_rows(advice)))

    @on(AdviceReady)
    def _advice_ready(self, message: AdviceReady) -> None:
        if message.worker is not self._advice:
            return  # advice made before the latest was asked for
        self.advice = a = message.advice
        self.stale = message.stale
        self.query_one(QualityTable).show(a, self.errors)
        s = self.state.fit_settings
        about = safe(a.group, style="bold")
        about.append(
            f"  {plural(len(a.rows), 'file')}, fit at context {s.n_ctx}, KV {s.type_k},"
            f" budget KLD ≤ {a.max_kld:g}"
        )
        about.append("\nquality: ")
        about.append_text(self._settings_line(a))
        self.query_one("#q-about", Static).update(about)
        if a.recommended:
            pick = Text("→ recommended: ", style="bold green")
            pick.append_text(safe(Path(a.recommended).name, style="bold"))
        else:
            pick = Text("no recommendation", style="bold yellow")
        pick.append_text(safe(f" ({a.reason})", style="dim"))
        if a.recommended is None and a.to_measure:
            pick.append("\nto measure: ", style="bold")
            pick.append_text(safe(a.to_measure))
            pick.append("  (e runs it here)", style="dim")
        self.query_one("#q-pick", Static).update(pick)
        self._notes()
        self.query_one(KldChart).points = [
            Point(
                r.quant or Path(r.model).stem, r.size_bytes, r.quality["kld_mean"], r.model == a.recommended
            )
            for r in a.rows
            if r.quality and isinstance(r.quality.get("kld_mean"), (int, float)) and not r.is_reference
        ]
        ref_row = next((r for r in a.rows if r.is_reference), None)
        self.query_one(KldChart).footnote = (
            f"reference {ref_row.quant or Path(ref_row.model).stem} (KLD 0 by definition) not plotted"
            if ref_row
            else ""
        )

    def _settings_line(self, a: Advice) -> Text:
        """The eval settings set shown: reference, text, ctx × chunks, tokens, when; the others."""
        if not a.reference:
            ref = self.reference()
            line = Text("not measured; e runs the eval against ", style="dim")
            line.append_text(safe(Path(ref).name if ref else "the highest-precision file", style="dim"))
            return line
        e = a.eval_settings
        line = safe(f"{Path(a.reference).name} as reference, {e.get('text')} text")
        line.append(f", ctx {e.get('ctx')} × {e.get('chunks')} chunks")
        if e.get("tokens"):
            line.append(f" ({e['tokens']:,} tokens)")
        if e.get("measured_at"):
            line.append(f", {time.strftime('%Y-%m-%d %H:%M', time.localtime(e['measured_at']))}")
        others = a.other_eval_sets
        if others:
            sets = ", ".join(
                f"ctx {o['settings'].get('ctx')} × {o['settings'].get('chunks')}" for o in others[:3]
            )
            line.append(f"; s: {plural(len(others), 'other set')} ({sets})", style="dim")
        return line

    def _notes(self) -> None:
        lines: list[Text] = []
        a = self.advice
        if a and any(r.tg_source == "estimated" for r in a.rows):
            lines.append(
                Text("~ tok/s estimated from a measured quant of the group, scaled by size", style="dim")
            )
        elif a and not any(r.tg_source for r in a.rows):
            lines.append(Text("tok/s not measured: b runs the bench", style="dim"))
        old: list[str] = []
        for r in a.rows if a else []:
            name = Path(r.model).name
            if r.tg_busy and r.tg_record is not None:
                line = Text("! busy: ", style="bold yellow")
                why = r.tg_record.conditions.get("busy_reason")
                line.append_text(safe(f"{name} tok/s measured while busy ({why})"))
                line.append("  r: again", style="dim")
                lines.append(line)
            elif r.model in self.stale:
                old.append(name)
            if r.tg_note:
                lines.append(safe(f"tok/s of {name} not shown: {r.tg_note}", style="dim"))
        if old:
            line = Text("old: ", style="yellow")
            line.append_text(safe(f"{', '.join(old)} (another llama.cpp build, or a noisy bench)"))
            line.append("  R: again", style="dim")
            lines.append(line)
        for path, err in self.errors.items():
            line = Text("error ", style="bold red")
            line.append_text(safe(f"{Path(path).name}: {err}"))
            lines.append(line)
        for r in a.rows if a else []:
            if r.error and r.model not in self.errors:
                lines.append(Text("error ", style="bold red") + safe(f"{Path(r.model).name}: {r.error}"))
        self.query_one("#q-notes", Static).update(Group(*lines))

    # runs -----------------------------------------------------------------------------------------

    def runnable_paths(self) -> list[str]:
        return [e.path for e in self.members if runnable(e) and not e.error]

    def reference(self) -> str | None:
        """The highest-precision runnable file of the group (most bits per weight, then largest)."""
        best = max(
            (e for e in self.members if runnable(e) and not e.error),
            key=lambda e: (e.fact("bpw") or 0, e.size_bytes),
            default=None,
        )
        return best.path if best else None

    def _start(self, kind: str) -> bool:
        if self.running is not None:
            self.app.notify(f"wait: the {self.running} is still running (esc cancels it)", severity="warning")
            return False
        self.running = kind
        self.errors = {}
        self._say(Text(f"{kind}: starting…  esc cancels"))
        bar = self.query_one(ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        return True

    def action_eval(self) -> None:
        ref, paths = self.reference(), self.runnable_paths()
        if ref is None or len(paths) < 2:
            self.app.notify("the eval needs two runnable files of this model", severity="warning")
            return
        if self._start("eval"):
            self._job = self._eval_worker(ref, [p for p in paths if p != ref])

    def action_bench(self) -> None:
        paths = self.runnable_paths()
        if not paths:
            self.app.notify("no runnable file in this model", severity="warning")
            return
        if self._start("bench"):
            self._job = self._bench_worker(paths)

    def action_switch_settings(self) -> None:
        """Show the group's next eval settings set (they cycle in a fixed order)."""
        a = self.advice
        if a is None or not a.other_eval_sets or not a.eval_settings:
            self.app.notify("only one eval settings set is measured for this model", severity="information")
            return
        keys = sorted([a.eval_settings["settings_key"], *(o["settings_key"] for o in a.other_eval_sets)])
        self.settings_key = keys[(keys.index(a.eval_settings["settings_key"]) + 1) % len(keys)]
        self.refresh_advice()

    def _highlighted(self) -> QuantRow | None:
        table = self.query_one(QualityTable)
        if self.advice is None or not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((r for r in self.advice.rows if r.model == key), None)

    def action_again(self) -> None:
        """Measure the highlighted quant again: its eval under the shown settings, and its bench."""
        row = self._highlighted()
        if row is None or row.error:
            self.app.notify("highlight a readable quant to measure it again", severity="warning")
            return
        self._again([] if row.is_reference else [row.model], [row.model])

    def action_again_stale(self) -> None:
        """Measure again every quant whose bench was busy or noisy or whose figures are from another
        llama.cpp build."""
        a = self.advice
        if a is None or not self.stale:
            self.app.notify("nothing busy, noisy or old to measure again", severity="information")
            return
        rows = [r for r in a.rows if r.model in self.stale and not r.error]
        evals = [r.model for r in rows if "eval" in self.stale[r.model] and not r.is_reference]
        benches = [r.model for r in rows if "bench" in self.stale[r.model]]
        self._again(evals, benches)

    def _again(self, evals: list[str], benches: list[str]) -> None:
        a = self.advice
        ref, ctx, chunks, text = self.reference(), self.eval_ctx, self.eval_chunks, None
        if a is not None and a.reference and a.eval_settings:
            e = a.eval_settings
            ref, ctx, chunks = a.reference, e.get("ctx"), e.get("chunks")
            if e.get("text") not in (None, "default"):
                text = str(e["text"])
        evals = [p for p in evals if p != ref]
        if not evals and not benches:
            self.app.notify("nothing to measure again", severity="information")
            return
        if ref is None and evals:
            self.app.notify("the eval needs a runnable reference", severity="warning")
            return
        if self._start("again"):
            self._job = self._again_worker(
                ref, evals, benches, ctx, chunks if isinstance(chunks, int) else None, text
            )

    @work(thread=True, exclusive=True, exit_on_error=False, group="quality-run", name="again")
    def _again_worker(
        self,
        reference: str | None,
        evals: list[str],
        benches: list[str],
        ctx: int | None,
        chunks: int | None,
        text_name: str | None,
    ) -> None:
        worker: Worker[None] = get_current_worker()
        errors: dict[str, str] = {}

        def told(p: Progress) -> None:
            what = "loading" if p.stage == "loading" else f"{p.done}/{p.total} chunk passes"
            self.post_message(
                self.JobProgress(
                    worker,
                    "again",
                    p.done,
                    p.total,
                    p.model,
                    f"again, eval: {p.model}: {what}",
                    p.eta_seconds,
                )
            )

        try:
            if evals and reference is not None:
                text = EvalText.load(text_name) if text_name else None
                report = evaluate(
                    reference, evals, text=text, ctx=ctx, chunks=chunks, on_progress=told,
                    cancel=worker.cancelled_event, again=True,
                )  # fmt: skip
                errors |= {c.model: c.error for c in report.candidates if c.error and c.error != "cancelled"}
        except QualityError as e:
            self.post_message(self.JobDone(worker, "again", error=str(e)))
            return

        def benched(done: int, total: int, name: str) -> None:
            self.post_message(
                self.JobProgress(
                    worker, "again", done, total, name, f"again, bench: {name} ({done + 1} of {total})", None
                )
            )

        if benches and not worker.cancelled_event.is_set():
            results = bench(benches, on_progress=benched, cancel=worker.cancelled_event, again=True)
            errors |= {r.model: r.error for r in results if r.error and r.error != "cancelled"}
        self.post_message(self.JobDone(worker, "again", errors, worker.cancelled_event.is_set()))

    # A run ends when its worker is cancelled (esc, or the screen closing: Textual cancels the workers
    # of a screen that is gone), and its worker process with it.

    @work(thread=True, exclusive=True, exit_on_error=False, group="quality-run", name="eval")
    def _eval_worker(self, reference: str, candidates: list[str]) -> None:
        worker: Worker[None] = get_current_worker()

        def told(p: Progress) -> None:
            what = "loading" if p.stage == "loading" else f"{p.done}/{p.total} chunk passes"
            self.post_message(
                self.JobProgress(
                    worker, "eval", p.done, p.total, p.model, f"eval: {p.model}: {what}", p.eta_seconds
                )
            )

        try:
            report = evaluate(
                reference,
                candidates,
                ctx=self.eval_ctx,
                chunks=self.eval_chunks,
                on_progress=told,
                cancel=worker.cancelled_event,
            )
        except QualityError as e:
            self.post_message(self.JobDone(worker, "eval", error=str(e)))
            return
        errors = {c.model: c.error for c in report.candidates if c.error and c.error != "cancelled"}
        self.post_message(self.JobDone(worker, "eval", errors, report.cancelled))

    @work(thread=True, exclusive=True, exit_on_error=False, group="quality-run", name="bench")
    def _bench_worker(self, paths: list[str]) -> None:
        worker: Worker[None] = get_current_worker()
        start = time.perf_counter()

        def told(done: int, total: int, name: str) -> None:
            spent = time.perf_counter() - start
            eta = spent / done * (total - done) if done else None
            self.post_message(
                self.JobProgress(
                    worker, "bench", done, total, name, f"bench: {name} ({done + 1} of {total})", eta
                )
            )

        results = bench(paths, on_progress=told, cancel=worker.cancelled_event)
        errors = {r.model: r.error for r in results if r.error and r.error != "cancelled"}
        self.post_message(self.JobDone(worker, "bench", errors, worker.cancelled_event.is_set()))

    @on(JobProgress)
    def _job_progress(self, message: JobProgress) -> None:
        if message.worker is not self._job or message.worker.is_cancelled:
            return
        line = safe(message.text + _eta(message.eta_seconds))
        line.append("  esc cancels", style="dim")
        self._say(line)
        if message.total:
            self.query_one(ProgressBar).update(total=message.total, progress=message.done)
        if message.model != self._at_model:
            self._at_model = message.model
            self.refresh_advice()  # the model before is in the cache now

    @on(JobDone)
    def _job_done(self, message: JobDone) -> None:
        if message.worker is not self._job:
            return  # a superseded run
        self._end(message)
        quanttui_app(self).say_extra_buffers()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        err = event.worker.error
        if event.worker is self._job:
            self._end(self.JobDone(self._job, self.running or "run", error=f"{type(err).__name__}: {err}"))
        elif event.worker.group == "quality-advice":
            self.app.notify(f"quality table failed: {type(err).__name__}: {err}", severity="error")

    def _end(self, message: QualityScreen.JobDone) -> None:
        self.running, self._job = None, None
        self.query_one(ProgressBar).display = False
        self.errors = dict(message.errors)
        if message.error:
            self._say(safe(f"{message.kind} failed: {message.error}", style="bold red"))
        elif message.cancelled:
            self._say(Text(f"{message.kind} cancelled; the quants it finished are kept", style="yellow"))
        else:
            failed = len(message.errors)
            tail = f", {failed} failed (see the errors above the chart)" if failed else ""
            self._say(Text(f"{message.kind} done{tail}", style="bold red" if failed else "green"))
        self.refresh_advice()

    def action_back_or_cancel(self) -> None:
        if self.running is not None and self._job is not None:
            self._job.cancel()
            self._say(Text(f"cancelling the {self.running}…", style="yellow"))
            return
        self.app.pop_screen()

    def system_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield SystemCommand(
            "Quality: run the eval", "KLD of each quant against the highest-precision file", self.action_eval
        )
        yield SystemCommand(
            "Quality: run the bench", "Prompt and generation tokens/s of each quant", self.action_bench
        )
        yield SystemCommand(
            "Quality: measure again",
            "The highlighted quant's eval and bench, measured again",
            self.action_again,
        )
        yield SystemCommand(
            "Quality: measure busy or old again",
            "Every quant whose bench was busy or noisy, or whose figures are from another llama.cpp build",
            self.action_again_stale,
        )
        yield SystemCommand(
            "Quality: other eval settings",
            "Show the next eval settings set measured",
            self.action_switch_settings,
        )
        yield SystemCommand(
            "Quality: cancel or back", "Cancel the run, or back to the Library", self.action_back_or_cancel
        )
