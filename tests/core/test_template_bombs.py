"""Chat-template allocation bombs: one call, filter or operator that would make gigabytes is one
`TemplateError` line, quickly, with little memory; real templates render as jinja renders them.

Each bomb renders in a fresh process (so its peak RSS is its own) under a 3 GiB address-space limit
and a timeout, so a regression fails instead of taking the machine's memory or hanging.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap

import pytest

from quanttui.core.ab.template import render_chat

BOMBS = {
    "str.ljust": "{{ 'a'.ljust(1500000000) }}",
    "str.rjust": "{{ 'a'.rjust(1500000000) }}",
    "str.center": "{{ 'a'.center(1500000000) }}",
    "str.zfill": "{{ '1'.zfill(1500000000) }}",
    "str.expandtabs": "{{ '\\t'.expandtabs(1500000000) }}",
    "markup.ljust": "{{ ('a'|safe).ljust(1500000000) }}",
    "percent-width": "{{ '%1500000000s' % 'a' }}",
    "percent-star": "{{ '%*s' % (1500000000, 'a') }}",
    "percent-precision": "{{ '%.1500000000f' % 1.0 }}",
    "percent-repeated-key": "{{ ('%(a)s' * 200000) % {'a': 'x' * 1000000} }}",
    "format-width": "{{ '{:>1500000000}'.format('a') }}",
    "format-nested-width": "{{ '{0:{1}}'.format('a', 1500000000) }}",
    "format-repeated-field": "{{ ('{0}' * 300000).format('x' * 1000000) }}",
    "format-filter": "{{ '%1500000000s'|format('a') }}",
    "indent-filter": "{{ 'a'|indent(1500000000) }}",
    "center-filter": "{{ 'a'|center(1500000000) }}",
    "wordwrap-filter": "{{ ('x ' * 500000)|wordwrap(1, wrapstring='y' * 10000) }}",
    "str.replace": "{{ ('x' * 1000000).replace('x', 'y' * 1000) }}",
    "str.join": "{{ ('x' * 1000).join(range(100000)|map('string')) }}",
    "join-filter": "{{ range(100000)|join('x' * 1000) }}",
    "int.to_bytes": "{{ (1).to_bytes(1500000000, 'big') }}",
    "tojson-indent": "{{ [1]|tojson(indent=1500000000) }}",
    "batch-fill": "{{ [1]|batch(300000000, 0)|list }}",
    "list-of-big-strings": "{{ ['a' * 1000000] * 1000 }}",
    "tilde-doubling": "{% set a = 'x' * 1000000 %}{% set b = a~a~a~a~a~a~a~a %}{% set c = b~b~b~b~b~b~b~b %}"
    "{{ c~c~c~c }}",
    "plus-doubling": "{% set a = ['x' * 1000000] %}{% set b = a+a+a+a+a %}{{ b|length }}",
    "set-block-loop": "{% set x %}{% for i in range(2000) %}{{ 'y' * 1000000 }}{% endfor %}{% endset %}",
    "macro-loop": "{% macro m() %}{% for i in range(5000) %}{{ 'y' * 1000000 }}{% endfor %}{% endmacro %}"
    "{{ m() }}",
    "recursion-hoard": "{% macro f() %}{% set x = ('y' * 1000000) ~ ('y' * 1000000) ~ ('y' * 1000000) %}"
    "{{ f() }}{{ x|length }}{% endmacro %}{{ f() }}",
    "lipsum": "{{ lipsum(100000000) }}",
}

# Fan-out: lists of lists sharing one 1M-character string, 512 references in all. Building them
# costs nothing, but their text repeats the string 512 times; each way of making text from a value
# measures it first (weight counts a shared reference again), so none of them makes that text.
FAN = (
    "{% set s = 'x' * 1000000 %}{% set l = [s, s, s, s, s, s, s, s] %}{% set m = [l, l, l, l, l, l, l, l] %}"
)
FAN_OUT = "[m, m, m, m, m, m, m, m]"
for _name in (
    "string",
    "e",
    "forceescape",
    "pprint",
    "urlencode",
    "upper",
    "capitalize",
    "title",
    "trim",
    "tojson",
    "safe",
    "indent",
    "wordwrap",
    "center",
    "striptags",
):
    BOMBS[f"fan-out-{_name}-filter"] = FAN + "{{ " + FAN_OUT + "|" + _name + "|length }}"
BOMBS["fan-out-format-filter"] = FAN + "{{ ('%s'|format(" + FAN_OUT + "))|length }}"
BOMBS["fan-out-replace-new"] = FAN + "{{ 'a'|replace('a', " + FAN_OUT + ")|length }}"
BOMBS["fan-out-map-string"] = FAN + "{{ [" + FAN_OUT + "]|map('string')|list|length }}"
BOMBS["fan-out-str.format"] = FAN + "{{ '{}'.format(" + FAN_OUT + ")|length }}"
BOMBS["fan-out-str.format_map"] = FAN + "{{ '{a}'.format_map({'a': " + FAN_OUT + "})|length }}"
BOMBS["fan-out-percent"] = FAN + "{{ ('%s' % (" + FAN_OUT + ",))|length }}"
BOMBS["fan-out-in-message"] = (
    "{% set s = messages[0].content * 500000 %}{% set l = [s, s, s, s, s, s, s, s] %}"
    "{% set m = [l, l, l, l, l, l, l, l] %}{{ " + FAN_OUT + "|string|length }}"
)

# `{{ }}` output and `~` make their text in template.py (jinja's own `str()` of an output, and
# Env.join_checked) before anything in template_bounds sees the value: they are bounded once
# template.py wires in bounds.finalize (Environment(finalize=...)), bounds.join_text (as
# Env.join_checked) and bounds.check_text(value) in Sized.format_field. Until then these fail (each
# builds ~570 MiB before the prompt bound trips); strict, so the marker goes when the wiring lands.
FAN_WIRED = {
    "fan-out-output": FAN + "{{ " + FAN_OUT + " }}",
    "fan-out-tilde": FAN + "{% set t = " + FAN_OUT + " ~ '' %}{{ t|length }}",
    "fan-out-set-block": FAN + "{% set b %}{{ " + FAN_OUT + " }}{% endset %}{{ b|length }}",
    "fan-out-macro": FAN + "{% macro f(x) %}{{ x }}{% endmacro %}{{ f(" + FAN_OUT + ")|length }}",
}

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from quanttui.core.ab.template import TemplateError, render_chat

    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    try:
        render_chat(sys.argv[1], [{"role": "user", "content": "hi"}], bos="", eos="")
        error = None
    except TemplateError as e:
        error = str(e)
    seconds = time.monotonic() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"error": error, "seconds": seconds, "grown_mib": grown}))
    """
)


@pytest.mark.parametrize("name", sorted(BOMBS))
@pytest.mark.slow
def test_a_bomb_is_one_line_error_quickly_with_little_memory(name):
    r = subprocess.run([sys.executable, "-c", CHILD, BOMBS[name]], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    error = out["error"] or ""
    assert error.startswith("chat template: OverflowError: ") and error.isprintable(), out
    assert out["seconds"] < 5 and out["grown_mib"] < 64, out


@pytest.mark.parametrize("name", sorted(FAN_WIRED))
def test_a_fan_out_made_text_by_output_or_tilde_is_refused_before_it_is_made(name):
    r = subprocess.run(
        [sys.executable, "-c", CHILD, FAN_WIRED[name]], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert (out["error"] or "").startswith("chat template: OverflowError: "), out
    assert out["seconds"] < 5 and out["grown_mib"] < 64, out


PLAIN_ENOUGH = "\n".join(
    [
        "{%- set ns = namespace(sys='') -%}",
        "{% for m in messages %}{% if m.role == 'system' %}{% set ns.sys = m.content %}{% endif %}",
        "{% endfor %}",
        "{{- bos_token }}{{ '%s|%5s|%-4d|%.3f' % (ns.sys, 'ab', 7, 3.14159) }}",
        "{{ '{}: {:>8}'.format('x', 'y') }}",
        "{{ '{0:{1}}'.format('a', 5) }}{{ '%(a)s-%(b)s' % {'a': 1, 'b': 2} }}{{ '%s'|format('<') }}",
        "{% for m in messages %}{{ (m.role ~ ': ' ~ m.content)|indent(2, first=True) }}",
        "{{ m.content.split(' ')|join(', ') }}{{ m.content.ljust(12, '.') }}",
        "{{ m.content.center(15)|replace(' ', '_') }}{{ m.content|center(20) }}{{ [m]|tojson(indent=4) }}",
        "{{ m|tojson(separators=(',', ':'), sort_keys=True) }}{{ m.content|trim|wordwrap(5) }}",
        "{{ m.content.replace('e', 'EE') }}{% endfor %}",
        "{% macro show(x) %}<{{ x }}>{{ caller() }}{% endmacro %}{% call show('a') %}inner{% endcall %}",
        "{% set block %}{% for i in range(5) %}{{ loop.cycle('a','b') }}{{ i }}{% endfor %}{% endset %}",
        "{{ block|upper }}{{ range(7)|batch(3, 0)|list }}{{ range(7)|slice(3)|list }}{{ 'x'|safe ~ '<b>' }}",
        "{{ ('<i>{}</i>'|safe).format('<b>') }}",
        "{% autoescape true %}{{ '<' ~ 'x'|safe ~ '>' }}{% endautoescape %}",
        "{{ [1,2] + [3] }}{{ 'ab' * 3 }}{{ 2 ** 10 }}{{ 7 % 3 }}",
        "{{ 'a\\tb'.expandtabs(4) }}{{ '7'.zfill(3) }}",
        "{{ 'a-b'.translate({45: '+'}) }}{{ ', '.join(['x', 'y']) }}",
        "{% for item in [[1,[2]],[3]] recursive %}[{% if item is iterable %}{{ loop(item) }}",
        "{%- else %}{{ item }}{% endif %}]{%- endfor %}{% filter upper %}f{{ 1 }}{% endfilter %}",
        "{% if add_generation_prompt %}<|assistant|>{% endif %}",
    ]
)


def test_templates_that_stay_within_the_bounds_render_as_jinja_renders_them():
    """Every operator, call, filter and block the bounds wrap, used as real templates use them."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    msgs = [
        {"role": "system", "content": "Be brief. é"},
        {"role": "user", "content": "hello there you"},
        {"role": "assistant", "content": "hi <ok> \U0001f600"},
    ]
    plain = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    plain.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
    want = plain.from_string(PLAIN_ENOUGH).render(
        messages=msgs, bos_token="<s>", eos_token="</s>", add_generation_prompt=True
    )
    assert render_chat(PLAIN_ENOUGH, msgs, bos="<s>", eos="</s>")[0] == want


def test_a_long_conversation_within_the_prompt_bound_still_renders():
    """The bounds are on what a template makes, not on what it is given: 2 MiB of messages pass."""
    msgs = [{"role": "user", "content": "word " * 100_000}, {"role": "assistant", "content": "x\n" * 200_000}]
    template = (
        "{% for m in messages %}{{ m.role ~ ': ' ~ m.content|trim|indent(2) }}{{ m.content.split()|length }}"
        "{{ m|tojson }}{% endfor %}"
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    prompt, _ = render_chat(template, msgs, bos="", eos="")
    assert len(prompt) > 2_000_000 and "100000" in prompt
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 << 10  # KiB
