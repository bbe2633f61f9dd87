"""The A/B prompt's slash commands, checked before anything changes: each refusal names the command
and the reason, and every number is bounded."""

from __future__ import annotations

from ...core.ab import borrow, config, context
from ...core.ab.context import SideFacts
from ...core.ab.context import default_mode as default_mode
from ...core.ab.context import side_facts as side_facts
from ...core.errors import QuanttuiError
from ...core.textsafe import clean

# What each slash command does, for Help; COMMANDS lists them on one line.
DESCRIBED = (
    ("/system TEXT", "system prompt for both sides (empty: none; chat mode only)"),
    ("/max N", "answer length in tokens"),
    ("/ctx N", "context in tokens: both models load again, the conversation starts afresh"),
    ("/mode chat|completion", "chat template turns, or plain text continued"),
    (
        "/template NAME|FILE",
        "borrow a chat template for a model file without one: llama.cpp's built-in NAME "
        "(gemma, chatml, llama3, …) or a Jinja file; `none` stops borrowing",
    ),
    ("/clear", "forget the conversation"),
    ("/save", "save the session as JSON and Markdown"),
    ("/score", "score the last turn: one stopped with Esc keeps its answers unscored until asked"),
)
COMMANDS = ", ".join(name for name, _ in DESCRIBED)
DEFAULT_CTX = config.DEFAULT_CTX  # unless /ctx says otherwise (or either model was trained for less)


class CommandRefused(QuanttuiError):
    """A slash command that was not carried out; str() is the one line that says why."""


def default_ctx(sides: dict[str, SideFacts]) -> int:
    """DEFAULT_CTX, or less when either model was trained for less."""
    return context.default_ctx(sides, DEFAULT_CTX)


def split(text: str) -> tuple[str, str]:
    """("max", "16") for "/max 16"."""
    name, _, arg = text[1:].partition(" ")
    return name.strip().lower(), arg.strip()


def unknown(name: str) -> str:
    return f"unknown command /{clean(name[:40])}; commands: {COMMANDS}"


def max_tokens(arg: str, n_ctx: int) -> int:
    """The answer length for /max: a whole number from 1 to the context (no side can answer more)."""
    if not arg.isdigit() or not 1 <= int(arg) <= n_ctx:
        shown = f" (got {clean(arg[:40])!r})" if arg else ""
        raise CommandRefused(f"/max needs a whole number between 1 and {n_ctx:,} (the context){shown}")
    return int(arg)


def mode(arg: str, sides: dict[str, SideFacts], borrowed: str | None = None) -> tuple[str, str | None]:
    """The mode for /mode and a warning to show with it, or CommandRefused: chat mode needs a chat
    template (a file's own, or one `borrowed` by /template), and a side without one would get the
    prompt as plain text."""
    if arg not in config.MODES:
        raise CommandRefused("/mode needs chat or completion")
    if arg == "completion":
        return arg, None
    lacking = [side.upper() for side in borrow.lacking(sides)]
    if lacking and borrowed:
        who = " and ".join(lacking)
        return arg, f"{who} {'has' if len(lacking) == 1 else 'have'} no chat template: borrowed {borrowed!r}"
    if len(lacking) == len(sides):
        raise CommandRefused(f"/mode chat: neither model has a chat template; {suggestion(sides)}")
    if lacking:
        who = lacking[0]
        name = clean(sides[who.lower()].name)
        return arg, f"{who} ({name}) has no chat template: it gets each prompt as plain text"
    return arg, None


def suggestion(sides: dict[str, SideFacts]) -> str:
    """What to type to borrow a template: the architecture's, when llama.cpp has one."""
    name = borrow.suggest(sides)
    if name:
        return f"/template {name} borrows llama.cpp's built-in template for this architecture"
    return "/template NAME|FILE borrows one (llama.cpp's built-in templates, or a Jinja file)"


def template(arg: str) -> tuple[str, str | None]:
    """/template NAME|FILE: llama.cpp's built-in template, or a Jinja file's (name, source)."""
    try:
        return borrow.resolve(arg)
    except borrow.TemplateRefused as e:
        raise CommandRefused(f"/template: {e}") from None


def system(arg: str, cfg: config.GenConfig) -> str | None:
    """The system prompt for /system; refused in completion mode, which has no system turn."""
    if cfg.mode == "completion":
        raise CommandRefused(
            "/system: completion mode sends each prompt as plain text, with no system turn; "
            "/mode chat first (a model without a chat template needs /template)"
        )
    return arg or None


def ctx_arg(arg: str) -> str:
    """The argument of /ctx, refused at once when empty (the full check runs off the UI thread)."""
    if not arg:
        raise CommandRefused("/ctx needs a number of tokens, such as /ctx 4096")
    return arg
