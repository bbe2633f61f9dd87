"""Size bounds for chat templates: every value a template makes is measured or refused before it is made.

One C-level call can ask for gigabytes before any trace or output check runs (`"a".ljust(1500000000)`,
`"%1500000000s" % x`, `x|indent(1500000000)`, `"{0}" * n` formatted with a big value, a `{% set %}`
block that repeats a big string). template.py's environment routes every way a template makes a
value through here: the operators `*`, `**`, `+`, `%` and `~`, each call (the str, bytes and int
methods that take a size are checked on their arguments first, and every result is measured), each
filter (those that take a size are checked on their arguments first, every result measured), and the
joins that build a block's or a macro's text. No value may hold more than MAX_VALUE characters and
items, so a render's extra memory stays a small multiple of that. Errors are OverflowError, which
template.py turns into its one line.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

MAX_VALUE = 4 << 20  # characters and items one value a template makes may hold; the prompt's bound too
MAX_OPERAND = 1 << 20  # the largest string or list `*` may build, and the largest `**` result bits
MAX_COUNT = 100_000  # groups `batch` and `slice` may make (jinja's own bound on `range`)
MAX_INDENT = 64  # `tojson`'s indent
MAX_MADE = 16 * MAX_VALUE  # characters and items one render may make in all (values held by each
# level of a recursive macro add up; a real template makes a few times its prompt)

_render = threading.local()  # the render on this thread: what it has made so far


def weight(value: Any, budget: int = MAX_VALUE) -> int:
    """What `value` holds: a string's characters, a container's items and theirs (every object at
    least 1), counted until past `budget`. Its text (str(), a join) is at most a few times this."""
    total, todo = 0, [value]
    while todo and total <= budget:
        v = todo.pop()
        if isinstance(v, (str, bytes)):
            total += len(v)
        elif isinstance(v, (list, tuple, set, frozenset, dict)):
            total += len(v) + 1
            if total <= budget:
                todo.extend(v.items() if isinstance(v, dict) else v)
        else:
            total += 1
    return total


def check(size: int, what: str) -> None:
    if size > MAX_VALUE:
        raise OverflowError(f"{what} would hold more than {MAX_VALUE} characters")


def check_text(value: Any, what: str) -> Any:
    """Refuse to make text (str(), repr(), an escape, JSON) of a value that holds more than MAX_VALUE,
    before it is made; returns `value`. A container's text repeats each reference it holds, and
    `weight` counts a shared reference again each time, so `[m]*8` of `[l]*8` of `[s]*8` is refused
    at the cost of counting to the bound, not of the 512 copies of `s` its text would be."""
    if not isinstance(value, str):
        check(weight(value), what)
    return value


def finalize(value: Any) -> Any:
    """The environment's `finalize`: each `{{ }}` value is measured before it is made text."""
    return check_text(value, "an output value")


def join_text(items: Iterable[Any], escape: bool) -> str:
    """`a ~ b`: each side measured before it is made text, then the whole before it is joined."""
    from jinja2.runtime import markup_join
    from markupsafe import soft_str

    values = list(items)
    for v in values:
        check_text(v, "a `~` join")
    parts = [soft_str(x) if escape else str(x) for x in values]
    made(sum(len(p) for p in parts), "a `~` join")
    return markup_join(parts) if escape else "".join(parts)


def start_render() -> None:
    """Count what a render on this thread makes from zero."""
    _render.made = 0


def made(size: int, what: str) -> None:
    """`check` a value about to be made (or just made), and add it to what this render has made."""
    check(size, what)
    _render.made = getattr(_render, "made", 0) + size
    if _render.made > MAX_MADE:
        raise OverflowError(f"the template made more than {MAX_MADE} characters in all")


def measured(value: Any, what: str) -> Any:
    made(weight(value), what)
    return value


def bounded_mul(left: Any, right: Any) -> Any:
    for seq, n in ((left, right), (right, left)):
        repeated = isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int)
        size = weight(seq, MAX_OPERAND) * max(n, 0) if repeated else 0
        if size > MAX_OPERAND:
            raise OverflowError(f"a repeated value longer than {MAX_OPERAND} items")
        made(size, "a repeated value")
    return left * right


def bounded_add(left: Any, right: Any) -> Any:
    if isinstance(left, (str, bytes, list, tuple)) and isinstance(right, (str, bytes, list, tuple)):
        made(weight(left) + weight(right), "a sum")
    return left + right


# %-conversions: an optional (key), flags, width, .precision, length modifier and the type.
_PERCENT = re.compile(r"%(?:\(([^)]*)\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.?)", re.S)


def _piece(v: Any) -> int:
    """The most characters one conversion of `v` writes, width and precision aside."""
    if isinstance(v, (str, bytes)):
        return len(v)
    if isinstance(v, bool) or v is None:
        return 5
    if isinstance(v, int):
        return v.bit_length() // 3 + 2  # decimal digits (octal's are more: bits // 3 + 1)
    if isinstance(v, float):
        return 320  # %f of 1e308
    return 12 * weight(v)  # repr(): quotes, and escapes such as \U0001f600 for a character


def check_percent(fmt: str | bytes, args: Any) -> None:
    """Refuse `fmt % args` before it runs when it could write more than MAX_VALUE characters:
    each conversion takes its width, precision and value as Python would (`*` takes one)."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    mapping = args if isinstance(args, dict) else None
    queue = list(args) if isinstance(args, tuple) else [args]
    total, i = len(text), 0
    for m in _PERCENT.finditer(text):
        key, width, prec, kind = m.groups()
        if kind == "%":
            continue
        sizes = []
        for n in (width, prec):
            if n == "*":
                v, i = (queue[i] if i < len(queue) else 0), i + 1
                sizes.append(v if isinstance(v, int) else 0)
            else:
                sizes.append(int(n) if n else 0)
        if mapping is not None and key is not None:
            v = mapping.get(key)
        else:
            v, i = (queue[i] if i < len(queue) else None), i + 1
        check(max(sizes), "a %-format field")
        total += max(sizes) + _piece(v)
        check(total, "a %-format")
    made(total, "a %-format")


def bounded_mod(left: Any, right: Any) -> Any:
    if isinstance(left, (str, bytes)):
        check_percent(left, right)
    return left % right


def check_format_spec(spec: str) -> None:
    """Refuse a str.format field whose width or precision is over MAX_VALUE, before it is formatted."""
    for digits in re.findall(r"\d+", spec):
        check(MAX_VALUE + 1 if len(digits) > 7 else int(digits), "a format field")


def bounded_pow(left: Any, right: Any) -> Any:
    big = isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0
    if big and right * abs(left).bit_length() > MAX_OPERAND:
        raise OverflowError(f"a power larger than 2**{MAX_OPERAND}")
    return left**right


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str, default: Any) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _int(v: Any) -> int:
    return v if isinstance(v, int) else 0


def _method_size(owner: str | bytes | int, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """The most characters (or bytes) `owner.name(*args, **kwargs)` can make, for the str, bytes
    and int methods whose result can be far larger than their arguments; 0 for the others."""
    if isinstance(owner, int):
        return _int(_arg(args, kwargs, 0, "length", 1)) if name == "to_bytes" else 0
    n = len(owner)
    if name in ("ljust", "rjust", "center", "zfill"):
        return max(n, _int(_arg(args, kwargs, 0, "width", 0)))
    if name == "expandtabs":
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        return n + tabs * max(_int(_arg(args, kwargs, 0, "tabsize", 8)), 0)
    if name == "replace":
        old, new = _arg(args, kwargs, 0, "old", None), _arg(args, kwargs, 1, "new", None)
        if type(old) is not type(owner) or type(new) is not type(owner):
            return n  # not a replace that can run: it raises TypeError
        # old is of owner's own type (checked above): the isinstance tests only say so to the type checker
        if not old:
            hits = n + 1
        elif isinstance(owner, str):
            hits = owner.count(old) if isinstance(old, str) else 0
        else:
            hits = owner.count(old) if isinstance(old, bytes) else 0
        count = _int(_arg(args, kwargs, 2, "count", -1))
        return n + (min(hits, count) if count >= 0 else hits) * max(len(new) - len(old), 0)
    if name == "translate" and isinstance(owner, str):
        table = _arg(args, kwargs, 0, "table", None)
        values = table.values() if isinstance(table, dict) else ()
        return n * max((len(v) for v in values if isinstance(v, str)), default=1)
    return 0


def checked_args(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a method call that would make more than MAX_VALUE characters, before it runs; a
    join's items are read into a list first (to be measured), and that list is what it joins."""
    owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
    if owner is None and name in ("format", "format_map"):  # the sandbox's wrapper of str.format
        owner = getattr(getattr(obj, "__wrapped__", None), "__self__", None)
    if isinstance(owner, str) and name in ("format", "format_map"):
        fields = [*args, *kwargs.values()]
        if name == "format_map" and args and isinstance(args[0], dict):
            fields = list(args[0].values())
        for v in fields:  # each field's text is made by format_field, after no check of the value
            check_text(v, f"{name}()")
    if isinstance(owner, (str, bytes)) and name == "join" and args:
        items = list(args[0])
        check(weight(items) + len(owner) * len(items), "join()")
        return (items, *args[1:])
    if isinstance(owner, (str, bytes, int)) and not isinstance(owner, bool):
        check(_method_size(owner, name, args, kwargs), f"{name}()")
    return args


class Buffer(list):  # type: ignore[type-arg]
    """The pieces of a block's, a macro's or a `{% set %}` block's text, measured as they are added
    (a loop that adds one big string a thousand times stops at the bound, not at the end)."""

    size = 0

    def append(self, piece: Any) -> None:
        self.size += len(piece)
        check(self.size, "a block's text")
        made(len(piece), "a block's text")
        super().append(piece)

    def extend(self, pieces: Iterable[Any]) -> None:
        for piece in pieces:
            self.append(piece)


def concat(parts: Iterable[str]) -> str:
    """The environment's join of a block's, a macro's or a `{% set %}` block's output pieces."""
    items = list(parts)
    check(sum(len(p) for p in items), "a block's text")
    return "".join(items)


# The filters whose result can be far larger than their arguments: each check takes the filter's
# own arguments (after the context jinja passes some) and returns what to use in place of the
# first one (a join's items read into a list), or None.


def _indent_check(s: Any = "", width: Any = 4, *_: Any, **__: Any) -> None:
    w = len(width) if isinstance(width, str) else _int(width)
    check(w, "indent()")
    text = str(s)
    check(len(text) + w * (len(text.splitlines()) + 1), "indent()")


def _join_check(value: Any = (), d: Any = "", *_: Any, **__: Any) -> Any:
    items = value if isinstance(value, (str, list, tuple)) else list(value)
    check(weight(items) + len(str(d)) * len(items), "join()")
    return items


def _replace_check(s: Any = "", old: Any = "", new: Any = "", count: Any = None, *_: Any, **__: Any) -> None:
    size = _method_size(str(s), "replace", (str(old), str(new), -1 if count is None else count), {})
    check(size, "replace()")


def _wordwrap_check(s: Any = "", width: Any = 79, _long: Any = True, wrap: Any = None, **kw: Any) -> None:
    text = str(s)
    lines = 2 * len(text) // max(_int(width), 1) + len(text.splitlines()) + 1
    check(len(text) + len(str(kw.get("wrapstring", wrap) or "\n")) * lines, "wordwrap()")


def _count_check(what: str) -> Callable[..., None]:
    def bound(value: Any = (), count: Any = 1, *_: Any, **__: Any) -> None:
        if _int(count) > MAX_COUNT:
            raise OverflowError(f"{what}() into more than {MAX_COUNT} groups")

    return bound


_FILTER_CHECKS: dict[str, Callable[..., Any]] = {
    "indent": _indent_check,
    "center": lambda value="", width=80, *_, **__: check(_int(width), "center()"),
    "format": lambda value="", *args, **kwargs: check_percent(str(value), kwargs or args),
    "join": _join_check,
    "replace": _replace_check,
    "wordwrap": _wordwrap_check,
    "batch": _count_check("batch"),
    "slice": _count_check("slice"),
}


# The filters that make text of their arguments (str(), repr(), an escape, JSON, a URL quote), so
# each argument that is not already a string is measured before they run.
_TEXT_FILTERS = frozenset(
    {
        *("string", "e", "escape", "forceescape", "safe", "pprint", "urlencode", "urlize", "upper", "lower"),
        *("capitalize", "title", "trim", "striptags", "truncate", "wordcount", "wordwrap", "center"),
        *("indent", "replace", "format", "tojson", "xmlattr", "join"),
    }
)


def bounded_filter(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """`f` with its arguments checked first (the filters in _FILTER_CHECKS and _TEXT_FILTERS) and its
    result measured."""
    pre = _FILTER_CHECKS.get(name)
    skip = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0  # the context jinja passes
    text = name in _TEXT_FILTERS

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        if text:
            for v in (*args[skip:], *kwargs.values()):
                if name != "join" or not isinstance(v, (list, tuple)):  # join measures its items itself
                    check_text(v, f"the {name} filter")
        if pre is not None and len(args) > skip:
            value = pre(*args[skip:], **kwargs)
            if value is not None:
                args = (*args[:skip], value, *args[skip + 1 :])
        return measured(f(*args, **kwargs), f"the {name} filter")

    return run


def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    from jinja2.utils import generate_lorem_ipsum

    if _int(n) * _int(max) > 100_000:
        raise OverflowError("lipsum() of more than 100000 words")
    return str(generate_lorem_ipsum(n, html, min, max))


def tojson(x: Any, ensure_ascii: bool = False, indent: int | str | None = None, **kw: Any) -> str:
    """Transformers' `tojson`: non-ASCII kept, `separators` and `sort_keys` as json.dumps takes them.
    The indent is at most MAX_INDENT; with one, or long separators, the text is measured as it is made."""
    keep = {k: v for k, v in kw.items() if k in ("separators", "sort_keys")}
    if (len(indent) if isinstance(indent, str) else _int(indent)) > MAX_INDENT:
        raise OverflowError(f"tojson with an indent over {MAX_INDENT}")
    seps = keep.get("separators")
    long_seps = isinstance(seps, (list, tuple)) and sum(len(str(x)) for x in seps) > 8
    if indent is None and not long_seps:
        return json.dumps(x, ensure_ascii=ensure_ascii, **keep)  # at most 12 characters for one of x's
    parts, total = [], 0
    for part in json.JSONEncoder(ensure_ascii=ensure_ascii, indent=indent, **keep).iterencode(x):
        total += len(part)
        check(total, "tojson")
        parts.append(part)
    return "".join(parts)
