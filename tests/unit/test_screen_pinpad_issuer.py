"""The on-screen PIN pad's blocks at the simulated issuer (in-process host, each store engine): the issuer's own BDK
reads them, the right PIN approves, a wrong one is 55, in both formats."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.card_data import card_emv_data
from simulator.host.inprocess import InProcessHost
from simulator.host.keys import HostKeys
from simulator.host.storage import Location
from simulator.screen_pinpad_key import load_simulator_keys
from terminal import registry
from terminal.host import AuthorisationRequest
from terminal.pinblock import EncryptedPin, PinFormat
from terminal.ports import PinOutcome, PinRequest
from terminal.screen_pinpad import Keypad, install

PAN = "4761739001010010"  # the simulated issuer's PIN for it: 1234


@pytest.fixture
def host(host_store_at: Location, host_store_keys: HostKeys) -> Iterator[InProcessHost]:
    with InProcessHost(host_store_at, keys=host_store_keys) as inprocess:
        yield inprocess


class Customer:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.digits = ""

    def show(self, keypad: Keypad) -> None:
        def keys() -> None:
            for key in self.digits:
                keypad.press(key)
            keypad.enter()

        threading.Thread(target=keys, daemon=True).start()

    def hide(self, keypad: Keypad, outcome: PinOutcome) -> None:
        pass


@pytest.fixture
def customer(tmp_path: Path) -> Iterator[Customer]:
    load_simulator_keys(tmp_path)
    front = Customer(tmp_path)
    undo = install(front)
    yield front
    undo()


def keyed(customer: Customer, digits: str, fmt: PinFormat) -> EncryptedPin:
    customer.digits = digits
    entry = registry.open_pin_pad("screen:").enter_pin(PinRequest(1000, 978, PAN, format=fmt), timeout=30)
    assert entry.outcome is PinOutcome.ENTERED and entry.pin is not None
    return entry.pin


def sale(host: InProcessHost, pin: EncryptedPin) -> tuple[str, str]:
    txn = uuid.uuid4().hex[:16]
    request = AuthorisationRequest(txn, txn, "sale", 1000, 978, "T1", "M1", card_emv_data(1000, 978), "tok", pin=pin)
    code = host.authorise(request)
    (record,) = [r for r in host.records_for(txn) if r.method == "authorise"]
    return code.response_code, record.note


@pytest.mark.parametrize("fmt", [PinFormat.ISO_4, PinFormat.ISO_0])
def test_the_issuer_checks_the_pin_keyed_on_the_screen(host: InProcessHost, customer: Customer, fmt: PinFormat) -> None:
    assert sale(host, keyed(customer, "1234", fmt)) == ("00", "approved")
    assert sale(host, keyed(customer, "4321", fmt)) == ("55", "incorrect_pin")
    assert sale(host, keyed(customer, "1234", fmt)) == ("00", "approved")  # and the count starts again
