"""The day as a register reads it: the open batch's totals, and the terminal's status.

Plain functions of the Terminal facade, as JSON; the desk runs them (the
totals on its worker: reading the open batch may open one, a write).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from terminal.facade import Terminal
from terminal.money import currency, format_amount
from terminal.notices import OutcomeRecord, describe

__all__ = ["MAX_UNSHOWN_LISTED", "echo", "status", "totals", "unshown"]

#: How many payments nobody was shown the status lists (the newest; ``unshown_count`` says how many in all).
MAX_UNSHOWN_LISTED = 50


def _code(numeric: int) -> str:
    try:
        return currency(numeric).code
    except ValueError:
        return f"{numeric:03d}"


def _money(amount: int, numeric: int) -> str:
    try:
        return format_amount(amount, currency(numeric))
    except ValueError:
        return f"{amount} ({numeric:03d})"


def _url(device: object) -> str | None:
    """How a device or host link names itself (a device URL: never a secret), or its kind."""
    if device is None:
        return None
    url = getattr(device, "url", None)
    return url if isinstance(url, str) else type(device).__name__


def totals(terminal: Terminal) -> dict[str, Any]:
    """The open batch's approved payments per scheme, currency and kind, summed per currency and kind, and the queue."""
    batch_id, lines = terminal.batch_lines()
    info = terminal.batch(batch_id) or {}
    per_currency: dict[tuple[int, str], list[int]] = {}
    shown = []
    for line in lines:
        shown.append(
            {
                "scheme": line.scheme,
                "currency": _code(line.currency),
                "kind": line.kind,
                "count": line.count,
                "amount": line.amount,
                "amount_text": _money(line.amount, line.currency),
            }
        )
        acc = per_currency.setdefault((line.currency, line.kind), [0, 0])
        acc[0] += line.count
        acc[1] += line.amount
    summed = [
        {"currency": _code(cur), "kind": kind, "count": n, "amount": amount, "amount_text": _money(amount, cur)}
        for (cur, kind), (n, amount) in sorted(per_currency.items())
    ]
    return {
        "batch_id": batch_id,
        "opened_at": info.get("opened_at"),
        "lines": shown,
        "totals": summed,
        "saf": terminal.offline_status().to_json(),
    }


def unshown(record: OutcomeRecord, last: bool = False) -> dict[str, Any]:
    """A payment nobody was shown, as the status lists it: ``id`` is the register's key when it asked for it."""
    key = record.request_key
    action = f"GET /v1/payments/{key} shows it" if key is not None else None
    return record.to_json() | {
        "id": key if key is not None else record.result.txn_id,
        "text": describe(record, last=last, action=action),
    }


def status(terminal: Terminal) -> dict[str, Any]:
    """The devices, the host as last heard from, the queues, and the payments nobody was shown (reads only).

    ``unshown``: payments with an outcome that no register fetched and no
    screen or command showed, oldest first (what a restart after a crash
    leaves, or a register that has not fetched its last payment yet); a
    register fetching one (``GET /v1/payments/{id}``) marks it shown.
    """
    saf = terminal.offline_status()
    records = terminal.unshown_payments()
    listed = records[-MAX_UNSHOWN_LISTED:]
    return {
        "terminal_id": terminal.config.terminal_id,
        "merchant_id": terminal.config.merchant_id,
        "reader": {"configured": terminal.reader is not None, "url": _url(terminal.reader)},
        "printer": {"configured": terminal.printer is not None, "url": _url(terminal.printer)},
        "host": {
            "configured": terminal.host is not None,
            "name": _url(terminal.host),
            "last_attempt_at": saf.last_attempt_at,
            "last_error": saf.last_error,
        },
        "saf": saf.to_json(),
        "unshown": [unshown(r, last=r is records[-1]) for r in listed],
        "unshown_count": len(records),
    }


def echo(terminal: Terminal) -> dict[str, Any]:
    """An echo to the host now: the diagnostics' host test, as JSON (``passed``, ``reason``, round trip)."""
    from terminal.diag_checks import host_test

    return host_test(terminal.host, Path(".")).to_json()
