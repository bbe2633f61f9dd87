"""Where models live: quanttui's own folder, the HF cache, LM Studio, llama.cpp, Ollama, and user folders."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from ..paths import models_dir
from ..settings import Settings
from ..textsafe import clean_path

KINDS = ("quanttui", "huggingface", "lmstudio", "llama.cpp", "ollama", "folder")


@dataclass(frozen=True)
class Root:
    path: Path
    kind: str
    default: bool

    @property
    def exists(self) -> bool:
        """Whether the root is a folder now; a path that cannot be checked counts as missing."""
        try:
            return self.path.is_dir()
        except (OSError, ValueError):
            return False


def hf_hub_cache() -> Path:
    """The Hub cache as huggingface_hub resolves it (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME).

    huggingface_hub.constants freezes these at import; resolving here sees the current environment.
    """
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def llama_cpp_cache() -> Path:
    """llama.cpp's download cache: LLAMA_CACHE, else the platform cache dir (as llama.cpp does)."""
    if os.environ.get("LLAMA_CACHE"):
        return Path(os.environ["LLAMA_CACHE"]).expanduser()
    return platformdirs.user_cache_path("llama.cpp", appauthor=False, opinion=False)


def ollama_models() -> Path:
    if os.environ.get("OLLAMA_MODELS"):
        return Path(os.environ["OLLAMA_MODELS"]).expanduser()
    return Path.home() / ".ollama" / "models"


def default_roots() -> list[Root]:
    home = Path.home()
    return [
        Root(models_dir(), "quanttui", True),
        Root(hf_hub_cache(), "huggingface", True),
        Root(home / ".lmstudio" / "models", "lmstudio", True),
        Root(home / ".cache" / "lm-studio" / "models", "lmstudio", True),
        Root(llama_cpp_cache(), "llama.cpp", True),
        Root(ollama_models(), "ollama", True),
    ]


def _norm(path: str | Path) -> str:
    return os.path.normcase(os.path.abspath(os.path.expanduser(str(path))))


def _folders(values: object) -> list[str]:
    """The usable folder names of a settings list: non-empty strings without NUL; anything else is
    ignored, so one damaged entry never stops the library."""
    if not isinstance(values, list):
        return []
    return [v for v in values if isinstance(v, str) and v.strip() and "\0" not in v]


def all_roots(settings: Settings) -> list[tuple[Root, str]]:
    """Every known root with its state: "active", "missing" (not on disk) or "hidden" (removed)."""
    hidden = {_norm(p) for p in _folders(settings.hidden_roots)}
    out: list[tuple[Root, str]] = []
    seen: set[str] = set()
    user = [Root(Path(p).expanduser(), "folder", False) for p in _folders(settings.roots)]
    for root in default_roots() + user:
        key = _norm(root.path)
        if key in seen:
            continue
        seen.add(key)
        state = "hidden" if key in hidden else "active" if root.exists else "missing"
        out.append((root, state))
    return out


def active_roots(settings: Settings) -> list[Root]:
    return [r for r, state in all_roots(settings) if state == "active"]


def add_root(settings: Settings, path: str | Path) -> Root:
    """Add a folder (or un-hide a default one). Raises ValueError with a one-line reason."""
    p = Path(path).expanduser().resolve()
    if not Root(p, "folder", False).exists:
        raise ValueError(f"{clean_path(p)}: not a folder")
    key = _norm(p)
    settings.hidden_roots = [h for h in _folders(settings.hidden_roots) if _norm(h) != key]
    for root, _ in all_roots(settings):
        if _norm(root.path) == key:
            return root
    settings.roots = [*_folders(settings.roots), str(p)]
    return Root(p, "folder", False)


def remove_root(settings: Settings, path: str | Path) -> Root:
    """Remove a user folder, or hide a default one. Files are never touched."""
    key = _norm(path)
    for root, _ in all_roots(settings):
        if _norm(root.path) == key:
            if root.default:
                if key not in {_norm(h) for h in _folders(settings.hidden_roots)}:
                    settings.hidden_roots = [*_folders(settings.hidden_roots), str(root.path)]
            else:
                settings.roots = [r for r in _folders(settings.roots) if _norm(r) != key]
            return root
    raise ValueError(f"{clean_path(path)}: not a library root (see `quanttui roots`)")
