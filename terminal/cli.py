"""The ``posterm`` command.

Every subcommand prints either what it was asked for or one line
``posterm: error: ...`` on standard error with a non-zero exit status.

A command that works on a terminal's data directory (it has ``--data-dir``)
logs to ``<data_dir>/logs/posterm.log`` while it runs (see
:mod:`terminal.logfile`); nothing is logged to the terminal's screen.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from terminal.exit_status import ExitStatus, status_for

if TYPE_CHECKING:
    from emv.outcome import TransactionResult
    from terminal.emv_session import TapInputs, TapReport
    from terminal.ports import CardReader

# Start-up time: a command imports only what it runs.  The parser lists every command by
# name and one-line help (BUILTIN_COMMANDS, and the plugins' tables), and imports the module
# that adds a command's arguments only when that command is the one run; the functions
# below import the EMV code, the registry and the settings where they need them.

__all__ = ["BUILTIN_COMMANDS", "CommandEntry", "add_emv_commands", "main", "plugin_commands"]

EXIT_ERROR = int(ExitStatus.BAD_INPUT)
_log = logging.getLogger("terminal.cli")


class CliError(Exception):
    """Unusable input: printed as one line, exit status 2."""


def _hex_arg(text: str, name: str, size: int | None = None) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise CliError(f"{name} {text!r} is not hex") from None
    if size is not None and len(raw) != size:
        raise CliError(f"{name} must be {size} bytes ({size * 2} hex digits), got {len(raw)}")
    return raw


def _overrides(items: Sequence[str]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for item in items:
        tag_text, sep, value_text = item.partition("=")
        if not sep:
            raise CliError(f"--set {item!r}: expected TAG=HEX, e.g. 9F1A=0840")
        tag = _hex_arg(tag_text, "--set tag")
        if not 1 <= len(tag) <= 3:
            raise CliError(f"--set tag {tag_text!r} is not an EMV tag")
        out[int.from_bytes(tag, "big")] = _hex_arg(value_text, f"--set {tag_text} value")
    return out


def _tap(reader: str | CardReader, inputs: TapInputs) -> TapReport:
    """Tap on ``reader`` (a URL or an open reader, closed afterwards)."""
    from terminal import registry
    from terminal.emv_session import build_transaction, run_tap
    from terminal.ports import CollisionDetected, NoCardError, WaitCancelled
    from terminal.settings import load_default_config

    config = load_default_config()
    if isinstance(reader, str):
        reader = registry.open_reader(reader)
    try:
        try:
            session = reader.wait_for_card(timeout=10.0)
        except NoCardError:
            raise CliError(f"no card was presented to {reader.url} within 10 s") from None
        except CollisionDetected:
            raise CliError("more than one card in the field: present one card") from None
        except WaitCancelled:
            raise CliError("cancelled") from None
        try:
            return run_tap(session, config, build_transaction(inputs))
        finally:
            session.close()
    finally:
        reader.close()


def _cmd_emv_cards(args: argparse.Namespace) -> int:
    from terminal import registry

    urls = registry.discover("sim")
    names = [url.split("card=", 1)[1] for url in urls if "card=" in url]
    if args.json:
        print(json.dumps({"cards": names}))
    else:
        print("\n".join(names))
    return 0


def _amount_inputs(amount: str | None, currency_text: str | None, default_minor: int | None = None) -> TapInputs:
    from terminal.emv_session import TapInputs
    from terminal.money import currency, parse_amount
    from terminal.settings import load_default_config

    cur = currency(currency_text if currency_text is not None else load_default_config().currency)
    if amount is None:
        if default_minor is None:
            raise CliError("--amount is required (the trace gives none)")
        minor = default_minor
    else:
        minor = parse_amount(amount, cur)
    return TapInputs(amount=minor, currency=cur.numeric, currency_exponent=cur.exponent)


def _cmd_emv_tap(args: argparse.Namespace) -> int:
    if args.card and args.reader:
        raise CliError("give either --card or --reader, not both")
    from terminal.emv_session import TapInputs, trace_header
    from terminal.trace import to_trace

    url = args.reader or f"sim:card={args.card}"
    base = _amount_inputs(args.amount, args.currency)
    inputs = TapInputs(
        amount=base.amount,
        currency=base.currency,
        currency_exponent=base.currency_exponent,
        unpredictable_number=_hex_arg(args.un, "--un", 4) if args.un else None,
        date=_hex_arg(args.date, "--date", 3) if args.date else None,
        overrides=_overrides(args.set),
    )
    report = _tap(url, inputs)
    if args.record:
        trace = to_trace(trace_header(report.transaction), report.recorder.exchanges)
        try:
            with open(args.record, "w", encoding="utf-8") as handle:
                json.dump(trace, handle, indent=1)
                handle.write("\n")
        except OSError as exc:
            raise CliError(f"cannot write trace {args.record!r}: {exc.strerror}") from None
    print(json.dumps(report.result.to_json(), indent=1))
    return 0


def _cmd_emv_replay(args: argparse.Namespace) -> int:
    from terminal import registry
    from terminal.emv_session import TapInputs
    from terminal.trace import read_trace_header

    overrides = _overrides(args.set)
    header = read_trace_header(args.trace)
    reader = registry.open_reader(f"sim:replay={args.trace}")  # checks every exchange of the trace
    cur_text = args.currency if args.currency is not None else str(header.get("currency", "")) or None
    base = _amount_inputs(args.amount, cur_text, header.get("amount"))
    un = _hex_arg(args.un, "--un", 4) if args.un else header.get("unpredictable_number")
    date = _hex_arg(args.date, "--date", 3) if args.date else header.get("date")
    inputs = TapInputs(
        amount=base.amount,
        currency=base.currency,
        currency_exponent=base.currency_exponent,
        transaction_type=header.get("transaction_type", 0),
        unpredictable_number=un,
        date=date,
        overrides=overrides,
    )
    report = _tap(reader, inputs)
    print(json.dumps(report.result.to_json(), indent=1))
    return 0


def _summary_row(name: str, amount: str, result: TransactionResult) -> list[str]:
    oda = result.oda
    oda_text = "-" if oda.result == "not_performed" else f"{oda.method} {oda.result}"
    if oda.failure:
        oda_text += f" ({oda.failure})"
    return [name, amount, result.outcome.value, result.cryptogram_type or "-", oda_text, result.cvm.value]


def _cmd_demo(args: argparse.Namespace) -> int:
    """Tap every simulated card at two amounts and print the outcomes as a table."""
    from terminal import registry
    from terminal.emv_session import TapInputs
    from terminal.money import currency, format_amount, parse_amount
    from terminal.settings import load_default_config

    cur = currency(load_default_config().currency)
    names = [url.split("card=", 1)[1] for url in registry.discover("sim") if "card=" in url]
    rows = [["card", "amount", "outcome", "cryptogram", "ODA", "CVM"]]
    for name in names:
        for amount in ("12.34", "60.00"):
            minor = parse_amount(amount, cur)
            report = _tap(f"sim:card={name}", TapInputs(minor, cur.numeric, cur.exponent))
            rows.append(_summary_row(name, format_amount(minor, cur), report.result))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\n{len(rows) - 1} taps on {len(names)} simulated cards, each ended in a defined outcome.")
    return 0


COMMANDS_GROUP = "posterm.commands"

#: A command as the parser lists it before it runs: (name, one-line help, "module:function"),
#: where the function takes the subparsers and adds the command with its arguments (it may
#: add its module's other commands too).  Only the function of the command run is imported.
CommandEntry = tuple[str, str, str]

#: The terminal's own commands, in the order ``posterm --help`` lists them (the plugins'
#: come before ``emv``).  tests/unit/test_cli_commands.py checks each help against the
#: one its function gives: change both together.
BUILTIN_COMMANDS: tuple[CommandEntry, ...] = (
    ("sale", "charge a card", "terminal.cli_payments:add_commands"),
    ("refund", "refund against an original payment, or to the card presented", "terminal.cli_payments:add_commands"),
    ("void", "cancel an approved payment of the open batch", "terminal.cli_payments:add_commands"),
    ("journal", "the transaction journal: list, show, verify, export, purge", "terminal.cli_payments:add_commands"),
    ("saf", "the store-and-forward queue: status, forward", "terminal.cli_payments:add_commands"),
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
        "self-test of every device, the host link, the SAF queue, configuration, keys",
        "terminal.cli_devices:add_commands",
    ),
    ("emv", "EMV contactless: simulated cards, taps and replays", "terminal.cli:add_emv_commands"),
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
    parser = argparse.ArgumentParser(
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


def add_emv_commands(sub: _SubParsers) -> None:
    """``posterm emv ...``: simulated cards, taps and replays."""
    emv = sub.add_parser("emv", help="EMV contactless: simulated cards, taps and replays")
    emv_sub = emv.add_subparsers(dest="emv_command", required=True)

    emv_demo = emv_sub.add_parser("demo", help="tap every simulated card at two amounts and show the outcomes")
    emv_demo.set_defaults(func=_cmd_demo)

    cards = emv_sub.add_parser("cards", help="list the simulated card profiles")
    cards.add_argument("--json", action="store_true", help="print one JSON object")
    cards.set_defaults(func=_cmd_emv_cards)

    def terminal_options(p: argparse.ArgumentParser, amount_required: bool) -> None:
        p.add_argument("--amount", required=amount_required, help="amount as a decimal, e.g. 12.34")
        p.add_argument("--currency", help="ISO 4217 code, alphabetic or numeric (default: the terminal's)")
        p.add_argument("--un", help="unpredictable number, 8 hex digits (default: random)")
        p.add_argument("--date", help="transaction date YYMMDD (default: today)")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="TAG=HEX",
            help="override a terminal data object for this run, e.g. 9F1A=0840 (repeatable)",
        )

    tap = emv_sub.add_parser("tap", help="tap a simulated card (or a reader) and print the result as JSON")
    tap.add_argument("--card", help="simulated card profile (see 'posterm emv cards')")
    tap.add_argument("--reader", help="device URL of a reader instead of a simulated card")
    tap.add_argument("--record", metavar="TRACE.json", help="write the exchange as a trace")
    terminal_options(tap, amount_required=True)
    tap.set_defaults(func=_cmd_emv_tap)

    replay = emv_sub.add_parser("replay", help="run a transaction against a recorded trace")
    replay.add_argument("trace", metavar="TRACE.json")
    terminal_options(replay, amount_required=False)
    replay.set_defaults(func=_cmd_emv_replay)


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
    for key in ("emv_command", "journal_command", "saf_command", "devices_command", "diag_command"):
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
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser(words).parse_args(words)
        if not hasattr(args, "func"):  # a listed command chosen another way ("posterm -- saf status")
            args = _parser(words, command=args.command).parse_args(words)
    except KeyboardInterrupt:
        return int(ExitStatus.INTERRUPTED)
    if args.command == "emv" and args.emv_command == "tap" and not (args.card or args.reader):
        return _fail(args, CliError("give --card PROFILE (see 'posterm emv cards') or --reader URL"))
    from terminal.logfile import command_logging

    with command_logging(_log_dir(args)) as handler:
        name = _command_name(args)
        _log.info("posterm %s: start", name)
        status = _run(args, logged=handler is not None)
        _log.info("posterm %s: exit status %d", name, status)
        return status


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
    """Errors that are the user's input (exit status 2), as opposed to a bug."""
    from emv.transaction import TransactionDataError
    from terminal.cli_output import CommandError
    from terminal.money import MoneyError
    from terminal.settings import SettingsError
    from terminal.trace import TraceError

    return isinstance(
        exc,
        (CliError, CommandError, MoneyError, SettingsError, TraceError, TransactionDataError, InternalError),
    ) or any(c.__name__ in ("PaymentRefused", "ConfigError", "ProfileError") for c in type(exc).__mro__)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
