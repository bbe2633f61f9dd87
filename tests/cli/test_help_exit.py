"""Every command's --help has a description and examples, and exit codes follow one table
(cli/errors.py): 0 done, 1 failed or refused, 2 usage, 3 the Hub unreachable, 130 interrupted."""

from __future__ import annotations

import socket

import pytest

from quanttui.cli import helptext
from quanttui.cli.errors import EXIT_FAILED, EXIT_OFFLINE, EXIT_USAGE, CliError, UsageError, exit_code_of
from quanttui.cli.main import build_parser, main
from quanttui.core.hub.errors import HubError, HubUnreachable


def _commands():
    p = build_parser()
    sub = next(a for a in p._actions if a.choices and "inspect" in a.choices)
    return p, sub.choices


def test_every_command_has_a_description_and_examples():
    p, commands = _commands()
    assert set(commands) == set(helptext.COMMANDS), "a command without help text, or help for none"
    for name, cp in commands.items():
        text = cp.format_help()
        assert cp.description and "\nexamples:\n  quanttui" in text, name
        assert all(f"  {e}" in text for e in helptext.COMMANDS[name][1]), name
    assert "exit codes: 0 done, 1 failed or refused" in p.format_help()


@pytest.mark.parametrize("name", ["bench", "ls", "du", "mv", "demo"])
def test_the_bare_helps_of_issue_20_are_described(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.count("\n\n") >= 3 and "examples:" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("quanttui ")


def test_exit_code_table():
    assert exit_code_of(CliError("x")) == EXIT_FAILED and exit_code_of(UsageError("x")) == EXIT_USAGE
    assert exit_code_of(HubUnreachable("x")) == EXIT_OFFLINE and exit_code_of(HubError("x")) == EXIT_FAILED
    try:  # a Hub error put into a command's words keeps its code
        try:
            raise HubUnreachable("offline")
        except HubUnreachable:
            raise CliError("a/b: cannot reach the Hub") from None
    except CliError as e:
        assert exit_code_of(e) == EXIT_OFFLINE


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["inspect"])  # argparse: a missing argument
    assert e.value.code == 2
    assert main(["roots", "add"]) == 2
    assert main(["fit", "x.gguf", "--gpu-layers", "many"]) == 2
    assert main(["inspect", "/nonexistent.gguf"]) == 1
    capsys.readouterr()


def test_offline_is_3_for_every_hub_command(monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    for argv in (
        ["search", "llama"],
        ["pull", "a/b", "Q4_K_M"],
        ["inspect", "hf:a/b/c.gguf"],
        ["fit", "hf:a/b/c.gguf"],
        ["advise", "hf:a/b"],
    ):
        assert main(argv) == EXIT_OFFLINE, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot reach the Hub" in err, argv  # no stray empty line
    assert main(["inspect", "hf:a/b/c.gguf", "/nonexistent.gguf"]) == EXIT_FAILED
