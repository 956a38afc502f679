"""``posterm sim wallet code|pay``: a customer's wallet app against the simulated host (its wallet side).

- ``posterm sim wallet code --account A [--png FILE] [--json]``: the single-use
  18-digit payment code the app of account ``A`` shows (its prefix names the
  wallet: 91 simpay, 92 simchat, 93 simdc, the simulator's own ranges), valid
  60 s, printed with its QR code (text; ``--png`` writes it as an image);
- ``posterm sim wallet pay PAYLOAD --account A [--json]``: the app scanned a
  merchant-presented code and pays the order it names from ``A``
  (:func:`simulator.host.wallet_admin.order_in_payload`).

The app reaches the host through the host's data directory and store (as
the ``posterm host`` commands do: ``--data-dir``, ``--store``), not through
the terminals' protocol: a wallet app has no terminal certificate. Exit
status: 0 done, 1 refused (a closed or paid order, a balance too small),
2 bad input (an unknown account, a code that is no MPM code), 3 the host's
store cannot be used.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from terminal.cli_output import CommandError, NotDone, Unavailable, emit, write_output

__all__ = ["add_app_commands"]


def _host(args: argparse.Namespace) -> tuple[Path, str | None]:
    from simulator.host.cli import default_data_dir
    from simulator.host.store import STORE_ENV

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    return data_dir, args.store or os.environ.get(STORE_ENV) or None


def _guarded(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from simulator.host.admin import AdminError, AdminRefused
        from simulator.host.store import StoreError

        try:
            return int(func(args))
        except AdminRefused as exc:
            raise NotDone(str(exc)) from None
        except AdminError as exc:
            raise CommandError(str(exc)) from None
        except StoreError as exc:
            raise Unavailable(str(exc)) from None

    return run


def _cmd_code(args: argparse.Namespace) -> int:
    from simulator.host.wallet_admin import make_code
    from terminal.qr_merchant import render

    data_dir, store = _host(args)
    made = make_code(data_dir, args.account, store=store)
    drawing, image = render(made["code"], png=args.png is not None)
    if args.png is not None:
        assert image is not None
        write_output(args.png, image, option="--png")
    text = f"{drawing}\n{made['code']}  ({made['wallet']}, account {made['account']}, valid until {made['expires_at']})"
    emit(args, made, text)
    return 0


def _cmd_pay(args: argparse.Namespace) -> int:
    from simulator.host.wallet_admin import pay_payload

    data_dir, store = _host(args)
    paid = pay_payload(data_dir, args.payload, args.account, store=store)
    amount = paid["amount"]
    emit(
        args,
        paid,
        f"paid order {paid['order_id']} ({paid['reference']}): {amount // 100}.{amount % 100:02d} "
        f"({paid['currency']}) from {args.account} with {paid['wallet']}",
    )
    return 0


def _cmd_cpm(args: argparse.Namespace) -> int:
    from simulator.cpm_code import cpm_payload
    from simulator.profiles import ProfileError
    from terminal.money import currency, parse_amount
    from terminal.qr_merchant import render

    try:
        cur = currency(args.currency)
        amount = parse_amount(args.amount, cur)
        payload = cpm_payload(args.card, amount, cur.numeric)
    except (KeyError, ProfileError, ValueError) as exc:
        raise CommandError(str(exc).strip("'\"")) from None
    drawing, image = render(payload, png=args.png is not None)
    if args.png is not None:
        assert image is not None
        write_output(args.png, image, option="--png")
    emit(args, {"payload": payload, "card": args.card, "amount": amount, "currency": cur.numeric},
         f"{drawing}\n{payload}")  # fmt: skip
    return 0


def add_app_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``code`` and ``pay`` to ``posterm sim wallet``'s sub-commands."""
    code = sub.add_parser("code", help="the single-use payment code a wallet app shows (valid 60 s)")
    pay = sub.add_parser("pay", help="a wallet app pays the order of a scanned merchant-presented code")
    pay.add_argument("payload", metavar="PAYLOAD", help="the EMV MPM payload (or the host's order id)")
    code.add_argument("--png", metavar="FILE", help="also write the code's QR as a PNG image")
    cpm = sub.add_parser(
        "cpm", help="the EMV consumer-presented code (CPM) a simulated card's app shows, with its ARQC"
    )
    cpm.add_argument("--card", default="visa-qvsdc-online", help="a simulated card profile (default visa-qvsdc-online)")
    cpm.add_argument("--amount", required=True, help="the amount the code is made for, e.g. 9.90")
    cpm.add_argument("--currency", default="EUR", help="ISO 4217 code (default EUR)")
    cpm.add_argument("--png", metavar="FILE", help="also write the code's QR as a PNG image")
    cpm.add_argument("--json", action="store_true", help="one JSON object")
    cpm.set_defaults(func=_cmd_cpm)
    for p, func in ((code, _cmd_code), (pay, _cmd_pay)):
        p.add_argument("--account", required=True, help="the wallet account (see 'posterm host wallet accounts')")
        p.add_argument("--data-dir", help="the simulated host's data directory (default: $POSTERM_HOST_DIR, ...)")
        p.add_argument("--store", metavar="URL", help="the host's database (default: $POSTERM_HOST_STORE)")
        p.add_argument("--json", action="store_true", help="one JSON object")
        p.set_defaults(func=_guarded(func))
