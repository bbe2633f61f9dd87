"""An A/B session: each side keeps its own conversation; every turn is compared and can be saved."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..paths import data_dir
from .engine import ABEngine, GenConfig, OnStatus, OnToken, SideResult
from .metrics import first_divergence
from .plan import Plan, plan_pair
from .process import ProcessEngine, WorkerDied
from .scoring import Scores


@dataclass
class Turn:
    prompt: str
    a: SideResult
    b: SideResult
    first_divergence: int | None
    divergence_basis: str | None  # "tokens", or "text" (a character index) when tokenizers differ
    scores_a: Scores | None = None  # KL(A || B) on A's tokens
    scores_b: Scores | None = None  # KL(B || A) on B's tokens
    when: str = field(default_factory=lambda: dt.datetime.now().isoformat(timespec="seconds"))

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
    ) -> None:
        self.cfg = cfg
        self.plan = plan or plan_pair(path_a, path_b, cfg.n_ctx)
        engine = ProcessEngine if isolate else ABEngine
        self.engine: ProcessEngine | ABEngine = engine(
            path_a,
            path_b,
            cfg,
            sequential=self.plan.sequential,
            gpu_layers=self.plan.gpu_layers,
            main_gpu=self.plan.main_gpu,
            on_status=on_status,
        )
        self.paths = {"a": path_a, "b": path_b}
        self.history: dict[str, list[dict[str, str]]] = {"a": [], "b": []}
        self.turns: list[Turn] = []
        self.stem: str | None = None  # the file name saves go to, fixed at the first save

    def messages(self, side: str, prompt: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.cfg.system}] if self.cfg.system else []
        return [*system, *self.history[side], {"role": "user", "content": prompt}]

    def ask(
        self,
        prompt: str,
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
        *,
        scoring: bool = True,
    ) -> Turn:
        """Both sides answer `prompt`; a cancelled turn is not kept, so the models stay as they were."""
        cancel = cancel or threading.Event()
        results = self.engine.run({n: self.messages(n, prompt) for n in ("a", "b")}, on_token, cancel)
        a, b = results["a"], results["b"]
        same = self.engine.same_tokenizer() if not self.engine.sequential else self._same_vocab(a, b)
        if same:
            div, basis = first_divergence(a.token_ids, b.token_ids), "tokens"
        else:
            div, basis = first_divergence(list(a.text), list(b.text)), "text"
        turn = Turn(prompt, a, b, div, basis)
        if cancel.is_set():
            return turn
        if scoring and same and not (a.error or b.error):
            turn.scores_a, turn.scores_b = self._score(a, b)
        for n, r in (("a", a), ("b", b)):
            if not r.error:
                self.history[n] += [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": r.text},
                ]
        self.turns.append(turn)
        return turn

    def regenerate(
        self, on_token: OnToken | None = None, cancel: threading.Event | None = None
    ) -> Turn | None:
        """Drop the last turn from both conversations and ask its prompt again."""
        if not self.turns:
            return None
        last = self.turns.pop()
        for n in ("a", "b"):
            if not getattr(last, n).error:
                self.history[n] = self.history[n][:-2]
        return self.ask(last.prompt, on_token, cancel)

    @staticmethod
    def _same_vocab(a: SideResult, b: SideResult) -> bool:
        return bool(a.prompt_ids) and a.prompt_ids == b.prompt_ids

    def _score(self, a: SideResult, b: SideResult) -> tuple[Scores | None, Scores | None]:
        try:
            return self.engine.cross_score(a, b)
        except WorkerDied:  # the answers stand; the next prompt starts a fresh worker
            return None, None

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
                    f"longest loop {r['longest_loop']}, distinct-2 {r['distinct_2']})\n\n{r['text']}\n"
                )
            kld = f"{d['kld_mean']:.4f}" if d["kld_mean"] is not None else "n/a"
            top1 = f"{d['top1_agreement']:.1%}" if d["top1_agreement"] is not None else "n/a"
            lines.append(
                f"First divergence: {d['first_divergence']} ({d['divergence_basis']}); "
                f"mean KLD {kld}; top-1 agreement {top1}\n"
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
