"""X and Z reports: the batch's totals per currency and card scheme, as fixed-width text.

An X report reads the open batch and changes nothing; a Z report is printed
when the batch is closed and shows the host's reconciliation result.

>>> from datetime import UTC, datetime
>>> from terminal.host import TotalsLine
>>> lines = [TotalsLine("VISA", 978, "sale", 2, 3000), TotalsLine("VISA", 978, "refund", 1, 500)]
>>> text = render_report("X", 7, "T0000001", datetime(2024, 5, 1, 8, tzinfo=UTC), None, lines)
>>> [line for line in text.splitlines() if line.startswith("NET")]
['NET                              25.00 EUR']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal

from terminal.host import TotalsLine
from terminal.money import Currency, currency, format_amount

__all__ = ["CurrencyTotals", "ReportKind", "render_report", "totals_by_currency"]

ReportKind = Literal["X", "Z"]
_KINDS = ("sale", "refund")
MIN_WIDTH = 32
_COUNT_WIDTH = 6


@dataclass(frozen=True)
class CurrencyTotals:
    """Sales and refunds of one currency: (scheme, count, amount) rows sorted by scheme."""

    currency: Currency
    sales: tuple[tuple[str, int, int], ...]
    refunds: tuple[tuple[str, int, int], ...]

    @property
    def sales_count(self) -> int:
        return sum(count for _, count, _ in self.sales)

    @property
    def sales_amount(self) -> int:
        return sum(amount for _, _, amount in self.sales)

    @property
    def refunds_count(self) -> int:
        return sum(count for _, count, _ in self.refunds)

    @property
    def refunds_amount(self) -> int:
        return sum(amount for _, _, amount in self.refunds)

    @property
    def net_amount(self) -> int:
        """Sales minus refunds, in minor units (may be negative)."""
        return self.sales_amount - self.refunds_amount


def totals_by_currency(lines: Sequence[TotalsLine]) -> list[CurrencyTotals]:
    """Group and sum the lines (repeated scheme/currency/kind lines add up), sorted by currency code.

    ValueError for an unknown kind, a negative count or amount, or an unknown currency.
    """
    sums: dict[int, dict[str, dict[str, list[int]]]] = {}
    for line in lines:
        if line.kind not in _KINDS:
            raise ValueError(f"totals line kind must be 'sale' or 'refund', got {line.kind!r}")
        if line.count < 0 or line.amount < 0:
            raise ValueError(f"totals line with a negative count or amount: {line!r}")
        currency(line.currency)  # MoneyError (a ValueError) for an unknown currency
        by_kind = sums.setdefault(line.currency, {kind: {} for kind in _KINDS})
        row = by_kind[line.kind].setdefault(line.scheme, [0, 0])
        row[0] += line.count
        row[1] += line.amount
    result = []
    for numeric, by_kind in sums.items():

        def rows(kind: str, by_kind: dict[str, dict[str, list[int]]] = by_kind) -> tuple[tuple[str, int, int], ...]:
            return tuple((scheme, c, a) for scheme, (c, a) in sorted(by_kind[kind].items()))

        result.append(CurrencyTotals(currency(numeric), rows("sale"), rows("refund")))
    return sorted(result, key=lambda t: t.currency.code)


def _signed_amount(minor: int, cur: Currency) -> str:
    return ("-" if minor < 0 else "") + format_amount(abs(minor), cur)


def _pair(left: str, right: str, width: int) -> list[str]:
    if len(left) + 1 + len(right) <= width:
        return [left + right.rjust(width - len(left))]
    return [left, right.rjust(width)]


def _row(label: str, count: int | str, amount: str, width: int, amount_width: int) -> list[str]:
    """label, then count and amount in right-aligned columns (the label gets its own line if too long)."""
    columns = f"{count!s:>{_COUNT_WIDTH}} {amount:>{amount_width}}"
    if len(label) + len(columns) > width:
        return [label, columns.rjust(width)]
    return [label + columns.rjust(width - len(label))]


def _when(at: datetime, tz: tzinfo | None) -> str:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("report times must be aware datetimes")
    local = at.astimezone(tz) if tz is not None else at
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or "")


def render_report(
    kind: ReportKind,
    batch_id: int,
    terminal_id: str,
    opened_at: datetime,
    closed_at: datetime | None,
    lines: Sequence[TotalsLine],
    saf_pending: int = 0,
    in_balance: bool | None = None,
    *,
    voids: Sequence[TotalsLine] = (),
    tz: tzinfo | None = None,
    width: int = 42,
) -> str:
    """An X (batch open) or Z (batch closed) report as fixed-width text ending with a newline.

    ``voids`` are the payments of the batch that were voided (count and
    amount per scheme, currency and kind): they do not count in the totals,
    and are listed after them so that a cashier sees where a payment went.

    ``in_balance`` is the host's settlement answer for a Z report (None: not
    known); an X report must not have ``closed_at`` or ``in_balance``.  A Z
    report needs ``closed_at`` and an empty SAF queue (a batch closes only
    when every stored payment has been forwarded).
    """
    if kind not in ("X", "Z"):
        raise ValueError(f"report kind must be 'X' or 'Z', got {kind!r}")
    if width < MIN_WIDTH:
        raise ValueError(f"width must be at least {MIN_WIDTH} columns")
    if saf_pending < 0:
        raise ValueError("saf_pending must not be negative")
    if kind == "X" and (closed_at is not None or in_balance is not None):
        raise ValueError("an X report is for an open batch: no closed_at, no in_balance")
    if kind == "Z":
        if closed_at is None:
            raise ValueError("a Z report needs closed_at")
        if saf_pending:
            raise ValueError("a batch closes only with an empty SAF queue")
    totals = totals_by_currency(lines)

    out: list[str] = [f"{kind} REPORT".center(width).rstrip()]
    out.append(("BATCH CLOSED" if kind == "Z" else "BATCH OPEN - NOT SETTLED").center(width).rstrip())
    out += _pair(f"BATCH {batch_id}", f"TID {terminal_id}", width)
    out += _pair("OPENED", _when(opened_at, tz), width)
    if closed_at is not None:
        out += _pair("CLOSED", _when(closed_at, tz), width)
    if kind == "X" or saf_pending:
        out += _pair("SAF PENDING", str(saf_pending), width)
    out.append("=" * width)
    if not totals:
        out.append("NO TRANSACTIONS".center(width).rstrip())
        out.append("=" * width)
    for cur_totals in totals:
        cur = cur_totals.currency
        out.append(f"--- {cur.code} ({cur.numeric:03d}) ".ljust(width, "-"))
        amounts = [format_amount(a, cur) for _, _, a in cur_totals.sales + cur_totals.refunds]
        amounts += [
            format_amount(cur_totals.sales_amount, cur),
            format_amount(cur_totals.refunds_amount, cur),
        ]
        amount_width = max(len("AMOUNT"), *map(len, amounts))
        out += _row("", "COUNT", "AMOUNT", width, amount_width)
        for title, rows, count, amount in (
            ("SALES", cur_totals.sales, cur_totals.sales_count, cur_totals.sales_amount),
            ("REFUNDS", cur_totals.refunds, cur_totals.refunds_count, cur_totals.refunds_amount),
        ):
            out.append(title)
            for scheme, scheme_count, scheme_amount in rows:
                out += _row(f"  {scheme}", scheme_count, format_amount(scheme_amount, cur), width, amount_width)
            out += _row(f"  TOTAL {title}", count, format_amount(amount, cur), width, amount_width)
        out += _pair("NET", _signed_amount(cur_totals.net_amount, cur), width)
        out.append("=" * width)
    if voids:
        out.append("VOIDED (NOT IN THE TOTALS)")
        for line in sorted(voids, key=lambda v: (v.currency, v.kind, v.scheme)):
            cur = currency(line.currency)
            out += _pair(f"  {line.kind.upper()} {line.scheme} x{line.count}", format_amount(line.amount, cur), width)
        out.append("=" * width)
    if kind == "Z":
        balance = {True: "IN BALANCE", False: "OUT OF BALANCE", None: "BALANCE NOT CONFIRMED"}[in_balance]
        out.append(f"HOST: {balance}".center(width).rstrip())
    return "\n".join(out) + "\n"
