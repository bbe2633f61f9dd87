"""`quanttui --help` and the commands that load no model import neither Textual nor llama_cpp; the
TUI and the commands that load models import llama_cpp before numpy (a CUDA build segfaults at
tokenizer load otherwise: shared/notes/facts.md), before the parser brings numpy in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LOADED = "print('textual' in sys.modules, 'llama_cpp' in sys.modules)"


def _env(tmp_path: Path) -> dict[str, str]:
    env = os.environ.copy()
    for name in ("CONFIG", "DATA", "CACHE"):
        env[f"QUANTTUI_{name}_DIR"] = str(tmp_path / name.lower())
    return env


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_help_imports_neither_textual_nor_llama_cpp(tmp_path):
    code = (
        "import sys\nfrom quanttui.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n" + LOADED
    )
    r = _python(code, _env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "usage: quanttui" in r.stdout
    assert r.stdout.splitlines()[-1] == "False False"


def test_ls_json_on_an_empty_root_imports_neither(tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    env = _env(tmp_path)
    code = (
        "import sys\nfrom quanttui.cli.main import main\n"
        f"assert main(['roots', 'add', {str(root)!r}]) == 0\n"
        "assert main(['ls', '--json']) == 0\n" + LOADED
    )
    r = _python(code, env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "False False"
    assert "[]" in lines


def test_importing_the_command_imports_no_numpy(tmp_path):
    code = (
        "import sys\nimport quanttui.cli.main\n"
        "print(sorted({'numpy', 'llama_cpp', 'textual'} & set(sys.modules)))"
    )
    r = _python(code, _env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


WATCH = """import sys
seen = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        seen.append(name)
sys.meta_path.insert(0, Watch())
import quanttui.cli.main as m
def stop():
    raise SystemExit(','.join(n for n in seen if n in ('numpy', 'llama_cpp')) or 'none')
m.build_parser = stop
m.main(sys.argv[1:])
"""


@pytest.mark.parametrize(
    ("argv", "first"),
    [
        ([], "llama_cpp,numpy"),  # the TUI
        (["bench", "m.gguf"], "llama_cpp,numpy"),
        (["eval", "a.gguf", "b.gguf"], "llama_cpp,numpy"),
        (["ab", "a.gguf", "b.gguf", "--prompt", "hi"], "llama_cpp,numpy"),
        (["demo"], "llama_cpp,numpy"),
        (["fit", "m.gguf", "--measure"], "llama_cpp,numpy"),
        (["fit", "m.gguf"], "none"),
        (["ls"], "none"),
        (["bench", "--help"], "none"),
        (["--version"], "none"),
    ],
)
def test_runs_that_load_models_import_llama_cpp_before_the_parser(argv, first, tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", WATCH, *argv], capture_output=True, text=True, env=_env(tmp_path), timeout=120
    )
    assert r.returncode == 1
    assert r.stderr.strip() == first
