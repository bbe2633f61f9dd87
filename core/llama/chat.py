"""llama.cpp's own chat templates, by name: the list it knows (`llama_chat_builtin_templates`) and a
conversation written with one of them (`llama_chat_apply_template`), for a model file that carries
no chat template of its own. Names only: a template's text is never given to llama.cpp here (its
detection would guess a format from any text), so a Jinja file goes through core/ab/template.py."""

from __future__ import annotations

import ctypes
import functools

from .lib import lib

# architecture (general.architecture) -> llama.cpp's template for it, where the name differs or the
# family has one; checked against the list at use
FOR_ARCH = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3n": "gemma",
    "llama": "llama3",
    "qwen2": "chatml",
    "qwen3": "chatml",
    "qwen2moe": "chatml",
    "qwen3moe": "chatml",
    "phi3": "phi3",
    "phi4": "phi4",
    "mistral3": "mistral-v7",
    "command-r": "command-r",
    "deepseek2": "deepseek3",
    "granite": "granite",
    "exaone": "exaone3",
    "glm4": "chatglm4",
    "chatglm": "chatglm4",
    "falcon3": "falcon3",
    "smollm3": "chatml",
    "olmo2": "chatml",
}


@functools.lru_cache(maxsize=1)
def builtin_templates() -> tuple[str, ...]:
    """The names of llama.cpp's built-in chat templates, as this build lists them."""
    llama_cpp = lib()
    n = llama_cpp.llama_chat_builtin_templates(None, 0)
    if n <= 0:
        return ()
    names = (ctypes.c_char_p * n)()
    got = llama_cpp.llama_chat_builtin_templates(names, n)
    return tuple(sorted(names[i].decode() for i in range(max(0, min(got, n))) if names[i]))


def template_for(architecture: str | None) -> str | None:
    """The built-in template an architecture's chat models use, when llama.cpp has it."""
    name = FOR_ARCH.get(architecture or "")
    return name if name in builtin_templates() else None


def apply_builtin(name: str, messages: list[dict[str, str]], *, add_assistant: bool = True) -> str:
    """The conversation written with llama.cpp's built-in template `name` (ending with the
    assistant's turn opened when `add_assistant`); ValueError for a name it does not know."""
    if name not in builtin_templates():
        raise ValueError(f"llama.cpp has no built-in chat template {name!r}")
    llama_cpp = lib()
    keep = [(m["role"].encode(), m["content"].encode()) for m in messages]
    chat = (llama_cpp.llama_chat_message * len(keep))()
    for i, (role, content) in enumerate(keep):
        chat[i].role, chat[i].content = role, content
    size = 2 * sum(len(r) + len(c) for r, c in keep) + 1024
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_chat_apply_template(name.encode(), chat, len(keep), add_assistant, buf, size)
        if n < 0:
            raise ValueError(f"llama.cpp could not apply the chat template {name!r}")
        if n <= size:
            return buf.raw[:n].decode("utf-8", errors="replace")
        size = n + 1
    raise ValueError(f"llama.cpp's chat template {name!r} kept growing")
