"""The journal's list and its search (no window): by receipt number, amount, date and the card tapped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from terminal import registry
from tests.ui.cashier_steps import sell
from tests.ui.conftest import App
from ui.screens.describe import parse_amount, period_bounds
from ui.screens.journal import Journal
from ui.screens.receipt import ReceiptView
from ui.screens.refund import RefundAmount


def _journal(app: App, mode: str = "all") -> Journal:
    journal = app.session.screen("journal", Journal)
    journal.open(mode)
    app.settle()
    return journal


def test_the_list_newest_first_in_words(app: App) -> None:
    first = sell(app, "2000").txn_id
    declined = sell(app, "1051").txn_id
    journal = _journal(app)
    assert app.at == "journal" and journal.title == "Journal" and journal.period == "today"
    assert [row["txn_id"] for row in journal.rows] == [declined, first]
    newest = journal.rows[0]
    assert (newest["kind"], newest["amount"], newest["card"], newest["status"], newest["tone"]) == (
        "Sale", "10.51 EUR", "visa ••0010", "Declined", "bad",
    )  # fmt: skip
    assert len(newest["when"]) == 5 and journal.count_text == "2 payments"
    journal.select_index(1)
    app.settle()
    assert app.at == "receipt" and app.session.screen("receipt", ReceiptView).txn_id == first
    app.session.screen("receipt", ReceiptView).back()
    assert app.at == "journal"


def test_searching_by_receipt_number_amount_and_date(app: App) -> None:
    ids = [sell(app, digits).txn_id for digits in ("2000", "1234", "2000")]
    journal = _journal(app)
    journal.set_receipt(ids[1][-5:].upper())  # the last characters, in either case
    app.settle()
    assert [row["txn_id"] for row in journal.rows] == [ids[1]]
    journal.set_receipt("")
    journal.set_amount("20,00")
    app.settle()
    assert [row["txn_id"] for row in journal.rows] == [ids[2], ids[0]]
    journal.set_amount("12.34")
    app.settle()
    assert [row["txn_id"] for row in journal.rows] == [ids[1]]
    journal.set_amount("12.3x")
    app.settle()
    assert journal.error and journal.message == "Amount not understood: 12.3x"
    journal.set_amount("")
    app.settle()
    assert not journal.error and len(journal.rows) == 3
    journal.set_period("yesterday")
    app.settle()
    assert journal.rows == () and journal.count_text == "No payments found"
    journal.set_period("week")
    app.settle()
    assert len(journal.rows) == 3
    journal.clear()
    app.settle()
    assert journal.period == "today" and journal.amount_query == "" and len(journal.rows) == 3
    with pytest.raises(ValueError):
        journal.set_period("fortnight")


def test_tapping_the_card_keeps_its_payments(app: App) -> None:
    visa = sell(app, "2000").txn_id
    app.terminal.reader = registry.open_reader("sim:card=mc-cda-online")
    mastercard = sell(app, "1500").txn_id
    journal = _journal(app)
    assert len(journal.rows) == 2
    app.terminal.reader = registry.open_reader("sim:card=visa-qvsdc-online")
    journal.tap_card()
    assert journal.reading_card and journal.message == "Present the card" and journal.tap_label == "Cancel"
    app.settle()
    assert not journal.reading_card and journal.card_text == "Card 476173******0010"
    assert [row["txn_id"] for row in journal.rows] == [visa]
    assert app.terminal.transactions() and len(app.terminal.transactions()) == 2  # the tap paid nothing
    journal.clear_card()
    app.settle()
    assert {row["txn_id"] for row in journal.rows} == {visa, mastercard}


def test_the_refund_mode_lists_sales_and_opens_their_refund(app: App) -> None:
    sale = sell(app, "2000").txn_id
    app.terminal.refund(500, 978, original_txn_id=sale)
    journal = _journal(app, "refund")
    assert journal.title == "Refund: find the sale"
    assert [row["txn_id"] for row in journal.rows] == [sale]
    journal.select(sale)
    app.settle()
    assert app.at == "refund" and app.session.screen("refund", RefundAmount).left == 1500
    app.session.screen("refund", RefundAmount).back()
    assert app.at == "journal"
    journal.back()
    assert app.at == "menu"


def test_the_chinese_list(app: App) -> None:
    sell(app, "2000")
    app.session.tr.set_language("zh_CN")
    journal = _journal(app)
    assert journal.title == "交易记录" and journal.rows[0]["kind"] == "消费" and journal.rows[0]["status"] == "交易成功"
    assert journal.rows[0]["amount"] == "€20.00" and dict(journal.periods)["today"] == "今天"


def test_amounts_and_periods_as_the_cashier_writes_them() -> None:
    assert [parse_amount(t, 978) for t in ("12.34", "12,3", ".5", "12", "1.2.3", "-1", "1e3")] == [
        1234, 1230, 50, 1200, None, None, None,
    ]  # fmt: skip
    now = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
    assert period_bounds("all", now) == (None, None)
    since, until = period_bounds("yesterday", now)
    assert since is not None and until is not None and since < until
    with pytest.raises(ValueError):
        period_bounds("ever", now)
