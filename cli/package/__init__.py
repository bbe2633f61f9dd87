"""quanttui: which GGUF quant should you run on your hardware, and what do you lose by going lower?

The package's parts: `quanttui.core` (the headless engine), `quanttui.cli` (the `quanttui` command),
`quanttui.tui` (the Textual app) and `quanttui.themes`. Importing this package imports none of them;
`__version__` is read from the installed metadata when first asked for.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("quanttui")
        except PackageNotFoundError:  # run from a tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
