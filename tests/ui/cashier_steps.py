"""Steps the cashier's tests share: a sale keyed and charged, the supervisor's PIN set and keyed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from terminal.pins import PinStore
from tests.ui.conftest import App
from ui.screens.pin import SupervisorPin
from ui.screens.sale import AmountEntry, PaymentOutcome

__all__ = ["PIN", "key_pin", "sell", "set_pin", "until"]

PIN = "4826"


def until(app: App, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run the UI thread's queue (worker results, events) until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s; at {app.at}")
        app.dispatch.drain()
        time.sleep(0.01)


def sell(app: App, digits: str) -> PaymentOutcome:
    """Key ``digits`` on the amount screen, charge by card, wait for the result."""
    amount = app.session.screen("amount", AmountEntry)
    app.session.navigator.go("amount")
    for key in digits:
        amount.press(key)
    amount.charge("card")
    app.settle()
    assert app.at == "result"
    return app.session.screen("result", PaymentOutcome)


def set_pin(data_dir: Path, pin: str = PIN) -> None:
    PinStore(data_dir).set("supervisor", pin)


def key_pin(app: App, pin: str = PIN) -> None:
    """On the supervisor's keypad (once it has read whether a PIN is set): the digits, then OK."""
    screen = app.session.screen("supervisor_pin", SupervisorPin)
    app.settle()
    assert app.at == "supervisor_pin" and not screen.busy
    for key in pin:
        screen.press(key)
    screen.ok()
    app.settle()
