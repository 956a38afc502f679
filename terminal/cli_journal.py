"""``posterm journal list|show|verify|export|purge`` and ``posterm last``: the journal, read through the facade."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable
from typing import Any

from terminal.cli_output import CommandError, emit, write_output
from terminal.facade import Terminal
from terminal.money import currency, format_amount
from terminal.notices import OutcomeRecord, describe

__all__ = ["EXPORT_COLUMNS", "last", "run"]

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


def _row_json(row: Any) -> dict[str, Any]:
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
        "sealed": row.sealed,
    }


def _amount(amount: int, code: int) -> str:
    try:
        return format_amount(amount, currency(code))
    except ValueError:
        return f"{amount} ({code:03d})"


def _list(args: argparse.Namespace, terminal: Terminal) -> int:
    items = [_row_json(r) for r in terminal.transactions(limit=args.limit)]
    lines = [
        f"{r['txn_id']}  {r['kind']:<6} {r['state']:<26} {_amount(r['amount'], r['currency']):>14}  "
        f"{r['masked_pan'] or ''}" + ("" if r["sealed"] else "  EDITED OUTSIDE POSTERM")
        for r in items
    ]
    emit(args, {"transactions": items}, "\n".join(lines) or "no transactions")
    return 0


def _show(args: argparse.Namespace, terminal: Terminal) -> int:
    row = terminal.transaction(args.txn_id)
    if row is None:
        raise CommandError(f"no transaction {args.txn_id}")
    obj = _row_json(row)
    history = terminal.history(args.txn_id)
    text = json.dumps(obj, indent=1) + "\n" + "\n".join(f"#{h['seq']} {h['at']} {h['event']} -> {h['state']}"
                                                       for h in history)  # fmt: skip
    if not row.sealed:
        text += "\nWARNING: this row was changed outside posterm (its seal does not match)"
    emit(args, obj | {"journal": history}, text)
    return 0


def _verify(args: argparse.Namespace, terminal: Terminal) -> int:
    report = terminal.verify_journal()
    obj = {"ok": report.ok, "rows": report.rows, "problems": report.problems}
    text = (
        f"journal verified: {report.rows} rows, chain intact, every row sealed"
        if report.ok
        else "journal verification FAILED:\n" + "\n".join(f"  {p}" for p in report.problems)
    )
    emit(args, obj, text)
    return 0 if report.ok else 1


def _purge(args: argparse.Namespace, terminal: Terminal) -> int:
    purged = terminal.purge_expired_records()
    years = terminal.settings.retention_years
    emit(
        args,
        purged.__dict__ | {"retention_years": years},
        f"purged {purged.transactions} transactions, {purged.batches} batches and {purged.journal_rows} "
        f"journal rows older than {years} years",
    )
    return 0


def _export(args: argparse.Namespace, terminal: Terminal) -> int:
    """Journal rows of a date range as CSV: masked PAN only, no card data, no keys."""
    if args.since and args.until and args.since >= args.until:
        raise CommandError(f"--since {args.since} is not before --until {args.until}")
    history = terminal.journal_rows(since=args.since, until=args.until)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    rows: dict[str, Any] = {}
    for h in history:
        if h["txn_id"] not in rows:
            rows[h["txn_id"]] = terminal.transaction(h["txn_id"])
        txn = rows[h["txn_id"]]
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
        write_output(args.output, out.getvalue().encode("utf-8"))
        emit(args, {"rows": len(history), "output": str(args.output)}, f"{len(history)} rows written to {args.output}")
    else:
        sys.stdout.write(out.getvalue())
    return 0


def run(args: argparse.Namespace, terminal: Terminal) -> int:
    verbs = {"list": _list, "show": _show, "verify": _verify, "purge": _purge, "export": _export}
    return verbs[args.journal_command](args, terminal)


_SHOWN_BY = {
    "cli": "the command line",
    "ui": "the application's screen",
    "ecr": "the register (ECR interface)",
    "notice": "a notice at a later start",
    "before_upgrade": "a posterm that did not record it (made before the upgrade)",
}


def _last_text(record: OutcomeRecord, told_now: bool, read_only: bool) -> str:
    r = record.result
    card = f" {r.scheme} {r.masked_pan}" if r.masked_pan else ""
    code = f" (approval code {r.approval_code})" if r.approval_code else ""
    lines = [
        f"last {r.kind}: {_amount(r.amount, r.currency)}{card}: {r.message}{code}",
        f"made at {record.at}, transaction {r.txn_id}, state {r.state.value}",
    ]
    if record.shown_at is not None:
        lines.append(f"shown at {record.shown_at} by {_SHOWN_BY.get(record.shown_by or '', record.shown_by)}")
    elif r.state.value in ("started", "authorising"):
        lines.append("in progress (another process is making it)" if read_only else "in progress")
    elif told_now:
        lines.append("NOT SHOWN before now: the process that made it stopped before it told anyone")
    else:
        lines.append("NOT SHOWN to anyone yet (the terminal is in use by another process, which tells it)")
    return "\n".join(lines)


def last(args: argparse.Namespace, terminal: Terminal, note: Callable[[str], None]) -> int:
    """``posterm last``: the last payment and whether its outcome was shown (showing it here counts).

    The other payments nobody was shown are told on standard error first, as
    every command tells them.  With ``--json``: ``{"last_payment": {...}}``,
    the payment as it was before this command (``shown`` false if nobody had
    been told), and ``shown_now`` whether this command marked it.
    """
    record = terminal.last_payment()
    if record is None:
        emit(args, {"last_payment": None, "shown_now": False}, "no payment has been made yet")
        return 0
    txn_id = record.result.txn_id
    others = [u for u in terminal.unshown_payments() if u.result.txn_id != txn_id]
    for item in others:
        note(describe(item))
    if others:
        terminal.mark_shown([u.result.txn_id for u in others], "notice")
    unshown = record.shown_at is None and record.result.state.value not in ("started", "authorising")
    told_now = unshown and not terminal.read_only
    emit(
        args,
        {"last_payment": record.to_json(), "shown_now": told_now},
        _last_text(record, told_now, terminal.read_only),
    )
    sys.stdout.flush()
    if told_now:
        terminal.mark_shown([txn_id], "cli")
    return 0
