"""``posterm host cbdc ...``: the digital-currency operator's commands (:mod:`simulator.host.cbdc_admin`).

- ``blocklist [--json]``: the ``cbdc`` section terminals get now (version,
  roots, blocked wallets and operators, limits) and why each is blocked;
- ``block WALLET [--reason TEXT]``, ``unblock WALLET``: by hand; the section's
  version moves, so every terminal's next parameter download carries it
  (``--operator``: WALLET is an operator id, all its wallets);
- ``wallets [--json]``: balance (opening + top-ups − credited payments), what
  was credited back, last counter, records held, blocked;
- ``topup WALLET AMOUNT``: add minor units to a wallet's account;
- ``wallet-sync WALLET --records FILE|-``: the wallet's own upload of its
  records (hex E4, one a line; its two E2 certificates may be added): records
  nobody claimed whose intent a terminal declared torn, and records a terminal
  refused after the wallet debited, are credited back, and the command says which.

Exit statuses as every ``posterm host`` command: 0 done, 2 bad input (a
wallet id that is not 16 hex digits, an upload that does not verify), 3 the
store cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from terminal.cli_output import CommandError

__all__ = ["add_cbdc_command"]

_MAX_UPLOAD_BYTES = 4 * 1024 * 1024


def _read_records(path: str) -> str:
    if path == "-":
        text = sys.stdin.read(_MAX_UPLOAD_BYTES + 1)
    else:
        try:
            with open(path, encoding="ascii", errors="strict") as fh:
                text = fh.read(_MAX_UPLOAD_BYTES + 1)
        except UnicodeDecodeError:
            raise CommandError(f"{path}: not hex text (one record a line)") from None
        except FileNotFoundError:
            raise CommandError(f"{path}: no such file") from None
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror or exc}") from None
    if len(text) > _MAX_UPLOAD_BYTES:
        raise CommandError(f"{path}: larger than {_MAX_UPLOAD_BYTES} bytes")
    return text


def _wallet_line(w: dict[str, Any]) -> str:
    state = f" BLOCKED ({w['blocked_reason']})" if w["blocked"] else ""
    back = f", credited back {w['credited_back']}" if w["credited_back"] else ""
    return (
        f"{w['wallet_id']}  balance {w['balance']} (opening {w['opening']} + top-ups {w['topups']} "
        f"- credited {w['credited']}){back}, last counter {w['last_counter']}, {w['records']} record(s){state}"
    )


def _run(args: argparse.Namespace, data_dir: Any, store: str | None) -> int:
    from simulator.host import cbdc_admin

    action = args.cbdc_command
    as_json = getattr(args, "json", False)
    if action == "blocklist":
        shown = cbdc_admin.blocklist(data_dir, store=store)
        section = shown["cbdc"]
        lines = [f"cbdc parameters version {section['version']}, {len(section['roots'])} root(s)"]
        lines += [f"wallet   {w['id']} blocked since {w['since']}: {w['reason']}" for w in shown["wallets"]]
        lines += [f"operator {o['id']} blocked since {o['since']}: {o['reason']}" for o in shown["operators"]]
        if not shown["wallets"] and not shown["operators"]:
            lines.append("nothing blocked")
        print(json.dumps(shown, indent=1) if as_json else "\n".join(lines))
    elif action in ("block", "unblock"):
        what = "operator" if args.operator else "wallet"
        if action == "block":
            blocking = cbdc_admin.block_operator if args.operator else cbdc_admin.block_wallet
            changed, version = blocking(data_dir, args.wallet, args.reason, store=store)
            text = "blocked" if changed else "was blocked already"
        else:
            unblocking = cbdc_admin.unblock_operator if args.operator else cbdc_admin.unblock_wallet
            changed, version = unblocking(data_dir, args.wallet, store=store)
            text = "unblocked" if changed else "was not blocked"
        print(f"{what} {args.wallet.upper()} {text}; cbdc parameters version {version} "
              "(every terminal gets it with its next parameter download)")  # fmt: skip
    elif action == "wallets":
        rows = cbdc_admin.wallets(data_dir, store=store)
        text = "\n".join(_wallet_line(w) for w in rows) or "no wallets"
        print(json.dumps({"wallets": rows}, indent=1) if as_json else text)
    elif action == "topup":
        account = cbdc_admin.topup(data_dir, args.wallet, args.amount, store=store)
        print(json.dumps(account, indent=1) if as_json else f"topped up: {_wallet_line(account)}")
    else:
        report = cbdc_admin.wallet_sync(data_dir, args.wallet, _read_records(args.records), store=store)
        if as_json:
            print(json.dumps(report.to_json(), indent=1))
        else:
            lines = [f"wallet {report.wallet_id}: {report.records} record(s) uploaded, {report.new} new"]
            lines += [
                f"credited back: counter {c['counter']}, {c['amount']} (currency {c['currency']}), {c['why']} at "
                f"{c['merchant_id']}/{c['terminal_id']} ({c['txn_id']})"
                for c in report.credited_back
            ]
            lines.append(f"credited back in all: {report.credited_back_total}")
            lines += [f"refused: counter {f['counter']}: {f['reason']}" for f in report.frauds]
            if report.blocked:
                lines.append("the wallet is blocked")
            print("\n".join(lines))
    return 0


def add_cbdc_command(
    sub: Any,
    common: Callable[..., None],
    guard: Callable[[Callable[[argparse.Namespace], int]], Any],
    data_dir: Callable[[argparse.Namespace], Any],
    store: Callable[[argparse.Namespace], str | None],
) -> None:
    """Add ``cbdc`` and its actions to ``posterm host``'s sub-parsers (``common``, ``guard`` & co: cli's helpers)."""

    def run(args: argparse.Namespace) -> int:
        return _run(args, data_dir(args), store(args))

    text = "the digital-currency operator: block list, wallets, top-ups, wallet sync"
    cbdc = sub.add_parser("cbdc", help=text, description=text)
    cbdc.set_defaults(func=guard(run))
    actions = cbdc.add_subparsers(dest="cbdc_command", required=True, metavar="ACTION")
    wallet_help = "the wallet id (16 hex digits)"
    common(actions.add_parser("blocklist", help="the cbdc parameters now and the blocked wallets"), json_flag=True)
    operator_help = "WALLET is an operator id (8 hex digits): all its wallets"
    blocking = actions.add_parser("block", help="block a wallet on every terminal (next parameter download)")
    blocking.add_argument("wallet", metavar="WALLET", help=wallet_help)
    blocking.add_argument("--reason", default="blocked by the operator", help="why (kept and shown)")
    blocking.add_argument("--operator", action="store_true", help=operator_help)
    common(blocking)
    unblocking = actions.add_parser("unblock", help="take a wallet off the block list")
    unblocking.add_argument("wallet", metavar="WALLET", help=wallet_help)
    unblocking.add_argument("--operator", action="store_true", help=operator_help)
    common(unblocking)
    common(actions.add_parser("wallets", help="balance, last counter, records and block of each wallet"),
           json_flag=True)  # fmt: skip
    topping = actions.add_parser("topup", help="add money to a wallet's account")
    topping.add_argument("wallet", metavar="WALLET", help=wallet_help)
    topping.add_argument("amount", type=_amount, metavar="AMOUNT", help="minor units (e.g. 10000 = 100.00 CNY)")
    common(topping, json_flag=True)
    syncing = actions.add_parser("wallet-sync", help="the wallet's upload of its records: torn ones credited back")
    syncing.add_argument("wallet", metavar="WALLET", help=wallet_help)
    records_help = "its records in hex, one a line (E4; its two E2 certificates may be added); - = stdin"
    syncing.add_argument("--records", required=True, metavar="FILE", help=records_help)
    common(syncing, json_flag=True)


def _amount(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minor units of at least 1")
    return int(text)
