"""The A/B screen's key actions: stop or go back, redo the last turn, edit the last prompt, save, and
stop a side stuck in a loop (or, when idle, turn stopping loops on or off for later prompts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...core.ab.run import ABRun, Phase

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel
    from textual.widgets import Input

    from ..widgets.chat_pane import ChatPane

SIDES = ("a", "b")


class ABActions:
    """Mixed into the A/B screen, whose ABRun (`ab`) holds the state these act on."""

    ab: ABRun

    if TYPE_CHECKING:  # provided by the screen this is mixed into
        app: Any

        def _pane(self, side: str) -> ChatPane: ...
        def _prompt(self) -> Input: ...
        def _show_info(self) -> None: ...
        def ask(self, prompt: str, *, regenerate: bool = False) -> None: ...
        def notify(
            self,
            message: str,
            *,
            title: str = "",
            severity: SeverityLevel = "information",
            timeout: float | None = None,
            markup: bool = True,
        ) -> None: ...

    def action_cancel_or_back(self) -> None:
        stopped = self.ab.stop()
        if stopped is Phase.SCORING:  # scoring stops after its current batch; the turn keeps its answers
            self.notify("scoring stopped: this turn keeps both answers, without scores", timeout=3)
        elif stopped is None:  # a load under way stops (its worker is killed) as the screen goes
            self.app.pop_screen()

    def action_regenerate(self) -> None:
        if self.ab.can_regenerate():
            assert self.ab.session is not None
            for side in SIDES:
                self._pane(side).forget_last()
            self.ask(self.ab.session.turns[-1].prompt, regenerate=True)

    def action_edit_last(self) -> None:
        prompt = self._prompt()
        prompt.value = self.ab.last_prompt
        prompt.cursor_position = len(prompt.value)
        prompt.focus()

    def action_save(self) -> None:
        session = self.ab.session
        if session and session.turns:
            js, md = session.save()
            self.notify(f"saved {md.name} and {js.name} in {md.parent}")
        else:
            self.notify("nothing to save yet: no finished turn", timeout=2)

    def action_loop_stop(self) -> None:
        """While answering: a side stuck in a loop stops now, the other goes on and the turn is kept;
        idle: toggle stopping loops for later prompts."""
        if self.ab.phase is not Phase.ANSWERING:
            state = "on" if self.ab.toggle_stop_on_loop() else "off"
            self.notify(f"stop a side stuck in a loop: {state} (from the next prompt)", timeout=2)
            self._show_info()
            return
        stuck = self.ab.stop_loops_now()
        if not stuck:
            self.notify(
                "neither side is looping now; one that starts looping in this answer stops", timeout=3
            )
        else:
            who = " and ".join(s.upper() for s in stuck)
            self.notify(f"stopping {who} now: {'they were' if len(stuck) > 1 else 'it was'} looping")
