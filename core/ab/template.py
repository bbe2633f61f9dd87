"""Chat templates from model files, rendered as untrusted code: sandboxed, bounded and cancellable.

A template is a Jinja program written by whoever made the file. It runs in jinja's immutable
sandbox (no attribute escapes), its output bounded, and a trace on the rendering thread that stops
it when the caller cancels or the time limit passes. Whatever goes wrong becomes one `TemplateError`
line. The worker process is the last line of defence: the app kills it when a render does not stop
(process.py).

Memory: every way a template makes a value (operators, calls, filters, `~`, a block's text) goes
through template_bounds.py, which refuses a value over MAX_VALUE before it is made, so a one-call
allocation bomb (`"a".ljust(1500000000)`) is a TemplateError, not gigabytes. A process memory
limit (RLIMIT_AS or RLIMIT_DATA) is not used: the worker also holds llama.cpp's models, whose
anonymous buffers and GPU mappings such a limit counts, so any cap loose enough for them would not
stop a template, and one tight enough would break the models.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..errors import QuanttuiError
from ..textsafe import clean
from . import template_bounds as bounds
from .template_bounds import MAX_VALUE

RENDER_SECONDS = 10.0  # a real template renders in milliseconds
MAX_PROMPT_CHARS = MAX_VALUE  # rendered text; far beyond any context window


class TemplateError(QuanttuiError):
    """A chat template that cannot be compiled or rendered; the text is one safe line."""


class TemplateCancelled(TemplateError):
    """The caller cancelled while the template was rendering."""


class _Stop(Exception):
    """Raised into the template's frames by the trace; not a subclass anything inside catches."""


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2
    import jinja2.ext
    from jinja2.compiler import CodeGenerator
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import (
        ImmutableSandboxedEnvironment,
        SandboxedEscapeFormatter,
        SandboxedFormatter,
    )
    from markupsafe import Markup

    class GenerationTag(jinja2.ext.Extension):
        """HuggingFace's `{% generation %}` tag, rendered as its body (as transformers does)."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            parser.stream.skip(1)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    class Generator(CodeGenerator):
        """`a ~ b` joins through `environment.join_checked`, which measures before it joins, and a
        block's output collects in a measured `Buffer`."""

        def buffer(self, frame: Any) -> None:
            frame.buffer = self.temporary_identifier()
            self.writeline(f"{frame.buffer} = environment.new_buffer()")

        def visit_Concat(self, node: Any, frame: Any) -> None:
            ctx = frame.eval_ctx
            escape = "context.eval_ctx.autoescape" if ctx.volatile else repr(bool(ctx.autoescape))
            self.write("environment.join_checked((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write(f"), {escape})")

    class Sized(SandboxedFormatter):
        """str.format with each field's width and precision bounded and the whole result measured."""

        total = 0

        def format_field(self, value: Any, format_spec: str) -> Any:
            bounds.check_format_spec(format_spec)
            bounds.check_text(value, "format()")
            out = super().format_field(value, format_spec)
            self.total += len(out)
            bounds.check(self.total, "format()")
            return out

    class SizedEscape(Sized, SandboxedEscapeFormatter):
        pass

    class Env(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "+", "%"])
        code_generator_class = Generator
        concat = staticmethod(bounds.concat)
        new_buffer = bounds.Buffer

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                return bounds.bounded_mul(left, right)
            if operator == "**":
                return bounds.bounded_pow(left, right)
            if operator == "+":
                return bounds.bounded_add(left, right)
            if operator == "%":
                return bounds.bounded_mod(left, right)
            return super().call_binop(context, operator, left, right)

        def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
            if not self.is_safe_callable(obj):
                raise SecurityError(f"{obj!r} is not safely callable")
            args = bounds.checked_args(obj, args, kwargs)
            what = f"{getattr(obj, '__name__', 'a call')}()"
            return bounds.measured(context.call(obj, *args, **kwargs), what)

        join_checked = staticmethod(bounds.join_text)

        def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
            """jinja's own wrapper of `str.format` and `format_map`, with the Sized formatter."""
            name, owner = getattr(value, "__name__", ""), getattr(value, "__self__", None)
            if name not in ("format", "format_map") or not isinstance(owner, str) or not callable(value):
                return None

            def wrapper(*args: Any, **kwargs: Any) -> str:
                if name == "format_map":
                    if kwargs or len(args) != 1:
                        raise TypeError("format_map() takes exactly one argument")
                    kwargs = args[0]
                    args = ()
                if isinstance(owner, Markup):
                    formatter: Sized = SizedEscape(self, escape=owner.escape)
                else:
                    formatter = Sized(self)
                return type(owner)(formatter.vformat(owner, args, kwargs))

            return functools.update_wrapper(wrapper, value)

    env = Env(
        loader=jinja2.BaseLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationTag, jinja2.ext.loopcontrols],
        finalize=bounds.finalize,
    )
    env.filters["tojson"] = bounds.tojson
    env.filters = {name: bounds.bounded_filter(name, f) for name, f in env.filters.items()}
    env.globals["lipsum"] = bounds.lipsum
    return env


def _raise_exception(message: str) -> None:
    raise ValueError(message)


def _strftime_now(fmt: str) -> str:
    return dt.datetime.now().strftime(fmt)


def _one_line(e: BaseException) -> str:
    what = type(e).__name__
    lineno = getattr(e, "lineno", None)
    if what == "TemplateSyntaxError" and lineno:
        return clean(f"syntax error on line {lineno}: {getattr(e, 'message', e)}")
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
    bounds.start_render()
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
