"""A chat template for a model file that has none, "borrowed": one of llama.cpp's built-in templates
by name, or a Jinja template from a file (rendered in the same sandbox as a file's own template).
`suggest` names the built-in template of the files' architecture (gemma3 -> "gemma")."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import QuanttuiError
from ..llama.chat import builtin_templates, template_for
from ..textsafe import clean
from .context import SideFacts
from .template import TemplateError, compile_template

MAX_TEMPLATE_FILE = 1 << 20  # a real chat template is a few kilobytes


class TemplateRefused(QuanttuiError):
    """A template asked for that cannot be used; str() is one line that says why."""


def resolve(arg: str) -> tuple[str, str | None]:
    """(name, None) for llama.cpp's built-in template `arg`, or (file name, Jinja source) for a
    template file (checked to compile); TemplateRefused otherwise."""
    arg = arg.strip()
    if not arg:
        raise TemplateRefused("a template needs a name (" + names() + ") or a Jinja file")
    if arg in builtin_templates():
        return arg, None
    path = Path(arg).expanduser()
    if not path.is_file():
        shown = clean(arg[:80])
        raise TemplateRefused(f"{shown!r} is neither a llama.cpp built-in template ({names()}) nor a file")
    try:
        if path.stat().st_size > MAX_TEMPLATE_FILE:
            big = f"over {MAX_TEMPLATE_FILE // 1024} KiB, not a chat template"
            raise TemplateRefused(f"{clean(path.name)}: {big}")
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TemplateRefused(f"{clean(path.name)}: cannot read it ({clean(str(e))[:120]})") from None
    try:
        compile_template(source)
    except TemplateError as e:
        raise TemplateRefused(f"{clean(path.name)}: {e}") from None
    return path.name, source


def names() -> str:
    return ", ".join(builtin_templates())


def lacking(sides: Mapping[str, SideFacts]) -> list[str]:
    """The sides whose file has no chat template of its own."""
    return [n for n, s in sides.items() if s.has_template is False]


def suggest(sides: Mapping[str, SideFacts]) -> str | None:
    """llama.cpp's built-in template for the architecture of the sides that lack one (gemma3 ->
    "gemma"), when they share one and llama.cpp has it."""
    found = set()
    for n in lacking(sides):
        facts = sides[n].facts or {}
        found.add(template_for(facts.get("architecture")))
    return found.pop() if len(found) == 1 else None
