"""core/llama/ is the one place that imports llama_cpp: the engine, the app, the benches and the tests
all go through it (its import order, log capture and every load's parameters live there)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOUNDARY = ROOT / "core" / "llama"


def _imports_llama_cpp(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    lines = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__" and node.args:
            arg = node.args[0]
            names = [arg.value] if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else []
        if any(n == "llama_cpp" or n.startswith("llama_cpp.") for n in names):
            lines.append(node.lineno)
    return lines


def test_nothing_outside_core_llama_imports_llama_cpp():
    files = [p for d in ("core", "tui", "themes", "tests", "bench") for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 100
    offenders = {
        str(p.relative_to(ROOT)): lines
        for p in files
        if BOUNDARY not in p.parents and (lines := _imports_llama_cpp(p))
    }
    assert offenders == {}
    assert _imports_llama_cpp(BOUNDARY / "lib.py")  # the check itself finds an import


def test_importing_quanttui_core_imports_llama_cpp_before_numpy():
    """A CUDA build segfaults at tokenizer load when numpy came first (shared/notes/facts.md)."""
    code = (
        "import sys\n"
        "seen = []\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        seen.append(name)\n"
        "sys.meta_path.insert(0, Watch())\n"
        "import quanttui.core.fit, quanttui.core.modelfile\n"
        "print(','.join(m for m in seen if m in ('numpy', 'llama_cpp')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "llama_cpp,numpy"
