"""Extra buffer types (llama.cpp's AMX and CPU_REPACK weight copies): `auto`, `on` or `off`.

In `auto` (the default) the first load on a given llama.cpp build and CPU probes once in a child
process (probe.py): a small quantized model decodes the batch shapes the app uses with and without
extra buffers and the logits are compared. A crash or a mismatch turns them off for this machine
(llama.cpp#20824: AMX crashes on some Xeons); the verdict is remembered under the cache dir, keyed
by build and CPU. A model process that crashes with them on in `auto` records the same verdict.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..paths import cache_dir
from ..safeopen import read_text_bounded
from . import ggml
from .lib import lib, version
from .load import CRASH_WITH_EXTRA, FAILPOINT_ENV, system_info

MODES = ("auto", "on", "off")
ENV = "QUANTTUI_EXTRA_BUFFERS"
ISSUE = "llama.cpp#20824"
PROBE_TIMEOUT = 60.0
FAULTS = (signal.SIGSEGV, signal.SIGILL, signal.SIGBUS, signal.SIGFPE)
_notices: list[str] = []  # fallbacks made in this process, for the CLI or the app to say once


@dataclass(frozen=True)
class Decision:
    """What loads do on this machine and why: `use` is the value given to llama.cpp."""

    use: bool
    mode: str  # auto, on, off: what was asked
    verdict: str  # on, off, untested: what the probe (or a crash) found
    reason: str
    types: tuple[str, ...] = ()  # the extra buffer types this build and CPU have

    @property
    def turned_off(self) -> bool:
        """Off because this machine failed with them (not because a person asked)."""
        return self.mode == "auto" and self.verdict == "off"

    def notice(self) -> str:
        """The one line a command or the app says when the machine's verdict turned them off."""
        names = "/".join(self.types) or "extra"
        return (
            f"llama.cpp's {names} buffers are off on this machine: {self.reason} "
            f"({ISSUE}); `quanttui doctor` has details"
        )


def requested_mode() -> tuple[str, str]:
    """The mode and where it came from: the environment (or a CLI flag, which sets it), the
    settings file, else auto."""
    env = os.environ.get(ENV, "").strip().lower()
    if env in MODES:
        return env, ENV
    from ..settings import load as load_settings

    mode = load_settings().extra_buffers
    return (mode, "settings") if mode != "auto" else ("auto", "default")


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
        for line in fh.read(1 << 16).splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def build_key() -> str:
    """This llama.cpp build and CPU: version, system info, the library file, the CPU's name (once a
    process: every decision reads the verdict under this key)."""
    folder = Path(lib().__file__).parent / "lib"
    stamp = ""
    with contextlib.suppress(OSError):
        stamp = ",".join(f"{p.name}:{p.stat().st_size}" for p in sorted(folder.iterdir()) if "ggml" in p.name)
    text = "|".join([version(), system_info(), stamp, cpu_name()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _store() -> Path:
    return cache_dir() / "llama-machine.json"


def recorded() -> dict[str, Any] | None:
    """The verdict remembered for this build and CPU, if any."""
    try:
        data = json.loads(read_text_bounded(_store(), 1 << 20))
        rec = data.get(build_key()) if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None
    ok = isinstance(rec, dict) and rec.get("verdict") in ("on", "off") and isinstance(rec.get("reason"), str)
    return rec if ok else None


def record(verdict: str, reason: str, **extra: Any) -> None:
    """Remember a verdict for this build and CPU (written whole: a kill leaves the old file)."""
    path = _store()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(read_text_bounded(path, 1 << 20))
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    entry = {"verdict": verdict, "reason": reason, "when": time.time(), "cpu": cpu_name(), **extra}
    data[build_key()] = entry
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".llama-machine-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)


def _types() -> tuple[str, ...]:
    try:
        return tuple(ggml.extra_buffer_types())
    except (OSError, AttributeError):
        return ()


def decide(*, probe: bool = True) -> Decision:
    """Whether loads use extra buffers here. In auto with no verdict yet, `probe` runs the probe
    (about a second, once per build and CPU); without it, llama.cpp's default (on) is assumed."""
    mode, source = requested_mode()
    types = _types()
    if mode != "auto":
        return Decision(mode == "on", mode, "untested", f"set to {mode} ({source})", types)
    if not types and os.environ.get(FAILPOINT_ENV) != CRASH_WITH_EXTRA:
        return Decision(True, mode, "on", "this build and CPU have no extra buffer types", types)
    rec = recorded()
    if rec is None and probe:
        rec = _probe_locked()
    if rec is None:
        return Decision(True, mode, "untested", "not probed yet: llama.cpp's default (on)", types)
    return Decision(rec["verdict"] == "on", mode, rec["verdict"], rec["reason"], types)


def crashed_with_them(how: str, during: str) -> Decision:
    """A model process died with extra buffers on, in auto: turn them off for this machine."""
    names = "/".join(_types()) or "extra"
    record("off", f"a model process crashed ({how}) {during} with the {names} buffers on", source="crash")
    return decide(probe=False)


def _probe_locked() -> dict[str, Any] | None:
    """Run the probe once: processes that ask at the same time wait for the first one's verdict."""
    lock = cache_dir() / "llama-machine.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            rec = recorded()
            if rec is None:
                verdict, reason, seconds = run_probe()
                record(verdict, reason, source="probe", probe_seconds=round(seconds, 2))
                rec = recorded()
            return rec
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_probe(timeout: float = PROBE_TIMEOUT) -> tuple[str, str, float]:
    """(verdict, reason, seconds) from a child process that decodes with and without extra buffers."""
    from ..childproc import how_it_ended

    names = "/".join(_types()) or "extra"
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="quanttui-probe-") as tmp:
        env = {**os.environ, ENV: "auto"}
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "quanttui.core.llama.probe", tmp],
                capture_output=True,
                timeout=timeout,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return "off", f"the probe did not finish in {timeout:g} s with the {names} buffers on", timeout
        seconds = time.monotonic() - start
        result = _last_json(proc.stdout)
        if proc.returncode != 0 and result.get("stage") == "on":
            how = how_it_ended(proc.returncode)
            return "off", f"the probe crashed ({how}) decoding with the {names} buffers on", seconds
        if proc.returncode != 0 or "max_diff" not in result:
            err = result.get("error") or how_it_ended(proc.returncode)
            return "off", f"the probe failed ({err}); loading without extra buffers to be safe", seconds
        if not result.get("match"):
            return (
                "off",
                f"logits with the {names} buffers differ from those without by {result['max_diff']:.3g}",
                seconds,
            )
        return "on", f"probed: the {names} buffers decode like the plain CPU path", seconds


def _last_json(out: bytes) -> dict[str, Any]:
    """The last JSON line the probe printed: each stage prints one before it starts."""
    for line in reversed(out.decode("utf-8", errors="replace").splitlines()):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    return {}


def as_dict(d: Decision) -> dict[str, Any]:
    return {**asdict(d), "types": list(d.types)}


class WorkerChoice:
    """A model process's extra-buffer choice: the environment it starts with, the likely cause to
    name when it dies, and the one retry without them after a crash in auto."""

    def __init__(self) -> None:
        self.decision: Decision | None = None
        self.notice: str | None = None  # said once by the caller after a fallback

    def env(self) -> dict[str, str]:
        self.decision = decide()
        return {ENV: "on" if self.decision.use else "off"}

    def cause(self) -> str:
        d = self.decision
        if d is not None and d.use and d.types and d.mode == "on":
            return f"extra buffers ({'/'.join(d.types)}) were set on; they crash on some CPUs ({ISSUE})"
        return ""

    def fall_back(self, code: int | None, during: str) -> bool:
        """After a worker died with exit status `code`: True when it was a fault (SIGSEGV, SIGILL,
        SIGBUS, SIGFPE: what the AMX path does) in auto with them on, now recorded off here. An
        OOM kill, an abort or a kill by quanttui itself is not the extra buffers' doing."""
        d = self.decision
        if d is None or not d.use or d.mode != "auto" or code is None or -code not in FAULTS:
            return False
        from ..childproc import how_it_ended

        self.decision = crashed_with_them(how_it_ended(code), during)
        self.notice = f"{self.decision.notice()}; retried without them"
        _notices.append(self.notice)
        return True


def take_notices() -> list[str]:
    """The fallbacks made since the last call, each to be said once."""
    out = list(dict.fromkeys(_notices))
    _notices.clear()
    return out


def machine_notice() -> str | None:
    """The line to say before loading models when this machine's verdict has them off."""
    d = decide()
    return d.notice() if d.turned_off else None


_cached: tuple[tuple[Any, ...], bool] | None = None


def cached_use() -> bool:
    """decide(probe=False).use, read again only when the environment, the settings file or the
    verdict store has changed (fit asks it for every estimate)."""
    global _cached
    from ..settings import settings_path

    def stamp(p: Path) -> int:
        try:
            return p.stat().st_mtime_ns
        except OSError:
            return 0

    env = (os.environ.get(ENV), os.environ.get(FAILPOINT_ENV))
    key = (*env, str(cache_dir()), stamp(_store()), stamp(settings_path()))
    if _cached is None or _cached[0] != key:
        _cached = (key, decide(probe=False).use)
    return _cached[1]
