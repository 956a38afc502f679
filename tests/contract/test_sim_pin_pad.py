"""The PIN pad contract on the simulated PIN pads (``sim:pin=...``), opened through the device registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from terminal import registry
from terminal.pinblock import PinFormat
from terminal.ports import DeviceUrlError, PinPad, PinRequest
from tests.contract.pin_pad_suite import *  # noqa: F403
from tests.contract.pin_pad_suite import PAN, host_reads


class SimRig:
    def open(self, action: str) -> PinPad:
        return registry.open_pin_pad(f"sim:pin={action}")


@pytest.fixture
def pin_pad_rig() -> SimRig:
    return SimRig()


def test_sim_pin_urls_name_pin_pads_and_card_urls_readers() -> None:
    assert registry.kind_of("sim:pin=1234") == "pin-pad"
    assert registry.kind_of("sim:card=visa-qvsdc-online") == "reader"
    registry.check_url("sim:pin=cancel", "pin-pad")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sim:pin=123", "4 to 12 digits"),
        ("sim:pin=1234567890123", "4 to 12 digits"),
        ("sim:pin=later", "4 to 12 digits"),
        ("sim:pin=1234?format=5", "option 'format'"),
        ("sim:pin=1234?format=0&format=4", "option 'format'"),
        ("sim:pin=1234?colour=red", "option 'colour'"),
    ],
)
def test_a_bad_sim_pin_url_is_one_line_naming_the_problem_and_not_the_pin(url: str, words: str) -> None:
    with pytest.raises(DeviceUrlError, match=words) as caught:
        registry.open_pin_pad(url)
    assert "1234" not in str(caught.value)


def test_a_pad_configured_for_format_0_forms_format_0_whatever_the_request_asks() -> None:
    pad = registry.open_pin_pad("sim:pin=2468?format=0")
    entry = pad.enter_pin(PinRequest(100, 978, PAN, format=PinFormat.ISO_4))
    assert entry.pin is not None and entry.pin.format is PinFormat.ISO_0 and host_reads(entry.pin) == b"2468"


def test_the_ksn_counters_survive_the_pad_and_are_kept_without_any_pin(sim_wallet_state: Path) -> None:
    first = registry.open_pin_pad("sim:pin=97531864").enter_pin(PinRequest(100, 978, PAN)).pin
    again = registry.open_pin_pad("sim:pin=97531864").enter_pin(PinRequest(100, 978, PAN)).pin
    assert first is not None and again is not None
    assert int.from_bytes(again.ksn[8:], "big") == int.from_bytes(first.ksn[8:], "big") + 1
    state = json.loads((sim_wallet_state / "pinpad-keys.json").read_text())
    assert state == {"aes": int.from_bytes(again.ksn[8:], "big"), "tdes": 0}
    for path in sim_wallet_state.iterdir():
        data = path.read_bytes()
        assert b"97531864" not in data and bytes.fromhex("97531864") not in data
        assert first.block not in data and first.block.hex().encode() not in data.lower()


def test_the_configured_pin_pad_opens_when_first_asked_and_shows_no_pin() -> None:
    from terminal.devices import LazyPinPad

    opened: list[str] = []

    def opener(url: str) -> PinPad:
        opened.append(url)
        return registry.open_pin_pad(url)

    pad = LazyPinPad("sim:pin=86429753", opener)
    assert opened == [] and "86429753" not in repr(pad) + pad.url
    entry = pad.enter_pin(PinRequest(100, 978, PAN))
    assert entry.pin is not None and host_reads(entry.pin) == b"86429753" and opened == ["sim:pin=86429753"]
    pad.close()
