"""The issuer's online PIN check (simulator/host/pin_check.py) through the in-process host, on each store engine.

The cases the TLS test does not walk: the order against a blocked card, a PIN with no card data to bind it,
a KSN counter no PIN pad uses, the reasons recorded, the profile's PIN, the counts the operator sees.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.card_data import card_emv_data
from simulator.host.inprocess import InProcessHost
from simulator.host.keys import HostKeys
from simulator.host.pin_check import DEFAULT_PIN, card_pin
from simulator.host.storage import Location
from simulator.pin_keys import SIM_AES_IKID
from simulator.pinpad import PinKeys, answer, parse_action
from terminal.host import AuthorisationRequest
from terminal.pinblock import EncryptedPin, PinFormat
from terminal.ports import PinRequest

PAN = "4761739001010010"


@pytest.fixture
def host(host_store_at: Location, host_store_keys: HostKeys) -> Iterator[InProcessHost]:
    with InProcessHost(host_store_at, keys=host_store_keys) as inprocess:
        yield inprocess


def tries(host: InProcessHost) -> dict[str, int]:
    with host._store() as store:  # the operator's view (posterm host issuer show)
        return store.pin_tries()


def block(keys: PinKeys, digits: str, pan: str = PAN) -> EncryptedPin:
    entry = answer(parse_action(digits, "test"), PinRequest(1000, 978, pan), keys)
    assert entry.pin is not None
    return entry.pin


def sale(host: InProcessHost, pin: EncryptedPin | None, emv: bytes | None = None) -> tuple[str, str]:
    txn = uuid.uuid4().hex[:16]
    data = card_emv_data(1000, 978) if emv is None else emv
    code = host.authorise(AuthorisationRequest(txn, txn, "sale", 1000, 978, "T1", "M1", data, "tok", pin=pin))
    (record,) = [r for r in host.records_for(txn) if r.method == "authorise"]
    return code.response_code, record.note


def test_the_reasons_recorded(host: InProcessHost, tmp_path: Path) -> None:
    keys = PinKeys(tmp_path)
    assert sale(host, block(keys, "1234")) == ("00", "approved")
    assert sale(host, block(keys, "0000")) == ("55", "incorrect_pin")
    assert sale(host, block(keys, "0000")) == ("55", "incorrect_pin")
    assert sale(host, block(keys, "0000")) == ("75", "pin_tries_exceeded")
    assert sale(host, block(keys, "1234")) == ("75", "pin_tries_exceeded")
    assert list(tries(host).values()) == [3]


def test_a_blocked_card_is_declined_as_blocked_before_its_pin_counts(host: InProcessHost, tmp_path: Path) -> None:
    keys = PinKeys(tmp_path)
    host.block(PAN, "43")
    assert sale(host, block(keys, "0000")) == ("43", "blocked")
    assert tries(host) == {}


def test_a_counter_no_pin_pad_uses_is_55_and_no_try(host: InProcessHost) -> None:
    bad_counter = EncryptedPin(bytes(16), SIM_AES_IKID + (0x1FFFF).to_bytes(4, "big"), PinFormat.ISO_4)
    assert sale(host, bad_counter) == ("55", "pin_key_unknown")
    assert tries(host) == {}


def test_the_pin_of_a_card_is_its_profiles_else_the_default() -> None:
    assert card_pin("5413330089010012") == b"4321"  # mc-cda-online
    assert card_pin(PAN) == b"1234"  # visa-qvsdc-online
    assert card_pin("4000000000000002") == DEFAULT_PIN == b"1234"


# -- refunds with an online PIN (a terminal whose pin_on_refund is "online") ---------------------------------------


def refund(
    host: InProcessHost, pin: EncryptedPin | None, amount: int, original: str | None, *, card: bool = True
) -> tuple[str, str, bool]:
    """A refund (against ``original``, or unreferenced); with ``card`` the card's data, else none (the sale's card)."""
    txn = uuid.uuid4().hex[:16]
    data = card_emv_data(amount, 978, transaction_type=0x20) if card else b""
    request = AuthorisationRequest(txn, txn, "refund", amount, 978, "T1", "M1", data, "tok", original, pin=pin)
    answer = host.authorise(request)
    (record,) = [r for r in host.records_for(txn) if r.method == "authorise"]
    return answer.response_code, record.note or "", record.approved


def approved_sale(host: InProcessHost, amount: int) -> str:
    txn = uuid.uuid4().hex[:16]
    answer = host.authorise(
        AuthorisationRequest(txn, txn, "sale", amount, 978, "T1", "M1", card_emv_data(amount, 978), "tok")
    )
    assert answer.response_code == "00"
    return txn


def test_a_refund_carrying_a_pin_is_checked_as_a_sale_and_a_wrong_one_refunds_nothing(
    host: InProcessHost, tmp_path: Path
) -> None:
    keys = PinKeys(tmp_path)
    original = approved_sale(host, 1000)
    assert refund(host, block(keys, "0000"), 1000, original) == ("55", "incorrect_pin", False)
    assert host.sale_positions("T1")[original].refunded == 0  # nothing refunded
    code, _, approved = refund(host, block(keys, "1234"), 1000, original)
    assert (code, approved) == ("00", True) and tries(host) == {}  # the right PIN: the count back to 0
    assert host.sale_positions("T1")[original].refunded == 1000
    assert refund(host, block(keys, "1234"), 1, original)[0] == "13"  # the money rule first: nothing is left


def test_wrong_pins_of_sales_and_refunds_count_in_one_counter(host: InProcessHost, tmp_path: Path) -> None:
    keys = PinKeys(tmp_path)
    host.set_refund_allowance("M1", 100_000)  # unreferenced refunds
    assert sale(host, block(keys, "0000")) == ("55", "incorrect_pin")
    assert refund(host, block(keys, "0000"), 500, None) == ("55", "incorrect_pin", False)
    assert refund(host, block(keys, "0000"), 500, None) == ("75", "pin_tries_exceeded", False)
    assert refund(host, block(keys, "1234"), 500, None) == ("75", "pin_tries_exceeded", False)
    assert sale(host, block(keys, "1234")) == ("75", "pin_tries_exceeded")
    assert list(tries(host).values()) == [3]


def test_a_refund_pin_with_no_card_data_to_bind_it_is_55(host: InProcessHost, tmp_path: Path) -> None:
    original = approved_sale(host, 1000)
    assert refund(host, block(PinKeys(tmp_path), "1234"), 500, original, card=False) == (
        "55", "pin_without_card", False,
    )  # fmt: skip
    assert host.sale_positions("T1")[original].refunded == 0 and tries(host) == {}
