"""The PIN pad contract on the serial driver (``serial:...?protocol=posterm-pinpad``), over ``posterm sim pinpad``.

A real subprocess serves the PIN pad on a real pty; the terminal side opens the pty's device path through
the registry and pyserial, so the line protocol (docs/pinpad-protocol.md) is exercised end to end.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.serial_pinpad import parse_answer, parse_enciphered_answer
from simulator.pki import RsaPrivateKey, load_pki
from simulator.pty_pinpad import RequestError, parse_offline_request, parse_request
from terminal import registry
from terminal.ports import (
    CancelToken,
    DeviceError,
    DeviceGone,
    EncipheredOfflinePin,
    EncipheringPinPad,
    OfflinePinAbility,
    OfflinePinPad,
    OfflinePinRequest,
    PinOutcome,
    PinPad,
    PinRequest,
    PublicKey,
    offline_pin_ability,
)
from tests.contract.pin_pad_suite import *  # noqa: F403
from tests.contract.pin_pad_suite import PAN

POSTERM = str(Path(sys.executable).with_name("posterm"))


class ServedPinPad:
    """``posterm sim pinpad`` in a subprocess: its URL, read from what it prints."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [POSTERM, "sim", "pinpad", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert self.process.stdout is not None
        self.lines = [self.process.stdout.readline(), self.process.stdout.readline()]
        if not self.lines[1].startswith("open it as: "):
            self.stop()
            raise AssertionError(f"posterm sim pinpad did not start: {self.lines} {self.process.stderr}")
        self.url = self.lines[1].removeprefix("open it as: ").strip()

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        return out


class SerialRig:
    def __init__(self) -> None:
        self.served: list[ServedPinPad] = []
        self.opened: list[PinPad] = []

    def open(self, action: str, *more: str) -> PinPad:
        served = ServedPinPad("--pin", action, *more)
        self.served.append(served)
        pad = registry.open_pin_pad(served.url)
        self.opened.append(pad)
        return pad

    def close(self) -> None:
        for pad in self.opened:
            pad.close()
        for served in self.served:
            served.stop()


@pytest.fixture
def pin_pad_rig() -> Iterator[SerialRig]:
    rig = SerialRig()
    yield rig
    rig.close()


def test_the_url_printed_is_a_serial_pin_pad(pin_pad_rig: SerialRig) -> None:
    pad = pin_pad_rig.open("1234")
    assert pad.url.startswith("serial:/dev/pts/") and pad.url.endswith("?protocol=posterm-pinpad")
    assert registry.kind_of(pad.url) == "pin-pad"
    assert type(pad).__name__ == "SerialPinPad"


def test_the_terminals_cancel_aborts_an_entry_in_progress(pin_pad_rig: SerialRig) -> None:
    pad = pin_pad_rig.open("1234", "--delay", "60")
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    assert pad.enter_pin(PinRequest(100, 978, PAN), timeout=120, cancel=token).outcome is PinOutcome.CANCELLED


def test_a_pin_pad_that_goes_away_is_device_gone(pin_pad_rig: SerialRig) -> None:
    pad = pin_pad_rig.open("1234")
    pin_pad_rig.served[-1].stop()
    with pytest.raises(DeviceGone):
        pad.enter_pin(PinRequest(100, 978, PAN), timeout=5)


def test_a_serial_port_with_no_pin_pad_is_refused_when_opened(tmp_path: Path) -> None:
    master, slave = os.openpty()  # a port where nobody answers PING
    try:
        with pytest.raises(DeviceError, match="no posterm-pinpad PIN pad answered"):
            registry.open_pin_pad(f"serial:{os.ttyname(slave)}?protocol=posterm-pinpad&answer=0.3")
    finally:
        os.close(master)
        os.close(slave)


def test_the_pad_prints_nothing_of_the_pin_or_the_pan(pin_pad_rig: SerialRig) -> None:
    pad = pin_pad_rig.open("86429753")
    assert pad.enter_pin(PinRequest(100, 978, PAN), timeout=10).outcome is PinOutcome.ENTERED
    served = pin_pad_rig.served[-1]
    out = "".join(served.lines) + served.stop()
    assert "86429753" not in out and PAN not in out


@pytest.mark.parametrize(
    ("line", "outcome"),
    [("CANCEL", PinOutcome.CANCELLED), ("TIMEOUT", PinOutcome.TIMEOUT), ("BYPASS", PinOutcome.BYPASSED)],
)
def test_the_answers_words(line: str, outcome: PinOutcome) -> None:
    entry = parse_answer(line)
    assert entry is not None and entry.outcome is outcome


@pytest.mark.parametrize(
    "line",
    ["", "BLOCK 00 KSN 00 FORMAT 4", "BLOCK " + "A" * 16 + " KSN " + "B" * 24 + " FORMAT 0", "hello", "\x00\xff"],
)
def test_lines_that_are_no_answer_are_ignored_or_refused(line: str) -> None:
    try:
        assert parse_answer(line) is None
    except DeviceError as exc:
        assert "does not fit" in str(exc)


def test_an_err_answer_is_a_device_error_with_no_pan() -> None:
    with pytest.raises(DeviceError, match="refused the request") as caught:
        parse_answer(f"ERR bad pan {PAN}")
    assert PAN not in str(caught.value)


@given(st.text(max_size=120))
def test_any_line_from_a_pad_is_an_answer_ignored_or_a_device_error(line: str) -> None:
    try:
        entry = parse_answer(line)
    except DeviceError:
        return
    assert entry is None or entry.outcome in PinOutcome


@given(st.text(max_size=160))
def test_any_line_to_the_virtual_pad_is_a_request_or_refused_without_echoing_a_pan(line: str) -> None:
    try:
        request, timeout = parse_request(line)
    except RequestError as exc:
        assert not re.search(r"[0-9]{13,}", str(exc))
        return
    assert 0 < timeout <= 600 and 12 <= len(request.pan) <= 19


# -- an inserted card's enciphered offline PIN (EPIN) ------------------------------------------------------------


def _epin(pad: PinPad) -> EncipheringPinPad:
    assert isinstance(pad, EncipheringPinPad)
    return pad


def _card_key() -> tuple[PublicKey, RsaPrivateKey]:
    icc = load_pki().icc("visa-qvsdc-offline")
    return PublicKey(icc.n.to_bytes(icc.size, "big"), icc.e.to_bytes(3 if icc.e > 255 else 1, "big")), icc


def test_the_serial_pad_gives_no_plaintext_offline_pin(pin_pad_rig: SerialRig) -> None:
    """The PIN stays in a separate pad: an enciphered offline PIN (it said EPIN), never the digits."""
    opened = pin_pad_rig.open("86429753")
    assert offline_pin_ability(opened) == OfflinePinAbility(enciphers=True)
    assert not isinstance(opened, OfflinePinPad) and isinstance(opened, EncipheringPinPad)


@pytest.mark.parametrize(
    ("action", "outcome", "bypass"),
    [
        ("cancel", PinOutcome.CANCELLED, True),
        ("timeout", PinOutcome.TIMEOUT, True),
        ("bypass", PinOutcome.BYPASSED, True),
        ("bypass", PinOutcome.TIMEOUT, False),
    ],
)
def test_the_offline_pins_other_endings(pin_pad_rig: SerialRig, action: str, outcome: PinOutcome, bypass: bool) -> None:
    key, _ = _card_key()
    request = OfflinePinRequest(1234, 978, "enciphered", allow_bypass=bypass)
    sealed = _epin(pin_pad_rig.open(action)).encipher_offline_pin(request, key, bytes(8), timeout=10)
    assert sealed == EncipheredOfflinePin(outcome)


def test_the_terminals_cancel_aborts_an_offline_pin_in_progress(pin_pad_rig: SerialRig) -> None:
    pad = _epin(pin_pad_rig.open("1234", "--delay", "60"))
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    key, _ = _card_key()
    request = OfflinePinRequest(1234, 978, "enciphered")
    assert pad.encipher_offline_pin(request, key, bytes(8), 120, token).outcome is PinOutcome.CANCELLED


def test_a_key_no_card_has_is_refused_by_the_pad(pin_pad_rig: SerialRig) -> None:
    pad = _epin(pin_pad_rig.open("1234"))
    with pytest.raises(DeviceError, match="refused the request"):
        pad.encipher_offline_pin(OfflinePinRequest(1, 978), PublicKey(b"\x01" * 8, b"\x03"), bytes(8), timeout=10)


@pytest.mark.parametrize(
    ("line", "outcome"),
    [("CANCEL", PinOutcome.CANCELLED), ("TIMEOUT", PinOutcome.TIMEOUT), ("BYPASS", PinOutcome.BYPASSED)],
)
def test_the_offline_answers_words(line: str, outcome: PinOutcome) -> None:
    assert parse_enciphered_answer(line, 128) == EncipheredOfflinePin(outcome)


def test_a_ciphertext_not_as_long_as_the_cards_key_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="64 bytes for a card key of 128"):
        parse_enciphered_answer("ENCIPHERED " + "AB" * 64, 128)
    sealed = parse_enciphered_answer("ENCIPHERED " + "AB" * 128, 128)
    assert sealed is not None and sealed.data == b"\xab" * 128


@given(st.text(max_size=300))
def test_any_line_from_a_pad_to_epin_is_an_answer_ignored_or_a_device_error(line: str) -> None:
    try:
        sealed = parse_enciphered_answer(line, 128)
    except DeviceError:
        return
    assert sealed is None or sealed.outcome in PinOutcome


@given(st.text(max_size=300))
def test_any_epin_line_to_the_virtual_pad_is_a_request_or_refused(line: str) -> None:
    try:
        request, key, challenge, timeout = parse_offline_request("EPIN " + line)
    except RequestError:
        return
    assert 0 < timeout <= 600 and len(challenge) == 8 and 25 <= key.size <= 256 and request.kind == "enciphered"


# -- what the PIN is for ------------------------------------------------------------------------------------------


def test_a_refunds_pin_request_says_refund_on_the_line_and_on_the_pads_display(tmp_path: Path) -> None:
    from simulator.pinpad import PinKeys, parse_action
    from simulator.pty_pinpad import VirtualPinPad

    with VirtualPinPad(parse_action("1234", "--pin"), keys=PinKeys(tmp_path / "keys")) as pad:
        opened = registry.open_pin_pad(pad.url)
        try:
            sale = opened.enter_pin(PinRequest(8000, 978, PAN), 10)
            refund = opened.enter_pin(PinRequest(500, 978, PAN, purpose="refund"), 10)
        finally:
            opened.close()
    assert sale.outcome is PinOutcome.ENTERED and refund.outcome is PinOutcome.ENTERED
    assert pad.shown[0] == "8000 978 476173******0010"  # a sale's display (and line) as before
    assert pad.shown[1] == "REFUND 500 978 476173******0010"


def test_the_pad_takes_sale_or_refund_as_purpose_and_nothing_else() -> None:
    line = f"PIN amount=500 currency=978 pan={PAN}"
    assert parse_request(line)[0].purpose == "sale"
    assert parse_request(line + " purpose=refund")[0].purpose == "refund"
    with pytest.raises(RequestError, match="purpose is sale or refund"):
        parse_request(line + " purpose=payout")
    with pytest.raises(ValueError, match="not 'payout'"):
        PinRequest(500, 978, PAN, purpose="payout")
