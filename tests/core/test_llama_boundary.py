"""core/llama/ is the one place that imports llama_cpp: the engine, the app, the benches and the tests
all go through it (its import order, log capture and every load's parameters live there)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    files = [p for d in ("cli", "core", "tui", "themes", "tests", "bench") for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 100
    offenders = {
        str(p.relative_to(ROOT)): lines
        for p in files
        if BOUNDARY not in p.parents and (lines := _imports_llama_cpp(p))
    }
    assert offenders == {}
    assert _imports_llama_cpp(BOUNDARY / "lib.py")  # the check itself finds an import


WATCH = """import atexit, sys
seen = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        seen.append(name)
sys.meta_path.insert(0, Watch())
atexit.register(lambda: print(','.join(m for m in seen if m in ('numpy', 'llama_cpp'))))
"""


@pytest.mark.parametrize("worker", ["quanttui.core.ab.worker", "quanttui.core.quality.worker"])
def test_model_workers_import_llama_cpp_before_numpy(worker, tmp_path):
    """A CUDA build segfaults at tokenizer load when numpy came first (shared/notes/facts.md). A model
    worker (`python -m quanttui.core.X.worker`, started here without its arguments) imports llama_cpp
    first, through core/__init__.py, before its own package imports numpy."""
    (tmp_path / "sitecustomize.py").write_text(WATCH)
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    }
    r = subprocess.run([sys.executable, "-m", worker], capture_output=True, text=True, env=env, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == "llama_cpp,numpy"


def test_importing_quanttui_core_imports_no_llama_cpp():
    """`quanttui ls` and `--help` never pay for llama.cpp: importing core's modules does not import it."""
    code = "import sys, quanttui.core.fit, quanttui.core.modelfile; print('llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
