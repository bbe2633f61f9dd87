"""Chat templates from model files, rendered as untrusted code: sandboxed, bounded and cancellable.

A template is a Jinja program written by whoever made the file. It runs in jinja's immutable
sandbox (no attribute escapes), with `*` and `**` bounded (no gigabyte strings from one operator),
its output bounded, and a trace on the rendering thread that stops it when the caller cancels or
the time limit passes. Whatever goes wrong becomes one `TemplateError` line. The worker process
is the last line of defence: the app kills it when a render does not stop (process.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..errors import QuanttuiError
from ..textsafe import clean

RENDER_SECONDS = 10.0  # a real template renders in milliseconds
MAX_PROMPT_CHARS = 4 << 20  # rendered text; far beyond any context window
MAX_OPERAND = 1 << 20  # the largest string or list `*` may build, and the largest `**` result bits


class TemplateError(QuanttuiError):
    """A chat template that cannot be compiled or rendered; the text is one safe line."""


class TemplateCancelled(TemplateError):
    """The caller cancelled while the template was rendering."""


class _Stop(Exception):
    """Raised into the template's frames by the trace; not a subclass anything inside catches."""


def _bounded_mul(left: Any, right: Any) -> Any:
    for seq, n in ((left, right), (right, left)):
        repeated = isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int)
        if repeated and len(seq) * max(n, 0) > MAX_OPERAND:
            raise OverflowError(f"a repeated value longer than {MAX_OPERAND} items")
    return left * right


def _bounded_pow(left: Any, right: Any) -> Any:
    big = isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0
    if big and right * abs(left).bit_length() > MAX_OPERAND:
        raise OverflowError(f"a power larger than 2**{MAX_OPERAND}")
    return left**right


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(jinja2.ext.Extension):
        """HuggingFace's `{% generation %}` tag, rendered as its body (as transformers does)."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            parser.stream.skip(1)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    class Env(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                return _bounded_mul(left, right)
            if operator == "**":
                return _bounded_pow(left, right)
            return super().call_binop(context, operator, left, right)

    env = Env(
        loader=jinja2.BaseLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationTag, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    return env


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, **kw: Any) -> str:
    """Transformers' `tojson`: non-ASCII kept, `separators` and `sort_keys` as json.dumps takes them."""
    keep = {k: v for k, v in kw.items() if k in ("separators", "sort_keys")}
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, **keep)


def _raise_exception(message: str) -> None:
    raise ValueError(message)


def _strftime_now(fmt: str) -> str:
    return dt.datetime.now().strftime(fmt)


def _one_line(e: BaseException) -> str:
    what = type(e).__name__
    if what == "TemplateSyntaxError" and getattr(e, "lineno", None):
        return clean(f"syntax error on line {e.lineno}: {getattr(e, 'message', e)}")
    return clean(f"{what}: {e}" if str(e) else what)[:300]


class _Watch:
    """A trace function for the rendering thread: raises into the template when told to stop."""

    def __init__(self, cancel: threading.Event | None, seconds: float) -> None:
        self.cancel = cancel
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.why: str | None = None

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        if self.cancel is not None and self.cancel.is_set():
            self.why = "cancelled"
        elif time.monotonic() > self.deadline:
            self.why = f"took more than {self.seconds:g} s to render"
        if self.why:
            raise _Stop(self.why)
        return self


@functools.lru_cache(maxsize=8)
def _compiled(source: str) -> Any:
    """A template compiled once per source (each side renders it every turn)."""
    return _environment().from_string(source)


def compile_template(source: str) -> Any:
    """The template compiled in the sandbox; TemplateError for a syntax error or anything else."""
    try:
        return _environment().from_string(source)
    except Exception as e:  # noqa: BLE001  a hostile template may raise anything
        raise TemplateError(f"chat template: {_one_line(e)}") from None


def render_chat(
    source: str,
    messages: list[dict[str, str]],
    *,
    bos: str,
    eos: str,
    cancel: threading.Event | None = None,
    seconds: float = RENDER_SECONDS,
) -> tuple[str, list[str]]:
    """The conversation as the model's template writes it (with the generation prompt), and its
    stop strings; TemplateCancelled when `cancel` is set meanwhile, TemplateError otherwise."""
    watch = _Watch(cancel, seconds)
    parts: list[str] = []
    size = 0
    previous = sys.gettrace()
    sys.settrace(watch)
    try:
        template = _compiled(source)  # the first compile is bounded by the watch too
        for chunk in template.generate(
            messages=messages,
            eos_token=eos,
            bos_token=bos,
            raise_exception=_raise_exception,
            add_generation_prompt=True,
            strftime_now=_strftime_now,
            tools=None,  # as llama-cpp-python passes them: `tools is not none` reads false
            tool_choice=None,
            functions=None,
            function_call=None,
        ):
            size += len(chunk)
            if size > MAX_PROMPT_CHARS:
                raise OverflowError(f"the prompt it writes is longer than {MAX_PROMPT_CHARS} characters")
            parts.append(chunk)
    except BaseException as e:  # noqa: BLE001  RecursionError, MemoryError, SecurityError, _Stop...
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        if watch.why == "cancelled":
            raise TemplateCancelled("chat template: cancelled while rendering") from None
        reason = watch.why if watch.why else _one_line(e)
        raise TemplateError(f"chat template: {reason}") from None
    finally:
        sys.settrace(previous)
    return "".join(parts), [eos] if eos else []
