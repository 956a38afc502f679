"""What every ``posterm`` command promises: a one-line help for each (sub)command, the default data
directory stated, errors mapped to the exit status contract, and bounded reads of the files it is given.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from terminal import cli
from terminal.cli_output import CommandError, NotDone, Unavailable, UsageError, file_error
from terminal.exit_status import ExitStatus, expected, status_for
from terminal.limits import InputFileError, read_input, read_json_input


def _commands() -> list[str]:
    entries, _ = cli.plugin_commands()
    return [name for name, _, _ in (*cli.BUILTIN_COMMANDS, *entries)]


def _walk(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.ArgumentParser, str | None]]:
    """Every (sub)parser below ``parser``: its command words, itself, and the help it is listed with."""
    found: list[tuple[str, argparse.ArgumentParser, str | None]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                words = f"{path} {name}".strip()
                found.append((words, child, helps.get(name)))
                found.extend(_walk(child, words))
    return found


def _all_parsers() -> list[tuple[str, argparse.ArgumentParser, str | None]]:
    out: list[tuple[str, argparse.ArgumentParser, str | None]] = []
    for name in _commands():
        parser = cli._parser([name])
        out.extend(item for item in _walk(parser, "") if item[0].split()[0] == name)
    return out


def test_every_command_and_subcommand_has_a_one_line_help() -> None:
    parsers = _all_parsers()
    assert len(parsers) > 40
    missing = [words for words, _, helptext in parsers if not helptext or "\n" in helptext]
    assert missing == [], f"no one-line help: {missing}"


def test_every_data_dir_option_states_its_default() -> None:
    seen = 0
    for words, parser, _ in _all_parsers():
        for action in parser._actions:
            if "--data-dir" in action.option_strings:
                seen += 1
                assert action.help and "default" in action.help, f"posterm {words} --data-dir: {action.help!r}"
    assert seen > 20


def test_the_parser_reports_a_wrong_command_line_as_a_usage_error() -> None:
    with pytest.raises(UsageError) as raised:
        cli._parser(["journal"]).parse_args(["journal", "list", "--limit", "-1"])
    assert raised.value.prog == "posterm journal list" and "at least 1" in str(raised.value)


@pytest.mark.parametrize(
    ("exc", "status", "known"),
    [
        (CommandError("x"), ExitStatus.BAD_INPUT, True),
        (NotDone("x"), ExitStatus.NOT_DONE, True),
        (Unavailable("x"), ExitStatus.UNAVAILABLE, True),
        (InputFileError("x"), ExitStatus.BAD_INPUT, True),
        (type("NotEnrolled", (Exception,), {})("x"), ExitStatus.BAD_INPUT, True),
        (type("HostNoAnswer", (Exception,), {})("x"), ExitStatus.NOT_DONE, True),
        (type("DeviceUrlError", (type("DeviceError", (Exception,), {}),), {})("x"), ExitStatus.BAD_INPUT, True),
        (type("DeviceGone", (type("DeviceError", (Exception,), {}),), {})("x"), ExitStatus.UNAVAILABLE, True),
        (KeyError("x"), ExitStatus.BAD_INPUT, False),  # a bug: reported as an internal error
    ],
)
def test_errors_map_to_the_contract(exc: BaseException, status: ExitStatus, known: bool) -> None:
    assert status_for(exc) is status
    assert expected(exc) is known


def test_file_errors_say_whether_the_input_or_the_storage_is_at_fault() -> None:
    assert isinstance(file_error(FileNotFoundError(2, "No such file or directory"), "x"), CommandError)
    refused = file_error(OSError(30, "Read-only file system"), "the bundle")
    assert isinstance(refused, Unavailable) and str(refused) == "cannot write the bundle: Read-only file system"


# ----------------------------------------------------------------------------------------------- bounded reads


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="not a regular file"):
        read_input(fifo, 100, "trace")


def test_a_file_over_its_limit_is_refused_from_its_size(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with open(path, "wb") as handle:
        handle.truncate(1 << 30)  # sparse: reading it would take a while, its size says enough
    with pytest.raises(InputFileError, match="larger than 1 MiB"):
        read_input(path, 1 << 20, "trace")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "is empty"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{nope", "not JSON"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
    ],
)
def test_json_input_errors_are_one_line(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "in.json"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=words) as raised:
        read_json_input(path, 1 << 20, "bundle")
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)


def test_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_bytes(b"7" * 10)
    assert read_input(path, 10, "x") == b"7" * 10
    with pytest.raises(InputFileError):
        read_input(path, 9, "x")

