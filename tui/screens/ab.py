"""The A/B screen: two quants answer the same prompt side by side, with the damage marked."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from functools import partial

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Header, Input, Static
from textual.worker import Worker, WorkerState

from ...core.ab import ABSession, ContextRefused, GenConfig, check_context
from ..pacing import Pacer
from ..safe import safe
from ..widgets.chat_pane import ChatPane
from ..widgets.key_footer import KeyFooter
from . import ab_commands as cmd
from .ab_actions import SIDES, ABActions
from .ab_commands import CommandRefused
from .ab_messages import ContextChecked, Loaded, LoadStatus, Scoring, ScoringProgress, SideTokens, TurnDone
from .ab_status import carry_notes, info_text

FRAME = 1 / 12  # the fastest the panes redraw while answers stream (tui/pacing.py slows it down)


class ABScreen(ABActions, Screen):
    """Loading, answering and scoring run in workers; the phase they are in is always on screen, and a
    prompt sent while a turn is busy waits its turn instead of being dropped."""

    HELP_TYPED = cmd.DESCRIBED  # the slash commands, listed first in Help
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
    ABScreen.short ChatPane > Sparkline { height: 1; }
    """
    SHORT = 30  # below this many rows the sparklines take one row, leaving the answers more

    def __init__(self, path_a: str, path_b: str, cfg: GenConfig | None = None) -> None:
        super().__init__()
        self.paths = (path_a, path_b)
        self.sides = {"a": cmd.side_facts(path_a), "b": cmd.side_facts(path_b)}
        cfg = cfg or GenConfig(
            mode=cmd.default_mode(self.sides), max_tokens=256, n_ctx=cmd.default_ctx(self.sides)
        )
        self.cfg = replace(cfg, stream_every=FRAME)  # the panes draw no more often than this anyway
        self.session: ABSession | None = None
        self.cancel = threading.Event()
        self.stop_loops = threading.Event()  # set while answering: a side stuck in a loop stops now
        self.abort = threading.Event()  # set when the screen is left: a load under way stops
        self.phase = "loading"  # loading, checking (a /ctx), ready, answering, scoring
        self.last_prompt = ""
        self.queued: str | None = None  # typed while a turn was busy; sent when it is done
        self._scoring_since = 0.0
        self._scored: tuple[int, int] | None = None  # scoring's progress in this turn, once heard
        self._gone = False  # unmounted: a session that finishes loading or answering is closed
        self._pending: ABSession | None = None  # loaded by the worker, not yet handed over
        self._live: dict[str, SideTokens] = {}  # each side's newest text, drawn at the next frame
        self._latest: dict[str, tuple[int, ...]] = {}  # each side's token ids so far in this turn
        self._pacer = Pacer(fastest=FRAME)
        self._run = 0  # which run the frame timer chain belongs to
        self._life = threading.Lock()

    @property
    def running(self) -> bool:
        return self.phase in ("answering", "scoring")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("loading both models…", id="ab-info")
        with Horizontal(id="ab-panes"):
            yield ChatPane("a", self.sides["a"].name, id="pane-a")
            yield ChatPane("b", self.sides["b"].name, id="pane-b")
        hint = f"prompt: Enter sends it to both; Esc cancels; {cmd.COMMANDS}"
        yield Input(placeholder=hint, id="ab-prompt")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "A/B"
        self.query_one("#ab-prompt", Input).disabled = True
        self.set_interval(1, self._tick)
        self.load()

    def on_resize(self) -> None:
        self.set_class(self.size.height < self.SHORT, "short")

    def _pane(self, side: str) -> ChatPane:
        return self.query_one(f"#pane-{side}", ChatPane)

    def _prompt(self) -> Input:
        return self.query_one("#ab-prompt", Input)

    # loading ----------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="ab-load")
    def load(self) -> None:
        session = ABSession(*self.paths, self.cfg, on_status=self._post_status, abort=self.abort)
        with self._life:
            self._pending = session
            if self._gone:  # left while loading: free the models now, not at exit
                session.close()
                return
        self.post_message(Loaded(session))

    def _post_status(self, what: str, side: str) -> None:
        self.post_message(LoadStatus(what, side))

    @on(LoadStatus)
    def _status(self, message: LoadStatus) -> None:
        name = self.sides[message.side].name if message.side in self.sides else ""
        text = f"{message.what} {message.side.upper()}: {name}… (Esc stops loading and goes back)"
        self.query_one("#ab-info", Static).update(safe(text))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.session = message.session
        self.phase = "ready"
        for side, error in self.session.engine.errors().items():
            self._pane(side).show_error(error)
        self.app.say_extra_buffers()  # type: ignore[attr-defined]
        self._show_info()
        self._prompt().disabled = False
        self._prompt().focus()
        queued, self.queued = self.queued, None
        if queued is not None:  # sent while the models loaded again (/ctx)
            self._submit(queued)

    def _reload(self, n_ctx: int) -> None:
        """Both models load again with context `n_ctx` (the context is fixed at load)."""
        self.cfg.n_ctx = n_ctx
        if self.session is not None:
            self.session.close()
            for side in SIDES:
                self._pane(side).cleared(f"context set to {n_ctx:,}")
        self.session = None
        self.phase = "loading"  # the prompt box stays open: what is sent meanwhile waits for the models
        self.query_one("#ab-info", Static).update(Text(f"loading both models with context {n_ctx:,}…"))
        self.load()

    # the info line ----------------------------------------------------------------------------------

    def _show_info(self) -> None:
        if self.session is None:
            return
        took = time.monotonic() - self._scoring_since
        info = info_text(self.cfg, self.session, self.phase, took, self.queued, self._scored)
        self.query_one("#ab-info", Static).update(info)
        for side, note in carry_notes(self.cfg, self.session).items():
            self._pane(side).set_note(note)

    def _tick(self) -> None:
        if self.phase == "scoring":
            self._show_info()

    # prompts and commands ---------------------------------------------------------------------------

    @on(Input.Submitted, "#ab-prompt")
    def _send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        event.input.value = ""
        if self.running or self.phase in ("checking", "loading"):
            self.queued = text
            if self.running:
                self.notify("queued: it is sent when this turn is done", timeout=2)
                self._show_info()
            else:  # the info line says what is loading
                self.notify("queued: it is sent when both models have loaded", timeout=3)
            return
        self._submit(text)

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
            cfg.system = arg or None
            self.notify(f"system prompt: {cfg.system or '(none)'}")
        elif name == "max":
            cfg.max_tokens = cmd.max_tokens(arg, cfg.n_ctx)
            self.notify(f"max tokens: {cfg.max_tokens}")
        elif name == "mode":
            cfg.mode, warning = cmd.mode(arg, self.sides)
            self.notify(f"mode: {cfg.mode}" + (f"; {warning}" if warning else ""))
        elif name == "ctx":
            arg = cmd.ctx_arg(arg)
            self.phase = "checking"
            self.query_one("#ab-info", Static).update(safe(f"checking a context of {arg[:20]}…"))
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
        else:
            raise CommandRefused(cmd.unknown(name))
        self._show_info()

    @work(thread=True, exclusive=True, exit_on_error=False, group="ab-ctx")
    def check_ctx(self, arg: str) -> None:
        """Bounded by both models' trained context and by what fits in memory (the fit estimator)."""
        try:
            self.post_message(ContextChecked(check_context(*self.paths, arg)))
        except ContextRefused as e:
            self.post_message(ContextChecked(None, str(e)))

    @on(ContextChecked)
    def _ctx_checked(self, message: ContextChecked) -> None:
        if self._gone:
            return
        if message.n_ctx is None:
            self.phase = "ready"
            self._prompt().focus()
            queued, self.queued = self.queued, None
            if queued is not None and not self._prompt().value:  # not sent: the context is as it was
                self._prompt().value = queued
            self.notify(f"/ctx refused: {message.error}", severity="warning", timeout=6)
            self._show_info()
            return
        if self.cfg.max_tokens > message.n_ctx:
            self.cfg.max_tokens = message.n_ctx
        self._reload(message.n_ctx)

    def ask(self, prompt: str, *, regenerate: bool = False) -> None:
        self.last_prompt = prompt
        self._set_phase("answering")
        for side in SIDES:
            self._pane(side).streaming(prompt, "", 0)
        self.generate(prompt, regenerate)

    def _set_phase(self, phase: str) -> None:
        was_running = self.running
        self.phase = phase
        if phase == "scoring":
            self._scoring_since = time.monotonic()
            self._scored = None
        if phase == "answering" and not was_running:
            self._live.clear()
            self._latest.clear()
            self._run += 1  # the frame timers of the run before stop here
            self.cancel = threading.Event()
            self.stop_loops = threading.Event()
            self.set_timer(self._pacer.start(), partial(self._draw_live, self._run))
        elif not self.running:
            self._live.clear()
            self._run += 1
        self._show_info()

    @work(thread=True, exclusive=True, exit_on_error=False, group="ab-run")
    def generate(self, prompt: str, regenerate: bool) -> None:
        session = self.session
        assert session is not None

        def on_token(side: str, ids: list[int], text: str) -> None:
            self.post_message(SideTokens(side, tuple(ids), text))

        def on_progress(done: int, total: int) -> None:
            self.post_message(ScoringProgress(done, total))

        cancel, stop_loops = self.cancel, self.stop_loops
        if regenerate:
            turn = session.regenerate(on_token, cancel, stop_loops, scoring=False)
        else:
            turn = session.ask(prompt, on_token, cancel, scoring=False, stop_loops=stop_loops)
        cancelled = cancel.is_set()  # while answering; a cancel while scoring keeps the turn
        if turn is not None and not cancelled:
            if session.scorable(turn):
                self.post_message(Scoring(len(turn.a.token_ids) + len(turn.b.token_ids)))
            session.score(turn, on_progress, cancel)  # one that cannot be scored is told why
        with self._life:
            if self._gone:
                session.close()
                return
        self.post_message(TurnDone(turn, cancelled))

    @on(SideTokens)
    def _token(self, message: SideTokens) -> None:
        if self.phase == "answering":
            self._live[message.side] = message
            self._latest[message.side] = message.ids

    @on(ScoringProgress)
    def _scoring_progress(self, message: ScoringProgress) -> None:
        if self.phase == "scoring":
            self._scored = (message.done, message.total)
            self._show_info()

    @on(Scoring)
    def _scoring(self, message: Scoring) -> None:
        if self.phase == "answering":
            self._draw_live(self._run)  # the last words of both answers, before the wait
            self._set_phase("scoring")

    def _draw_live(self, run: int) -> None:
        """One frame for both sides' latest text, however many updates came since the last."""
        if run != self._run or self.phase != "answering":
            return
        with self.app.batch_update():
            for side, m in self._live.items():
                self._pane(side).streaming(self.last_prompt, m.text, len(m.ids))
        self._live.clear()
        self.set_timer(self._pacer.next(), partial(self._draw_live, run))

    @on(TurnDone)
    def _done(self, message: TurnDone) -> None:
        turn = message.turn
        self._set_phase("ready")
        queued, self.queued = self.queued, None
        if message.cancelled or turn is None:
            for side in SIDES:
                self._pane(side).cancelled()
            if queued is not None:  # not sent: back in the box to send or change
                self._prompt().value = queued
            self.notify("cancelled: both models are ready for the next prompt", timeout=2)
            self._show_info()
            return
        for side in SIDES:
            self._pane(side).finish(turn)
        self.app.say_extra_buffers()  # type: ignore[attr-defined]
        self._show_info()
        self._prompt().focus()
        if self.session is not None:
            try:
                self.session.save()  # every finished turn is kept under the data dir
            except OSError as e:
                self.notify(f"could not save the session: {e}", severity="warning")
        if queued is not None and self.cancel.is_set():  # Esc while scoring stops what was to follow too
            self._prompt().value = queued
            self.notify("your queued prompt is back in the box: Enter sends it", timeout=3)
        elif queued is not None:
            self._submit(queued)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        what = {"ab-load": "loading", "ab-run": "answering", "ab-ctx": "checking the context"}
        self._set_phase("ready" if self.session is not None else "loading")
        self._prompt().disabled = self.session is None
        line = f"{what.get(event.worker.group, event.worker.name)} failed: {event.worker.error}"
        self.query_one("#ab-info", Static).update(safe(line, style="b red"))

    def on_unmount(self) -> None:
        self.cancel.set()
        self.abort.set()
        with self._life:
            self._gone = True
            session = self.session or self._pending
            if session is not None and not self.running:
                session.close()
