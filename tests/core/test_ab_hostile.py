"""Hostile chat templates and dying parents: one side's template is one side's error line, any render
can be cancelled, and the model process never outlives the app."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import psutil
import pytest

from quanttui.cli.ab import print_turn
from quanttui.cli.main import main
from quanttui.core.ab import ABSession, GenConfig, Plan, SideResult, Turn
from quanttui.core.ab.process import ProcessEngine
from quanttui.core.ab.template import TemplateError, _compiled, render_chat
from tests.modelgen import CHAT_TEMPLATE, write_model_with_template

pytestmark = pytest.mark.slow

TOGETHER = Plan(False, {"a": 0, "b": 0}, "")
PROMPT = "Tell me about quantization."
FOREVER = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"

HOSTILE = {
    "sandbox-escape": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals-escape": "{{ cycler.__init__.__globals__.os.system('touch /tmp/pwned') }}",
    "syntax-error": "{% for m in messages %}<|{{ m['role'] }}|>",
    "raises": "{{ raise_exception('\x1b]0;pwned\x07 no system role') }}",
    "undefined": "{{ tools.first.name }}",
    "huge-string": "{{ 'x' * 10**10 }}",
    "huge-power": "{{ (2**20)**(2**20) }}",
    "flood": "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx{% endfor %}{% endfor %}",
    "recursion": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "exponential": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(90) }}",
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One tiny model per hostile template (same weights as tiny-F16), plus one that never ends."""
    d = tmp_path_factory.mktemp("hostile")
    made = {name: write_model_with_template(d / f"{name}.gguf", t) for name, t in HOSTILE.items()}
    made["forever"] = write_model_with_template(d / "forever.gguf", FOREVER)
    return made


def session(a, b, isolate=True, **cfg) -> ABSession:
    cfg = GenConfig(**{"max_tokens": 16, "n_ctx": 512, "mode": "chat", **cfg})
    return ABSession(str(a), str(b), cfg, TOGETHER, isolate=isolate)


def one_line_template_error(text: str | None) -> bool:
    line = text or ""
    return line.startswith("chat template: ") and line.isprintable() and "Traceback" not in line


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_template_is_its_sides_one_line_error_and_the_other_side_answers(tiny, hostile, name):
    s = session(tiny.quants["Q8_0"], hostile[name], template_seconds=2)
    assert s.engine.errors() == {}  # the template did not fail the load
    t = s.ask(PROMPT)
    assert t.a.error is None and t.a.token_ids and t.a.stop_reason in ("eos", "max_tokens")
    assert t.b.stop_reason == "error" and one_line_template_error(t.b.error), t.b.error
    assert not os.path.exists("/tmp/pwned")
    again = s.ask("And again?")  # the session goes on: same outcome, nothing stuck
    assert again.a.token_ids and one_line_template_error(again.b.error)
    s.close()


def test_a_hostile_template_on_side_a_keeps_bs_answer(tiny, hostile):
    s = session(hostile["syntax-error"], tiny.quants["Q8_0"])
    t = s.ask(PROMPT)
    assert t.a.error == (
        "chat template: syntax error on line 1: Unexpected end of template. Jinja was looking for "
        "the following tags: 'endfor' or 'else'. The innermost block that needs to be closed is 'for'."
    )
    assert t.b.error is None and t.b.token_ids
    assert s.history["a"] == [] and len(s.history["b"]) == 2  # only the side that answered carries it
    s.close()


def test_escapes_in_a_template_error_are_shown_not_sent(tiny, hostile):
    s = session(tiny.quants["Q8_0"], hostile["raises"])
    t = s.ask(PROMPT)
    assert "\x1b" not in t.b.error and "\x07" not in t.b.error
    assert t.b.error == "chat template: ValueError: \\x1b]0;pwned\\x07 no system role"
    s.close()


def test_completion_mode_never_compiles_nor_renders_the_template(tiny, hostile, monkeypatch):
    """In this process, so the test can see every compile: there is none, at load or at run."""
    import jinja2

    compiled: list[str] = []
    real = jinja2.Environment.from_string

    def spy(self, source, *a, **kw):
        compiled.append(source)
        return real(self, source, *a, **kw)

    monkeypatch.setattr(jinja2.Environment, "from_string", spy)
    _compiled.cache_clear()  # templates compiled by earlier tests in this process
    s = session(tiny.f16, hostile["syntax-error"], isolate=False, mode="completion")
    t = s.ask(PROMPT)
    assert compiled == []
    assert t.a.error is None and t.b.error is None
    assert t.a.token_ids == t.b.token_ids  # the same weights: only the template differs
    s.cfg.mode = "chat"  # chat mode compiles each side's template when it renders
    chat = s.ask(PROMPT)
    assert sorted(compiled) == sorted([CHAT_TEMPLATE, HOSTILE["syntax-error"]])
    assert chat.a.error is None and one_line_template_error(chat.b.error)
    s.close()


def test_a_template_that_never_ends_is_cancelled(tiny, hostile):
    s = session(tiny.quants["Q8_0"], hostile["forever"], template_seconds=600)
    cancel = threading.Event()
    rendering = threading.Event()

    def on_render(side, started):
        if side == "b" and started:
            rendering.set()

    threading.Thread(target=lambda: rendering.wait(60) and cancel.set(), daemon=True).start()
    results = s.engine.run({n: s.messages(n, PROMPT) for n in "ab"}, None, cancel, on_render)
    assert rendering.is_set() and results["b"].stop_reason == "cancelled" and results["b"].error is None
    assert results["a"].error is None  # A had answered or was cancelled too: never an error
    s.cfg.mode = "completion"
    t = s.ask(PROMPT)
    assert t.a.token_ids and t.b.token_ids
    s.close()


def test_a_template_past_its_time_limit_is_its_sides_error(tiny, hostile):
    s = session(tiny.quants["Q8_0"], hostile["forever"], template_seconds=0.5)
    t = s.ask(PROMPT)
    assert t.b.error == "chat template: took more than 0.5 s to render"
    assert t.a.error is None and t.a.token_ids
    s.close()


def test_a_worker_that_ignores_the_cancel_is_killed_and_the_next_prompt_gets_a_fresh_one(tiny, hostile):
    """A render stuck where the template's own watch cannot run (here: the process stopped)."""
    s = session(tiny.quants["Q8_0"], hostile["forever"], template_seconds=600)
    first = s.engine.pid
    cancel = threading.Event()

    def on_render(side, started):
        if side == "b" and started:
            os.kill(first, signal.SIGSTOP)
            cancel.set()

    results = s.engine.run({n: s.messages(n, PROMPT) for n in "ab"}, None, cancel, on_render)
    assert results["b"].stop_reason == "cancelled" and results["b"].error is None
    assert s.engine.crashed is None and _gone(first)
    s.cfg.mode = "completion"
    t = s.ask(PROMPT)
    assert s.engine.pid not in (None, first) and t.a.token_ids and t.b.token_ids
    s.close()


def test_a_render_that_outlives_its_limit_gets_the_worker_killed(tiny, hostile):
    s = session(tiny.quants["Q8_0"], hostile["forever"], template_seconds=0.2)
    first = s.engine.pid

    def on_render(side, started):
        if side == "b" and started:
            os.kill(first, signal.SIGSTOP)  # its own watch can no longer stop it

    results = s.engine.run({n: s.messages(n, PROMPT) for n in "ab"}, None, None, on_render)
    assert results["b"].error.startswith("chat template: still rendering after 5.2 s")
    # Both templates render before either side generates, so A had no answer under way.
    assert results["a"].error == (
        "stopped: the model process was restarted because B's chat template would not stop rendering"
    )
    assert _gone(first) and s.engine.crashed is None
    s.close()


def test_templates_render_like_the_models_own_formatter():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hé"}]
    prompt, stop = render_chat(CHAT_TEMPLATE, msgs, bos="<s>", eos="</s>")
    assert prompt == "<|system|>Be brief.</s><|user|>hé</s><|assistant|>" and stop == ["</s>"]
    gen = "{% for m in messages %}{% generation %}{{ m.content|tojson }}{% endgeneration %}{% endfor %}"
    assert render_chat(gen, msgs, bos="", eos="")[0] == '"Be brief.""hé"'
    with pytest.raises(TemplateError, match="^chat template: SecurityError"):
        render_chat(HOSTILE["sandbox-escape"], msgs, bos="", eos="")


def _gone(pid: int, timeout: float = 10) -> bool:
    """The process has ended (a zombie nobody reaped counts as ended)."""
    try:
        p = psutil.Process(pid)
        p.wait(timeout)
        return True
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return p.status() == psutil.STATUS_ZOMBIE


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    return [c for c in parent.children(recursive=True) if "quanttui.core.ab.worker" in " ".join(c.cmdline())]


ENGINE_SCRIPT = """
import sys
from quanttui.core.ab import GenConfig
from quanttui.core.ab.process import ProcessEngine

cfg = GenConfig(mode="chat", max_tokens=8, n_ctx=512, template_seconds=600)
engine = ProcessEngine(sys.argv[1], sys.argv[2], cfg)
print(engine.pid, flush=True)

def on_render(side, started):
    if side == "b" and started:
        print("rendering", flush=True)

engine.run({n: [{"role": "user", "content": "hi"}] for n in "ab"}, None, None, on_render)
print("finished", flush=True)
"""


def test_the_worker_dies_when_the_app_is_killed_mid_render(tiny, hostile, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(ENGINE_SCRIPT))
    app = subprocess.Popen(
        [sys.executable, str(script), str(tiny.quants["Q8_0"]), str(hostile["forever"])],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    try:
        worker = int(app.stdout.readline())
        assert app.stdout.readline() == "rendering\n"
        assert psutil.Process(worker).status() != psutil.STATUS_ZOMBIE
        app.kill()
        app.wait(30)
        assert _gone(worker)
    finally:
        app.kill()


def test_a_worker_started_from_a_short_lived_thread_lives_on(tiny):
    """The parent-death signal follows the thread that started the child: it must not be this one."""
    cfg = GenConfig(max_tokens=8, n_ctx=512, mode="completion")
    box: dict[str, ProcessEngine] = {}
    paths = str(tiny.quants["Q8_0"]), str(tiny.f16)
    t = threading.Thread(target=lambda: box.update(e=ProcessEngine(*paths, cfg)))
    t.start()
    t.join()
    engine = box["e"]
    results = engine.run({n: [{"role": "user", "content": PROMPT}] for n in "ab"})
    assert results["a"].token_ids and results["b"].token_ids and engine.errors() == {}
    engine.close()


# `quanttui ab` as the command runs it, told when B's template starts to render, and with the render
# limit raised past the test's length: B is still rendering when the signal comes, on any machine.
CLI_SCRIPT = """
import sys

from quanttui.core.ab.process import ProcessEngine
from quanttui.cli.main import main

run = ProcessEngine.run

def told(self, messages, on_token=None, cancel=None, on_render=None, stop_loops=None, **kw):
    def said(side, started):
        if side == "b" and started:
            print("rendering", flush=True)
    self.cfg.template_seconds = 600  # the turn's settings go with each run
    return run(self, messages, on_token, cancel, said, stop_loops, **kw)

ProcessEngine.run = told
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_quanttui_ab_mid_render_leaves_no_worker(tiny, hostile, how, tmp_path):
    """A signal keyed to the worker's CPU time could come after B's render had ended at its 10 s
    limit and the command had printed the turn and exited 1 (a side failed): the script says when
    the render starts, and the render lasts until the command is stopped."""
    script = tmp_path / "quanttui_ab.py"
    script.write_text(textwrap.dedent(CLI_SCRIPT))
    cmd = [sys.executable, str(script), "ab", str(tiny.quants["Q8_0"]), str(hostile["forever"])]
    app = subprocess.Popen(
        [*cmd, "--prompt", "hi", "--mode", "chat"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert app.stdout.readline() == "rendering\n"
        (worker,) = _workers(psutil.Process(app.pid))
        app.send_signal(how)
        out, err = app.communicate(timeout=30)
        assert _gone(worker.pid)
        if how == signal.SIGINT:
            assert app.returncode == 130 and out == "" and "Traceback" not in err  # no turn was printed
        else:
            assert app.returncode == -signal.SIGKILL
    finally:
        app.kill()


ESC_NAME = "evil\x1b]0;pwned\x07\x1b[2J.gguf"


def test_quanttui_ab_prints_outside_text_cleaned_and_json_exact(tiny, tmp_path, capsys):
    evil = tmp_path / ESC_NAME
    evil.write_bytes(tiny.quants["Q2_K"].read_bytes())
    a = str(tiny.quants["Q8_0"])
    assert main(["ab", a, str(evil), "--prompt", PROMPT, "--max-tokens", "8", "--mode", "completion"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "--- B: " + str(tmp_path) + "/evil\\x1b]0;pwned\\x07\\x1b[2J.gguf\n" in out
    assert main(["ab", a, str(evil), "--prompt", PROMPT, "--max-tokens", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["b"]["model"] == str(evil)  # exact


def test_model_output_is_printed_cleaned_with_its_lines_kept(capsys):
    text = "line one\x1b]52;c;cHduZWQ=\x07\nline two\x9b31m\u202eevil"
    a = SideResult("a", "/m/a.gguf", text=text, token_ids=[1, 2], stop_reason="eos")
    b = SideResult("b", "/m/b\x1b[31m.gguf", stop_reason="error", error="could not load: \x1b[2J bad")
    print_turn(Turn(PROMPT, a, b, 0, "tokens"))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "\u202e" not in out
    lines = out.splitlines()
    assert lines[1] == "line one\\x1b]52;c;cHduZWQ=\\x07"  # escaped where it stood, not dropped
    assert lines[2].startswith("line two")
    assert "--- B: /m/b\\x1b[31m.gguf" in lines and "error: could not load: \\x1b[2J bad" in lines


def test_leaving_while_the_models_load_stops_the_load_and_its_worker(tiny):
    abort = threading.Event()
    pids: list[int] = []

    def on_status(what, side):
        if side == "a":
            pids.extend(p.pid for p in _workers(psutil.Process()))
            os.kill(pids[0], signal.SIGSTOP)  # a load that would take as long as it likes
            abort.set()  # the screen is left while A loads

    cfg = GenConfig(max_tokens=8, n_ctx=512, mode="completion")
    s = ABSession(
        str(tiny.quants["Q8_0"]), str(tiny.quants["Q2_K"]), cfg, TOGETHER, on_status=on_status, abort=abort
    )
    assert s.engine.errors() == {"a": "loading was cancelled", "b": "loading was cancelled"}
    assert len(pids) == 1 and _gone(pids[0]) and s.engine.pid is None
    t = s.ask(PROMPT)  # nothing loads again behind the user's back
    assert t.a.error == t.b.error == "loading was cancelled" and s.engine.pid is None
    s.close()


def test_models_that_finish_loading_as_the_screen_is_left_are_not_kept(tiny):
    abort = threading.Event()
    cfg = GenConfig(max_tokens=8, n_ctx=512, mode="completion")
    s = ABSession(
        str(tiny.quants["Q8_0"]), str(tiny.quants["Q2_K"]), cfg, TOGETHER,
        on_status=lambda what, side: side == "b" and abort.set(), abort=abort,
    )
    assert s.engine.errors() == {"a": "loading was cancelled", "b": "loading was cancelled"}
    assert s.engine.pid is None and _workers(psutil.Process()) == []
    s.close()
