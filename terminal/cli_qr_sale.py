"""``posterm sale AMOUNT --qr-show|--qr-scan`` and ``posterm qr orders [--check]``: QR payments from the shell.

- ``--qr-show``: the terminal makes the order at the host and shows its
  dynamic MPM code: drawn on standard error (qrcode's text rendering), its
  payload on a line ``QR payload: ...``, as a PNG with ``--png FILE``, and
  printed when a receipt printer is configured; then "waiting for the
  customer" until the app pays, ``--qr-timeout`` seconds pass (default 120)
  or Ctrl-C: the order is then closed at the host (a close the app beat is
  recorded as the sale).
- ``--qr-scan``: the code the customer's app shows, from the configured
  scanner or ``--scanner URL`` (e.g. ``serial:/dev/pts/7?suffix=CR``, the
  pty of ``posterm sim scanner``): a wallet's 18-digit code, or an EMV CPM
  code (an online authorisation, like a tapped card).  An unusable code is
  refused in words and another may be scanned (three reads in all).
  ``--qr-confirm-limit`` (default 60 s): how long the customer may confirm
  in the app.
- ``posterm qr orders``: the QR payments in doubt (the terminal gave up
  without the host's last word); ``--check`` asks the host about them: one
  paid meanwhile is recorded as a sale, one still open is closed. A QR sale
  and a settlement ask about them first too.  Exit 3 while some are still in
  doubt (the host cannot be reached).

QR payments are online only: without the host, "QR payments need the host:
not taken" (exit 1), nothing stored as approved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from terminal.cli_output import DATA_DIR_HELP, Interrupted, emit, write_output
from terminal.facade import Terminal, TerminalEvent

__all__ = ["add_orders_command", "add_sale_options", "run_sale"]


def add_sale_options(p: argparse.ArgumentParser) -> None:
    """The QR options of ``posterm sale``."""
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--qr-show", action="store_true", help="show a QR code for the customer's app to scan")
    mode.add_argument("--qr-scan", action="store_true", help="scan the payment code the customer's app shows")
    p.add_argument("--png", metavar="FILE", help="with --qr-show: also write the code as a PNG image")
    p.add_argument("--scanner", metavar="URL", help="with --qr-scan: the scanner's URL (default: the configured one)")
    p.add_argument("--qr-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="with --qr-show: how long the code waits for the app (default 120)")  # fmt: skip
    p.add_argument("--qr-confirm-limit", type=float, default=60.0, metavar="SECONDS",
                   help="with --qr-scan: how long the customer may confirm in the app (default 60)")  # fmt: skip


def _options(args: argparse.Namespace) -> Any:
    from terminal.cli_output import CommandError
    from terminal.qr_payment import QrOptions

    try:
        return QrOptions(timeout=args.qr_timeout, confirm_limit=args.qr_confirm_limit)
    except ValueError as exc:
        raise CommandError(f"--qr-timeout / --qr-confirm-limit: {exc}") from None


def _merchant(args: argparse.Namespace, terminal: Terminal) -> Any:
    """The QR merchant data of the configuration in force, with the terminal's (enrolled) ids."""
    from terminal.bootstrap import configuration_document, default_data_dir
    from terminal.qr_merchant import qr_settings

    doc, _, _ = configuration_document(Path(args.data_dir) if args.data_dir else default_data_dir())
    config = terminal.config
    return qr_settings(doc, config, terminal.settings, terminal_id=config.terminal_id,
                       merchant_id=config.merchant_id)  # fmt: skip


def _shower(args: argparse.Namespace, terminal: Terminal) -> Any:
    from terminal.qr_merchant import render

    def show(txn_id: str, payload: str) -> None:
        drawing, png = render(payload, png=args.png is not None)
        if args.png is not None and png is not None:
            write_output(args.png, png, option="--png")
        print(drawing, file=sys.stderr)
        print(f"QR payload: {payload}", file=sys.stderr, flush=True)
        print(f"waiting for the customer (up to {args.qr_timeout:g} s; Ctrl-C cancels)", file=sys.stderr, flush=True)

    return show


def _tell(event: TerminalEvent) -> None:
    if event.kind == "qr_status" and event.data.get("message") != "waiting for the customer":
        print(f"qr: {event.data.get('message')}", file=sys.stderr, flush=True)
    elif event.kind == "qr_checked":
        print(f"qr: {event.txn_id}: {event.data.get('message')}", file=sys.stderr, flush=True)


def run_sale(args: argparse.Namespace) -> int:
    """``posterm sale AMOUNT --qr-show|--qr-scan`` (see the module docstring)."""
    from terminal import cli_payments
    from terminal.cli_output import CommandError
    from terminal.money import parse_amount

    if (args.png and not args.qr_show) or (args.scanner and not args.qr_scan):
        raise CommandError("--png goes with --qr-show, --scanner with --qr-scan")
    if args.card or args.reader:
        raise CommandError("a QR payment reads no card: leave out --card and --reader")
    options = _options(args)
    cur = cli_payments._currency_of(args)
    amount = parse_amount(args.amount, cur)
    with cli_payments._terminal(args, "none") as terminal:
        if args.scanner:
            from terminal.devices import LazyScanner, validate_url

            terminal.scanner = LazyScanner(validate_url("scanner", args.scanner))
        if not args.json:
            terminal.subscribe(_tell)
        try:
            result = terminal.qr_sale(
                amount, cur.numeric, merchant=_merchant(args, terminal) if args.qr_show else None,
                show=_shower(args, terminal) if args.qr_show else None, options=options,
            )  # fmt: skip
        except KeyboardInterrupt:
            raise _interrupted(terminal) from None
        return cli_payments._finish_payment(args, terminal, result)


def _interrupted(terminal: Terminal) -> Interrupted:
    """Ctrl-C outside the waits (which close the order themselves): recovery, then the host asked."""
    from contextlib import suppress

    terminal.recover()
    with suppress(Exception):
        terminal.qr_check()
    txn_id = terminal.payment_in_progress
    if txn_id is None:
        return Interrupted("interrupted before the payment started: nothing was charged")
    row = terminal.transaction(txn_id)
    state = row.state.value if row is not None else "unknown"
    return Interrupted(f"interrupted: QR payment {txn_id} is {state}")


# ------------------------------------------------------------------------------------------ qr orders


def _cmd_orders(args: argparse.Namespace) -> int:
    from terminal import cli_payments
    from terminal.lifecycle import QR_CHECKED_STATES

    with cli_payments._terminal(args, "none", shared=not args.check) as terminal:
        checked = []
        if args.check:
            checked = [c.__dict__ | {"state": c.state.value} for c in terminal.qr_check()]
        waiting = [r for r in terminal.transactions() if r.state in QR_CHECKED_STATES]
        rows = [
            {"txn_id": r.txn_id, "kind": r.kind, "state": r.state.value, "amount": r.amount, "currency": r.currency,
             "mode": r.details.get("qr_mode"), "reference": r.details.get("qr_reference"),
             "order_id": r.details.get("qr_order_id")}
            for r in waiting
        ]  # fmt: skip
        lines = [f"{c['txn_id']}: {c['message']}" for c in checked]
        lines += [f"in doubt: {r['txn_id']} ({r['kind']}, {r['mode']}, reference {r['reference']})" for r in rows]
        lines.append(f"{len(rows)} QR payment(s) in doubt")
        emit(args, {"checked": checked, "in_doubt": rows}, "\n".join(lines))
        return 3 if rows and args.check else 0


def add_orders_command(qr_sub: Any) -> None:
    """``posterm qr orders [--check]`` under ``posterm qr``."""
    orders = qr_sub.add_parser("orders", help="the QR payments in doubt; --check asks the host about them")
    orders.add_argument("--check", action="store_true", help="ask the host: record what was paid, close the rest")
    orders.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    orders.add_argument("--host", default="auto", help="auto (default), memory, none, https, or https://HOST:PORT")
    orders.add_argument("--json", action="store_true", help="print one JSON object")
    orders.set_defaults(func=_cmd_orders)
