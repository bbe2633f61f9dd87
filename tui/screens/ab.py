"""The A/B screen: two quants answer the same prompt side by side, with the damage marked."""

from __future__ import annotations

import threading
from dataclasses import replace
from functools import partial
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static
from textual.worker import Worker, WorkerState

from ...core.ab import ABSession, GenConfig, Turn
from ...core.modelfile import GGUFError, inspect_file
from ..messages import ABLoaded, ABStatus, ABToken, ABTurnDone
from ..pacing import Pacer
from ..safe import safe
from ..widgets.chat_pane import ChatPane


def _chat_mode(path_a: str, path_b: str) -> str:
    try:
        return "chat" if all(inspect_file(p).has_chat_template for p in (path_a, path_b)) else "completion"
    except (GGUFError, OSError):
        return "completion"


FRAME = 1 / 12  # the fastest the panes redraw while answers stream (tui/pacing.py slows it down)


class ABScreen(Screen):
    BINDINGS = [
        Binding("escape", "cancel_or_back", "Cancel / back", id="ab.cancel"),
        Binding("ctrl+r", "regenerate", "Regenerate", id="ab.regenerate"),
        Binding("ctrl+e", "edit_last", "Edit last", id="ab.edit"),
        Binding("ctrl+s", "save", "Save", id="ab.save"),
        Binding("ctrl+l", "toggle_loop_stop", "Stop on loop", id="ab.loop_stop"),
    ]
    DEFAULT_CSS = """
    #ab-info { height: auto; padding: 0 1; color: $text-muted; }
    #ab-panes { height: 1fr; }
    #ab-prompt { margin: 0 1; }
    """

    def __init__(self, path_a: str, path_b: str, cfg: GenConfig | None = None) -> None:
        super().__init__()
        self.paths = (path_a, path_b)
        cfg = cfg or GenConfig(mode=_chat_mode(path_a, path_b), max_tokens=256, n_ctx=2048)
        self.cfg = replace(cfg, stream_every=FRAME)  # the panes draw no more often than this anyway
        self.session: ABSession | None = None
        self.cancel = threading.Event()
        self.running = False
        self.last_prompt = ""
        self._gone = False  # unmounted: a session that finishes loading or answering is closed
        self._pending: ABSession | None = None  # loaded by the worker, not yet handed over
        self._live: dict[str, ABToken] = {}  # each side's newest text, drawn at the next frame
        self._pacer = Pacer(fastest=FRAME)
        self._run = 0  # which run the frame timer chain belongs to
        self._life = threading.Lock()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("loading both models…", id="ab-info")
        with Horizontal(id="ab-panes"):
            yield ChatPane("a", Path(self.paths[0]).name, id="pane-a")
            yield ChatPane("b", Path(self.paths[1]).name, id="pane-b")
        yield Input(
            placeholder="prompt: Enter sends it to both; Esc cancels; /system, /max, /ctx, /mode, /save",
            id="ab-prompt",
            disabled=True,
        )
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "A/B"
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="ab-load")
    def load(self) -> None:
        session = ABSession(*self.paths, self.cfg, on_status=self._post_status)
        with self._life:
            self._pending = session
            if self._gone:  # left while loading: free the models now, not at exit
                session.close()
                return
        self.post_message(ABLoaded(session))

    def _post_status(self, what: str, side: str) -> None:
        self.post_message(ABStatus(what, side))

    @on(ABStatus)
    def _status(self, message: ABStatus) -> None:
        name = Path(self.paths[0 if message.side == "a" else 1]).name
        self.query_one("#ab-info", Static).update(safe(f"{message.what} {message.side.upper()}: {name}…"))

    @on(ABLoaded)
    def _loaded(self, message: ABLoaded) -> None:
        self.session = message.session  # type: ignore[assignment]
        assert self.session is not None
        for side, error in self.session.engine.errors().items():
            self.query_one(f"#pane-{side}", ChatPane).show_error(error)
        self._show_info()
        prompt = self.query_one("#ab-prompt", Input)
        prompt.disabled = False
        prompt.focus()

    def _show_info(self) -> None:
        if self.session is None:
            return
        crashed = getattr(self.session.engine, "crashed", None)
        plan = self.session.plan
        how = "one after the other" if plan.sequential else "at the same time"
        c = self.cfg
        info = safe(f"{c.mode} mode · greedy · max {c.max_tokens} tokens · context {c.n_ctx} · {how}")
        if c.system:
            info += safe(f" · system: {c.system[:40]}")
        if plan.note:
            info += Text("\n") + safe(plan.note)
        if crashed:
            info += Text("\n") + safe(crashed, style="b red")
            info += Text(": both models load again with the next prompt")
        self.query_one("#ab-info", Static).update(info)

    @on(Input.Submitted, "#ab-prompt")
    def _send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self.running or self.session is None:
            return
        event.input.value = ""
        if text.startswith("/"):
            self.command(text)
        else:
            self.ask(text)

    def command(self, text: str) -> None:
        """/system TEXT, /max N, /ctx N, /mode chat|completion, /save: settings both sides share."""
        name, _, arg = text[1:].partition(" ")
        cfg = self.cfg
        if name == "system":
            cfg.system = arg.strip() or None
            self.notify(f"system prompt: {cfg.system or '(none)'}")
        elif name == "max" and arg.strip().isdigit() and int(arg) > 0:
            cfg.max_tokens = int(arg)
            self.notify(f"max tokens: {cfg.max_tokens}")
        elif name == "mode" and arg.strip() in ("chat", "completion"):
            cfg.mode = arg.strip()
            self.notify(f"mode: {cfg.mode}")
        elif name == "ctx" and arg.strip().isdigit() and int(arg) >= 64:
            cfg.n_ctx = int(arg)
            if self.session is not None:
                self.session.close()  # the context is fixed at load: both models load again
            self.session = None
            self.query_one("#ab-prompt", Input).disabled = True
            self.query_one("#ab-info", Static).update(Text(f"loading both models with context {cfg.n_ctx}…"))
            self.load()
            return
        elif name == "save":
            self.action_save()
        else:
            self.notify(
                "commands: /system TEXT, /max N, /ctx N, /mode chat|completion, /save", severity="warning"
            )
            return
        self._show_info()

    def ask(self, prompt: str, *, regenerate: bool = False) -> None:
        self.last_prompt = prompt
        self._set_running(True)
        for side in ("a", "b"):
            self.query_one(f"#pane-{side}", ChatPane).streaming(prompt, "", 0)
        self.generate(prompt, regenerate)

    def _set_running(self, running: bool) -> None:
        self.running = running
        self._live.clear()
        self._run += 1  # the frame timers of the run before stop here
        if running:
            self.cancel = threading.Event()
            self.set_timer(self._pacer.start(), partial(self._draw_live, self._run))

    @work(thread=True, exclusive=True, exit_on_error=False, group="ab-run")
    def generate(self, prompt: str, regenerate: bool) -> None:
        assert self.session is not None

        def on_token(side: str, ids: list[int], text: str) -> None:
            self.post_message(ABToken(side, len(ids), text))

        cancel = self.cancel
        if regenerate:
            turn = self.session.regenerate(on_token, cancel)
        else:
            turn = self.session.ask(prompt, on_token, cancel)
        with self._life:
            if self._gone:
                self.session.close()
                return
        self.post_message(ABTurnDone(turn, cancel.is_set()))

    @on(ABToken)
    def _token(self, message: ABToken) -> None:
        if self.running:
            self._live[message.side] = message

    def _draw_live(self, run: int) -> None:
        """One frame for both sides' latest text, however many updates came since the last."""
        if run != self._run or not self.running:
            return
        with self.app.batch_update():
            for side, m in self._live.items():
                self.query_one(f"#pane-{side}", ChatPane).streaming(self.last_prompt, m.text, m.n_tokens)
        self._live.clear()
        self.set_timer(self._pacer.next(), partial(self._draw_live, run))

    @on(ABTurnDone)
    def _done(self, message: ABTurnDone) -> None:
        self._set_running(False)
        turn: Turn = message.turn  # type: ignore[assignment]
        if message.cancelled:
            self.notify("cancelled: both models are ready for the next prompt", timeout=2)
            for side in ("a", "b"):
                self.query_one(f"#pane-{side}", ChatPane).cancelled()
            return
        for side in ("a", "b"):
            self.query_one(f"#pane-{side}", ChatPane).finish(turn)
        self._show_info()
        self.query_one("#ab-prompt", Input).focus()
        if self.session is not None:
            try:
                self.session.save()  # every finished turn is kept under the data dir
            except OSError as e:
                self.notify(f"could not save the session: {e}", severity="warning")

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self._set_running(False)
            self.query_one("#ab-info", Static).update(safe(f"failed: {event.worker.error}", style="b red"))

    def action_cancel_or_back(self) -> None:
        if self.running:
            self.cancel.set()
        else:
            self.app.pop_screen()

    def action_regenerate(self) -> None:
        if self.session and self.session.turns and not self.running:
            for side in ("a", "b"):
                self.query_one(f"#pane-{side}", ChatPane).forget_last()
            self.ask(self.session.turns[-1].prompt, regenerate=True)

    def action_edit_last(self) -> None:
        prompt = self.query_one("#ab-prompt", Input)
        prompt.value = self.last_prompt
        prompt.focus()

    def action_save(self) -> None:
        if self.session and self.session.turns:
            js, md = self.session.save()
            self.notify(f"saved {md.name} and {js.name} in {md.parent}")

    def action_toggle_loop_stop(self) -> None:
        self.cfg.stop_on_loop = not self.cfg.stop_on_loop
        self.notify(f"stop a side stuck in a loop: {'on' if self.cfg.stop_on_loop else 'off'}", timeout=2)

    def on_unmount(self) -> None:
        self.cancel.set()
        with self._life:
            self._gone = True
            session = self.session or self._pending
            if session is not None and not self.running:
                session.close()
