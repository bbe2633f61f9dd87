"""Where quanttui keeps config, data and cache; each can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "quanttui"


def _dir(env: str, default: Path) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser() if value else default


def config_dir() -> Path:
    return _dir("QUANTTUI_CONFIG_DIR", platformdirs.user_config_path(APP, appauthor=False))


def data_dir() -> Path:
    return _dir("QUANTTUI_DATA_DIR", platformdirs.user_data_path(APP, appauthor=False))


def cache_dir() -> Path:
    return _dir("QUANTTUI_CACHE_DIR", platformdirs.user_cache_path(APP, appauthor=False))


def models_dir() -> Path:
    """quanttui's own models folder: downloads land here unless settings say the HF cache."""
    return data_dir() / "models"
