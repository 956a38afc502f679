"""The QR tender as a cashier uses it: "QR" on the amount screen, the code on the screen, the app pays (no window).

The terminal is real (its journal on disk), its host the simulator's in-process one (``memory``), whose
wallet app pays the code drawn on the screen, read back from the screen's own modules with zbar.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from simulator.host.admin import AdminRefused
from simulator.host.inprocess import MEMORY_HOST_DIR
from simulator.host.wallet_admin import pay_payload
from tests.ui.conftest import App
from ui.screens.qr_show import ShowQr
from ui.screens.sale import AmountEntry, PaymentOutcome


def _drawn_code(app: App, screen: ShowQr, seconds: float = 20.0) -> str:
    """The payload of the code on the screen, read from its modules as a phone reads it."""
    from PIL import Image
    from pyzbar.pyzbar import ZBarSymbol, decode

    deadline = time.monotonic() + seconds
    while not screen.qr_rows and time.monotonic() < deadline:
        app.dispatch.drain()
        time.sleep(0.02)
    rows = screen.qr_rows
    assert rows, "no code was drawn"
    scale = 8
    image = Image.new("L", (len(rows[0]) * scale, len(rows) * scale), 255)
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark == "1":
                image.paste(0, (x * scale, y * scale, (x + 1) * scale, (y + 1) * scale))
    found = decode(image, symbols=[ZBarSymbol.QRCODE])
    assert found, "the code on the screen does not scan"
    return found[0].data.decode("utf-8")


def _key(app: App, digits: str) -> AmountEntry:
    amount = app.session.screen("amount", AmountEntry)
    for key in digits:
        amount.press(key)
    return amount


def test_the_qr_tender_shows_a_code_the_app_pays(app: App, data_dir: Path) -> None:
    amount = _key(app, "1234")
    assert "qr" in amount.tenders and amount.qr_label == "QR"
    amount.charge("qr")
    assert app.at == "show_qr"
    screen = app.session.screen("show_qr", ShowQr)
    payload = _drawn_code(app, screen)
    assert payload.startswith("000201010212") and "540512.34" in payload
    assert screen.message == "Waiting for the customer" and screen.amount_text == "12.34 EUR"
    pay_payload(data_dir / MEMORY_HOST_DIR, payload, "alice")
    app.settle(timeout=60)
    assert app.at == "result"
    result = app.session.screen("result", PaymentOutcome)
    assert result.approved and result.title == "Approved" and "qr-simpay" in result.card_text


def test_cancel_closes_the_order_and_nothing_is_charged(app: App, data_dir: Path) -> None:
    _key(app, "500").charge("qr")
    screen = app.session.screen("show_qr", ShowQr)
    payload = _drawn_code(app, screen)
    screen.cancel()
    assert not screen.can_cancel and screen.message == "Closing the order"
    app.settle(timeout=60)
    result = app.session.screen("result", PaymentOutcome)
    assert not result.approved and result.title == "Not completed"
    with pytest.raises(AdminRefused):
        pay_payload(data_dir / MEMORY_HOST_DIR, payload, "alice")  # closed at the host: never charged
