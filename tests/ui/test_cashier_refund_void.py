"""Refund and void at the counter, behind the supervisor's PIN (no window): found, chosen, authorised, done;
and every refusal in words: the PIN wrong, locked or not yet chosen, more than is left, the money rule."""

from __future__ import annotations

from pathlib import Path

from terminal import registry
from terminal.lifecycle import State
from tests.ui.cashier_steps import PIN, key_pin, sell, set_pin, until
from tests.ui.conftest import App
from ui.screens.journal import Journal
from ui.screens.pin import SupervisorPin
from ui.screens.receipt import ReceiptView
from ui.screens.refund import RefundAmount
from ui.screens.sale import PaymentOutcome, PresentCard


def _refund_screen(app: App, txn_id: str) -> RefundAmount:
    journal = app.session.screen("journal", Journal)
    journal.open("refund")
    app.settle()
    assert [row["txn_id"] for row in journal.rows] == [txn_id]
    journal.select(txn_id)
    app.settle()
    assert app.at == "refund"
    return app.session.screen("refund", RefundAmount)


def test_a_part_refund_without_the_card_then_the_rest_tapping_it(app: App, data_dir: Path) -> None:
    set_pin(data_dir)
    sale_id = sell(app, "2000").txn_id
    refund = _refund_screen(app, sale_id)
    assert refund.left == 2000 and refund.digits == "2000" and refund.amount_text == "20.00 EUR"
    assert refund.left_text == "Left to refund: 20.00 EUR" and refund.can_refund
    refund.press("clear")
    for key in "500":
        refund.press(key)
    refund.refund(present_card=False)
    pin = app.session.screen("supervisor_pin", SupervisorPin)
    assert app.at == "supervisor_pin"
    assert pin.purpose.startswith("Refund 5.00 EUR (to the sale's card, without the card)\nOf: Sale 20.00 EUR")
    key_pin(app)
    result = app.session.screen("result", PaymentOutcome)
    assert app.at == "result" and result.approved and result.kind_text == "Refund"
    assert result.amount_text == "5.00 EUR" and "476173******0010" in result.card_text

    refund = _refund_screen(app, sale_id)
    assert refund.left == 1500 and refund.refunded_text == "Already refunded: 5.00 EUR"
    refund.press("0")  # 150.00: more than is left
    assert not refund.can_refund and refund.over_text == "At most 15.00 EUR is left to refund"
    refund.full()
    assert refund.amount == 1500 and refund.can_refund and refund.over_text == ""
    refund.refund(present_card=True)
    key_pin(app)
    assert app.at == "result" and result.approved and result.amount_text == "15.00 EUR"
    present = app.session.screen("present_card", PresentCard)
    assert present.lights == 4 and present.kind_text == "Refund"  # the card was read, for a refund

    refund.open(sale_id)
    app.settle()
    assert not refund.can_refund and refund.error and refund.message == "No refund: it has been refunded in full"
    refunds = app.terminal.transactions(original_txn_id=sale_id)
    assert sorted(r.amount for r in refunds) == [500, 1500]


def test_a_wrong_pin_refunds_nothing_and_cancel_goes_back(app: App, data_dir: Path) -> None:
    set_pin(data_dir)
    sale_id = sell(app, "2000").txn_id
    refund = _refund_screen(app, sale_id)
    refund.refund(present_card=False)
    pin = app.session.screen("supervisor_pin", SupervisorPin)
    key_pin(app, "9517")
    assert app.at == "supervisor_pin" and pin.error and pin.message == "Wrong PIN: 4 tries left"
    assert pin.dots == "" and not pin.can_ok
    pin.press("1")
    pin.press("2")
    pin.press("back")
    assert pin.dots == "●"
    pin.cancel()
    assert app.at == "refund"
    assert app.terminal.transactions(original_txn_id=sale_id) == []


def test_five_wrong_pins_lock_the_supervisor_pin(app: App, data_dir: Path) -> None:
    set_pin(data_dir)
    sale_id = sell(app, "2000").txn_id
    refund = _refund_screen(app, sale_id)
    refund.refund(present_card=False)
    pin = app.session.screen("supervisor_pin", SupervisorPin)
    for _ in range(5):
        key_pin(app, "9517")
    assert pin.error and pin.message == "Too many wrong tries: locked for 5 min"
    key_pin(app)  # the right one, while locked: not looked at
    assert app.at == "supervisor_pin" and pin.message == "Too many wrong tries: locked for 5 min"
    assert app.terminal.transactions(original_txn_id=sale_id) == []


def test_a_fresh_terminal_asks_for_a_supervisor_pin_to_be_chosen(app: App, data_dir: Path) -> None:
    sale_id = sell(app, "2000").txn_id
    refund = _refund_screen(app, sale_id)
    refund.refund(present_card=False)
    pin = app.session.screen("supervisor_pin", SupervisorPin)
    app.settle()
    assert pin.stage == "choose" and pin.message.startswith("No supervisor PIN is set yet")
    key_pin(app, "1234")  # refused by the rules, once confirmed
    key_pin(app, "1234")
    assert pin.stage == "choose" and pin.message == "PIN refused: a straight run of digits (such as 1234 or 9876)"
    key_pin(app, PIN)
    assert pin.stage == "confirm" and pin.message == "Key the new PIN again"
    key_pin(app, "4827")
    assert pin.stage == "choose" and pin.message == "The two PINs differ: choose again"
    key_pin(app, PIN)
    key_pin(app, PIN)
    assert app.at == "result" and app.session.screen("result", PaymentOutcome).approved
    from terminal.pins import PinStore

    assert PinStore(data_dir).check("supervisor", PIN)


def test_the_money_rule_refusal_is_shown_in_words_and_nothing_is_refunded(app: App, data_dir: Path) -> None:
    set_pin(data_dir)
    sale_id = sell(app, "2000").txn_id
    refund = _refund_screen(app, sale_id)
    assert refund.left == 2000
    app.terminal.refund(1500, 978, original_txn_id=sale_id)  # meanwhile, at another till
    refund.refund(present_card=False)  # the screen still offers 20.00
    key_pin(app)
    assert app.at == "refund" and refund.error
    assert refund.message.startswith("Not refunded: Refund of 20.00 EUR refused: ")
    assert "5.00 EUR left" in refund.message
    until(app, lambda: refund.left == 500)  # read again
    assert [r.amount for r in app.terminal.transactions(original_txn_id=sale_id)] == [1500]


def test_another_card_presented_is_refused_unless_asked_for(app: App, data_dir: Path) -> None:
    set_pin(data_dir)
    sale_id = sell(app, "2000").txn_id
    app.terminal.reader = registry.open_reader("sim:card=mc-cda-online")
    refund = _refund_screen(app, sale_id)
    refund.refund(present_card=True)
    key_pin(app)
    assert app.at == "refund" and refund.error and "is not the card of" in refund.message
    assert app.terminal.transactions(original_txn_id=sale_id) == []
    refund.toggle_other_card()
    refund.refund(present_card=False)  # another card can only be presented: it is
    assert "to another card, presented" in app.session.screen("supervisor_pin", SupervisorPin).purpose
    key_pin(app)
    result = app.session.screen("result", PaymentOutcome)
    assert app.at == "result" and result.approved and result.kind_text == "Refund"


def test_a_void_behind_the_pin_and_what_it_leaves(app: App, data_dir: Path) -> None:
    set_pin(data_dir)
    sale_id = sell(app, "1234").txn_id
    journal = app.session.screen("journal", Journal)
    journal.open("void")
    app.settle()
    journal.select(sale_id)
    app.settle()
    receipt = app.session.screen("receipt", ReceiptView)
    assert app.at == "receipt" and receipt.can_void and receipt.can_refund
    receipt.void()
    pin = app.session.screen("supervisor_pin", SupervisorPin)
    assert pin.purpose.startswith("Void: Sale 12.34 EUR · visa ••0010") and sale_id in pin.purpose
    key_pin(app)
    result = app.session.screen("result", PaymentOutcome)
    assert app.at == "result" and result.voided and result.title == "Voided" and result.kind_text == "Void"
    voided = app.terminal.transaction(sale_id)
    assert voided is not None and voided.state is State.VOIDED
    result.receipt()
    app.settle()
    assert not receipt.can_void and receipt.void_note == "No void: it was voided"
    assert not receipt.can_refund and receipt.status == "Voided" and "VOIDED" in receipt.receipt_text


def test_a_void_refused_by_the_terminal_is_told_on_the_result(app: App, data_dir: Path) -> None:
    set_pin(data_dir)
    sale_id = sell(app, "1234").txn_id
    receipt = app.session.screen("receipt", ReceiptView)
    receipt.open(sale_id)
    app.settle()
    app.terminal.void(sale_id)  # meanwhile, elsewhere
    receipt.void()
    key_pin(app)
    result = app.session.screen("result", PaymentOutcome)
    assert app.at == "result" and not result.approved and result.title == "Not completed"
    assert result.kind_text == "Void" and "cannot be voided: it was voided" in result.reason


def test_a_declined_sale_offers_neither(app: App) -> None:
    sale = sell(app, "1051")
    receipt = app.session.screen("receipt", ReceiptView)
    sale.receipt()
    app.settle()
    assert receipt.status == "Declined" and receipt.tone == "bad"
    assert not receipt.can_refund and receipt.refund_note == "No refund: it was declined: nothing was paid"
    assert not receipt.can_void
