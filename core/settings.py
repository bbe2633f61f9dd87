"""User settings persisted as JSON under the config dir: extra roots, hidden roots, theme, fit,
downloads and llama.cpp's extra buffers."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import QuanttuiError
from .paths import config_dir
from .safeopen import read_text_bounded
from .textsafe import clean, clean_path

DEFAULT_THEME = "quanttui-dark"


@dataclass
class Settings:
    roots: list[str] = field(default_factory=list)
    hidden_roots: list[str] = field(default_factory=list)
    theme: str = DEFAULT_THEME
    fit: dict[str, Any] = field(default_factory=dict)  # the fit panel's last settings (FitSettings fields)
    download_to: str = "library"  # "library" (quanttui's models folder) or "hf-cache"
    extra_buffers: str = "auto"  # llama.cpp's extra buffer types (AMX, CPU_REPACK): auto, on or off
    load_error: str | None = field(default=None, compare=False)


def settings_path() -> Path:
    return config_dir() / "settings.json"


DOWNLOAD_TO = ("library", "hf-cache")
EXTRA_BUFFERS = ("auto", "on", "off")


MAX_SETTINGS_BYTES = 1 << 20  # a real settings file is a few hundred bytes


def load() -> Settings:
    """Read settings; a missing file gives defaults, an unreadable one gives defaults and says why.

    Each value of the wrong type (roots that are not strings, a theme that is a number...) is
    dropped on its own and named in `load_error`; the other values are kept.
    """
    path = settings_path()
    where = clean_path(path)
    try:
        raw = json.loads(read_text_bounded(path, MAX_SETTINGS_BYTES))  # never a FIFO's wait or /dev/zero
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError, RecursionError) as e:
        return Settings(load_error=clean(f"{where}: {e}; using defaults"))
    if not isinstance(raw, dict):
        return Settings(load_error=f"{where}: not a JSON object; using defaults")
    values: dict[str, Any] = {}
    dropped: list[str] = []
    for name, ok in _CHECKS.items():
        if name not in raw:
            continue
        value = _clean_value(name, raw[name])
        if ok(value):
            values[name] = value
        if value is not raw[name] or not ok(value):
            dropped.append(name)
    s = Settings(**values)
    if dropped:
        s.load_error = f"{where}: wrong value types in {', '.join(dropped)}; using defaults for those"
    return s


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) and x and "\0" not in x for x in v)


def _clean_value(name: str, value: Any) -> Any:
    """A list of roots keeps its usable strings, the fit dict its scalar values; others stay as they are."""
    if name in ("roots", "hidden_roots") and isinstance(value, list) and not _is_str_list(value):
        return [x for x in value if isinstance(x, str) and x and "\0" not in x]
    if name == "fit" and isinstance(value, dict):
        kept = {k: v for k, v in value.items() if isinstance(v, (str, int, bool))}
        return kept if len(kept) != len(value) else value
    return value


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "roots": _is_str_list,
    "hidden_roots": _is_str_list,
    "theme": lambda v: isinstance(v, str) and 0 < len(v) <= 200,
    "fit": lambda v: isinstance(v, dict),
    "download_to": lambda v: v in DOWNLOAD_TO,
    "extra_buffers": lambda v: v in EXTRA_BUFFERS,
}


class SettingsSaveError(QuanttuiError, OSError):
    """The settings could not be written; str() is one line: which file and why. Also an OSError, so
    the app's callers that already catch OSError (theme, fit settings) keep working."""


def _not_a_folder(folder: Path) -> Path | None:
    """The first of `folder` and its parents that exists but is not a folder (a file where the config
    dir should be), if any."""
    for p in (folder, *folder.parents):
        if os.path.lexists(p):
            return None if p.is_dir() else p
    return None


def save(settings: Settings) -> None:
    """Write atomically, so a crash mid-write never leaves a half file (nor a temp file behind);
    SettingsSaveError when the file cannot be written."""
    path = settings_path()
    data = {k: v for k, v in asdict(settings).items() if k != "load_error"}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    except OSError as e:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        blocker = _not_a_folder(path.parent)
        why = clean(e.strerror or e)
        if blocker is not None:
            why = f"{clean_path(blocker)} is a file, not a folder"
            if os.environ.get("QUANTTUI_CONFIG_DIR"):
                why += " (QUANTTUI_CONFIG_DIR must name a folder)"
        raise SettingsSaveError(f"cannot save the settings to {clean_path(path)}: {why}") from None


@contextlib.contextmanager
def update() -> Iterator[Settings]:
    s = load()
    yield s
    if s.load_error:
        with contextlib.suppress(OSError):
            os.replace(settings_path(), settings_path().with_suffix(".json.bad"))
    save(s)
