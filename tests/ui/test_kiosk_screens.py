"""The kiosk's screens as a customer meets them, without a window: idle in both languages, a payment
followed whoever started it, the result and back to idle, the e-receipt, the technician's ways in and out,
and devices out of order and back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulator.net_printer import VirtualNetworkPrinter
from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.devices import LazyPrinter, set_device
from terminal.offline import PaymentRefused
from terminal.pins import PinStore
from tests.ui.conftest import App
from ui.screens.kiosk import KioskIdle, KioskSettings, OutOfOrder, load_kiosk_settings
from ui.screens.kiosk_payment import KioskCard, KioskReceipt, KioskResult
from ui.screens.technician import TechnicianPin

PIN = "4826"


def until(app: App, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run the UI thread's queue (worker results, events, timers) until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s; at {app.at}")
        app.dispatch.drain()
        time.sleep(0.01)


def kiosk(data_dir: Path, reader: str = "sim:card=visa-qvsdc-online", **settings: object) -> App:
    data_dir.mkdir(parents=True, exist_ok=True)
    defaults: dict[str, object] = {"result_seconds": 1, "receipt_seconds": 1, "device_poll_seconds": 1}
    (data_dir / "kiosk.json").write_text(json.dumps(defaults | settings), encoding="utf-8")
    terminal = open_terminal(data_dir, reader_url=reader, host="memory")
    application = App(terminal, kiosk=True)
    application.session.navigator.go("idle")  # as the application starts the kiosk
    return application


@pytest.fixture
def shop(data_dir: Path) -> Iterator[App]:
    application = kiosk(data_dir, demo_amount=250)
    yield application
    application.close()


def test_only_customer_and_technician_screens(shop: App) -> None:
    names = set(shop.screens)
    assert {"idle", "out_of_order", "kiosk_card", "kiosk_result", "kiosk_receipt", "technician_pin"} <= names
    assert not names & {"amount", "present_card", "result", "menu", "refund", "journal", "day_end"}


def test_idle_speaks_both_languages_and_the_customers_choice_lasts_one_customer(shop: App) -> None:
    idle = shop.session.screen("idle", KioskIdle)
    assert idle.welcome == ("Welcome", "欢迎") and len(idle.hint) == 2 and idle.hint[1] != idle.hint[0]
    assert idle.languages == (("en", "English"), ("zh_CN", "简体中文"))
    assert idle.can_pay and idle.pay_label == "Pay 2.50 EUR"
    idle.choose_language("zh_CN")
    assert shop.session.tr.language == "zh_CN" and idle.language == "zh_CN" and idle.pay_label == "支付 €2.50"
    idle.pay()
    assert not idle.can_pay  # one touch, one payment
    until(shop, lambda: shop.at == "kiosk_result")
    result = shop.session.screen("kiosk_result", KioskResult)
    assert result.approved and result.title == "交易成功"  # the customer's language all along
    until(shop, lambda: shop.at == "idle")  # by itself, after result_seconds
    assert shop.session.tr.language == "en" and idle.language == "en"  # the next customer starts in English


def test_a_payment_started_elsewhere_is_followed_on_screen(shop: App) -> None:
    """A register (the kiosk's software, through the ECR interface) pays on its own thread."""
    shop.terminal.reader = registry.open_reader("sim:card=visa-qvsdc-online?present-after=1")
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(shop.terminal.sale(1999, 978)))
    thread.start()
    card = shop.session.screen("kiosk_card", KioskCard)
    until(shop, lambda: shop.at == "kiosk_card")
    assert card.following and card.title == "Amount to pay" and card.amount_text == "19.99 EUR"
    assert card.prompt == "Present card" and card.lights == 1 and card.lights_text == "1 of 4 lights"
    assert card.can_cancel
    assert not shop.session.screen("idle", KioskIdle).can_pay  # no second payment meanwhile
    until(shop, lambda: shop.at == "kiosk_result")
    thread.join(10)
    result = shop.session.screen("kiosk_result", KioskResult)
    assert result.approved and result.amount_text == "19.99 EUR" and "476173******0010" in result.card_text
    assert result.can_e_receipt and not result.can_print  # no printer configured: nothing to print
    assert result.countdown_text == "Back to the start in 1 s"
    assert card.lights == 4 and not card.following
    until(shop, lambda: shop.at == "idle")


def test_cancelled_before_the_card_the_customer_is_told(shop: App) -> None:
    shop.terminal.reader = registry.open_reader("sim:card=visa-qvsdc-online?present-after=20")
    errors: list[BaseException] = []

    def pay() -> None:
        try:
            shop.terminal.sale(500, 978)
        except PaymentRefused as exc:
            errors.append(exc)

    thread = threading.Thread(target=pay)
    thread.start()
    until(shop, lambda: shop.at == "kiosk_card")
    time.sleep(0.2)
    shop.session.screen("kiosk_card", KioskCard).cancel()
    until(shop, lambda: shop.at == "kiosk_result")
    thread.join(10)
    result = shop.session.screen("kiosk_result", KioskResult)
    assert errors and not result.approved and result.title == "Not completed"
    assert "cancelled" in result.reason.lower() and not result.can_e_receipt
    result.done()  # "Done" at once
    assert shop.at == "idle"


def test_a_decline_says_why(shop: App) -> None:
    shop.session.run(lambda t: t.sale(1051, 978), lambda _: None, lambda _: None)
    until(shop, lambda: shop.at == "kiosk_result")
    result = shop.session.screen("kiosk_result", KioskResult)
    assert result.title == "Declined" and result.reason == "Insufficient funds (51)" and not result.can_e_receipt


def test_the_e_receipt_is_a_qr_code_of_the_receipt(shop: App) -> None:
    from PIL import Image

    shop.session.screen("idle", KioskIdle).pay()
    until(shop, lambda: shop.at == "kiosk_result")
    result = shop.session.screen("kiosk_result", KioskResult)
    result.e_receipt()
    assert shop.at == "kiosk_receipt"
    receipt = shop.session.screen("kiosk_receipt", KioskReceipt)
    until(shop, lambda: bool(receipt.qr_png))
    assert receipt.amount_text == "2.50 EUR" and receipt.title == "Scan the code to keep your receipt"
    assert Image.open(receipt.qr_png).size[0] > 200
    until(shop, lambda: shop.at == "idle")  # after receipt_seconds
    assert shop.terminal.receipt(result.txn_id or "", issue=False).reprint  # it was given out


def test_without_a_demonstration_amount_nothing_on_screen_starts_a_payment(data_dir: Path) -> None:
    app = kiosk(data_dir)
    try:
        idle = app.session.screen("idle", KioskIdle)
        assert idle.settings.demo_amount is None and not idle.can_pay and idle.pay_label == ""
        idle.pay()
        app.settle()
        assert app.terminal.transactions() == [] and app.at == "idle"
    finally:
        app.close()


def test_kiosk_settings_unusable_values_take_their_defaults(tmp_path: Path) -> None:
    (tmp_path / "kiosk.json").write_text(
        json.dumps({"language": "fr", "demo_amount": -5, "result_seconds": 0, "colour": "red", "pin_seconds": 20}),
        encoding="utf-8",
    )
    assert load_kiosk_settings(tmp_path) == KioskSettings(pin_seconds=20)
    (tmp_path / "kiosk.json").write_text("{not json", encoding="utf-8")
    assert load_kiosk_settings(tmp_path) == KioskSettings()
    assert load_kiosk_settings(tmp_path / "nowhere") == KioskSettings()


def test_the_kiosk_starts_in_its_own_language(data_dir: Path) -> None:
    app = kiosk(data_dir, language="zh_CN")
    try:
        assert app.session.tr.language == "zh_CN"
        assert app.session.screen("idle", KioskIdle).welcome == ("Welcome", "欢迎")  # both, always
    finally:
        app.close()


# -- the technician's ways in and out ------------------------------------------------------------


def test_three_taps_in_the_corner_ask_for_the_technician_pin(shop: App) -> None:
    idle = shop.session.screen("idle", KioskIdle)
    idle.corner()
    idle.corner()
    assert shop.at == "idle"
    idle.corner()
    pin = shop.session.screen("technician_pin", TechnicianPin)
    assert shop.at == "technician_pin" and pin.purpose == "menu"
    pin.cancel()
    assert shop.at == "idle"


def test_slow_taps_do_not_open_it(shop: App, monkeypatch: pytest.MonkeyPatch) -> None:
    idle = shop.session.screen("idle", KioskIdle)
    now = [100.0]
    monkeypatch.setattr("ui.screens.kiosk.time.monotonic", lambda: now[0])
    for _ in range(3):
        idle.corner()
        now[0] += 2.0
    assert shop.at == "idle"


def test_closing_the_kiosk_asks_for_the_technician_pin(shop: App) -> None:
    PinStore(shop.session.data_dir).set("technician", PIN)
    pin = shop.session.screen("technician_pin", TechnicianPin)
    exits: list[bool] = []
    pin.on_exit = lambda: exits.append(True)
    assert pin.refuse_close() is True  # the window stays
    assert shop.at == "technician_pin" and pin.purpose == "exit"
    assert pin.purpose_text == "Enter the technician PIN to leave the kiosk"
    for key in "1111":
        pin.press(key)
    assert pin.dots == "●●●●" and pin.can_submit
    pin.submit()
    shop.settle()
    assert pin.message == "Wrong PIN: 4 tries left" and not exits and pin.dots == ""
    assert pin.refuse_close() is True and shop.at == "technician_pin"
    for key in PIN:
        pin.press(key)
    pin.submit()
    shop.settle()
    assert exits == [True]


def test_a_pin_pad_left_untouched_goes_back_to_idle(data_dir: Path) -> None:
    app = kiosk(data_dir, pin_seconds=1)
    try:
        app.session.screen("technician_pin", TechnicianPin).ask("exit")
        assert app.at == "technician_pin"
        until(app, lambda: app.at == "idle")
    finally:
        app.close()


def test_a_cashier_window_closes_freely(data_dir: Path) -> None:
    terminal = open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-online", host="memory")
    app = App(terminal)
    try:
        assert app.session.screen("technician_pin", TechnicianPin).refuse_close() is False
    finally:
        app.close()


def test_a_payment_does_not_take_the_screen_from_the_technician(shop: App) -> None:
    shop.session.navigator.go("technician")
    shop.session.run(lambda t: t.sale(300, 978), lambda _: None)
    shop.settle()
    shop.dispatch.drain()
    assert shop.at == "technician"
    assert shop.session.screen("kiosk_result", KioskResult).approved  # ready, should they look


# -- devices out of order and back ----------------------------------------------------------------


def test_a_printer_that_goes_away_is_told_and_payments_go_on(data_dir: Path) -> None:
    printer = VirtualNetworkPrinter().start()
    port = printer.port
    data_dir.mkdir(parents=True)
    set_device(data_dir, "printer", printer.url)
    app = kiosk(data_dir, demo_amount=250)
    try:
        assert isinstance(app.terminal.printer, LazyPrinter)
        idle = app.session.screen("idle", KioskIdle)
        until(app, lambda: "printer" in idle.watch.states)
        assert not idle.notices and idle.watch.out_of_order() == []
        printer.stop()
        until(app, lambda: bool(idle.notices))
        assert list(idle.notices) == ["Out of order: receipt printer / 暂停服务：收据打印机"]
        assert app.at == "idle" and idle.can_pay  # cards are still taken
        idle.pay()
        until(app, lambda: app.at == "kiosk_result")
        result = app.session.screen("kiosk_result", KioskResult)
        assert result.approved and result.receipt_note == "The receipt could not be printed"
        assert result.can_e_receipt and not result.can_print  # the printer is out: e-receipt only
        printer = VirtualNetworkPrinter(port=port).start()  # switched on again
        until(app, lambda: app.at == "idle" and not idle.notices)
        assert idle.watch.out_of_order() == []
    finally:
        app.close()
        printer.stop()


def test_no_reader_configured_is_out_of_order(data_dir: Path) -> None:
    app = kiosk(data_dir, reader="none")
    try:
        until(app, lambda: app.at == "out_of_order")
        out = app.session.screen("out_of_order", OutOfOrder)
        assert out.title == ("Out of order", "暂停服务")
        assert out.devices == ("Out of order: card reader / 暂停服务：读卡器",)
        out.corner()
        out.corner()
        out.corner()
        assert app.at == "technician_pin"  # the technician still gets in
    finally:
        app.close()


def test_the_technicians_menu_left_untouched_goes_back_to_idle(data_dir: Path) -> None:
    app = kiosk(data_dir, technician_seconds=1)
    try:
        PinStore(app.session.data_dir).set("technician", PIN)
        pin = app.session.screen("technician_pin", TechnicianPin)
        pin.ask("menu")
        for key in PIN:
            pin.press(key)
        pin.submit()
        app.settle()
        assert app.at == "technician"
        app.session.navigator.go("tech_log")  # moving about keeps it open
        started = time.monotonic()
        until(app, lambda: app.at == "idle", timeout=10)
        assert time.monotonic() - started >= 0.9
    finally:
        app.close()
