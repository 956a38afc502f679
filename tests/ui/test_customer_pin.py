"""The customer's PIN screen driven as the application drives it: the PIN pad on the worker, the keys on the UI thread.

Each test asks the on-screen PIN pad for a PIN in a job on the session's
worker (as a payment does), waits until the screen shows the keypad, presses
the keys on the view model, and reads what the PIN pad returned and where the
application went.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.host.keys import HostKeys
from simulator.host.pin_check import _pin_key
from simulator.screen_pinpad_key import load_simulator_keys
from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.pinblock import PinFormat, decipher
from terminal.ports import OfflinePin, OfflinePinRequest, PinEntry, PinOutcome, PinRequest
from tests.ui.conftest import App
from ui.screens.customer_pin import CustomerPin
from ui.worker import Job

PAN = "4761739001010010"


@pytest.fixture
def pin_app(data_dir: Path) -> Iterator[App]:
    terminal = open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-online", host="memory")
    load_simulator_keys(data_dir)
    application = App(terminal)
    yield application
    application.close()


def ask(
    app: App,
    *,
    allow_bypass: bool = False,
    timeout: float = 30,
    fmt: PinFormat = PinFormat.ISO_4,
    purpose: str = "sale",
) -> Job[PinEntry]:
    """A PIN asked on the worker, from the payment's screen; returns once the keypad is on the screen."""
    app.session.navigator.go("kiosk_card" if app.session.kiosk else "present_card")
    request = PinRequest(8000, 978, PAN, allow_bypass=allow_bypass, format=fmt, purpose=purpose)
    job = app.session.run(lambda _t: registry.open_pin_pad("screen:").enter_pin(request, timeout), lambda _r: None)
    until(app, lambda: app.at == "customer_pin" or job.done)
    return job


def until(app: App, done: object, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while not done():  # type: ignore[operator]
        app.dispatch.drain()
        if time.monotonic() > deadline:
            raise TimeoutError("the screen did not get there")
        time.sleep(0.01)
    app.dispatch.drain()


def finished(app: App, job: Job[PinEntry]) -> PinEntry:
    until(app, lambda: job.done)
    app.settle()
    assert job.error is None, job.error
    assert job.result is not None
    return job.result


def test_the_screen_counts_the_digits_and_never_holds_them(pin_app: App) -> None:
    vm = pin_app.session.screen("customer_pin", CustomerPin)
    job = ask(pin_app)
    assert pin_app.at == "customer_pin"
    assert vm.amount_text == "80.00 EUR" and vm.card_text == "Card 476173******0010"
    assert not vm.can_bypass and not vm.can_enter
    shown_left = re.fullmatch(r"(\d+) s left", vm.time_left)  # the PIN pad's 30 s, counted down
    assert shown_left is not None and 0 < int(shown_left.group(1)) <= 30
    for key in "7391":
        vm.press(key)
    assert vm.count == 4 and vm.dots == "●●●●" and vm.can_enter
    state = vm.state()
    assert "7391" not in repr(state) and not any(isinstance(v, bytes | bytearray) for v in state.values())
    vm.enter()
    entry = finished(pin_app, job)
    assert entry.outcome is PinOutcome.ENTERED and entry.pin is not None
    key = _pin_key(HostKeys.in_memory(), entry.pin)
    assert key is not None and bytes(decipher(entry.pin.block, PAN, key, entry.pin.format)) == b"7391"
    assert pin_app.at == "present_card"  # back where the customer came from
    assert vm.count == 0 and vm.dots == "" and not vm.active and vm.time_left == ""


def test_clear_forgets_the_digits_and_the_pin_keyed_after_is_the_one_sent(pin_app: App) -> None:
    vm = pin_app.session.screen("customer_pin", CustomerPin)
    job = ask(pin_app, fmt=PinFormat.ISO_0)
    for key in "1111":
        vm.press(key)
    vm.clear()
    assert vm.count == 0 and not vm.can_enter
    for key in "2468":
        vm.press(key)
    vm.enter()
    entry = finished(pin_app, job)
    assert entry.pin is not None and entry.pin.format is PinFormat.ISO_0
    key = _pin_key(HostKeys.in_memory(), entry.pin)
    assert key is not None and bytes(decipher(entry.pin.block, PAN, key, PinFormat.ISO_0)) == b"2468"


def test_cancel(pin_app: App) -> None:
    vm = pin_app.session.screen("customer_pin", CustomerPin)
    job = ask(pin_app)
    vm.press("5")
    vm.cancel()
    assert finished(pin_app, job).outcome is PinOutcome.CANCELLED and pin_app.at == "present_card"


def test_bypass_is_offered_only_when_the_request_allows_it(pin_app: App) -> None:
    vm = pin_app.session.screen("customer_pin", CustomerPin)
    job = ask(pin_app, allow_bypass=False)
    assert not vm.can_bypass
    vm.bypass()  # not offered: nothing happens
    assert not job.done and vm.active
    vm.cancel()
    assert finished(pin_app, job).outcome is PinOutcome.CANCELLED
    job = ask(pin_app, allow_bypass=True)
    assert vm.can_bypass and vm.can_enter  # Enter with no digits bypasses too
    assert "No PIN" in vm.message
    vm.bypass()
    assert finished(pin_app, job).outcome is PinOutcome.BYPASSED


def test_the_entry_times_out_and_the_screen_goes_back(pin_app: App) -> None:
    vm = pin_app.session.screen("customer_pin", CustomerPin)
    job = ask(pin_app, timeout=0.3)
    vm.press("9")
    entry = finished(pin_app, job)
    assert entry.outcome is PinOutcome.TIMEOUT and pin_app.at == "present_card"
    vm.press("1")  # a key after the end does nothing
    assert vm.count == 0 and not vm.active


def test_the_screen_speaks_chinese(pin_app: App) -> None:
    vm = pin_app.session.screen("customer_pin", CustomerPin)
    job = ask(pin_app)
    pin_app.session.tr.set_language("zh_CN")
    assert vm.title == "请输入密码" and vm.enter_label == "确认" and vm.amount_text == "€80.00"
    vm.cancel()
    finished(pin_app, job)


def test_a_refunds_pin_says_the_customer_is_paid_back(pin_app: App) -> None:
    vm = pin_app.session.screen("customer_pin", CustomerPin)
    job = ask(pin_app, purpose="refund")
    assert vm.title == "Enter your PIN to be paid back"
    pin_app.session.tr.set_language("zh_CN")
    assert vm.title == "请输入密码以办理退款"
    vm.cancel()
    assert finished(pin_app, job).outcome is PinOutcome.CANCELLED
    sale = ask(pin_app)
    assert vm.title == "请输入密码"
    vm.cancel()
    finished(pin_app, sale)


def test_the_kiosk_has_the_screen_too(data_dir: Path) -> None:
    terminal = open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-online", host="memory")
    load_simulator_keys(data_dir)
    app = App(terminal, kiosk=True)
    try:
        vm = app.session.screen("customer_pin", CustomerPin)
        job = ask(app)
        assert app.at == "customer_pin"
        vm.cancel()
        assert finished(app, job).outcome is PinOutcome.CANCELLED and app.at == "kiosk_card"
    finally:
        app.close()


def ask_offline(app: App, request: OfflinePinRequest) -> Job[OfflinePin]:
    """An inserted card's offline PIN asked on the worker, as the contact kernel's cardholder does."""
    app.session.navigator.go("present_card")
    job = app.session.run(
        lambda _t: registry.open_pin_pad("screen:").enter_offline_pin(request, 30),  # type: ignore[attr-defined]
        lambda _r: None,
    )
    until(app, lambda: app.at == "customer_pin" or job.done)
    return job


def test_an_inserted_cards_pin_shows_the_tries_left_and_the_last_try(pin_app: App) -> None:
    vm = pin_app.session.screen("customer_pin", CustomerPin)
    request = OfflinePinRequest(1234, 978, "plaintext", tries_left=2, last_try=False, allow_bypass=False)
    job = ask_offline(pin_app, request)
    assert vm.amount_text == "12.34 EUR" and vm.card_text == "PIN for the chip card · 2 tries left"
    assert vm.warning == "" and not vm.can_bypass
    vm.cancel()
    assert finished(pin_app, job).outcome is PinOutcome.CANCELLED
    job = ask_offline(pin_app, OfflinePinRequest(1234, 978, "enciphered", tries_left=1, last_try=True))
    assert vm.card_text == "PIN for the chip card" and vm.warning == "Last try: a wrong PIN blocks the card's PIN"
    assert vm.can_bypass  # the terminal allows a bypass here: "No PIN" is offered
    pin_app.session.tr.set_language("zh_CN")
    assert vm.warning.startswith("最后一次尝试")
    for key in "5172":
        vm.press(key)
    assert vm.count == 4 and "5172" not in repr(vm.state())
    vm.enter()
    answer = finished(pin_app, job)
    assert answer.outcome is PinOutcome.ENTERED and answer.take() == "5172"
    assert pin_app.at == "present_card" and vm.count == 0 and not vm.active
