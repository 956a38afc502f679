"""The ``posterm`` command.

Every subcommand prints either what it was asked for or one line
``posterm: error: ...`` on standard error with a non-zero exit status.

A command that works on a terminal's data directory (it has ``--data-dir``)
logs to ``<data_dir>/logs/posterm.log`` while it runs (see
:mod:`terminal.logfile`); nothing is logged to the terminal's screen.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from terminal.cli_output import CommandError, CommandParser, UsageError
from terminal.exit_status import ExitStatus, expected, status_for

# Start-up time: a command imports only what it runs.  The parser lists every command by
# name and one-line help (BUILTIN_COMMANDS, and the plugins' tables), and imports the module
# that adds a command's arguments only when that command is the one run (the EMV commands
# are terminal.cli_emv's).

__all__ = ["BUILTIN_COMMANDS", "CommandEntry", "main", "plugin_commands"]

_log = logging.getLogger("terminal.cli")


COMMANDS_GROUP = "posterm.commands"

#: A command as the parser lists it before it runs: (name, one-line help, "module:function"),
#: where the function takes the subparsers and adds the command with its arguments (it may
#: add its module's other commands too).  Only the function of the command run is imported.
CommandEntry = tuple[str, str, str]

#: The terminal's own commands, in the order ``posterm --help`` lists them (the plugins'
#: come before ``emv``).  tests/unit/test_cli_commands.py checks each help against the
#: one its function gives: change both together.
BUILTIN_COMMANDS: tuple[CommandEntry, ...] = (
    ("sale", "charge a card, or take a QR payment (--qr-show, --qr-scan)", "terminal.cli_payments:add_commands"),
    ("refund", "refund against an original payment, or to the card presented", "terminal.cli_payments:add_commands"),
    ("void", "cancel an approved payment of the open batch", "terminal.cli_payments:add_commands"),
    ("journal", "the transaction journal: list, show, verify, export, purge", "terminal.cli_payments:add_commands"),
    ("saf", "the store-and-forward queue: status, forward", "terminal.cli_payments:add_commands"),
    ("last", "the last payment, and whether its outcome was shown", "terminal.cli_payments:add_commands"),
    ("receipt", "a receipt from the journal (a second one is marked duplicate)", "terminal.cli_payments:add_commands"),
    ("report", "X report (running totals) or Z report (a settled batch)", "terminal.cli_payments:add_commands"),
    ("settle", "close the batch with the host", "terminal.cli_payments:add_commands"),
    (
        "devices",
        "the configured and attached devices, with their status; 'devices set' configures one",
        "terminal.cli_devices:add_commands",
    ),
    (
        "diag",
        "self-test of every device, the host link, the SAF queue, the journal, configuration, keys",
        "terminal.cli_devices:add_commands",
    ),
    ("pin", "the supervisor's and the technician's PINs: set, status", "terminal.cli_pins:add_commands"),
    (
        "qr",
        "EMV QR codes: decode a payload, make the store's code, check the QR orders in doubt",
        "terminal.cli_qr:add_commands",
    ),
    ("emv", "EMV contactless: simulated cards, taps and replays", "terminal.cli_emv:add_commands"),
)
_LISTED_LAST = "emv"

_SubParsers = Any  # argparse._SubParsersAction[argparse.ArgumentParser]


def _function(target: str) -> Callable[[_SubParsers], None]:
    import importlib

    module, _, name = target.partition(":")
    add: Callable[[_SubParsers], None] = getattr(importlib.import_module(module), name)
    return add


def plugin_commands() -> tuple[list[CommandEntry], list[Callable[[_SubParsers], None]]]:
    """The commands of the layers above terminal (host link, simulated host, demo), by entry point.

    terminal may not import those packages; each registers itself in the
    ``posterm.commands`` group of setup.cfg, either as a table of
    :data:`CommandEntry` (listed by name and help, imported when run: what
    posterm's own packages do) or as a function ``add_commands(subparsers)``
    that adds its commands at once (simpler, and slower to start).  Returns
    (the table entries, the functions), in the order of the entry point names.
    """
    from importlib.metadata import entry_points

    entries: list[CommandEntry] = []
    functions: list[Callable[[_SubParsers], None]] = []
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        declared = ep.load()
        if callable(declared):
            functions.append(declared)
            continue
        for item in declared:
            name, helptext, target = item
            if not (isinstance(name, str) and isinstance(helptext, str) and ":" in target):
                raise TypeError(f"entry point {ep.name} of {COMMANDS_GROUP}: {item!r} is not (name, help, 'module:fn')")
            entries.append((name, helptext, target))
    return entries, functions


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show program's version number and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None) -> None:
        print(f"posterm {_version()}")
        parser.exit()


_EPILOG = """\
data directory: commands that keep state take --data-dir DIR; the default is
  $POSTERM_DATA_DIR, else the user data directory (~/.local/share/posterm on Linux).
exit status: 0 approved or done; 1 declined, refused or not completed; 2 unusable
  input; 3 a device, the host or the storage unavailable; 70 internal error (a
  bug: details in the log); 130 interrupted. With --json, errors are JSON too.
"""


def _parser(argv: Sequence[str] | None = None, *, command: str | None = None) -> argparse.ArgumentParser:
    """The parser for a command line: the command's own arguments only, or every command listed.

    ``command`` (default: the first word of ``argv``) names the command to
    build for real; for any other command line (``--help``, ``--version``, no
    or an unknown command, or a command of a plugin that adds its commands
    at once) every command is listed by name and help.
    """
    parser = CommandParser(
        prog="posterm",
        description="posterm: a point-of-sale and contactless payment terminal, with a simulator for every "
        "device and for the acquiring host.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if command is None and argv:
        command = argv[0]
    builtin = {name: target for name, _, target in BUILTIN_COMMANDS}
    if command in builtin:
        _function(builtin[command])(sub)
        return parser
    entries, functions = plugin_commands()
    plugins = {name: target for name, _, target in entries if name not in builtin}
    if command in plugins:
        _function(plugins[command])(sub)
        return parser
    listed = [e for e in BUILTIN_COMMANDS if e[0] != _LISTED_LAST]
    listed += [e for e in entries if e[0] in plugins]
    listed += [e for e in BUILTIN_COMMANDS if e[0] == _LISTED_LAST]
    for name, helptext, _ in listed:
        sub.add_parser(name, help=helptext)
    for add in functions:
        add(sub)
    return parser


# Commands with a --data-dir that is not a terminal's (the simulated host keeps its own directory).
_NOT_A_TERMINAL_DIR = frozenset({"host"})


def _log_dir(args: argparse.Namespace) -> Path | None:
    """The terminal data directory this command works on, where its log goes; None: no log file."""
    if not hasattr(args, "data_dir") or args.command in _NOT_A_TERMINAL_DIR:
        return None
    if args.data_dir is not None:
        directory = Path(args.data_dir)
    else:
        from terminal.bootstrap import default_data_dir

        try:
            directory = default_data_dir()
        except Exception:  # no platform data directory: no log file, the command still runs
            return None
    # A data directory that is a file is the command's error to report (once), not the log's.
    return None if directory.exists() and not directory.is_dir() else directory


def _command_name(args: argparse.Namespace) -> str:
    """The command and its subcommand (``saf forward``): never its arguments, which may hold a secret."""
    words = [str(args.command)]
    for key in (
        "emv_command",
        "journal_command",
        "saf_command",
        "devices_command",
        "diag_command",
        "ecr_command",
        "host_command",
        "issuer_command",
        "params_command",
        "sim_command",
        "pin_command",
        "qr_command",
        "kiosk_command",
    ):
        value = getattr(args, key, None)
        if isinstance(value, str):
            words.append(value)
    return " ".join(words)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("posterm")
    except PackageNotFoundError:  # running from a checkout that was not installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``posterm`` command line; its exit status (see :mod:`terminal.exit_status`).

    A wrong command line is reported as every other error (one line, JSON
    too with ``--json``, exit status 2), not with argparse's usage text.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            args = _parser(words).parse_args(words)
            if not hasattr(args, "func"):  # a listed command chosen another way ("posterm -- saf status")
                args = _parser(words, command=args.command).parse_args(words)
        except UsageError as exc:
            return _fail(argparse.Namespace(json="--json" in words), CommandError(_usage_text(exc)))
    except KeyboardInterrupt as exc:  # while the command's module was imported: nothing was done yet
        return _fail(argparse.Namespace(json="--json" in words), exc)
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None and Path(data_dir).exists() and not Path(data_dir).is_dir():
        return _fail(args, CommandError(f"--data-dir {data_dir} is a file, not a folder"))
    from_env = os.environ.get("POSTERM_DATA_DIR")
    if (
        hasattr(args, "data_dir")
        and args.command not in _NOT_A_TERMINAL_DIR
        and data_dir is None
        and from_env
        and Path(from_env).is_file()
    ):
        return _fail(args, CommandError(f"POSTERM_DATA_DIR {from_env} is a file, not a folder"))
    from terminal.logfile import command_logging

    with command_logging(_log_dir(args)) as handler:
        name = _command_name(args)
        _log.info("posterm %s: start", name)
        status = _run(args, logged=handler is not None)
        _log.info("posterm %s: exit status %d", name, status)
        return status


def _usage_text(exc: UsageError) -> str:
    """argparse's complaint, with the command it is about and where its options are listed."""
    where = exc.prog.removeprefix("posterm").strip()
    return f"{where + ': ' if where else ''}{exc} (see '{exc.prog} --help')"


def _fail(args: argparse.Namespace, exc: BaseException) -> int:
    """Print an error as one line (and as JSON on standard output with ``--json``); its exit status."""
    status = status_for(exc)
    message = str(exc) or type(exc).__name__
    if status is ExitStatus.INTERRUPTED and not str(exc):
        message = "interrupted"
    _log.info("error (exit status %d): %s", status, message)
    if getattr(args, "json", False):
        print(json.dumps({"error": message, "exit_status": int(status)}))
    print(f"posterm: error: {message}", file=sys.stderr)
    return int(status)


def _run(args: argparse.Namespace, *, logged: bool) -> int:
    """Run the command; every error a person can cause or meet ends as one line and its exit status.

    Errors are logged at INFO (they are the user's, and printed anyway);
    an unexpected one (a bug) is logged with its traceback when there is a
    log file, and shown as one line that says where the details are.
    """
    try:
        return int(args.func(args))
    except KeyboardInterrupt as exc:
        return _fail(args, exc)
    except BrokenPipeError:
        # The reader of our output went away (``posterm journal list | head``): nothing to tell it.
        # Standard output is pointed at /dev/null so that Python's flush at exit does not complain.
        import os

        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitStatus.NOT_DONE)
    except Exception as exc:
        if status_for(exc) is ExitStatus.BAD_INPUT and not _known(exc):
            if logged:
                _log.exception("unexpected error")
            where = " (details in the log)" if logged else ""
            return _fail(args, InternalError(f"internal error: {type(exc).__name__}: {exc}{where}"))
        return _fail(args, exc)


class InternalError(Exception):
    """A bug: reported in one line, with the traceback in the log."""


def _known(exc: BaseException) -> bool:
    """Errors a person can cause or meet (see :func:`terminal.exit_status.expected`), as opposed to a bug."""
    return isinstance(exc, InternalError) or expected(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
