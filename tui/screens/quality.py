"""The Quality view of one model group: each quant's size, bpw, fit at the Library's fit settings,
measured KLD / top-1 / perplexity ratio and tokens/s, the recommended quant and why, and a chart of
KLD against size. `e` runs the eval of the group's quants against its highest-precision file, `b` the
bench, each in a worker that posts typed messages; Esc cancels a run (the worker's cancelled_event is
the eval's or bench's cancel), or goes back when none runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

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
from ...core.quality.advise import Advice, QuantRow, advise_rows
from ...core.quality.bench import bench
from ...core.quality.eval import Progress, evaluate
from ...core.quality.text import QualityError
from ..safe import safe
from ..state import library_state, quanttui_app, runnable
from ..widgets.key_footer import KeyFooter
from ..widgets.kld_chart import KldChart, Point
from ..widgets.quality_table import QualityTable


def fit_dict(result: FitResult | None) -> dict | None:
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
    label: str, members: list[LibraryEntry], fits: dict[str, FitResult | None], ctx: int
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
    return advise_rows(label, rows, ctx)


def _eta(seconds: float | None) -> str:
    return f", about {seconds:.0f} s left" if seconds is not None else ""


class QualityScreen(Screen):
    """One model group's quants and what each loses; holds the run in progress (its worker)."""

    @dataclass
    class AdviceReady(Message):
        """The group's table and pick, read from the cached results off the UI thread."""

        worker: Worker[None]
        advice: Advice

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
        Binding("escape", "back_or_cancel", "Back / cancel", id="quality.back"),
    ]
    DEFAULT_CSS = """
    QualityScreen #q-body { padding: 0 1; }
    QualityScreen #q-about, QualityScreen #q-pick, QualityScreen #q-notes { height: auto; }
    QualityScreen QualityTable { height: auto; max-height: 50%; }
    QualityScreen KldChart { max-height: 20; }
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
        self._advice = self._advice_worker(self.label, members, fits, self.state.fit_settings.n_ctx)

    @work(thread=True, exclusive=True, exit_on_error=False, group="quality-advice", name="quality table")
    def _advice_worker(
        self, label: str, members: list[LibraryEntry], fits: dict[str, FitResult | None], ctx: int
    ) -> None:
        worker: Worker[None] = get_current_worker()
        self.post_message(self.AdviceReady(worker, group_advice(label, members, fits, ctx)))

    @on(AdviceReady)
    def _advice_ready(self, message: AdviceReady) -> None:
        if message.worker is not self._advice:
            return  # advice made before the latest was asked for
        self.advice = a = message.advice
        self.query_one(QualityTable).show(a, self.errors)
        s = self.state.fit_settings
        about = safe(a.group, style="bold")
        about.append(
            f"  {plural(len(a.rows), 'file')}, fit at context {s.n_ctx}, KV {s.type_k}"
        )
        about.append("\nquality: ")
        if a.reference:
            e = a.eval_settings
            about.append_text(safe(f"eval against {Path(a.reference).name} on {e.get('text')}"))
            about.append(f", ctx {e.get('ctx')}, {e.get('chunks')} chunks")
        else:
            ref = self.reference()
            about.append("not measured; e runs the eval against ", style="dim")
            about.append_text(safe(Path(ref).name if ref else "the highest-precision file", style="dim"))
        self.query_one("#q-about", Static).update(about)
        if a.recommended:
            pick = Text("→ recommended: ", style="bold green")
            pick.append_text(safe(Path(a.recommended).name, style="bold"))
        else:
            pick = Text("no recommendation", style="bold yellow")
        pick.append_text(safe(f" ({a.reason})", style="dim"))
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

    def _notes(self) -> None:
        lines: list[Text] = []
        a = self.advice
        if a and any(r.tg_source == "estimated" for r in a.rows):
            lines.append(
                Text("~ tok/s estimated from a measured quant of the group, scaled by size", style="dim")
            )
        elif a and not any(r.tg_source for r in a.rows):
            lines.append(Text("tok/s not measured: b runs the bench", style="dim"))
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
            "Quality: cancel or back", "Cancel the run, or back to the Library", self.action_back_or_cancel
        )
