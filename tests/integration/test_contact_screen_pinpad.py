"""An inserted chip card's offline PIN keyed on the on-screen PIN pad (``screen:``), through the sale.

The terminal (Terminal facade, real SQLite journal, the simulator's in-process host) reads the
simulator's ``contact-*`` cards; its PIN pad is ``screen:``, drawn by a front-end of the test's that
keys the customer's PIN from another thread, as ``posterm ui``'s UI thread does while the PIN pad
waits on the worker.  The on-screen pad is inside the terminal's process: it hands the digits to the
contact kernel, which gives the card a plaintext PIN or enciphers one under the card's key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulator.contact.card import ContactCard
from terminal.devices import LazyPinPad
from terminal.lifecycle import State
from terminal.ports import OfflinePinRequest, PinOutcome
from terminal.screen_pinpad import Keypad, install
from tests.integration.conftest import Rig

EUR = 978


class Customer:
    """The screen's front-end: keys the next PIN of ``pins`` (then Enter) each time a keypad is shown."""

    def __init__(self, data_dir: Path, pins: list[str]) -> None:
        self.data_dir = data_dir
        self.pins = list(pins)
        self.shown: list[Keypad] = []
        self.hidden: list[PinOutcome] = []

    def show(self, keypad: Keypad) -> None:
        self.shown.append(keypad)
        pin = self.pins.pop(0) if self.pins else ""

        def act() -> None:
            if pin == "cancel":
                keypad.cancel()
                return
            for key in pin:
                keypad.press(key)
            keypad.enter()

        threading.Thread(target=act, daemon=True).start()

    def hide(self, keypad: Keypad, outcome: PinOutcome) -> None:
        self.hidden.append(outcome)


@pytest.fixture
def customer(rig: Rig) -> Iterator[Callable[[list[str]], Customer]]:
    undo: list[Callable[[], None]] = []

    def make(pins: list[str]) -> Customer:
        who = Customer(rig.data_dir, pins)
        undo.append(install(who))
        rig.terminal.pin_pad = LazyPinPad("screen:")
        return who

    yield make
    for fn in undo:
        fn()


def _requests(who: Customer) -> list[OfflinePinRequest]:
    out = []
    for keypad in who.shown:
        assert isinstance(keypad.request, OfflinePinRequest)
        out.append(keypad.request)
    return out


@pytest.mark.parametrize(("card", "kind", "p2"), [("contact-offline-pin", "plaintext", 0x80),
                                                  ("contact-enciphered-pin", "enciphered", 0x88)])  # fmt: skip
def test_a_pin_keyed_on_the_screen_is_verified_by_the_card(
    rig: Rig, customer: Callable[[list[str]], Customer], card: str, kind: str, p2: int
) -> None:
    who = customer(["1234"])
    rig.card(card)
    result = rig.terminal.sale(1234, EUR)
    assert result.state is State.OFFLINE_APPROVED, result.message
    assert result.cvm == "offline_pin" and result.pin == "offline_verified"
    assert result.card_result is not None
    assert result.card_result.card_data[0x9F33][1] & 0xD0 == 0xD0  # online, plaintext and enciphered PIN claimed
    (request,) = _requests(who)
    assert request.kind == kind and request.tries_left == 3 and not request.last_try and request.amount == 1234
    assert who.hidden == [PinOutcome.ENTERED] and who.shown[0].count == 0  # the digits went to the card
    verify = [c for c in result.card_result.commands if c[:2] == b"\x00\x20"]
    assert [c[3] for c in verify] == [p2] and all(not any(c[5:]) for c in verify)


def test_a_wrong_pin_then_the_right_one_with_the_tries_left_shown(
    rig: Rig, customer: Callable[[list[str]], Customer]
) -> None:
    who = customer(["1111", "2222", "1234"])
    rig.card("contact-offline-pin")
    result = rig.terminal.sale(1234, EUR)
    assert result.approved and result.pin == "offline_verified", result.message
    shown = [(r.tries_left, r.last_try) for r in _requests(who)]
    assert shown == [(3, False), (2, False), (1, True)]  # the card's counter, and "last try" before the third
    card = rig.terminal.reader.card  # type: ignore[union-attr]
    assert isinstance(card, ContactCard) and card.pin_try_counter == 3  # reset by the right PIN


def test_cancel_on_the_screen_ends_the_inserted_card_not_completed(
    rig: Rig, customer: Callable[[list[str]], Customer]
) -> None:
    customer(["cancel"])
    rig.card("contact-offline-pin")
    result = rig.terminal.sale(1234, EUR)
    assert result.state is State.CANCELLED and "not completed" in result.message and result.response_code is None
