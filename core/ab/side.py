"""One side of an A/B pair: its model, its prompt's tokens (chat template rendered as untrusted
code, or raw text in completion mode), and greedy generation streamed token by token."""

from __future__ import annotations

import codecs
import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..llama import lib
from ..llama.chat import apply_builtin
from ..organize.safety import mark_in_use, unmark_in_use
from .config import GenConfig
from .loader import load_error, load_model, one_line
from .metrics import Loop, distinct_n, longest, loop_at_end
from .template import RENDER_SECONDS, TemplateCancelled, TemplateError, render_chat

# side ("a"/"b"), generated ids so far (the live list: read it, do not keep it), text so far
OnToken = Callable[[str, list[int], str], None]
# what the engine is doing: ("loading", side) before each model loads
OnStatus = Callable[[str, str], object]  # what it returns is ignored
# side, and whether its chat template starts (True) or has finished (False) rendering
OnRender = Callable[[str, bool], None]
# a prompt's token ids and the stop strings its template implies
Prompt = tuple[list[int], list[str]]


@dataclass
class SideResult:
    side: str
    model: str
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    prompt_ids: list[int] = field(default_factory=list)
    char_ends: list[int] = field(default_factory=list)  # len(text) after each token, to map tokens to text
    stop_reason: str = ""  # eos, max_tokens, stop_string, loop, context_full, cancelled, error
    error: str | None = None
    seconds: float = 0.0
    tokens_per_second: float = 0.0

    @property
    def loop(self) -> Loop | None:
        """The longest repeated span of the answer (any period up to half of it), or None."""
        return longest(self.token_ids)

    @property
    def longest_loop(self) -> int:
        lp = self.loop
        return lp.length if lp else 0

    def loop_text(self) -> str:
        """The longest loop's tokens, period and whole repeats ("96 tokens (48 × 2)"), or "0"."""
        lp = self.loop
        return lp.describe() if lp else "0"

    def char_span(self, start: int, end: int) -> tuple[int, int]:
        """Characters of `text` covered by generated tokens [start, end)."""
        ends = self.char_ends
        lo = ends[start - 1] if 0 < start <= len(ends) else 0
        hi = ends[end - 1] if 0 < end <= len(ends) else len(self.text)
        return min(lo, len(self.text)), min(hi, len(self.text))

    def to_dict(self) -> dict[str, Any]:
        lp = self.loop
        return {
            "model": self.model,
            "text": self.text,
            "token_ids": self.token_ids,
            "tokens_per_second": round(self.tokens_per_second, 2),
            "stop_reason": self.stop_reason,
            "longest_loop": lp.length if lp else 0,
            "loop_period": lp.period if lp else None,  # the longest loop's period, in tokens
            "loop_repeats": lp.repeats if lp else None,  # and its whole repeats
            "distinct_1": round(distinct_n(self.token_ids, 1), 4),
            "distinct_2": round(distinct_n(self.token_ids, 2), 4),
            "error": self.error,
        }


class Side:
    """One model of the pair. `error` is set instead of raising when it cannot be loaded."""

    def __init__(
        self,
        name: str,
        path: str,
        cfg: GenConfig,
        n_gpu_layers: int = 0,
        error: str | None = None,
        main_gpu: int | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.llm: Any = None
        self.error: str | None = error  # set by the caller when this model must not be loaded again
        if error:
            return
        try:
            if not Path(path).is_file():
                raise ValueError(f"no such file: {path}")
            self.llm = load_model(path, cfg, n_gpu_layers, main_gpu)
            mark_in_use(path)  # organize refuses to delete or move it while it is loaded
        except Exception as e:  # noqa: BLE001  any failure to load is this side's error
            self.error = load_error(path, e)

    @property
    def chat_template(self) -> str | None:
        t = self.llm.metadata.get("tokenizer.chat_template") if self.llm else None
        return t if isinstance(t, str) and t else None

    def _special_text(self, token: int) -> str:
        text: str = self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")
        return text

    def template(self, cfg: GenConfig | None = None) -> tuple[str | None, str | None]:
        """The chat template this side uses: (Jinja source, None) for the file's own or a borrowed
        Jinja file, (None, name) for llama.cpp's built-in `name` borrowed, (None, None) for none."""
        if self.chat_template:
            return self.chat_template, None
        if cfg is not None and cfg.template_source:
            return cfg.template_source, None
        if cfg is not None and cfg.template_name:
            return None, cfg.template_name
        return None, None

    def prompt_tokens(
        self,
        messages: list[dict[str, str]],
        mode: str,
        cancel: threading.Event | None = None,
        seconds: float = RENDER_SECONDS,
        cfg: GenConfig | None = None,
    ) -> tuple[list[int], list[str]]:
        """Token ids for the conversation, and the stop strings its template implies. Completion
        mode (or a model without a template, its own or borrowed through `cfg`) never touches one."""
        llm = self.llm
        source, builtin = self.template(cfg)
        if mode == "completion" or not (source or builtin):
            text = "".join(m["content"] for m in messages if m["role"] != "system")
            return llm.tokenize(text.encode(), add_bos=True, special=False), []
        bos, eos = self._special_text(llm.token_bos()), self._special_text(llm.token_eos())
        if source:
            prompt, stop = render_chat(source, messages, bos=bos, eos=eos, cancel=cancel, seconds=seconds)
        else:
            assert builtin is not None
            try:
                prompt, stop = apply_builtin(builtin, messages), [eos] if eos else []
            except ValueError as e:
                raise TemplateError(f"chat template: {e}") from None
        add_bos = not (bos and prompt.startswith(bos))
        return llm.tokenize(prompt.encode(), add_bos=add_bos, special=True), stop

    def prepare(
        self,
        messages: list[dict[str, str]],
        cfg: GenConfig,
        cancel: threading.Event,
        on_render: OnRender | None = None,
    ) -> Prompt | SideResult:
        """The prompt's token ids and stop strings, or this side's result (an error, a cancel)
        when there is none; `on_render` hears a chat template start and stop rendering."""
        result = SideResult(self.name, self.path)
        if self.llm is None:
            result.stop_reason, result.error = "error", self.error
            return result
        renders = on_render if cfg.mode != "completion" and self.template(cfg)[0] else None
        if renders:
            renders(self.name, True)
        try:
            return self.prompt_tokens(messages, cfg.mode, cancel, cfg.template_seconds, cfg)
        except TemplateCancelled:
            result.stop_reason = "cancelled"
        except TemplateError as e:
            result.stop_reason, result.error = "error", str(e)
        except Exception as e:  # noqa: BLE001  a tokenizer failure is this side's error too
            result.stop_reason, result.error = "error", one_line(e)
        finally:
            if renders:
                renders(self.name, False)
        return result

    def generate(
        self,
        messages: list[dict[str, str]],
        cfg: GenConfig,
        on_token: OnToken | None,
        cancel: threading.Event,
        on_render: OnRender | None = None,
        prepared: Prompt | SideResult | None = None,
        stop_loops: threading.Event | None = None,
    ) -> SideResult:
        """This side's answer (from `prepared` when the prompt was made beforehand); whatever
        fails (template, decode, memory) is its `error`, one line. Once `stop_loops` is set, an
        answer that ends in a loop stops there, as `cfg.stop_on_loop` does from the start."""
        if prepared is None:
            prepared = self.prepare(messages, cfg, cancel, on_render)
        if isinstance(prepared, SideResult):
            return prepared
        result = SideResult(self.name, self.path)
        try:
            return self._generate(result, prepared, cfg, on_token, cancel, stop_loops)
        except Exception as e:  # noqa: BLE001  llama.cpp decode failures, out of memory, anything
            result.stop_reason, result.error = "error", one_line(e)
        return result

    def _generate(
        self,
        result: SideResult,
        prepared: Prompt,
        cfg: GenConfig,
        on_token: OnToken | None,
        cancel: threading.Event,
        stop_loops: threading.Event | None = None,
    ) -> SideResult:
        llama_cpp = lib()

        llm = self.llm
        prompt, template_stop = prepared
        result.prompt_ids = prompt
        stops = [s for s in [*cfg.stop, *template_stop] if s]
        longest_stop = max((len(s) for s in stops), default=0)
        room = cfg.n_ctx - len(prompt)
        if room <= 0:
            result.stop_reason, result.error = (
                "context_full",
                f"prompt of {len(prompt):,} tokens fills the context of {cfg.n_ctx:,}",
            )
            return result
        vocab = llm._model.vocab
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # holds split multibyte chars
        start = time.perf_counter()
        first = last = start
        streamed = -math.inf
        llm.reset()  # never reuse a cached prefix: a rerun must reproduce the same tokens
        for tok in llm.generate(
            prompt, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True
        ):
            now = time.perf_counter()
            if cancel.is_set():
                result.stop_reason = "cancelled"
                break
            if llama_cpp.llama_vocab_is_eog(vocab, tok):
                result.stop_reason = "eos"
                break
            if not result.token_ids:
                first = now
            last = now
            result.token_ids.append(tok)
            new = decoder.decode(llm.detokenize([tok]))
            result.text += new
            result.char_ends.append(len(result.text))
            # Only the tail can hold a stop string that this token completed.
            tail = result.text[-(longest_stop + len(new)) :] if stops else ""
            if stops and any(s in tail for s in stops):
                result.text = result.text[: min(result.text.find(s) for s in stops if s in result.text)]
                result.stop_reason = "stop_string"
                break
            if on_token and now - streamed >= cfg.stream_every:
                streamed = now
                on_token(self.name, result.token_ids, result.text)
            watch_loops = cfg.stop_on_loop or (stop_loops is not None and stop_loops.is_set())
            if watch_loops and loop_at_end(result.token_ids):
                result.stop_reason = "loop"
                break
            if len(result.token_ids) >= cfg.max_tokens:
                result.stop_reason = "max_tokens"
                break
            if len(result.token_ids) >= room:
                result.stop_reason = "context_full"
                break
        if result.stop_reason != "stop_string":
            result.text += decoder.decode(b"", final=True)
        result.seconds = time.perf_counter() - start
        n = len(result.token_ids)
        result.tokens_per_second = (n - 1) / (last - first) if n > 1 and last > first else 0.0
        if on_token:
            on_token(self.name, list(result.token_ids), result.text)
        return result

    def close(self) -> None:
        if self.llm is not None:
            with contextlib.suppress(Exception):
                self.llm.close()
            self.llm = None
            unmark_in_use(self.path)
