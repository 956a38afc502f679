"""The result's receipt options, the receipt on screen, reprint, the e-receipt, and the menu (no window)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulator.net_printer import VirtualNetworkPrinter
from terminal import registry
from tests.ui.cashier_steps import sell
from tests.ui.conftest import App
from ui.screens.journal import Journal
from ui.screens.menu import CashierMenu
from ui.screens.receipt import ReceiptView, e_receipt_text, qr_rows
from ui.screens.sale import AmountEntry


@pytest.fixture
def printer(app: App) -> Iterator[VirtualNetworkPrinter]:
    virtual = VirtualNetworkPrinter().start()
    device = registry.open_printer(virtual.url)
    app.terminal.printer = device
    yield virtual
    device.close()
    virtual.stop()


def test_without_a_printer_the_result_offers_no_receipt_or_an_e_receipt(app: App) -> None:
    result = sell(app, "2000")
    assert result.approved and result.kind_text == "Sale"
    assert result.can_receipt and not result.printed and result.printed_text == ""
    assert (result.next_label, result.e_receipt_label, result.receipt_label) == ("No receipt", "E-receipt", "Receipt")
    result.receipt()
    app.settle()
    receipt = app.session.screen("receipt", ReceiptView)
    assert app.at == "receipt" and receipt.showing == "text"
    text = receipt.receipt_text
    assert "20.00 EUR" in text and "CUSTOMER COPY" in text and text.rstrip().endswith(result.txn_id)
    assert "DUPLICATE" not in text and "TVR" not in text  # the customer's copy
    assert max(len(line) for line in text.splitlines()) <= 42
    assert receipt.heading == "Sale · 20.00 EUR · visa ••0010" and receipt.status == "Approved"
    assert not receipt.can_print and receipt.message == "No receipt printer is configured"
    receipt.back()
    assert app.at == "result"


def test_the_e_receipt_is_a_qr_code_of_a_short_text_receipt(app: App) -> None:
    result = sell(app, "2000")
    result.e_receipt()
    app.settle()
    receipt = app.session.screen("receipt", ReceiptView)
    assert receipt.showing == "qr" and receipt.qr_rows
    size = len(receipt.qr_rows)
    assert all(len(row) == size for row in receipt.qr_rows) and size <= 61  # coarse enough for a screen
    data = app.terminal.receipt(result.txn_id, "customer", issue=False)
    assert data.reprint  # showing the e-receipt gave the customer copy out
    text = e_receipt_text(app.terminal.receipt(result.txn_id, "customer", issue=False))
    assert f"RECEIPT {result.txn_id}" in text and "SALE 20.00 EUR APPROVED" in text
    assert "476173******0010" in text and "AB82" not in text and len(text) < 300
    assert receipt.qr_rows != qr_rows(text + "x")
    receipt.show_text()
    assert receipt.showing == "text"


def test_the_qr_code_reads_back_as_the_text(app: App) -> None:
    zbar = pytest.importorskip("pyzbar.pyzbar")
    from PIL import Image

    rows = qr_rows("RECEIPT 20261206120000-0123456789ab\nSALE 20.00 EUR APPROVED")
    scale = 8
    image = Image.new("L", (len(rows[0]) * scale, len(rows) * scale), 255)
    for y, row in enumerate(rows):
        for x, module in enumerate(row):
            if module == "1":
                image.paste(0, (x * scale, y * scale, (x + 1) * scale, (y + 1) * scale))
    decoded = zbar.decode(image)
    assert decoded and decoded[0].data.decode() == "RECEIPT 20261206120000-0123456789ab\nSALE 20.00 EUR APPROVED"


def test_with_a_printer_the_receipt_prints_by_itself_and_a_reprint_says_duplicate(
    app: App, printer: VirtualNetworkPrinter
) -> None:
    result = sell(app, "2000")
    assert result.printed and result.printed_text == "Receipt printed" and result.next_label == "Next customer"
    assert len(printer.engine.jobs()) == 1
    result.receipt()
    app.settle()
    receipt = app.session.screen("receipt", ReceiptView)
    assert receipt.can_print and receipt.print_label == "Reprint"
    assert "*** DUPLICATE ***" in receipt.receipt_text  # as a reprint would read
    receipt.print_copy()
    app.settle()
    assert receipt.message == "Printed" and not receipt.busy
    jobs = printer.engine.jobs()
    assert len(jobs) == 2 and b"DUPLICATE" in jobs[1] and b"DUPLICATE" not in jobs[0]


def test_a_printer_that_fails_is_said_in_words(app: App, printer: VirtualNetworkPrinter) -> None:
    result = sell(app, "2000")
    result.receipt()
    app.settle()
    printer.stop()
    receipt = app.session.screen("receipt", ReceiptView)
    receipt.print_copy()
    app.settle(timeout=60)
    assert receipt.error and receipt.message.startswith("Not printed: ")


def test_the_menu_reaches_every_verb_and_switches_the_language(app: App) -> None:
    amount = app.session.screen("amount", AmountEntry)
    amount.shown()
    assert amount.has_menu and amount.menu_label == "Menu"
    amount.menu()
    menu = app.session.screen("menu", CashierMenu)
    assert app.at == "menu" and menu.language_label == "简体中文"
    for verb, screen in (("journal", "journal"), ("refund", "journal"), ("void", "journal"),
                         ("x_report", "x_report"), ("day_end", "day_end")):  # fmt: skip
        getattr(menu, verb)()
        app.settle()
        assert app.at == screen, verb
        app.session.navigator.go("menu")
    assert app.session.screen("journal", Journal).mode == "void"
    menu.switch_language()
    assert app.session.tr.language == "zh_CN" and menu.refund_label == "退款" and menu.language_label == "English"
    assert amount.menu_label == "菜单"
    menu.back()
    assert app.at == "amount"
