"""``posterm sale|refund|void|journal|saf|receipt|report|settle``: the terminal core, headless.

Every command takes ``--data-dir DIR`` (default: ``$POSTERM_DATA_DIR`` or the
platform's user data directory) and ``--json`` (one JSON object on standard
output).  ``--host auto`` (the default) is the host the data directory is
enrolled with (``posterm enrol``), or else ``memory``, an in-process host whose
state is kept in the data directory; ``--host none`` means the host cannot be
reached.

``sale`` and ``refund`` read the card on the reader of the device
configuration (``posterm devices set reader URL``; by default a simulated
``visa-qvsdc-online`` card), on ``--reader URL`` (any reader URL, e.g.
``pcsc:`` or ``nfc:usb``), or on a simulated card with ``--card PROFILE``
(short for ``--reader sim:card=PROFILE``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from terminal.bootstrap import open_terminal
from terminal.facade import PaymentResult, SettlementRefused, Terminal, receipt_data
from terminal.money import currency, format_amount, parse_amount
from terminal.offline import OfflineBehavior

__all__ = ["add_commands"]


class CommandError(Exception):
    """A command that cannot be carried out: one line, exit status 2."""


def _common(p: argparse.ArgumentParser, host: bool = True) -> None:
    p.add_argument("--data-dir", type=Path, help="where the journal and keys live")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    if host:
        p.add_argument(
            "--host",
            default="auto",
            help="auto (default: the enrolled host, else memory), memory, none, https, or https://HOST:PORT",
        )


def _open(args: argparse.Namespace, reader_url: str | None = None) -> Terminal:
    return open_terminal(args.data_dir, reader_url=reader_url, host=getattr(args, "host", "auto"))


def _print(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    print(json.dumps(obj, indent=1) if args.json else text)


def _reader(args: argparse.Namespace) -> str | None:
    """The reader URL the options name; None: the configured reader."""
    if args.card and args.reader:
        raise CommandError("give either --card or --reader, not both")
    if args.card:
        return f"sim:card={args.card}"
    return str(args.reader) if args.reader else None


def _open_with_reader(args: argparse.Namespace) -> Terminal:
    terminal = _open(args, _reader(args))
    if terminal.reader is None:
        terminal.store.close()
        raise CommandError(
            "no card reader is configured: 'posterm devices set reader URL', or give --reader URL or --card PROFILE"
        )
    return terminal


def _payment_text(r: PaymentResult) -> str:
    amount = format_amount(r.amount, currency(r.currency))
    card = f" {r.scheme} {r.masked_pan}" if r.masked_pan else ""
    code = f" (approval code {r.approval_code})" if r.approval_code else ""
    return f"{r.kind} {amount}{card}: {r.message}{code}\ntransaction {r.txn_id}, state {r.state.value}"


def _cmd_sale(args: argparse.Namespace) -> int:
    cur = currency(args.currency)
    amount = parse_amount(args.amount, cur)
    terminal = _open_with_reader(args)
    result = terminal.sale(
        amount, cur.numeric, exponent=cur.exponent, offline_behavior=OfflineBehavior(args.offline_behavior)
    )
    _print(args, result.to_json(), _payment_text(result))
    return 0


def _cmd_refund(args: argparse.Namespace) -> int:
    cur = currency(args.currency)
    amount = parse_amount(args.amount, cur)
    # Against the original payment no card is read.
    terminal = _open(args, "none") if args.original else _open_with_reader(args)
    result = terminal.refund(
        amount,
        cur.numeric,
        exponent=cur.exponent,
        original_txn_id=args.original,
        offline_behavior=OfflineBehavior(args.offline_behavior),
    )
    _print(args, result.to_json(), _payment_text(result))
    return 0


def _cmd_void(args: argparse.Namespace) -> int:
    result = _open(args).void(args.txn_id)
    _print(args, result.to_json(), _payment_text(result))
    return 0


def _row_json(terminal: Terminal, txn_id: str) -> dict[str, Any]:
    row = terminal.store.get(txn_id)
    if row is None:
        raise CommandError(f"no transaction {txn_id}")
    return {
        "txn_id": row.txn_id,
        "kind": row.kind,
        "state": row.state.value,
        "amount": row.amount,
        "currency": row.currency,
        "scheme": row.scheme,
        "masked_pan": row.masked_pan,
        "batch_id": row.batch_id,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "original_txn_id": row.original_txn_id,
        "offline_behavior": row.offline_behavior,
        "details": row.details,
    }


def _cmd_journal(args: argparse.Namespace) -> int:
    terminal = _open(args)
    if args.journal_command == "list":
        rows = terminal.store.list_transactions()
        if args.limit:
            rows = rows[-args.limit :]
        items = [_row_json(terminal, r.txn_id) for r in rows]
        lines = [
            f"{r['txn_id']}  {r['kind']:<6} {r['state']:<26} "
            f"{format_amount(r['amount'], currency(r['currency'])):>14}  {r['masked_pan'] or ''}"
            for r in items
        ]
        _print(args, {"transactions": items}, "\n".join(lines) or "no transactions")
        return 0
    if args.journal_command == "show":
        row = _row_json(terminal, args.txn_id)
        history = terminal.store.journal_rows(txn_id=args.txn_id)
        text = (
            json.dumps(row, indent=1)
            + "\n"
            + "\n".join(f"#{h['seq']} {h['at']} {h['event']} -> {h['state']}" for h in history)
        )
        _print(args, row | {"journal": history}, text)
        return 0
    if args.journal_command == "verify":
        report = terminal.store.verify()
        obj = {"ok": report.ok, "rows": report.rows, "problems": report.problems}
        text = (
            f"journal verified: {report.rows} rows, chain intact"
            if report.ok
            else "journal verification FAILED:\n" + "\n".join(f"  {p}" for p in report.problems)
        )
        _print(args, obj, text)
        return 0 if report.ok else 1
    if args.journal_command == "purge":
        purged = terminal.purge_expired_records()
        years = terminal.settings.retention_years
        _print(
            args,
            purged.__dict__ | {"retention_years": years},
            f"purged {purged.transactions} transactions, {purged.batches} batches and {purged.journal_rows} "
            f"journal rows older than {years} years",
        )
        return 0
    return _export(args, terminal)


EXPORT_COLUMNS = [
    "seq",
    "at",
    "txn_id",
    "event",
    "state",
    "kind",
    "amount",
    "currency",
    "scheme",
    "masked_pan",
    "approval_code",
    "response_code",
]


def _export(args: argparse.Namespace, terminal: Terminal) -> int:
    """Journal rows of a date range as CSV: masked PAN only, no card data, no keys."""
    history = terminal.store.journal_rows(since=args.since, until=args.until)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for h in history:
        txn = terminal.store.get(h["txn_id"])
        details = txn.details if txn is not None else {}
        writer.writerow(
            [
                h["seq"],
                h["at"],
                h["txn_id"],
                h["event"],
                h["state"],
                txn.kind if txn else "",
                txn.amount if txn else "",
                txn.currency if txn else "",
                txn.scheme if txn else "",
                (txn.masked_pan or "") if txn else "",
                details.get("approval_code") or "",
                details.get("response_code") or "",
            ]
        )
    if args.output:
        Path(args.output).write_text(out.getvalue(), encoding="utf-8")
        _print(
            args,
            {"rows": len(history), "output": str(args.output)},
            f"{len(history)} rows written to {args.output}",
        )
    else:
        sys.stdout.write(out.getvalue())
    return 0


def _cmd_saf(args: argparse.Namespace) -> int:
    terminal = _open(args)
    if args.saf_command == "forward":
        report = terminal.forward_now()
        status = terminal.offline_status()
        text = (
            f"forwarded: {report.accepted} accepted, {report.declined} declined after forwarding, "
            f"{report.rejected} rejected, {report.expired} expired, {report.reversals_sent} reversal(s) sent, "
            f"{report.failed} failed"
            + (f"; stopped: {report.stopped_by}" if report.stopped_by else "")
            + f"\n{status.queued} still queued"
            + (f"; last error: {status.last_error}" if report.failed and status.last_error else "")
        )
        _print(args, report.to_json() | {"status": status.to_json()}, text)
        return 0 if report.failed == 0 and report.stopped_by is None else 1
    status = terminal.offline_status()
    lines = [f"{status.queued} payment(s) queued, {status.reversals_queued} reversal(s) queued"]
    for code, (n, amount) in sorted(status.totals.items()):
        lines.append(f"  {format_amount(amount, currency(code))} in {n} payment(s)")
    if status.oldest_at:
        lines.append(f"oldest: {status.oldest_at} ({(status.oldest_age_seconds or 0) / 60:.1f} min)")
    if status.last_attempt_at:
        lines.append(f"last attempt: {status.last_attempt_at}: {status.last_error}")
    if status.declined_after_forwarding:
        lines.append("declined or rejected after forwarding: " + ", ".join(status.declined_after_forwarding))
    _print(args, status.to_json(), "\n".join(lines))
    return 0


def _cmd_receipt(args: argparse.Namespace) -> int:
    from terminal.receipts import render_escpos, render_text

    terminal = _open(args)
    try:
        data = receipt_data(terminal, args.txn_id, reprint=True)
    except KeyError:
        raise CommandError(f"no transaction {args.txn_id}") from None
    if args.format == "escpos":
        payload = render_escpos(data, args.copy)
        if args.output:
            Path(args.output).write_bytes(payload)
        else:
            sys.stdout.buffer.write(payload)
        return 0
    text = render_text(data, args.copy)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    _print(args, {"txn_id": args.txn_id, "copy": args.copy, "text": text}, text)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from terminal.reports import render_report

    terminal = _open(args)
    kind = args.kind.upper()
    if kind == "Z":
        batch_id = args.batch
        if batch_id is None:
            closed = terminal.store.closed_batches()
            if not closed:
                raise CommandError("no batch has been settled yet (Z reports are made at settlement)")
            batch_id = closed[-1]
    else:
        batch_id = args.batch
    batch, lines = terminal.batch_lines(batch_id)
    info = terminal.store.batch_info(batch)
    closed_at = datetime.fromisoformat(info["closed_at"]) if info["closed_at"] else None
    text = render_report(
        kind,
        batch,
        terminal.config.terminal_id,
        datetime.fromisoformat(info["opened_at"]),
        closed_at,
        lines,
        saf_pending=terminal.offline_status().queued,
        in_balance=info["in_balance"],
    )
    obj = {
        "kind": kind,
        "batch_id": batch,
        "lines": [line.__dict__ for line in lines],
        "batch": info,
        "text": text,
    }
    _print(args, obj, text)
    return 0


def _cmd_settle(args: argparse.Namespace) -> int:
    terminal = _open(args)
    try:
        result = terminal.settle()
    except SettlementRefused as exc:
        raise CommandError(str(exc)) from None
    balance = "in balance" if result.in_balance else "OUT OF BALANCE"
    text = (
        f"batch {result.batch_id} settled, {balance} (host reference {result.host_reference}); "
        f"batch {result.new_batch_id} is open"
    )
    for diff in result.differences:
        text += f"\n  difference: {diff}"
    obj = {
        "batch_id": result.batch_id,
        "in_balance": result.in_balance,
        "host_reference": result.host_reference,
        "lines": [line.__dict__ for line in result.lines],
        "differences": list(result.differences),
        "new_batch_id": result.new_batch_id,
    }
    _print(args, obj, text)
    return 0


def add_commands(sub: Any) -> None:
    """Add the payment commands to the ``posterm`` parser's subcommands."""
    behaviours = [b.value for b in OfflineBehavior]

    def payment(name: str, helptext: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=helptext)
        p.add_argument("amount", help="amount as a decimal, e.g. 12.34")
        p.add_argument("--currency", default="EUR", help="ISO 4217 code (default EUR)")
        p.add_argument("--card", help="a simulated card profile (short for --reader sim:card=PROFILE)")
        p.add_argument(
            "--reader",
            metavar="URL",
            help="device URL of the card reader, e.g. pcsc: or nfc:usb (default: the configured reader, "
            "see 'posterm devices')",
        )
        p.add_argument("--offline-behavior", default="prefer_online", choices=behaviours)
        _common(p)
        return p

    payment("sale", "charge a card").set_defaults(func=_cmd_sale)
    refund = payment("refund", "refund to a card, or against an original payment")
    refund.add_argument("--original", metavar="TXN_ID", help="the payment refunded (no card needed)")
    refund.set_defaults(func=_cmd_refund)

    void = sub.add_parser("void", help="cancel an approved payment of the open batch")
    void.add_argument("txn_id")
    _common(void)
    void.set_defaults(func=_cmd_void)

    journal = sub.add_parser("journal", help="the transaction journal")
    jsub = journal.add_subparsers(dest="journal_command", required=True)
    jl = jsub.add_parser("list", help="transactions, oldest first")
    jl.add_argument("--limit", type=int, help="only the last N")
    js = jsub.add_parser("show", help="one transaction and its history")
    js.add_argument("txn_id")
    jv = jsub.add_parser("verify", help="check the hash chain: edited or removed rows show")
    je = jsub.add_parser("export", help="journal rows of a date range as CSV, without sensitive data")
    je.add_argument("--since", help="ISO date or time, inclusive (UTC)")
    je.add_argument("--until", help="ISO date or time, exclusive (UTC)")
    je.add_argument("--output", help="file to write (default: standard output)")
    jp = jsub.add_parser(
        "purge", help="delete settled records older than the retention period (also done after each settlement)"
    )
    for p in (jl, js, jv, je, jp):
        _common(p, host=False)
    journal.set_defaults(func=_cmd_journal)

    saf = sub.add_parser("saf", help="the store-and-forward queue")
    ssub = saf.add_subparsers(dest="saf_command", required=True)
    for p in (
        ssub.add_parser("status", help="what waits, and since when"),
        ssub.add_parser("forward", help="send queued reversals and payments now"),
    ):
        _common(p)
    saf.set_defaults(func=_cmd_saf)

    receipt = sub.add_parser("receipt", help="print a receipt again from the journal")
    receipt.add_argument("txn_id")
    receipt.add_argument("--format", choices=["text", "escpos"], default="text")
    receipt.add_argument("--copy", choices=["customer", "merchant"], default="customer")
    receipt.add_argument("--output", help="file to write")
    _common(receipt, host=False)
    receipt.set_defaults(func=_cmd_receipt)

    report = sub.add_parser("report", help="X report (running totals) or Z report (a settled batch)")
    report.add_argument("kind", choices=["x", "z", "X", "Z"])
    report.add_argument("--batch", type=int, help="batch number (default: open batch for X, last settled for Z)")
    _common(report, host=False)
    report.set_defaults(func=_cmd_report)

    settle = sub.add_parser("settle", help="close the batch with the host")
    _common(settle)
    settle.set_defaults(func=_cmd_settle)
