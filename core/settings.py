"""User settings persisted as JSON under the config dir: extra roots, hidden roots, theme."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .paths import config_dir

DEFAULT_THEME = "quanttui-dark"


@dataclass
class Settings:
    roots: list[str] = field(default_factory=list)
    hidden_roots: list[str] = field(default_factory=list)
    theme: str = DEFAULT_THEME
    fit: dict[str, Any] = field(default_factory=dict)  # the fit panel's last settings (FitSettings fields)
    download_to: str = "library"  # "library" (quanttui's models folder) or "hf-cache"
    load_error: str | None = field(default=None, compare=False)


def settings_path() -> Path:
    return config_dir() / "settings.json"


def load() -> Settings:
    """Read settings; a missing file gives defaults, an unreadable one gives defaults and says why."""
    path = settings_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as e:
        return Settings(load_error=f"{path}: {e}; using defaults")
    if not isinstance(raw, dict):
        return Settings(load_error=f"{path}: not a JSON object; using defaults")
    known = {f.name for f in fields(Settings)} - {"load_error"}
    s = Settings(**{k: v for k, v in raw.items() if k in known})
    types_ok = isinstance(s.roots, list) and isinstance(s.hidden_roots, list) and isinstance(s.theme, str)
    if not (types_ok and isinstance(s.fit, dict)):
        return Settings(load_error=f"{path}: wrong value types; using defaults")
    return s


def save(settings: Settings) -> None:
    """Write atomically, so a crash mid-write never leaves a half file."""
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in asdict(settings).items() if k != "load_error"}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


@contextlib.contextmanager
def update() -> Iterator[Settings]:
    s = load()
    yield s
    if s.load_error:
        with contextlib.suppress(OSError):
            os.replace(settings_path(), settings_path().with_suffix(".json.bad"))
    save(s)
