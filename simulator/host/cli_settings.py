"""``posterm host issuer ...`` and ``posterm host params ...``: what the host decides with and what it serves.

The operator's settings, as opposed to running the host (``serve``,
``fault``, ``status``) and enrolling terminals, which stay in
:mod:`simulator.host.cli`: the issuer's blocked cards, velocity limit,
refund allowances and wrong PIN tries, and the parameter versions terminals
download (the common part and each terminal's own).  Like
:mod:`simulator.host.cli_cbdc`, it is given ``posterm host``'s helpers
rather than importing them, so that the two modules do not import each other.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terminal.cli_output import CommandError

__all__ = ["add_settings_commands"]

_Show = Callable[[argparse.Namespace, Any, str], None]


def _card(text: str) -> str:
    """A card as given on the command line; ``-``: one line of standard input (a PAN stays out of the history)."""
    if text != "-":
        return text
    line = sys.stdin.readline(200).strip()
    if not line:
        raise CommandError("no card on standard input: give its PAN or the host's card token")
    return line


def _count(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0")
    return int(text)


def _issuer(args: argparse.Namespace, data_dir: Path, store: str | None, show: _Show) -> int:
    from simulator.host import admin

    if args.issuer_command == "block":
        named = admin.block_card(data_dir, _card(args.card), args.code, store=store)
        print(f"card {named.shown} blocked on every terminal: authorisations decline with {args.code}"
              + (f" (host card token {named.token})" if named.shown != named.token else ""))  # fmt: skip
    elif args.issuer_command == "unblock":
        named, was = admin.unblock_card(data_dir, _card(args.card), store=store)
        print(f"card {named.shown} {'unblocked' if was else 'was not blocked'}")
    elif args.issuer_command == "pin-reset":
        named, tries = admin.reset_pin_tries(data_dir, _card(args.card), store=store)
        counted = f"{tries} wrong PIN tr{'y' if tries == 1 else 'ies'}"
        print(f"card {named.shown}: {counted} forgotten; its PIN is checked again")
    elif args.issuer_command == "refund-allowance":
        admin.set_refund_allowance(data_dir, args.merchant_id, args.amount, store=store)
        limit = f"refunds no sale covers up to {args.amount} minor units per currency per 24 hours"
        print(f"merchant {args.merchant_id}: {limit if args.amount else 'no refunds that no sale covers'}")
    elif args.issuer_command == "velocity":
        admin.set_velocity(data_dir, args.max_approvals, args.window_seconds, store=store)
        off = args.max_approvals == 0 or args.window_seconds == 0
        limit = f"at most {args.max_approvals} approvals per card per {args.window_seconds} s"
        print("velocity check off" if off else limit)
    else:
        status = admin.host_status(data_dir, store=store)
        shown = {k: status[k] for k in ("velocity", "blocked_cards", "refund_allowances", "pin_tries", "pin_keys")}
        show(args, shown, json.dumps(shown, indent=1))
    return 0


def _read_parameters_file(path: str) -> dict[str, Any]:
    from terminal.limits import MAX_PARAMETERS_FILE_BYTES, InputFileError, read_json_input

    try:
        update = read_json_input(path, MAX_PARAMETERS_FILE_BYTES, "parameters file")
    except InputFileError as exc:
        raise CommandError(str(exc)) from None
    if not isinstance(update, dict):
        raise CommandError(f"{path}: expected a JSON object")
    return update


def _params(args: argparse.Namespace, data_dir: Path, store: str | None) -> int:
    from simulator.host import admin

    if args.params_command == "publish":
        update = _read_parameters_file(args.file)
        version = admin.publish_parameters(data_dir, update, checked=not args.unchecked, store=store)
        print(f"common parameters version {version} published (each terminal's version moves with it)")
        return 0
    if args.params_command == "set-terminal":
        update = _read_parameters_file(args.file)
        merchant, own = admin.set_terminal_parameters(
            data_dir,
            args.terminal_id,
            update,
            merchant_id=args.merchant_id,
            checked=not args.unchecked,
            store=store,
        )
        keys = ", ".join(sorted(own)) or "none"
        print(f"terminal {args.terminal_id} of merchant {merchant}: own parameters now {keys}")
        return 0
    if args.terminal_id is not None:
        raw = admin.terminal_parameters(data_dir, args.terminal_id, args.merchant_id, store=store)
    elif args.merchant_id is not None:
        raise CommandError("--merchant-id goes with --terminal-id")
    else:
        from simulator.host.params import ensure_initial

        with admin.open_store(data_dir, create=False, store=store) as db:
            ensure_initial(db)
            common = db.parameters()
        assert common is not None
        raw = common
    print(json.dumps(json.loads(raw), indent=1))
    return 0


def add_settings_commands(
    command: Callable[..., Any],
    common: Callable[..., None],
    data_dir: Callable[[argparse.Namespace], Path],
    store: Callable[[argparse.Namespace], str | None],
    show: _Show,
) -> None:
    """Add ``issuer`` and ``params`` through ``posterm host``'s ``command`` factory (``common`` & co: cli's helpers)."""

    def run_issuer(args: argparse.Namespace) -> int:
        return _issuer(args, data_dir(args), store(args), show)

    def run_params(args: argparse.Namespace) -> int:
        return _params(args, data_dir(args), store(args))

    issuer = command("issuer", "steer the issuer: blocked cards, velocity, PIN tries", run_issuer, leaf=False)
    issuer_sub = issuer.add_subparsers(dest="issuer_command", required=True, metavar="ACTION")
    card_help = (
        "the card: its PAN (never stored) or the host's card token (the pan_token of 'posterm host records --json'); "
        "- reads it from standard input"
    )
    block = issuer_sub.add_parser("block", help="decline a card on every terminal (by PAN or host card token)")
    block.add_argument("card", help=card_help)
    block.add_argument("--code", default="62", help="response code (default 62, restricted card)")
    unblock = issuer_sub.add_parser("unblock", help="stop declining a card")
    unblock.add_argument("card", help=card_help)
    pin_reset = issuer_sub.add_parser(
        "pin-reset", help="forget a card's wrong online PIN tries (after 3 its PIN is refused with 75 until then)"
    )
    pin_reset.add_argument("card", help=card_help)
    allowance = issuer_sub.add_parser(
        "refund-allowance", help="let a merchant refund what no sale covers (unreferenced, or to another card)"
    )
    allowance.add_argument("merchant_id", metavar="MERCHANT_ID")
    allowance.add_argument("amount", type=_count, help="minor units per currency per 24 hours (0 = none)")
    velocity = issuer_sub.add_parser("velocity", help="limit approvals per card and time window (0 = off)")
    velocity.add_argument("max_approvals", type=_count, help="approvals allowed per card in the window (0 = off)")
    velocity.add_argument("window_seconds", type=_count, help="the window in seconds (0 = off)")
    show_issuer = issuer_sub.add_parser(
        "show", help="print the blocked cards, the velocity limit, wrong PIN tries and the PIN keys' check values"
    )
    for leaf in (block, unblock, pin_reset, velocity, allowance):
        common(leaf)
    common(show_issuer, json_flag=True)

    params = command("params", "parameter versions served to terminals", run_params, leaf=False)
    params_sub = params.add_subparsers(dest="params_command", required=True, metavar="ACTION")
    publish = params_sub.add_parser("publish", help="publish a new version of the common part from a JSON file")
    publish.add_argument("file", metavar="FILE.json", help="keys merged over the current config, or a full document")
    publish.add_argument(
        "--unchecked", action="store_true", help="skip the terminal-side checks (the schema still applies)"
    )
    common(publish)
    own = params_sub.add_parser("set-terminal", help="set a terminal's own part (merchant name, address, ...)")
    own.add_argument("terminal_id", metavar="TERMINAL_ID")
    own.add_argument("file", metavar="FILE.json", help="config keys merged over the terminal's own part (null: remove)")
    own.add_argument("--merchant-id", help="the terminal's merchant (default: the one it is enrolled under)")
    own.add_argument("--unchecked", action="store_true", help="skip the terminal-side checks")
    common(own)
    show_params = params_sub.add_parser("show", help="print the common part, or what a terminal gets")
    show_params.add_argument("--terminal-id", help="print this terminal's document (ids, own part, its version)")
    show_params.add_argument("--merchant-id", help="the terminal's merchant (default: the one it is enrolled under)")
    common(show_params)
