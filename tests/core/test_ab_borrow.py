"""A chat template for a model file that has none (issue 19 item 6): llama.cpp's built-in templates
by name through the llama.cpp boundary, a Jinja file rendered in the file templates' sandbox, the
architecture's template suggested, and /system refused in completion mode with the reason."""

from __future__ import annotations

import json

import pytest

from quanttui.cli.main import main
from quanttui.core.ab import GenConfig, borrow
from quanttui.core.ab.context import SideFacts
from quanttui.core.ab.side import Side
from quanttui.core.llama.chat import apply_builtin, builtin_templates, template_for
from quanttui.tui.screens import ab_commands as cmd
from quanttui.tui.screens.ab_commands import CommandRefused
from tests.realmodel import real  # noqa: F401  (the session fixture)

# Gemma's turn format as a Jinja file: the same text llama.cpp's built-in "gemma" writes
GEMMA_JINJA = (
    "{% for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n"
    "{{ m.content }}<end_of_turn>\n{% endfor %}<start_of_turn>model\n{# jinja drops a last newline #}"
)


def bare(name: str, arch: str | None = "gemma3") -> SideFacts:
    return SideFacts(name, 32768, False, f"/x/{name}", {"architecture": arch})


def test_llama_cpp_lists_its_templates_and_writes_a_conversation_with_one():
    names = builtin_templates()
    assert {"gemma", "chatml", "llama3"} <= set(names)
    text = apply_builtin("gemma", [{"role": "user", "content": "Hi"}])
    assert text == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert apply_builtin("chatml", [{"role": "user", "content": "Hi"}]).endswith("<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="no built-in chat template"):
        apply_builtin("{{ x }}", [{"role": "user", "content": "Hi"}])  # text is never handed over
    assert template_for("gemma3") == "gemma" and template_for("nonesuch") is None


def test_a_name_or_a_jinja_file_and_what_is_refused(tmp_path):
    assert borrow.resolve("gemma") == ("gemma", None)
    good = tmp_path / "gemma.jinja"
    good.write_text(GEMMA_JINJA)
    assert borrow.resolve(str(good)) == ("gemma.jinja", GEMMA_JINJA)
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for %}")
    with pytest.raises(borrow.TemplateRefused, match="bad.jinja: chat template: syntax error"):
        borrow.resolve(str(bad))
    with pytest.raises(borrow.TemplateRefused, match="neither a llama.cpp built-in template"):
        borrow.resolve("no-such-template")


def test_the_screen_suggests_the_architectures_template_and_refuses_system_in_completion():
    sides = {"a": bare("gemma-F16.gguf"), "b": bare("gemma-Q2_K.gguf")}
    assert borrow.suggest(sides) == "gemma"
    with pytest.raises(CommandRefused, match="/template gemma borrows llama.cpp's built-in template"):
        cmd.mode("chat", sides)
    said = "A and B have no chat template: borrowed 'gemma'"
    assert cmd.mode("chat", sides, borrowed="gemma") == ("chat", said)
    with pytest.raises(CommandRefused, match="completion mode sends each prompt as plain text, with no"):
        cmd.system("Be brief.", GenConfig(mode="completion"))
    assert cmd.system("Be brief.", GenConfig(mode="chat")) == "Be brief."
    assert borrow.suggest({"a": bare("x", "nonesuch"), "b": bare("y", "nonesuch")}) is None


@pytest.mark.slow
def test_a_files_own_template_comes_first(tiny):
    cfg = GenConfig(mode="chat", n_ctx=512, template_name="gemma")
    side = Side("a", str(tiny.quants["Q8_0"]), cfg)
    try:
        assert side.template(cfg) == (side.chat_template, None) and side.chat_template
    finally:
        side.close()


def test_the_demo_model_chats_with_a_borrowed_template(real, tmp_path, capsys):  # noqa: F811
    """Gemma 3 270M has no chat template: with llama.cpp's "gemma" borrowed, chat mode runs (CLI,
    worker process), and a Jinja file with the same format gives the very same prompt tokens."""
    a, b = str(real.f16), str(real.quants["Q8_0"])
    q = "What is the capital of France?"
    assert main(["ab", a, b, "--prompt", q, "--mode", "chat"]) != 0  # a usage error
    assert "--template gemma borrows llama.cpp's" in capsys.readouterr().err
    args = ["ab", a, b, "--prompt", q, "--template", "gemma", "--max-tokens", "24", "--ctx", "512", "--json"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "borrowed chat template 'gemma' for A and B" in out.err
    d = json.loads(out.out)
    assert d["a"]["text"].strip() and d["b"]["text"].strip() and d["a"]["error"] is None
    jinja = tmp_path / "gemma.jinja"
    jinja.write_text(GEMMA_JINJA)
    msgs = [{"role": "user", "content": q}]
    side = Side("a", a, GenConfig(n_ctx=512))
    try:
        assert side.chat_template is None
        named = GenConfig(mode="chat", n_ctx=512, template_name="gemma")
        name, source = borrow.resolve(str(jinja))
        from_file = GenConfig(mode="chat", n_ctx=512, template_name=name, template_source=source)
        ids, stop = side.prompt_tokens(msgs, "chat", cfg=named)
        assert side.prompt_tokens(msgs, "chat", cfg=from_file)[0] == ids
        plain, _ = side.prompt_tokens(msgs, "completion", cfg=named)
        assert len(ids) > len(plain) + 4 and stop  # the turn markers, and EOS as a stop string
        turn_text = side.llm.detokenize(ids, special=True).decode()
        assert turn_text.endswith("<start_of_turn>model\n")
    finally:
        side.close()
