"""The A/B screen's key actions: stop or go back, redo the last turn, edit the last prompt, save, and
stop a side stuck in a loop (or, when idle, turn stopping loops on or off for later prompts)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ...core.ab import ABSession, GenConfig
from ...core.ab.metrics import loop_at_end

if TYPE_CHECKING:
    from textual.widgets import Input

    from ..widgets.chat_pane import ChatPane

SIDES = ("a", "b")


class ABActions:
    """Mixed into the A/B screen, which holds the state these act on (its phase, session, events)."""

    phase: str
    session: ABSession | None
    cfg: GenConfig
    cancel: threading.Event
    stop_loops: threading.Event
    abort: threading.Event
    last_prompt: str
    _latest: dict[str, tuple[int, ...]]

    if TYPE_CHECKING:  # provided by the screen this is mixed into
        app: Any

        @property
        def running(self) -> bool: ...
        def _pane(self, side: str) -> ChatPane: ...
        def _prompt(self) -> Input: ...
        def _show_info(self) -> None: ...
        def ask(self, prompt: str, *, regenerate: bool = False) -> None: ...
        def notify(
            self, message: str, *, severity: Any = "information", timeout: float | None = None
        ) -> None: ...

    def action_cancel_or_back(self) -> None:
        if self.phase == "answering":
            self.cancel.set()
        elif self.phase == "scoring":
            self.cancel.set()  # scoring stops after its current batch; the turn keeps its answers
            self.notify("scoring stopped: this turn keeps both answers, without scores", timeout=3)
        else:
            self.abort.set()  # a load under way stops (its worker is killed) as the screen goes
            self.app.pop_screen()

    def action_regenerate(self) -> None:
        if self.session and self.session.turns and not self.running and self.phase == "ready":
            for side in SIDES:
                self._pane(side).forget_last()
            self.ask(self.session.turns[-1].prompt, regenerate=True)

    def action_edit_last(self) -> None:
        prompt = self._prompt()
        prompt.value = self.last_prompt
        prompt.cursor_position = len(prompt.value)
        prompt.focus()

    def action_save(self) -> None:
        if self.session and self.session.turns:
            js, md = self.session.save()
            self.notify(f"saved {md.name} and {js.name} in {md.parent}")
        else:
            self.notify("nothing to save yet: no finished turn", timeout=2)

    def looping(self) -> list[str]:
        """The sides whose answer, as it streams now, ends in a loop."""
        return [s for s in SIDES if loop_at_end(self._latest.get(s, ()))]

    def action_loop_stop(self) -> None:
        """While answering: a side stuck in a loop stops now, the other goes on and the turn is kept;
        idle: toggle stopping loops for later prompts."""
        if self.phase != "answering":
            self.cfg.stop_on_loop = not self.cfg.stop_on_loop
            state = "on" if self.cfg.stop_on_loop else "off"
            self.notify(f"stop a side stuck in a loop: {state} (from the next prompt)", timeout=2)
            self._show_info()
            return
        self.stop_loops.set()
        stuck = self.looping()
        if not stuck:
            self.notify(
                "neither side is looping now; one that starts looping in this answer stops", timeout=3
            )
        else:
            who = " and ".join(s.upper() for s in stuck)
            self.notify(f"stopping {who} now: {'they were' if len(stuck) > 1 else 'it was'} looping")
