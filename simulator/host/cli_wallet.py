"""``posterm host wallet ...``: the simulated wallets at the host (see :mod:`simulator.host.wallets`).

- ``accounts [--json]``: every wallet account, its wallet and balances;
- ``topup ACCOUNT AMOUNT [--currency 978] [--wallet W]``: add minor units to
  a balance (``--wallet simpay|simchat|simdc`` opens a new account);
- ``mode normal|confirm|decline``: how the wallets answer a code payment
  (pay at once; ``user_paying`` until ``confirm``; decline);
- ``confirm ORDER [--decline]``: the customer confirms (or declines) late in
  the app a payment that is ``user_paying``;
- ``orders [--terminal-id T] [--json]``: the QR orders.

Errors as the other host commands: bad input 2, refused 1 (an order that is
not waiting for the customer), a store that cannot be used 3.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["HELP", "add_arguments", "wallet_command"]

HELP = "the simulated wallets: accounts, top-ups, how they answer, late confirmations, QR orders"


def _money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def _account_line(account: dict[str, Any]) -> str:
    balances = ", ".join(f"{_money(b['balance'])} ({b['currency']})" for b in account["balances"]) or "nothing"
    return f"{account['account']:<12} {account['wallet']:<8} {balances}"


def wallet_command(args: argparse.Namespace) -> int:
    from simulator.host import wallet_admin
    from simulator.host.cli import default_data_dir
    from simulator.host.store import STORE_ENV

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    store = args.store or os.environ.get(STORE_ENV) or None
    action = args.wallet_command
    if action == "accounts":
        rows = wallet_admin.accounts(data_dir, store=store)
        out: Any = {"accounts": rows}
        text = "\n".join(_account_line(a) for a in rows) or "no accounts"
    elif action == "topup":
        out = wallet_admin.topup(data_dir, args.account, args.amount, args.currency, wallet=args.wallet, store=store)
        text = _account_line(out)
    elif action == "mode":
        wallet_admin.set_mode(data_dir, args.mode, store=store)
        out = {"mode": args.mode}
        text = {
            "normal": "wallets pay code payments at once",
            "confirm": "wallets ask the customer to confirm in the app: payments are user_paying until "
            "'posterm host wallet confirm ORDER'",
            "decline": "wallets decline code payments",
        }[args.mode]
    elif action == "confirm":
        out = wallet_admin.confirm_order(data_dir, args.order_id, accept=not args.decline, store=store)
        text = f"order {out['order_id']} ({out['reference']}): {out['status']}" + (
            f" ({out['reason']})" if out["reason"] else ""
        )
    else:
        rows = wallet_admin.orders(data_dir, args.terminal_id, store=store)
        out = {"orders": rows}
        text = "\n".join(
            f"{o['order_id']} {o['merchant_id']}/{o['terminal_id']} {o['reference']:<24} {o['mode']:<4} "
            f"{_money(o['amount']):>10} {o['currency']} {o['state']:<11} {o['wallet'] or '-'} {o['reason'] or ''}"
            for o in rows
        ) or "no orders"
    print(json.dumps(out, indent=1) if getattr(args, "json", False) else text)
    return 0


def _minor(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in minor units (1 or more)")
    return int(text)


def _currency(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 999:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 4217 numeric currency (978, 156)")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser, common: Callable[..., None]) -> None:
    """The sub-commands of ``posterm host wallet``; ``common(p, json_flag=)`` adds --data-dir / --store / --json."""
    sub = parser.add_subparsers(dest="wallet_command", required=True, metavar="ACTION")
    common(sub.add_parser("accounts", help="every wallet account and its balances"), json_flag=True)
    topup = sub.add_parser("topup", help="add money to an account (a new one with --wallet)")
    topup.add_argument("account", metavar="ACCOUNT")
    topup.add_argument("amount", type=_minor, metavar="AMOUNT", help="minor units (5000 = 50.00)")
    topup.add_argument("--currency", type=_currency, default=978, help="ISO 4217 numeric (default 978)")
    topup.add_argument("--wallet", choices=["simpay", "simchat", "simdc"], help="the wallet of a new account")
    common(topup, json_flag=True)
    mode = sub.add_parser("mode", help="how the wallets answer a code payment")
    mode.add_argument("mode", choices=["normal", "confirm", "decline"])
    common(mode, json_flag=True)
    late = sub.add_parser("confirm", help="the customer confirms late in the app a payment that is user_paying")
    late.add_argument("order_id", metavar="ORDER")
    late.add_argument("--decline", action="store_true", help="the customer declines instead")
    common(late, json_flag=True)
    listing = sub.add_parser("orders", help="the QR orders (code payments and merchant-presented orders)")
    listing.add_argument("--terminal-id", help="only this terminal's")
    common(listing, json_flag=True)
