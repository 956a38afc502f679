"""The day as a register reads it: the open batch's totals, and the terminal's status.

Plain functions of the Terminal facade, as JSON; the desk runs them (the
totals on its worker: reading the open batch may open one, a write).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from terminal.facade import Terminal
from terminal.money import currency, format_amount

__all__ = ["echo", "status", "totals"]


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


def status(terminal: Terminal) -> dict[str, Any]:
    """The devices, the host as last heard from, and the queues (reads only)."""
    saf = terminal.offline_status()
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
    }


def echo(terminal: Terminal) -> dict[str, Any]:
    """An echo to the host now: the diagnostics' host test, as JSON (``passed``, ``reason``, round trip)."""
    from terminal.diag_checks import host_test

    return host_test(terminal.host, Path(".")).to_json()
