"""terminal.reports: X / Z reports and their totals arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from terminal.host import TotalsLine
from terminal.money import MoneyError
from terminal.reports import render_report, totals_by_currency

OPENED = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
CLOSED = datetime(2024, 5, 1, 20, 15, tzinfo=UTC)

LINES = [
    TotalsLine("VISA", 978, "sale", 12, 123456),
    TotalsLine("MASTERCARD", 978, "sale", 3, 4500),
    TotalsLine("VISA", 978, "refund", 1, 2000),
    TotalsLine("JCB", 392, "sale", 2, 15000),
    TotalsLine("JCB", 392, "refund", 1, 700),
    TotalsLine("VISA", 840, "refund", 1, 99),
]


def net_line(text: str, code: str) -> str:
    """The NET line of the table for currency ``code``."""
    section = text.split(f"--- {code} ")[1]
    return next(line for line in section.splitlines() if line.startswith("NET"))


def test_totals_arithmetic_per_currency() -> None:
    totals = {t.currency.code: t for t in totals_by_currency(LINES)}
    assert list(totals) == ["EUR", "JPY", "USD"]  # sorted by code
    eur = totals["EUR"]
    assert eur.sales == (("MASTERCARD", 3, 4500), ("VISA", 12, 123456))
    assert eur.refunds == (("VISA", 1, 2000),)
    assert (eur.sales_count, eur.sales_amount) == (15, 127956)
    assert (eur.refunds_count, eur.refunds_amount) == (1, 2000)
    assert eur.net_amount == 127956 - 2000
    assert totals["JPY"].net_amount == 15000 - 700
    assert totals["USD"].net_amount == -99
    assert totals["USD"].sales == ()


def test_repeated_lines_add_up() -> None:
    lines = [TotalsLine("VISA", 978, "sale", 1, 100), TotalsLine("VISA", 978, "sale", 2, 250)]
    (eur,) = totals_by_currency(lines)
    assert eur.sales == (("VISA", 3, 350),)


def test_report_shows_per_scheme_rows_and_net_per_currency() -> None:
    text = render_report("X", 7, "T0000001", OPENED, None, LINES, saf_pending=2)
    assert "X REPORT" in text and "BATCH 7" in text and "T0000001" in text
    assert "BATCH OPEN" in text and "SAF PENDING" in text
    assert "CLOSED" not in text and "BALANCE" not in text
    lines = text.splitlines()
    assert any(line.split()[:3] == ["VISA", "12", "1234.56"] for line in lines)
    assert any(line.split()[:3] == ["MASTERCARD", "3", "45.00"] for line in lines)
    assert any(line.split()[:4] == ["TOTAL", "SALES", "15", "1279.56"] for line in lines)
    assert net_line(text, "EUR").split()[1:] == ["1259.56", "EUR"]
    # JPY has exponent 0: no decimals anywhere in its table
    assert net_line(text, "JPY").split()[1:] == ["14300", "JPY"]
    assert any(line.split()[:3] == ["JCB", "2", "15000"] for line in lines)
    assert net_line(text, "USD").split()[1:] == ["-0.99", "USD"]
    assert all(len(line) <= 42 for line in lines)


def test_negative_net_with_fraction_is_signed_correctly() -> None:
    lines = [TotalsLine("VISA", 978, "sale", 1, 100), TotalsLine("VISA", 978, "refund", 1, 1150)]
    text = render_report("X", 1, "T1", OPENED, None, lines)
    assert net_line(text, "EUR").split()[1:] == ["-10.50", "EUR"]


def test_three_decimal_currency() -> None:
    text = render_report("X", 1, "T1", OPENED, None, [TotalsLine("KNET", 414, "sale", 1, 1500)])
    assert net_line(text, "KWD").split()[1:] == ["1.500", "KWD"]


@pytest.mark.parametrize(
    ("in_balance", "mark"), [(True, "IN BALANCE"), (False, "OUT OF BALANCE"), (None, "BALANCE NOT CONFIRMED")]
)
def test_z_report_marks_the_batch_closed_with_the_host_result(in_balance: bool | None, mark: str) -> None:
    text = render_report("Z", 7, "T0000001", OPENED, CLOSED, LINES, in_balance=in_balance)
    assert "Z REPORT" in text and "BATCH CLOSED" in text
    assert "2024-05-01 20:15:00" in text
    assert f"HOST: {mark}" in text
    others = {"HOST: IN BALANCE", "HOST: OUT OF BALANCE", "HOST: BALANCE NOT CONFIRMED"} - {f"HOST: {mark}"}
    assert not any(other in text for other in others)
    assert net_line(text, "EUR").split()[1] == "1259.56"


def test_times_in_the_given_timezone() -> None:
    text = render_report(
        "Z", 7, "T1", OPENED, CLOSED, LINES, in_balance=True, tz=timezone(timedelta(hours=2))
    )
    assert "2024-05-01 10:00:00" in text and "2024-05-01 22:15:00" in text


def test_empty_batch() -> None:
    text = render_report("Z", 8, "T1", OPENED, CLOSED, [], in_balance=True)
    assert "NO TRANSACTIONS" in text and "NET" not in text


def test_report_is_deterministic_and_order_independent() -> None:
    a = render_report("X", 7, "T1", OPENED, None, LINES)
    b = render_report("X", 7, "T1", OPENED, None, list(reversed(LINES)))
    assert a == b


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("Y", 1, "T1", OPENED, None, LINES), {}),
        (("X", 1, "T1", OPENED, CLOSED, LINES), {}),  # an X report has no close time
        (("X", 1, "T1", OPENED, None, LINES), {"in_balance": True}),
        (("Z", 1, "T1", OPENED, None, LINES), {}),  # a Z report needs the close time
        (("Z", 1, "T1", OPENED, CLOSED, LINES), {"saf_pending": 1}),  # no close with a SAF backlog
        (("X", 1, "T1", OPENED, None, LINES), {"saf_pending": -1}),
        (("X", 1, "T1", datetime(2024, 5, 1), None, LINES), {}),  # naive time
        (("X", 1, "T1", OPENED, None, [TotalsLine("VISA", 978, "cashback", 1, 1)]), {}),
        (("X", 1, "T1", OPENED, None, [TotalsLine("VISA", 978, "sale", 1, -1)]), {}),
        (("X", 1, "T1", OPENED, None, LINES), {"width": 20}),
    ],
)
def test_invalid_reports_refused(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        render_report(*args, **kwargs)  # type: ignore[arg-type]


def test_unknown_currency_refused() -> None:
    with pytest.raises(MoneyError):
        render_report("X", 1, "T1", OPENED, None, [TotalsLine("VISA", 999, "sale", 1, 1)])
