"""Loading a model for the A/B engine: llama.cpp's log to a callback, the file's chat templates
left uncompiled (they are untrusted code, rendered only by template.py), failures as one line."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..llama import lib, load
from ..llama.lib import chat_format_module
from ..textsafe import clean

if TYPE_CHECKING:
    from .config import GenConfig


def load_model(path: str, cfg: GenConfig, n_gpu_layers: int, main_gpu: int | None) -> Any:
    """A `Llama` for the file, silent, its chat templates left as text."""
    # A GPU of its own: the whole model there (split mode "none"), not spread over every GPU.
    own: dict[str, Any] = {}
    if main_gpu is not None:
        own = {"split_mode": lib().LLAMA_SPLIT_MODE_NONE, "main_gpu": main_gpu}
    with _templates_uncompiled():
        return load(
            path, n_ctx=cfg.n_ctx, n_gpu_layers=n_gpu_layers, flash_attn=cfg.flash_attn, seed=1, **own
        )


class _Uncompiled:
    """Stands in for llama-cpp-python's chat formatter while a model loads: the file's templates
    are kept as text, not compiled, so a hostile one cannot fail or stall the load."""

    def __init__(self, **_: Any) -> None:
        pass

    def to_chat_handler(self) -> Callable[..., Any]:
        def refuse(**_: Any) -> Any:
            raise RuntimeError("chat templates are rendered by quanttui.core.ab.template")

        return refuse


_PATCH = threading.Lock()


@contextlib.contextmanager
def _templates_uncompiled() -> Any:
    """`Llama.__init__` compiles every `tokenizer.chat_template*` it finds: not while we load."""
    formats = chat_format_module()
    with _PATCH:
        real = getattr(formats, "Jinja2ChatFormatter", None)
        formats.Jinja2ChatFormatter = _Uncompiled
        try:
            yield
        finally:
            if real is not None:
                formats.Jinja2ChatFormatter = real


def one_line(e: BaseException) -> str:
    """An exception as one safe line for a pane."""
    text = str(e)
    plain = isinstance(e, (ValueError, RuntimeError, OSError)) and text
    return clean(text if plain else f"{type(e).__name__}: {text}")


def load_error(path: str, e: BaseException) -> str:
    """What a pane says about a model that could not be loaded."""
    return f"could not load {clean(Path(path).name)}: {one_line(e)}"
