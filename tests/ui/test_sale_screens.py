"""The sale's screens as a cashier uses them: keypad, charge, present card, the result (no window)."""

from __future__ import annotations

from terminal import registry
from tests.ui.conftest import App
from ui.screens.sale import AmountEntry, PaymentOutcome, PresentCard


def test_keying_the_amount_in_minor_units(app: App) -> None:
    amount = app.session.screen("amount", AmountEntry)
    for key in "1234":
        amount.press(key)
    assert amount.amount == 1234 and amount.amount_text == "12.34 EUR" and amount.can_charge
    amount.press("back")
    assert amount.amount_text == "1.23 EUR"
    amount.press("clear")
    assert amount.amount == 0 and not amount.can_charge
    for key in "0000":
        amount.press(key)
    assert amount.digits == "" and not amount.can_charge


def test_a_sale_in_three_touches_approved_online(app: App) -> None:
    amount = app.session.screen("amount", AmountEntry)
    for key in "2000":
        amount.press(key)
    amount.charge("card")  # touch 1; the card's tap is touch 2
    assert app.at == "present_card"
    present = app.session.screen("present_card", PresentCard)
    assert present.amount_text == "20.00 EUR" and present.prompt == "Present card" and present.lights == 1
    app.settle()
    assert app.at == "result"
    result = app.session.screen("result", PaymentOutcome)
    assert result.approved and result.title == "Approved" and result.amount_text == "20.00 EUR"
    assert "476173******0010" in result.card_text
    assert present.lights == 4 and present.message  # the Book A messages came live
    assert amount.digits == ""  # ready for the next customer


def test_a_decline_is_told_in_words(app: App) -> None:
    amount = app.session.screen("amount", AmountEntry)
    for key in "1051":
        amount.press(key)
    amount.charge()
    app.settle()
    result = app.session.screen("result", PaymentOutcome)
    assert not result.approved and result.title == "Declined"
    assert result.reason == "Insufficient funds (51)"


def test_the_chinese_screens(app: App) -> None:
    app.session.tr.set_language("zh_CN")
    amount = app.session.screen("amount", AmountEntry)
    for key in "1234":
        amount.press(key)
    assert amount.amount_text == "€12.34"


def test_cancel_while_the_card_is_awaited(app: App) -> None:
    app.terminal.reader = registry.open_reader("sim:card=visa-qvsdc-online?present-after=20")
    amount = app.session.screen("amount", AmountEntry)
    amount.press("5")
    amount.charge()
    present = app.session.screen("present_card", PresentCard)
    assert present.can_cancel
    import time

    time.sleep(0.3)
    present.cancel()
    app.settle()
    result = app.session.screen("result", PaymentOutcome)
    assert app.at == "result" and not result.approved and result.title == "Not completed"
    assert "cancelled" in result.reason.lower()
