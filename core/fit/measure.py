"""Load a model for real and read the buffer sizes llama.cpp logs, to set beside the estimate.

llama.cpp's logs go to a callback (never the terminal): `verbose=False` would redirect the whole
process's stdout/stderr, which blanks a running Textual screen.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import re
import threading
from typing import Any

from .estimate import FitSettings

_BUFFER_RE = re.compile(r"(\S+)\s+(model|output|KV|compute|RS) buffer size =\s+([\d.]+) MiB")
_PART = {"model": "weights", "KV": "kv_cache", "RS": "kv_cache", "compute": "compute", "output": "output"}
GGML_TYPES = {
    "f32": 0,
    "f16": 1,
    "q4_0": 2,
    "q4_1": 3,
    "q5_0": 6,
    "q5_1": 7,
    "q8_0": 8,
    "iq4_nl": 20,
    "bf16": 30,
}


class LlamaLogCapture:
    """Routes llama.cpp's log to Python once per process; `capture()` collects lines for a while."""

    _lock = threading.Lock()
    _installed: Any = None
    _sinks: list[list[str]] = []

    @classmethod
    def install(cls) -> None:
        with cls._lock:
            if cls._installed is not None:
                return
            import llama_cpp

            @llama_cpp.llama_log_callback
            def _log(level: int, text: bytes, user_data: Any) -> None:
                line = text.decode("utf-8", errors="replace")
                for sink in list(cls._sinks):
                    sink.append(line)

            cls._installed = _log  # llama.cpp keeps only the raw pointer
            llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))

    @classmethod
    def start(cls) -> list[str]:
        cls.install()
        sink: list[str] = []
        cls._sinks.append(sink)
        return sink

    @classmethod
    def stop(cls, sink: list[str]) -> None:
        if sink in cls._sinks:
            cls._sinks.remove(sink)


def parse_buffers(lines: list[str]) -> dict[str, dict[str, int]]:
    """{buffer name (CPU, CUDA0, CPU_Mapped...): {part: bytes}} from llama.cpp's log lines."""
    out: dict[str, dict[str, int]] = {}
    for line in lines:
        m = _BUFFER_RE.search(line)
        if m:
            name, part, mib = m.group(1), _PART[m.group(2)], float(m.group(3))
            parts = out.setdefault(name, {})
            parts[part] = parts.get(part, 0) + round(mib * (1 << 20))
    return out


def measure(path: str, settings: FitSettings, *, use_mmap: bool | None = None) -> dict[str, dict[str, int]]:
    """Load `path` with llama-cpp-python at `settings` and return the buffers llama.cpp reported."""
    import llama_cpp

    if use_mmap is None:
        use_mmap = settings.use_mmap
    gl = settings.gpu_layers
    n_gpu = -1 if gl in ("all", "auto") else int(gl)
    sink = LlamaLogCapture.start()
    try:
        # verbose=True sends llama.cpp's log to the callback; llama-cpp-python's own prints go here.
        with contextlib.redirect_stderr(io.StringIO()):
            llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=settings.n_ctx,
                n_batch=settings.n_batch,
                n_ubatch=settings.n_ubatch,
                n_gpu_layers=n_gpu,
                flash_attn=settings.flash_attn,
                type_k=GGML_TYPES[settings.type_k],
                type_v=GGML_TYPES[settings.type_v],
                swa_full=settings.swa_full,
                use_mmap=use_mmap,
                verbose=True,
            )
            llm.close()
    except (ValueError, RuntimeError) as e:
        tail = [line.strip() for line in sink if line.strip()][-1:] or [str(e)]
        raise RuntimeError(f"llama.cpp could not load the model: {tail[0]}") from None
    finally:
        LlamaLogCapture.stop(sink)
    return parse_buffers(sink)
