"""`quanttui doctor`: what a person pastes into a bug report, as one plain dict and as text.

It says which llama.cpp build runs (version, its own system info line, GPU offload, RPC, the backends
compiled in), the devices llama.cpp sees beside NVML's view and RAM, whether llama.cpp's extra
buffer types are used here and why, where quanttui keeps its files, the library stores, and whether
the Hub answers. Each section is collected on its own: one that fails is `{"error": "one line"}`
in its place, never a crash, so a machine without llama-cpp-python still gets a report.

The Hub check is one GET of a small API answer (a JSON list: any HTTP answer would not do, an
intercepting proxy or a captive portal answers too), bounded as a whole (DNS included) by running it
in a thread that is waited for at most HUB_BOUND seconds, so an offline machine is told so at once;
it runs beside the other sections.
Whether a token is set is read from the environment and the token file without any request, and
only yes or no (and where) is reported: never the token or any part of it. On a GPU build, llama.cpp's
devices are listed by a short-lived child process (`python -m quanttui.core.doctor`): asking a GPU's
free memory creates a CUDA context the app would otherwise hold until it exits.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import format as fmt
from .errors import QuanttuiError
from .paths import cache_dir, config_dir, data_dir, models_dir
from .textsafe import clean, clean_path

HUB_BOUND = 2.5  # seconds the whole Hub check may take, DNS included
HUB_PATH = "/api/models?limit=1"  # a small JSON list that only a Hub (or a mirror of it) answers
HUB_READ_MAX = 64 * 1024  # bytes of that answer read at most
DEVICES_TIMEOUT = 30.0  # seconds for the child that lists llama.cpp's devices on a GPU build
ENV_SHOWN = (
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "QUANTTUI_EXTRA_BUFFERS",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
)
WIDTH = 78  # text lines are wrapped to this, so the report reads in an 80-column terminal


def _guard(fn: Callable[[], Any]) -> Any:
    """A section's value, or {"error": "one line"} when collecting it failed in any way."""
    try:
        return fn()
    except QuanttuiError as e:  # already one line that says what is wrong
        return {"error": str(e)}
    except Exception as e:  # noqa: BLE001 - a report of what is broken must itself not break
        text = str(e).strip().splitlines()
        return {"error": f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__}


def _quanttui() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("quanttui")
    except PackageNotFoundError:
        own = "not installed"
    return {
        "version": own,
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
    }


def _llama_cpp() -> dict[str, Any]:
    from .llama import lib, system_info, version

    llama = lib()  # LlamaUnavailable (one line) when llama-cpp-python is missing or does not load
    rpc = getattr(llama, "llama_supports_rpc", None)  # an older build may not have it
    return {
        "version": version(),
        "system_info": system_info(),
        "gpu_offload": bool(llama.llama_supports_gpu_offload()),
        "rpc": bool(rpc()) if rpc is not None else None,
    }


def _backends() -> list[str]:
    from .llama import ggml

    return ggml.backends()


def devices_here() -> list[dict[str, Any]]:
    """Every device llama.cpp has registered, with its memory, asked in this process."""
    from .llama import ggml

    return [
        {
            "name": d.name,
            "description": d.description,
            "kind": d.kind,
            "total_bytes": d.total_bytes,
            "free_bytes": d.free_bytes,
        }
        for d in ggml.devices()
    ]


def devices_in_child(timeout: float = DEVICES_TIMEOUT) -> list[dict[str, Any]]:
    """The same list from a short-lived child process: asking a GPU backend for its free memory
    (cudaMemGetInfo) creates a CUDA context, hundreds of MiB of VRAM that the app would hold until it
    exits, which would also lower the free memory fit plans with."""
    proc = subprocess.run(
        [sys.executable, "-m", "quanttui.core.doctor"],
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    lines = proc.stdout.decode("utf-8", errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"the device query exited with {proc.returncode}: {tail[0][:200]}")
    found = json.loads(lines[-1])
    if isinstance(found, dict) and "error" in found:
        raise RuntimeError(str(found["error"]))
    devices: list[dict[str, Any]] = found
    return devices


def _devices() -> list[dict[str, Any]]:
    """In a child process where llama.cpp has a GPU backend (see devices_in_child), else here."""
    from .llama import lib

    return devices_in_child() if lib().llama_supports_gpu_offload() else devices_here()


def _hardware() -> tuple[Any, Any]:
    """(NVML's GPUs, RAM) from fit's own detection, the numbers fit plans with."""
    from .fit.devices import detect

    hw = detect()
    gpus = [
        {"name": g.name, "backend": g.backend, "total_bytes": g.total_bytes, "free_bytes": g.free_bytes}
        for g in hw.gpus
    ]
    return gpus, {"total_bytes": hw.ram.total_bytes, "free_bytes": hw.ram.free_bytes}


def _extra_buffers() -> dict[str, Any]:
    from .llama import extra

    d = extra.decide()  # in auto, the first call on a build and CPU runs the probe (about a second)
    _, asked_by = extra.requested_mode()
    rec = extra.recorded()
    decided = None
    if rec is not None:
        decided = {k: rec.get(k) for k in ("verdict", "source", "when", "probe_seconds", "cpu")}
    return {**extra.as_dict(d), "requested_by": asked_by, "turned_off": d.turned_off, "decided": decided}


def _dirs() -> dict[str, Any]:
    from .settings import load, settings_path

    out: dict[str, Any] = {
        "config": str(config_dir()),
        "data": str(data_dir()),
        "cache": str(cache_dir()),
        "models": str(models_dir()),
        "settings": str(settings_path()),
    }
    error = load().load_error
    if error:
        out["settings_error"] = error
    return out


def _stores() -> list[dict[str, Any]]:
    from .library.roots import all_roots
    from .settings import load

    return [
        {"path": str(r.path), "kind": r.kind, "default": r.default, "state": state}
        for r, state in all_roots(load())
    ]


def token_state() -> tuple[bool, str | None]:
    """(whether a Hugging Face token is set, where from), read the way huggingface_hub reads it
    (HF_TOKEN, HUGGING_FACE_HUB_TOKEN, then the token file) but at call time and with no request:
    huggingface_hub's get_token() may refresh an OAuth token over the network. Never the token."""
    env = os.environ
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if env.get(name, "").strip():
            return True, name
    if env.get("HF_TOKEN_PATH"):
        path = Path(env["HF_TOKEN_PATH"]).expanduser()
    else:
        xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        home = Path(env["HF_HOME"]).expanduser() if env.get("HF_HOME") else Path(xdg) / "huggingface"
        path = home / "token"
    try:
        if path.read_text(encoding="utf-8", errors="replace").strip():
            return True, "token file"
    except (OSError, ValueError):
        pass
    return False, None


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _is_json_list(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), list)
    except (ValueError, RecursionError):
        return False


def _ask_hub(url: str, bound: float, box: dict[str, Any]) -> None:
    """One small GET, no token sent; the outcome goes into `box` (run in a thread)."""
    start = time.monotonic()
    try:
        import httpx2

        limits = httpx2.Timeout(bound, connect=bound)
        with (
            httpx2.Client(timeout=limits, follow_redirects=False) as client,
            client.stream("GET", url, headers={"User-Agent": "quanttui-doctor"}) as r,
        ):
            body = b""
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > HUB_READ_MAX:
                    break
            box["status"] = r.status_code
            box["hub_like"] = r.status_code == 200 and _is_json_list(body)
    except Exception as e:  # noqa: BLE001 - every failure is this check's answer, named by its type
        box["error"] = type(e).__name__
    box["seconds"] = time.monotonic() - start


class HubCheck:
    """The Hub check, started at once and read later, so it runs while the other sections collect."""

    def __init__(self, bound: float = HUB_BOUND) -> None:
        from .hub.client import endpoint

        self.endpoint = endpoint()  # HF_ENDPOINT, read now
        self.bound = bound
        self.token_set, self.token_from = token_state()
        self.offline = _offline_env()
        self.started = time.monotonic()
        self._box: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        if not self.offline:
            args = (self.endpoint + HUB_PATH, bound, self._box)
            self._thread = threading.Thread(target=_ask_hub, args=args, name="doctor-hub", daemon=True)
            self._thread.start()

    def result(self) -> dict[str, Any]:
        """The check's answer, waiting for it no longer than its bound from when it started."""
        out: dict[str, Any] = {"endpoint": self.endpoint, "token_set": self.token_set}
        out["token_from"] = self.token_from
        if self._thread is None:
            return {**out, "reachable": False, "detail": "not asked: HF_HUB_OFFLINE is set", "seconds": 0.0}
        self._thread.join(max(0.0, self.started + self.bound - time.monotonic()))
        box = dict(self._box)
        if "seconds" not in box:
            detail = f"no answer within {self.bound:g} s: offline?"
            return {**out, "reachable": False, "detail": detail, "seconds": round(self.bound, 2)}
        took = round(box["seconds"], 2)
        if "error" in box:
            kind = box["error"]
            why = "cannot connect: offline?" if "Connect" in kind or "Proxy" in kind else "no answer"
            return {**out, "reachable": False, "detail": f"{why} ({kind}, {took:g} s)", "seconds": took}
        status, ok = box["status"], box["hub_like"]
        detail = f"HTTP {status} in {took:g} s"
        if not ok:  # an intercepting proxy, a captive portal, a server that is not a Hub
            detail += f"; not a Hub's answer to {HUB_PATH}"
        return {**out, "reachable": ok, "detail": detail, "seconds": took}


def report(*, hub: bool = True, hub_bound: float = HUB_BOUND) -> dict[str, Any]:
    """The whole report as plain JSON-ready values; `hub` False leaves the network alone."""
    check = _guard(lambda: HubCheck(hub_bound)) if hub else None
    hardware = _guard(_hardware)
    gpus, ram = hardware if isinstance(hardware, tuple) else (hardware, hardware)
    out: dict[str, Any] = {
        "quanttui": _guard(_quanttui),
        "llama_cpp": _guard(_llama_cpp),
        "backends": _guard(_backends),
        "devices": _guard(_devices),
        "nvml": gpus,
        "ram": ram,
        "extra_buffers": _guard(_extra_buffers),
        "dirs": _guard(_dirs),
        "stores": _guard(_stores),
        "environment": {k: os.environ[k] for k in ENV_SHOWN if k in os.environ},
    }
    if check is None:
        out["hub"] = {"skipped": True}
    elif isinstance(check, HubCheck):
        out["hub"] = _guard(check.result)
    else:
        out["hub"] = check
    return out


# ---- text -------------------------------------------------------------------------------------------


def _wrap(
    label: str, value: object, indent: int = 2, width: int = 18, sep: str = "", cols: int = WIDTH
) -> list[str]:
    """One aligned row (label, cleaned value), wrapped under its value column; with `sep`, the value
    breaks only after each `sep` (llama.cpp's system info keeps "AVX2 = 1 |" whole)."""
    head = " " * indent + clean(label).ljust(width - 1) + " "
    text = clean(value)
    if not sep:
        lines = textwrap.wrap(
            text, cols, initial_indent=head, subsequent_indent=" " * len(head), break_on_hyphens=False
        )
        return lines or [head.rstrip()]
    pieces = [p + sep.rstrip() for p in text.split(sep)[:-1]] + [text.split(sep)[-1]]
    lines, line = [], head
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        if len(line) > len(head) and len(line) + 1 + len(piece) > cols:
            lines.append(line.rstrip())
            line = " " * len(head)
        line = f"{line}{piece}" if len(line) == len(head) else f"{line} {piece}"
    lines.append(line.rstrip())
    return lines


def _yes(v: object) -> str:
    return "unknown" if v is None else "yes" if v else "no"


def _free(d: dict[str, Any]) -> str:
    return f"{fmt.size(d.get('free_bytes'))} free of {fmt.size(d.get('total_bytes'))}"


def _block(title: str, section: Any, rows: Callable[[Any], list[str]], cols: int = WIDTH) -> list[str]:
    if isinstance(section, dict) and "error" in section:
        return [title, *_wrap("error", section["error"], cols=cols)]
    return [title, *rows(section)]


def _when(t: object) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if isinstance(t, (int, float)) else "?"


def as_text(r: dict[str, Any], width: int = WIDTH) -> str:
    """The report for a terminal: one block per section, values aligned and cleaned (control
    characters and escapes made visible), wrapped to `width` columns."""
    row = functools.partial(_wrap, cols=width)
    block = functools.partial(_block, cols=width)
    blocks: list[list[str]] = []

    def own(s: dict[str, Any]) -> list[str]:
        return [line for k in ("version", "python", "executable", "platform") for line in row(k, s[k])]

    blocks.append(block("quanttui", r.get("quanttui"), own))

    def llama(s: dict[str, Any]) -> list[str]:
        backends = r["backends"]  # a list, or {"error": ...} (report() always sets it)
        names = ", ".join(backends) if isinstance(backends, list) else backends.get("error", "?")
        return [
            *row("llama-cpp-python", s["version"]),
            *row("system info", s["system_info"], sep=" | "),
            *row("GPU offload", _yes(s["gpu_offload"])),
            *row("RPC", _yes(s["rpc"])),
            *row("backends", names or "none"),
        ]

    blocks.append(block("llama.cpp", r.get("llama_cpp"), llama))

    def devices(s: list[dict[str, Any]]) -> list[str]:
        rows = [row(f"{d['name']} ({d['kind']})", f"{d['description']}; {_free(d)}") for d in s]
        return [line for row in rows for line in row] or ["  none"]

    blocks.append(block("devices (as llama.cpp sees them)", r.get("devices"), devices))

    def gpus(s: list[dict[str, Any]]) -> list[str]:
        rows = [row(d["name"], f"{d['backend']}; {_free(d)}", width=30) for d in s]
        return [line for row in rows for line in row] or ["  none found"]

    blocks.append(block("GPUs (NVML)", r.get("nvml"), gpus))
    blocks.append(block("RAM", r.get("ram"), lambda s: row("available", _free(s))))

    def extra(s: dict[str, Any]) -> list[str]:
        d = s.get("decided")
        how = "none yet"  # what auto found on this build and CPU, kept under the cache dir
        if d:
            how = f"{d.get('verdict')}, by {d.get('source') or '?'} on {_when(d.get('when'))}"
            if d.get("probe_seconds") is not None:
                how += f" ({d['probe_seconds']:g} s)"
        return [
            *row("mode", f"{s['mode']} ({s['requested_by']})"),
            *row("verdict", s["verdict"]),
            *row("used by loads", _yes(s["use"])),
            *row("types", ", ".join(s["types"]) or "none"),
            *row("reason", s["reason"]),
            *row("machine record", how),
        ]

    blocks.append(block("extra buffers (AMX, CPU_REPACK...)", r.get("extra_buffers"), extra))

    def dirs(s: dict[str, Any]) -> list[str]:
        return [line for k, v in s.items() for line in row(k.replace("_", " "), clean_path(v))]

    blocks.append(block("where quanttui keeps things", r.get("dirs"), dirs))

    def stores(s: list[dict[str, Any]]) -> list[str]:
        rows = [row(f"{x['state']:<8} {x['kind']}", clean_path(x["path"]), width=22) for x in s]
        return [line for row in rows for line in row] or ["  none"]

    blocks.append(block("library stores", r.get("stores"), stores))
    env = r.get("environment") or {}
    shown = [line for k, v in env.items() for line in row(k, v, width=24)]
    blocks.append(["environment", *(shown or ["  none set"])])

    def hub(s: dict[str, Any]) -> list[str]:
        if s.get("skipped"):
            return ["  not checked (--no-hub)"]
        token = f"yes ({s['token_from']})" if s["token_set"] else "no"
        return [
            *row("endpoint", s["endpoint"]),
            *row("reachable", f"{_yes(s['reachable'])}: {s['detail']}"),
            *row("token set", token),
        ]

    blocks.append(block("Hugging Face Hub", r.get("hub"), hub))
    return "\n\n".join("\n".join(b) for b in blocks)


if __name__ == "__main__":  # devices_in_child: one JSON line, the list or {"error": ...}
    print(json.dumps(_guard(devices_here)))
