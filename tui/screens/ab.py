"""The A/B screen: two quants answer the same prompt side by side, with the damage marked."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Header, Input, Static
from textual.worker import Worker, WorkerState

from ...core.ab import ContextRefused, GenConfig, borrow
from ...core.ab.config import FRAME
from ...core.ab.context import SideFacts, facts_of, side_facts
from ...core.ab.run import ABRun, Finished, Phase
from ...core.ab.session import ABSession
from ...core.library import LibraryEntry
from ..pacing import Pacer
from ..safe import safe
from ..widgets.chat_pane import ChatPane
from ..widgets.key_footer import KeyFooter
from . import ab_commands as cmd
from .ab_actions import SIDES, ABActions
from .ab_commands import CommandRefused
from .ab_messages import ContextChecked, Loaded, LoadStatus, Scoring, ScoringProgress, TurnDone
from .ab_status import carry_notes, info_text

__all__ = ["FRAME", "ABScreen"]


def _side(given: LibraryEntry | str) -> SideFacts:
    """A side from the Library's entry (its facts as read when the library was scanned), or from a
    path (its header read here)."""
    if isinstance(given, LibraryEntry):
        return facts_of(given.path, given.facts, Path(given.path).name)
    return side_facts(str(given))


class ABScreen(ABActions, Screen[None]):
    """Draws an ABRun (core/ab/run.py): loading, answering and scoring run in workers; the phase they
    are in is always on screen, and a prompt sent while a turn is busy waits its turn."""

    HELP_TYPED = cmd.DESCRIBED  # the slash commands, listed first in Help
    HELP_NOTES = (
        (
            "KLD",
            "KL(A||B) on A's tokens in A's pane, KL(B||A) on B's in B's: scored on each model's own "
            "greedy answer, not on a fixed text as `eval` scores, so the two figures differ",
        ),
        ("Esc", "while answering: stops both; what was said stays, marked stopped, unscored (/score)"),
    )
    BINDINGS = [
        Binding("escape", "cancel_or_back", "Stop/back", id="ab.cancel"),
        Binding("ctrl+r", "regenerate", "Redo", id="ab.regenerate"),
        # priority: the prompt input would take ctrl+e (end of line) first
        Binding("ctrl+e", "edit_last", "Edit last", id="ab.edit", priority=True),
        Binding("ctrl+s", "save", "Save", id="ab.save"),
        Binding("ctrl+l", "loop_stop", "Stop loop", id="ab.loop_stop"),
    ]
    DEFAULT_CSS = """
    #ab-info { height: auto; max-height: 4; padding: 0 1; color: $text-muted; }
    #ab-panes { height: 1fr; }
    #ab-prompt { margin: 0 1; }
    """
    SHORT = 30  # below this many rows each pane's figures take two lines and no sparkline

    def __init__(self, a: LibraryEntry | str, b: LibraryEntry | str, cfg: GenConfig | None = None) -> None:
        """`a` and `b`: the Library's entries (or model paths, whose headers are then read here)."""
        super().__init__()
        self.ab = ABRun({"a": _side(a), "b": _side(b)}, cfg, stream_every=FRAME)
        self._pacer = Pacer(fastest=FRAME)

    # the run's state, as the screen's (read-only views) ------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self.ab.phase

    @property
    def cfg(self) -> GenConfig:
        return self.ab.cfg

    @property
    def session(self) -> ABSession | None:
        return self.ab.session

    @property
    def queued(self) -> str | None:
        return self.ab.queued

    @property
    def sides(self) -> dict[str, SideFacts]:
        return self.ab.sides

    @property
    def running(self) -> bool:
        return self.ab.running

    def looping(self) -> list[str]:
        return self.ab.looping()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("loading both models…", id="ab-info")
        with Horizontal(id="ab-panes"):
            yield ChatPane("a", self.sides["a"].name, id="pane-a")
            yield ChatPane("b", self.sides["b"].name, id="pane-b")
        hint = f"prompt: Enter sends it to both; Esc stops; {cmd.COMMANDS}"
        yield Input(placeholder=hint, id="ab-prompt")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "A/B"
        self.query_one("#ab-prompt", Input).disabled = True
        self.set_interval(1, self._tick)
        self.load()

    def on_resize(self) -> None:
        short = self.size.height < self.SHORT
        self.set_class(short, "short")
        for side in SIDES:  # the figures take two lines at most: the answers get the rest
            self._pane(side).set_compact(short)

    def _pane(self, side: str) -> ChatPane:
        return self.query_one(f"#pane-{side}", ChatPane)

    def _prompt(self) -> Input:
        return self.query_one("#ab-prompt", Input)

    def _info(self, text: object) -> None:
        self.query_one("#ab-info", Static).update(text)  # type: ignore[arg-type]

    # loading ----------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="ab-load")
    def load(self) -> None:
        session = self.ab.load(lambda what, side: self.post_message(LoadStatus(what, side)))
        if session is not None:
            self.post_message(Loaded(session))

    @on(LoadStatus)
    def _status(self, message: LoadStatus) -> None:
        name = self.sides[message.side].name if message.side in self.sides else ""
        self._info(safe(f"{message.what} {message.side.upper()}: {name}… (Esc stops loading and goes back)"))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        queued = self.ab.loaded(message.session)
        for side, error in message.session.engine.errors().items():
            self._pane(side).show_error(error)
        self.app.say_extra_buffers()
        self._show_info()
        self._prompt().disabled = False
        self._prompt().focus()
        if queued is not None:  # sent while the models loaded again (/ctx)
            self._submit(queued)

    # the info line ----------------------------------------------------------------------------------

    def _show_info(self) -> None:
        session = self.ab.session
        if session is None:
            return
        ab = self.ab
        self._info(info_text(ab.cfg, session, ab.phase, ab.scoring_for(), ab.queued, ab.scored, self.sides))
        for side, note in carry_notes(ab.cfg, session, self.sides).items():
            self._pane(side).set_note(note)

    def _tick(self) -> None:
        if self.ab.phase is Phase.SCORING:
            self._show_info()

    # prompts and commands ---------------------------------------------------------------------------

    @on(Input.Submitted, "#ab-prompt")
    def _send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        event.input.value = ""
        sent = self.ab.send(text)
        if sent.now:
            self._submit(text)
        elif sent.queued_while in (Phase.ANSWERING, Phase.SCORING):
            self.notify("queued: it is sent when this turn is done", timeout=2)
            self._show_info()
        else:  # the info line says what is loading
            self.notify("queued: it is sent when both models have loaded", timeout=3)

    def _submit(self, text: str) -> None:
        if text.startswith("/"):
            try:
                self.command(text)
            except CommandRefused as e:
                self.notify(str(e), severity="warning")
        else:
            self.ask(text)

    def command(self, text: str) -> None:
        """/system TEXT, /max N, /ctx N, /mode chat|completion, /clear, /save; CommandRefused says why not."""
        name, arg = cmd.split(text)
        cfg = self.cfg
        if name == "system":
            cfg.system = cmd.system(arg, cfg)
            self.notify(f"system prompt: {cfg.system or '(none)'}")
        elif name == "max":
            cfg.max_tokens = cmd.max_tokens(arg, cfg.n_ctx)
            self.notify(f"max tokens: {cfg.max_tokens}")
        elif name == "mode":
            cfg.mode, warning = cmd.mode(arg, self.sides, cfg.template_name)
            self.notify(f"mode: {cfg.mode}" + (f"; {warning}" if warning else ""))
        elif name == "template":
            if arg.lower() == "none":
                cfg.template_name = cfg.template_source = None
                if cfg.mode == "chat" and len(borrow.lacking(self.sides)) == len(SIDES):
                    cfg.mode = "completion"
                self.notify(f"no borrowed chat template; {cfg.mode} mode")
            else:
                cfg.template_name, cfg.template_source = cmd.template(arg)
                cfg.mode = "chat"
                what = "the file" if cfg.template_source else "llama.cpp's built-in"
                lacking = [s.upper() for s in borrow.lacking(self.sides)]
                who = " and ".join(lacking) or "neither side"
                self.notify(
                    f"chat mode: {who} borrow{'s' if len(lacking) != 2 else ''} {what} template "
                    f"{cfg.template_name!r} (a file's own template comes first)",
                    timeout=4,
                )
        elif name == "ctx":
            arg = cmd.ctx_arg(arg)
            self.ab.begin_check()
            self._info(safe(f"checking a context of {arg[:20]}…"))
            self.check_ctx(arg)
            return
        elif name == "clear":
            assert self.session is not None
            self.session.clear_history()
            for side in SIDES:
                self._pane(side).cleared()
            self.notify("both conversations cleared: the next prompt starts afresh", timeout=2)
        elif name == "save":
            self.action_save()
        elif name == "score":
            why = self.ab.can_score()
            if why:
                raise CommandRefused(f"/score: {why}")
            self.ab.begin_rescore()
            self._show_info()
            self.rescore()
            return
        else:
            raise CommandRefused(cmd.unknown(name))
        self._show_info()

    @work(thread=True, exclusive=True, exit_on_error=False, group="ab-ctx")
    def check_ctx(self, arg: str) -> None:
        """Bounded by both models' trained context and by what fits in memory (the fit estimator)."""
        try:
            self.post_message(ContextChecked(self.ab.check(arg)))
        except ContextRefused as e:
            self.post_message(ContextChecked(None, str(e)))

    @on(ContextChecked)
    def _ctx_checked(self, message: ContextChecked) -> None:
        if self.ab.gone:
            return
        if message.n_ctx is None:
            queued = self.ab.context_refused()
            self._prompt().focus()
            if queued is not None and not self._prompt().value:  # not sent: the context is as it was
                self._prompt().value = queued
            self.notify(f"/ctx refused: {message.error}", severity="warning", timeout=6)
            self._show_info()
            return
        n_ctx = message.n_ctx
        if self.ab.context_set(n_ctx):
            for side in SIDES:
                self._pane(side).cleared(f"context set to {n_ctx:,}")
        # the prompt box stays open: what is sent meanwhile waits for the models
        self._info(safe(f"loading both models with context {n_ctx:,}…"))
        self.load()

    def ask(self, prompt: str, *, regenerate: bool = False) -> None:
        if self.ab.begin_answer(prompt):
            self.set_timer(self._pacer.start(), partial(self._draw_live, self.ab.generation))
        self._show_info()
        for side in SIDES:
            self._pane(side).streaming(prompt, "", 0)
        self.generate(prompt, regenerate)

    @work(thread=True, exclusive=True, exit_on_error=False, group="ab-run")
    def generate(self, prompt: str, regenerate: bool) -> None:
        done = self.ab.answer(
            prompt,
            regenerate,
            on_scoring=lambda n: self.post_message(Scoring(n)),
            on_progress=lambda done, total: self.post_message(ScoringProgress(done, total)),
        )
        if done is not None:
            self.post_message(TurnDone(done.turn, done.cancelled))

    @work(thread=True, exclusive=True, exit_on_error=False, group="ab-run")
    def rescore(self) -> None:
        """/score: the last turn (stopped with Esc, or its scoring stopped) scored now."""
        done = self.ab.rescore(lambda done, total: self.post_message(ScoringProgress(done, total)))
        if done is not None:
            self.post_message(TurnDone(done.turn, False, rescored=True))

    @on(ScoringProgress)
    def _scoring_progress(self, message: ScoringProgress) -> None:
        if self.ab.progress(message.done, message.total):
            self._show_info()

    @on(Scoring)
    def _scoring(self, message: Scoring) -> None:
        if self.ab.phase is Phase.ANSWERING:
            self._draw_live(self.ab.generation)  # the last words of both answers, before the wait
            self.ab.scoring()
            self._show_info()

    def _draw_live(self, generation: int) -> None:
        """One frame for both sides' latest text, however many tokens came since the last."""
        if generation != self.ab.generation or self.ab.phase is not Phase.ANSWERING:
            return
        live = self.ab.take_live()
        with self.app.batch_update():
            for side, m in live.items():
                self._pane(side).streaming(self.ab.last_prompt, m.text, len(m.ids))
        self.set_timer(self._pacer.next(), partial(self._draw_live, generation))

    @on(TurnDone)
    def _done(self, message: TurnDone) -> None:
        then = self.ab.finished(Finished(message.turn, message.cancelled, rescored=message.rescored))
        turn = then.turn
        if turn is None or (then.cancelled and not then.stopped):  # nothing said: nothing kept
            for side in SIDES:
                self._pane(side).cancelled()
            if then.restore is not None:  # not sent: back in the box to send or change
                self._prompt().value = then.restore
            self.notify("cancelled: both models are ready for the next prompt", timeout=2)
            self._show_info()
            return
        for side in SIDES:
            if then.rescored:
                self._pane(side).forget_last()  # drawn again, now with its scores
            self._pane(side).finish(turn)
        if then.stopped:
            self.notify("stopped: the answers so far are kept, not scored (/score scores them)", timeout=3)
        self.app.say_extra_buffers()
        self._show_info()
        self._prompt().focus()
        if self.session is not None:
            try:
                self.session.save()  # every finished turn is kept under the data dir
            except OSError as e:
                self.notify(f"could not save the session: {e}", severity="warning")
        if then.restore is not None:  # Esc while scoring stops what was to follow too
            self._prompt().value = then.restore
            self.notify("your queued prompt is back in the box: Enter sends it", timeout=3)
        elif then.send is not None:
            self._submit(then.send)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        what = {"ab-load": "loading", "ab-run": "answering", "ab-ctx": "checking the context"}
        self.ab.failed()
        self._show_info()
        self._prompt().disabled = self.session is None
        line = f"{what.get(event.worker.group, event.worker.name)} failed: {event.worker.error}"
        self._info(safe(line, style="b red"))

    def on_unmount(self) -> None:
        self.ab.close()
