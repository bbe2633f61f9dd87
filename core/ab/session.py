"""An A/B session: each side keeps its own conversation; every turn is compared and can be saved."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..paths import data_dir
from .config import GenConfig
from .engine import ABEngine, Engine
from .loader import one_line
from .metrics import first_divergence
from .plan import Facts, Plan, plan_pair
from .process import ProcessEngine
from .protocol import Placement
from .scoring import OnProgress, Scores
from .side import OnStatus, OnToken, SideResult

STOPPED = "the answers were stopped (Esc) before they ended: /score scores what was said"


@dataclass
class Turn:
    prompt: str
    a: SideResult
    b: SideResult
    first_divergence: int | None
    divergence_basis: str | None  # "tokens", or "text" (a character index) when tokenizers differ
    scores_a: Scores | None = None  # KL(A || B) on A's tokens
    scores_b: Scores | None = None  # KL(B || A) on B's tokens
    unscored: str = ""  # why the turn has no scores, once scoring was tried or ruled out
    when: str = field(default_factory=lambda: dt.datetime.now().isoformat(timespec="seconds"))
    number: int = 0  # the engine keeps its answers under this number, to score them when asked
    stopped: bool = False  # stopped with Esc while answering: what was said so far, kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "first_divergence": self.first_divergence,
            "divergence_basis": self.divergence_basis,
            "kld_mean": self.scores_a.kld_mean if self.scores_a else None,
            "top1_agreement": self.scores_a.top1_agreement if self.scores_a else None,
            "scores_a": self.scores_a.to_dict() if self.scores_a else None,
            "scores_b": self.scores_b.to_dict() if self.scores_b else None,
            "unscored": self.unscored or None,
            "stopped": self.stopped,
            "when": self.when,
        }


class ABSession:
    """Both models in a worker process by default (`isolate=False` keeps them in this process)."""

    def __init__(
        self,
        path_a: str,
        path_b: str,
        cfg: GenConfig,
        plan: Plan | None = None,
        *,
        isolate: bool = True,
        on_status: OnStatus | None = None,
        abort: threading.Event | None = None,
        facts: Facts | None = None,
    ) -> None:
        """`abort`, set from another thread, stops loading (the worker is killed; both sides then
        say "loading was cancelled"): the screen sets it when it is left while the models load.
        `facts` (per side, the header's facts the Library holds) spares reading them again."""
        self.cfg = cfg
        self.plan = plan or plan_pair(path_a, path_b, cfg.n_ctx, facts=facts)
        where = Placement(self.plan.sequential, dict(self.plan.gpu_layers), self.plan.main_gpu)
        self.engine: Engine = (
            ProcessEngine(path_a, path_b, cfg, placement=where, on_status=on_status, abort=abort)
            if isolate
            else ABEngine(path_a, path_b, cfg, placement=where, on_status=on_status)
        )
        self.paths = {"a": path_a, "b": path_b}
        # Chat mode: each side's conversation so far, and its size in tokens after each kept turn.
        self.history: dict[str, list[dict[str, str]]] = {"a": [], "b": []}
        self._carried: dict[str, list[int]] = {"a": [], "b": []}
        # Completion mode: each side's last input and answer, for an explicit continuation.
        self.last_text: dict[str, str] = {"a": "", "b": ""}
        self.turns: list[Turn] = []
        self._kept: list[tuple[str, ...]] = []  # per turn: the sides whose conversation it extended
        self.stem: str | None = None  # the file name saves go to, fixed at the first save
        self._asked = 0  # turns asked so far, kept or not: each one's number for the engine

    def messages(self, side: str, prompt: str, *, continue_text: bool = False) -> list[dict[str, str]]:
        """What `side` is given for `prompt`. Chat mode: the system prompt, its conversation and
        the prompt. Completion mode: the prompt alone, so both sides get the same input; with
        `continue_text`, appended to that side's last input and answer (the sides then differ)."""
        if self.cfg.mode == "completion":
            text = self.last_text[side] + prompt if continue_text else prompt
            return [{"role": "user", "content": text}]
        system = [{"role": "system", "content": self.cfg.system}] if self.cfg.system else []
        return [*system, *self.history[side], {"role": "user", "content": prompt}]

    def carried(self) -> dict[str, int]:
        """Tokens each side carries into its next prompt: its chat conversation so far (system
        prompt, earlier prompts and answers, as its template writes them); 0 in completion mode."""
        if self.cfg.mode == "completion":
            return {"a": 0, "b": 0}
        return {n: c[-1] if c else 0 for n, c in self._carried.items()}

    def clear_history(self) -> None:
        """Forget both conversations (and the text a continuation would extend); turns stay saved."""
        self.history = {"a": [], "b": []}
        self._carried = {"a": [], "b": []}
        self.last_text = {"a": "", "b": ""}
        self._kept = [() for _ in self._kept]  # a regenerate after this has nothing to take back

    def ask(
        self,
        prompt: str,
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
        *,
        scoring: bool = True,
        continue_text: bool = False,
        stop_loops: threading.Event | None = None,
        keep_stopped: bool = False,
    ) -> Turn:
        """Both sides answer `prompt`; a cancelled turn is not kept, so the models stay as they were,
        unless `keep_stopped`: then what was said so far is kept as the turn (unscored, saying so;
        `score` scores it when asked), unless neither side said anything.
        Setting `stop_loops` while they answer stops a side stuck in a loop now; the turn is kept.
        With `scoring`, the turn is scored (`score`) before it returns; `cancel` set then stops
        the scoring only, and the turn is kept without scores."""
        cancel = cancel or threading.Event()
        messages = {n: self.messages(n, prompt, continue_text=continue_text) for n in ("a", "b")}
        self._asked += 1
        results = self.engine.run(messages, on_token, cancel, stop_loops=stop_loops, turn=self._asked)
        a, b = results["a"], results["b"]
        same = self.engine.same_tokenizer()
        if a.error or b.error:  # nothing to compare with
            div, basis = None, None
        elif same:
            div, basis = first_divergence(a.token_ids, b.token_ids), "tokens"
        else:
            div, basis = first_divergence(list(a.text), list(b.text)), "text"
        turn = Turn(prompt, a, b, div, basis, number=self._asked)
        if cancel.is_set():
            if keep_stopped and (a.token_ids or b.token_ids):
                turn.unscored, turn.stopped = self.unscorable(turn) or STOPPED, True
                self._keep(turn, messages)
            return turn
        if scoring:
            self.score(turn, cancel=cancel)
        self._keep(turn, messages)
        return turn

    def _keep(self, turn: Turn, messages: dict[str, list[dict[str, str]]]) -> None:
        """The turn joins the session, and each side's answer its conversation."""
        prompt, a, b = turn.prompt, turn.a, turn.b
        kept: list[str] = []
        for n, r in (("a", a), ("b", b)):
            if r.error:
                continue
            if self.cfg.mode == "completion":
                self.last_text[n] = messages[n][-1]["content"] + r.text
                continue
            self.history[n] += [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": r.text},
            ]
            self._carried[n].append(len(r.prompt_ids) + len(r.token_ids))
            kept.append(n)
        self.turns.append(turn)
        self._kept.append(tuple(kept))

    def regenerate(
        self,
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
        stop_loops: threading.Event | None = None,
        *,
        scoring: bool = True,
        keep_stopped: bool = False,
    ) -> Turn | None:
        """Drop the last turn from both conversations and ask its prompt again (as `ask` does)."""
        if not self.turns:
            return None
        last = self.turns.pop()
        for n in self._kept.pop():
            self.history[n] = self.history[n][:-2]
            self._carried[n].pop()
        return self.ask(
            last.prompt, on_token, cancel, scoring=scoring, stop_loops=stop_loops, keep_stopped=keep_stopped
        )

    @staticmethod
    def scorable(turn: Turn) -> bool:
        """Whether the turn can be scored: both sides answered, with one tokenizer."""
        return not ABSession.unscorable(turn)

    @staticmethod
    def unscorable(turn: Turn) -> str:
        """Why the turn cannot be scored, or "" when it can."""
        failed = [n.upper() for n in ("a", "b") if getattr(turn, n).error]
        if failed:
            return f"{' and '.join(failed)} failed"
        if turn.divergence_basis != "tokens":
            return "the models' tokenizers differ (KL divergence needs the same tokens)"
        return ""

    def score(
        self,
        turn: Turn,
        on_progress: OnProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """KL divergence both ways and top-1 agreement on a finished turn (`scorable`), into its
        `scores_a` and `scores_b`. `on_progress(done, total)` hears how far it is (scoring.OnProgress);
        setting `cancel` stops it between batches, and the turn then has no scores. A turn left
        without scores says why in `unscored`."""
        turn.scores_a = turn.scores_b = None
        turn.unscored = self.unscorable(turn)
        if turn.unscored:
            return
        try:
            answers = {"a": turn.a, "b": turn.b}
            if not self.engine.holds(turn.number, answers):  # not the answers the engine gave
                self.engine.hold(turn.number, answers)
            scores = self.engine.score(turn.number, on_progress, cancel)
        except RuntimeError as e:  # the worker died, or a model could not load again: answers stand
            turn.unscored = f"scoring failed: {one_line(e)}"
            return
        if cancel is not None and cancel.is_set():  # one that came in as it ended counts too
            turn.unscored = "scoring was cancelled: /score scores the turn"
        else:
            turn.scores_a, turn.scores_b = scores

    # saving -----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.paths["a"],
            "b": self.paths["b"],
            "mode": self.cfg.mode,
            "system": self.cfg.system,
            "max_tokens": self.cfg.max_tokens,
            "n_ctx": self.cfg.n_ctx,
            "sequential": self.plan.sequential,
            "turns": [t.to_dict() for t in self.turns],
        }

    def to_markdown(self) -> str:
        lines = [
            f"# A/B session\n\n- A: `{self.paths['a']}`\n- B: `{self.paths['b']}`\n- mode: {self.cfg.mode}, "
            f"max tokens {self.cfg.max_tokens}, context {self.cfg.n_ctx}\n"
        ]
        for i, t in enumerate(self.turns, 1):
            d = t.to_dict()
            lines.append(f"## Turn {i}\n\n**Prompt:** {t.prompt}\n")
            for n in ("a", "b"):
                r = d[n]
                lines.append(
                    f"### {n.upper()} ({r['stop_reason']}, {r['tokens_per_second']} tok/s, "
                    f"longest loop {getattr(t, n).loop_text()}, distinct-2 {r['distinct_2']})\n\n"
                    f"{r['text']}\n"
                )
            kld = f"{d['kld_mean']:.4f}" if d["kld_mean"] is not None else "n/a"
            top1 = f"{d['top1_agreement']:.1%}" if d["top1_agreement"] is not None else "n/a"
            why = f"; not scored: {t.unscored}" if t.unscored else ""
            lines.append(
                f"First divergence: {d['first_divergence']} ({d['divergence_basis'] or 'not compared'}); "
                f"mean KLD {kld}; top-1 agreement {top1}{why}\n"
            )
        return "\n".join(lines)

    def save(self, folder: Path | None = None) -> tuple[Path, Path]:
        """Write the session as JSON and Markdown under the data dir (or `folder`)."""
        folder = folder or data_dir() / "sessions"
        folder.mkdir(parents=True, exist_ok=True)
        self.stem = self.stem or f"ab-{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
        stem = folder / self.stem
        js, md = stem.with_suffix(".json"), stem.with_suffix(".md")
        js.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        md.write_text(self.to_markdown(), encoding="utf-8")
        return js, md

    def close(self) -> None:
        self.engine.close()
