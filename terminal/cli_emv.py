"""``posterm emv cards|demo|tap|replay``: EMV contactless on simulated cards, a reader or a recorded trace.

- ``posterm emv cards [--json]``: the simulated card profiles;
- ``posterm emv demo``: tap every simulated card at two amounts, a table of outcomes;
- ``posterm emv tap --card PROFILE | --reader URL --amount A [--record TRACE.json]``:
  one transaction, its result as one JSON object;
- ``posterm emv replay TRACE.json [--amount A] ...``: the transaction again,
  the card answering from the trace.

The exit status is 0 whenever a defined outcome was reached (a decline is an
outcome: it is in the JSON); 1 when no card was read (none presented in time,
two cards, a cancel); 2 for unusable input; 3 for a reader that cannot be used
(see :mod:`terminal.exit_status`).

``--set TAG=HEX`` overrides a data object of the terminal's for one run, Book
C-2's configuration objects included (``--set DF811B=30``: relay resistance
and on-device CVM supported).  An unknown tag is refused, and a value is
checked against the tag dictionary (:func:`emv.tags.check_terminal_value`):
a DOL pads or cuts a value to the length it asks for, so a value too long for
its tag would reach the card cut short without a word.

A trace (``--record``) holds the card's data as the card sent it: it is
created readable by its owner only (mode 0600) and the command says so on
standard error.  A trace is read with :func:`terminal.limits.read_json_input`
(a regular file of at most :data:`terminal.limits.MAX_TRACE_BYTES`).

This module imports the EMV code only in the functions that run a command, so
that ``posterm --help`` and the other commands start fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from terminal.cli_output import CommandError, NotDone, write_output

if TYPE_CHECKING:
    from emv.outcome import TransactionResult
    from terminal.emv_session import TapInputs, TapReport
    from terminal.ports import CardReader

__all__ = ["TRACE_NOTE", "add_commands"]

#: What ``emv tap --record`` says on standard error once the trace is written.
TRACE_NOTE = (
    "posterm: note: {path} holds card data as the card sent it (card number, track 2); it is created "
    "readable by you only (0600): never record or share traces of real customers' cards"
)
_CARD_WAIT_SECONDS = 10.0


def _hex_arg(text: str, name: str, size: int | None = None) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise CommandError(f"{name} {text!r} is not hex") from None
    if size is not None and len(raw) != size:
        raise CommandError(f"{name} must be {size} bytes ({size * 2} hex digits), got {len(raw)}")
    return raw


def _is_tag(raw: bytes) -> bool:
    """One to three bytes in BER-TLV tag form (ISO/IEC 8825-1), as EMV tags are.

    A first byte with bits 1-5 all set announces more bytes; each following
    byte but the last has b8 set.

    >>> _is_tag(bytes.fromhex("9F1A")), _is_tag(bytes.fromhex("9A")), _is_tag(bytes.fromhex("1A9F"))
    (True, True, False)
    """
    if not 1 <= len(raw) <= 3:
        return False
    if len(raw) == 1:
        return raw[0] & 0x1F != 0x1F
    if raw[0] & 0x1F != 0x1F:
        return False
    return all(b & 0x80 for b in raw[1:-1]) and not raw[-1] & 0x80


def _overrides(items: Sequence[str]) -> dict[int, bytes]:
    """The ``--set TAG=HEX`` values, each checked against the tag dictionary.

    A tag the dictionary does not know is refused (it would be silently unused);
    a Book C-2 configuration object (DF811B, DF8124, ...) is checked against its
    Book C-2 format and length (:data:`emv.c2_data.SPECS`).
    """
    from emv import c2_data
    from emv.tags import TAGS, check_terminal_value

    out: dict[int, bytes] = {}
    for item in items:
        tag_text, sep, value_text = item.partition("=")
        if not sep:
            raise CommandError(f"--set {item!r}: expected TAG=HEX, e.g. 9F1A=0840")
        tag_bytes = _hex_arg(tag_text, "--set tag")
        if not _is_tag(tag_bytes):
            raise CommandError(f"--set tag {tag_text!r} is not an EMV tag")
        tag = int.from_bytes(tag_bytes, "big")
        if tag not in TAGS and tag not in c2_data.SPECS:
            raise CommandError(f"--set {tag_text}: unknown tag {tag:02X} (not a data object of the EMV books)")
        value = _hex_arg(value_text, f"--set {tag_text} value")
        why = c2_data.check(tag, value) or check_terminal_value(tag, value)
        if why is not None:
            raise CommandError(f"--set {item}: {why}")
        out[tag] = value
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
            session = reader.wait_for_card(timeout=_CARD_WAIT_SECONDS)
        except NoCardError:
            raise NotDone(f"no card was presented to {reader.url} within {_CARD_WAIT_SECONDS:g} s") from None
        except CollisionDetected:
            raise NotDone("more than one card in the field: present one card") from None
        except WaitCancelled:
            raise NotDone("cancelled: no card was read") from None
        try:
            return run_tap(session, config, build_transaction(inputs))
        finally:
            session.close()
    finally:
        reader.close()


def _card_names() -> list[str]:
    from terminal import registry

    return [url.split("card=", 1)[1] for url in registry.discover("sim") if "card=" in url]


def _cmd_cards(args: argparse.Namespace) -> int:
    names = _card_names()
    print(json.dumps({"cards": names}) if args.json else "\n".join(names))
    return 0


def _amount_inputs(amount: str | None, currency_text: str | None, default_minor: int | None = None) -> TapInputs:
    from terminal.emv_session import TapInputs
    from terminal.money import currency, parse_amount
    from terminal.settings import load_default_config

    cur = currency(currency_text if currency_text is not None else load_default_config().currency)
    if amount is None:
        if default_minor is None:
            raise CommandError("--amount is required (the trace gives none)")
        minor = default_minor
    else:
        minor = parse_amount(amount, cur)
    return TapInputs(amount=minor, currency=cur.numeric, currency_exponent=cur.exponent)


def _check_output(path_text: str, option: str) -> None:
    """Refuse an output path that cannot be written before the card is read, not after."""
    path = Path(path_text)
    if path.is_dir():
        raise CommandError(f"{option} {path_text}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise CommandError(f"{option} {path_text}: the folder {path.parent} does not exist")


def _cmd_tap(args: argparse.Namespace) -> int:
    from terminal.emv_session import TapInputs, trace_header
    from terminal.trace import to_trace

    if args.card and args.reader:
        raise CommandError("give either --card or --reader, not both")
    if not (args.card or args.reader):
        raise CommandError("give --card PROFILE (see 'posterm emv cards') or --reader URL")
    if args.record:
        _check_output(args.record, "--record")
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
        # Created 0600 from the start (a temporary file made so, then renamed), never chmod-ed after.
        payload = (json.dumps(trace, indent=1) + "\n").encode("utf-8")
        write_output(args.record, payload, private=True, option="--record")
        print(TRACE_NOTE.format(path=args.record), file=sys.stderr)
    print(json.dumps(report.result.to_json(), indent=1))
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from terminal import registry
    from terminal.emv_session import TapInputs
    from terminal.trace import read_trace_header

    overrides = _overrides(args.set)
    header = read_trace_header(args.trace)  # bounded, a regular file only: see terminal.limits
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
        relay_entropies=tuple(header.get("relay_entropies", ())),
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
    from terminal.emv_session import TapInputs
    from terminal.money import currency, format_amount, parse_amount
    from terminal.settings import load_default_config

    cur = currency(load_default_config().currency)
    names = _card_names()
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


def _terminal_options(p: argparse.ArgumentParser, *, amount_required: bool) -> None:
    p.add_argument("--amount", required=amount_required, help="amount as a decimal, e.g. 12.34")
    p.add_argument("--currency", help="ISO 4217 code, alphabetic or numeric (default: the terminal's)")
    p.add_argument("--un", help="unpredictable number, 8 hex digits (default: random)")
    p.add_argument("--date", help="transaction date YYMMDD (default: today)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TAG=HEX",
        help="override a terminal data object for this run, e.g. 9F1A=0840 (repeatable; checked against "
        "the tag's length and format)",
    )


def add_commands(sub: Any) -> None:
    """Add ``emv`` and its subcommands to the ``posterm`` parser's subcommands."""
    emv: argparse.ArgumentParser = sub.add_parser("emv", help="EMV contactless: simulated cards, taps and replays")
    emv_sub = emv.add_subparsers(dest="emv_command", required=True, metavar="COMMAND")

    demo = emv_sub.add_parser("demo", help="tap every simulated card at two amounts and show the outcomes")
    demo.set_defaults(func=_cmd_demo)

    cards = emv_sub.add_parser("cards", help="list the simulated card profiles")
    cards.add_argument("--json", action="store_true", help="print one JSON object")
    cards.set_defaults(func=_cmd_cards)

    tap = emv_sub.add_parser("tap", help="tap a simulated card (or a reader) and print the result as JSON")
    tap.add_argument("--card", help="simulated card profile (see 'posterm emv cards')")
    tap.add_argument("--reader", help="device URL of a reader instead of a simulated card")
    tap.add_argument(
        "--record", metavar="TRACE.json", help="write the exchange as a trace (it holds card data: mode 0600)"
    )
    _terminal_options(tap, amount_required=True)
    tap.set_defaults(func=_cmd_tap)

    replay = emv_sub.add_parser(
        "replay", help="run a transaction again against a recorded trace (the card answers from the recording)"
    )
    replay.add_argument("trace", metavar="TRACE.json")
    _terminal_options(replay, amount_required=False)
    replay.set_defaults(func=_cmd_replay)
