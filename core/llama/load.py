"""Every model load and quantization quanttui does: one place that sets llama.cpp's parameters,
extra buffer types included, and turns its failures into one line.

llama-cpp-python's `Llama(...)` has no keyword for `use_extra_bufts` (llama.cpp's `--no-repack`):
the parameters it starts from (`llama_model_default_params`) are wrapped once per process, and a
load sets the value for its own thread only, so two sides loading at once do not race.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import signal
import threading
from pathlib import Path
from typing import Any

from ..safeopen import UnsafeFileError, check_regular
from .lib import lib, low_level
from .log import captured

# llama_ftype values llama_model_quantize takes, by quant label.
FTYPES = {
    "F32": 0,
    "F16": 1,
    "Q4_0": 2,
    "Q4_1": 3,
    "Q8_0": 7,
    "Q5_0": 8,
    "Q5_1": 9,
    "Q2_K": 10,
    "Q3_K_M": 12,
    "Q4_K_M": 15,
    "Q5_K_M": 17,
    "Q6_K": 18,
    "IQ4_NL": 25,
    "IQ4_XS": 30,
    "BF16": 32,
}
FAILPOINT_ENV = "QUANTTUI_FAILPOINT"
CRASH_WITH_EXTRA = "extra-buffers-crash"  # acts like a host whose extra buffers crash llama.cpp

_local = threading.local()
_wrap_lock = threading.Lock()
_wrapped = False


def _wrap_defaults() -> None:
    """Make llama_model_default_params honour this thread's extra-buffer choice (once)."""
    global _wrapped
    with _wrap_lock:
        if _wrapped:
            return
        bindings = low_level()
        real = bindings.llama_model_default_params

        def defaults() -> Any:
            params = real()
            choice = getattr(_local, "extra_buffers", None)
            if choice is not None:
                params.use_extra_bufts = choice
            return params

        bindings.llama_model_default_params = defaults
        _wrapped = True


def failpoint_crash(extra_buffers: bool) -> None:
    """The test hook: with QUANTTUI_FAILPOINT=extra-buffers-crash, a process that uses llama.cpp
    with extra buffers on dies by SIGSEGV, as on the AMX hosts of llama.cpp#20824."""
    if extra_buffers and os.environ.get(FAILPOINT_ENV) == CRASH_WITH_EXTRA:
        os.kill(os.getpid(), signal.SIGSEGV)


def load(path: str | Path, *, extra_buffers: bool | None = None, **kw: Any) -> Any:
    """A `Llama` for `path` with llama.cpp's log kept off the terminal. `extra_buffers` None asks
    the machine's decision (extra.decide); other keywords go to `Llama` as they are."""
    if extra_buffers is None:
        from .extra import decide

        extra_buffers = decide().use
    _wrap_defaults()
    _local.extra_buffers = extra_buffers
    kw.setdefault("verbose", True)  # False would redirect the process's stdout/stderr: a TUI blanks
    _check_regular(path)
    _check_loadable(path)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            llm = lib().Llama(model_path=str(path), **kw)
    finally:
        _local.extra_buffers = None
    failpoint_crash(extra_buffers)
    return llm


def _check_regular(path: str | Path) -> None:
    """Refuse a model path that is not a regular file before llama.cpp opens it: its open of a FIFO
    waits for a writer forever, and a device (/dev/zero) reads without end. ValueError, as llama.cpp's
    own load failures are."""
    try:
        check_regular(path)
    except UnsafeFileError as e:
        raise ValueError(str(e)) from None
    except OSError as e:
        raise ValueError(f"cannot open the model: {e.strerror or e}") from None


def _check_loadable(path: str | Path) -> None:
    """The one pre-load check A/B, eval, bench and `fit --measure` share (every load goes through
    load()): a GGUF only ik_llama.cpp can load (its IQK quants, _R4/_R8 repacks) is refused with that
    reason, as a ValueError like llama.cpp's own load failures, before llama.cpp sees it. The header
    is read after llama_cpp is imported (modelfile imports numpy)."""
    from ..modelfile import unloadable_reason
    from ..textsafe import clean_path

    reason = unloadable_reason(path)
    if reason:
        raise ValueError(f"{clean_path(Path(path).name)}: {reason}")


def quantize(src: str | Path, dst: str | Path, ftype: int | str, *, allow_requantize: bool = False) -> None:
    """llama.cpp's own quantizer (llama_model_quantize), its log kept; RuntimeError with its last line."""
    llama_cpp = lib()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[ftype] if isinstance(ftype, str) else ftype
    params.allow_requantize = allow_requantize
    with captured() as lines:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    last_quantize_log[:] = lines
    if rc != 0:
        tail = [line.strip() for line in lines if line.strip()][-1:] or [f"returned {rc}"]
        raise RuntimeError(f"llama.cpp could not quantize {Path(src).name}: {tail[0]}")


last_quantize_log: list[str] = []  # the last quantization's log, for tests that read its decisions


def system_info() -> str:
    """llama.cpp's own `llama_print_system_info()` line."""
    return bytes(lib().llama_print_system_info() or b"").decode("utf-8", errors="replace").strip()
