"""Finding a payment by scanning its receipt's QR code (the pty scanner through the serial driver)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.pty_scanner import VirtualScanner
from terminal.bootstrap import open_terminal
from terminal.devices import set_device
from tests.ui.conftest import App
from ui.screens.journal import Journal


@pytest.fixture
def scanner() -> Iterator[VirtualScanner]:
    virtual = VirtualScanner(rate=5)
    yield virtual
    virtual.close()


@pytest.fixture
def scanning_app(tmp_path: Path, scanner: VirtualScanner) -> Iterator[App]:
    data_dir = tmp_path / "terminal"
    data_dir.mkdir()
    set_device(data_dir, "scanner", scanner.url)
    application = App(open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-online", host="memory"))
    yield application
    application.close()


def test_a_receipt_scanned_finds_its_payment(scanning_app: App, scanner: VirtualScanner) -> None:
    sale = scanning_app.terminal.sale(2000, 978)
    other = scanning_app.terminal.sale(1500, 978)
    journal = scanning_app.session.screen("journal", Journal)
    journal.open("refund")
    scanning_app.settle()
    assert journal.can_scan and journal.scan_label == "Scan receipt"
    scanner.stream([sale.txn_id], repeat=True)
    journal.scan_receipt()
    assert journal.scanning and journal.scan_label == "Cancel"
    scanning_app.settle()
    scanner.stop_stream()
    assert not journal.scanning and not journal.error
    assert journal.receipt_query == sale.txn_id
    assert [row["txn_id"] for row in journal.rows] == [sale.txn_id] and other.txn_id != sale.txn_id


def test_a_code_that_is_no_receipt_is_refused_in_words(scanning_app: App, scanner: VirtualScanner) -> None:
    journal = scanning_app.session.screen("journal", Journal)
    journal.open("all")
    scanner.stream(["4006381333931"], repeat=True)  # a product's EAN-13, not a receipt
    journal.scan_receipt()
    scanning_app.settle()
    scanner.stop_stream()
    assert journal.error and journal.message == "That code is not a receipt number of this terminal"
    assert journal.receipt_query == ""


def test_without_a_scanner_there_is_no_scan(app: App) -> None:
    journal = app.session.screen("journal", Journal)
    journal.open("all")
    app.settle()
    assert not journal.can_scan
