"""What the A/B screen says about itself: the settings both sides share, the phase a turn is in, a
queued prompt, the load plan and a crash, and per side what its next prompt is added to."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text

from ...core.ab import ABSession, GenConfig, borrow
from ...core.ab.context import SideFacts
from ...core.ab.run import Phase
from ..safe import safe


def info_text(
    cfg: GenConfig,
    session: ABSession,
    phase: Phase,
    scoring_for: float,
    queued: str | None,
    scored: tuple[int, int] | None = None,
    sides: Mapping[str, SideFacts] | None = None,
) -> Text:
    """The info line above the panes; `scoring_for` is how many seconds scoring has run and `scored`
    its progress (rows done, rows in all)."""
    plan = session.plan
    how = "one after the other" if plan.sequential else "at the same time"
    info = safe(f"{cfg.mode} mode · greedy · max {cfg.max_tokens} tokens · context {cfg.n_ctx:,} · {how}")
    if cfg.stop_on_loop:
        info += Text(" · stops a looping side")
    lacking = [n.upper() for n in borrow.lacking(sides or {})]
    if lacking and cfg.template_name and cfg.mode == "chat":
        info += safe(f" · {cfg.template_name[:30]} template borrowed")
    if cfg.system:
        info += safe(f" · system: {cfg.system[:40]}")
    if lacking and cfg.mode == "completion" and not cfg.template_name:
        name = borrow.suggest(sides or {})
        how = f"/template {name} borrows llama.cpp's" if name else "/template NAME|FILE borrows one"
        info += Text("\n") + safe(f"{' and '.join(lacking)}: no chat template of its own; {how} for chat")
    if phase is Phase.ANSWERING:
        info += Text(
            "\nanswering… Esc stops, keeping what was said; Enter queues the next prompt", style="bold"
        )
    elif phase is Phase.SCORING:
        done, total = scored or (0, 0)
        info += Text(
            f"\nscoring both answers… {done / total if total else 0:.0%} · "
            f"{scoring_for:.0f} s · Esc stops it · Enter queues a prompt",  # one line at 80 columns
            style="bold",
        )
    if queued is not None:
        info += Text("\n") + safe(f"queued, sent when this turn is done: {queued[:60]}")
    if plan.note:
        info += Text("\n") + safe(plan.note)
    crashed = session.engine.crashed
    if crashed:
        info += Text("\n") + safe(crashed, style="b red")
        info += Text(": both models load again with the next prompt")
    return info


def carry_notes(
    cfg: GenConfig, session: ABSession, sides: Mapping[str, SideFacts] | None = None
) -> dict[str, str]:
    """Per side: the tokens its conversation carries into the next prompt (chat mode), or that each
    prompt stands alone (completion mode); in chat mode, the template a side borrows."""
    if cfg.mode == "completion":
        return {side: "each prompt stands alone" for side in ("a", "b")}
    carried = session.carried()
    lacking = borrow.lacking(sides or {})
    notes = {side: f"carries {n:,} of {cfg.n_ctx:,} tokens" for side, n in carried.items()}
    for side in lacking:
        notes[side] += f" · borrowed template {cfg.template_name}" if cfg.template_name else " · no template"
    return notes
