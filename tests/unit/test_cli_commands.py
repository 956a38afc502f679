"""``posterm`` lists every command by name and help, and imports a command's module only when it runs.

The tables (terminal.cli.BUILTIN_COMMANDS and the plugins' entry point
tables) must agree with what each command's module adds; a command line
imports no heavy library it does not use (start-up time; the figures are in
docs/benchmarks.md, not asserted here).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from terminal import cli

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "httpx",
    "cryptography.x509",
    "jsonschema",
    "starlette",
    "uvicorn",
    "smartcard",
    "nfc",
    "serial",
    "PIL",
    "escpos",
    "host_link.client",
)
#: What the parser alone must not import (a command that runs may need some: saf status opens
#: the in-process host of an unenrolled data directory).
COMMAND_MODULES = ("simulator.host", "simulator.demo", "simulator.sim_cli", "host_link.cli", "terminal.cli_payments")


def _all_entries() -> list[cli.CommandEntry]:
    entries, functions = cli.plugin_commands()
    assert functions == []  # posterm's own plugins declare tables
    return [*cli.BUILTIN_COMMANDS, *entries]


def _helps(sub: Any) -> dict[str, str]:
    return {action.dest: action.help for action in sub._choices_actions}


@pytest.mark.parametrize("entry", _all_entries(), ids=lambda e: e[0])
def test_each_table_entry_is_what_its_module_adds(entry: cli.CommandEntry) -> None:
    name, helptext, target = entry
    parser = argparse.ArgumentParser(prog="posterm")
    sub = parser.add_subparsers(dest="command")
    cli._function(target)(sub)
    assert _helps(sub).get(name) == helptext, f"{name}: the help in the table differs from {target}'s"


def test_help_lists_every_command_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    assert stop.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for name, helptext, _ in _all_entries():
        assert f"{name} {' '.join(helptext.split())}" in out, name
    names = [e[0] for e in _all_entries()]
    assert len(names) == len(set(names))


def test_unknown_and_missing_commands_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["nosuch"], []):
        assert cli.main(argv) == 2  # one 'posterm: error:' line, no usage text (terminal.exit_status)
    err = capsys.readouterr().err
    assert "invalid choice: 'nosuch'" in err
    assert [line.startswith("posterm: error: ") for line in err.splitlines()] == [True, True]


def test_a_plugin_that_adds_its_commands_at_once_still_works(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def add_commands(sub: Any) -> None:
        p = sub.add_parser("hello", help="say hello")
        p.add_argument("--name", default="world")
        p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    monkeypatch.setattr(cli, "plugin_commands", lambda: ([], [add_commands]))
    assert cli.main(["hello", "--name", "there"]) == 0
    assert "hello there" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "say hello" in capsys.readouterr().out


_IMPORTED = """
import json, sys
from terminal.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["saf", "status"], ["saf", "--help"]])
def test_a_command_line_imports_no_heavy_library_it_does_not_use(tmp_path: Path, argv: list[str]) -> None:
    if argv[0] == "saf" and "--help" not in argv:
        argv = [*argv, "--data-dir", str(tmp_path / "d")]
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTED, *argv], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )
    modules = json.loads(proc.stderr.strip().splitlines()[-1])
    heavy = HEAVY if argv[0] == "saf" else HEAVY + COMMAND_MODULES
    loaded = sorted({m for m in modules for h in heavy if m == h or m.startswith(h + ".")})
    assert loaded == [], f"posterm {' '.join(argv)} imported {loaded}"
