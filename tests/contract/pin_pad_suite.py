"""The PIN pad contract. Import into a test file that defines ``pin_pad_rig``: ``rig.open(action) -> PinPad``.

``action`` is what the simulated customer does: a PIN (digits), ``cancel``, ``timeout`` or ``bypass``.
What a pad answers is checked as the host would: the block deciphers, under the key the host derives from
the simulator's BDK for the block's KSN, to the PIN that was entered.
"""

from __future__ import annotations

from typing import Protocol

from simulator.pin_keys import SIM_AES_BDK, SIM_AES_IKID, SIM_TDES_BDK, SIM_TDES_KEY_SET_ID
from terminal.dukpt import aes_host_pin_key, tdes_host_pin_key
from terminal.pinblock import EncryptedPin, PinFormat, decipher
from terminal.ports import CancelToken, PinEntry, PinOutcome, PinPad, PinRequest

__all__ = [
    "PinPadRig",
    "host_reads",
    "test_pin_pad_bypass_where_allowed",
    "test_pin_pad_bypass_where_not_allowed_times_out",
    "test_pin_pad_cancel",
    "test_pin_pad_cancelled_before_it_starts",
    "test_pin_pad_enters_a_pin_as_a_format_0_block",
    "test_pin_pad_enters_a_pin_as_a_format_4_block",
    "test_pin_pad_timeout",
]

PAN = "4761739001010010"


class PinPadRig(Protocol):
    def open(self, action: str) -> PinPad: ...


def host_reads(pin: EncryptedPin, pan: str = PAN) -> bytes:
    """What the host deciphers from a block: the PIN, under the key it derives from the simulator's BDK."""
    if pin.format is PinFormat.ISO_4:
        assert pin.ksn[:8] == SIM_AES_IKID
        key = aes_host_pin_key(SIM_AES_BDK, pin.ksn)
    else:
        assert pin.ksn[:5] == SIM_TDES_KEY_SET_ID
        key = tdes_host_pin_key(SIM_TDES_BDK, pin.ksn)
    return bytes(decipher(pin.block, pan, key, pin.format))


def _entered(entry: PinEntry) -> EncryptedPin:
    assert entry.outcome is PinOutcome.ENTERED and entry.pin is not None
    return entry.pin


def test_pin_pad_enters_a_pin_as_a_format_4_block(pin_pad_rig: PinPadRig) -> None:
    pad = pin_pad_rig.open("86429753")
    first = _entered(pad.enter_pin(PinRequest(8000, 978, PAN), timeout=10))
    second = _entered(pad.enter_pin(PinRequest(8000, 978, PAN), timeout=10))
    assert first.format is PinFormat.ISO_4 and len(first.block) == 16
    assert host_reads(first) == host_reads(second) == b"86429753"
    assert int.from_bytes(second.ksn[8:], "big") > int.from_bytes(first.ksn[8:], "big")  # a key per block
    assert first.block != second.block
    assert "86429753" not in repr(pad) + pad.url + repr(first)


def test_pin_pad_enters_a_pin_as_a_format_0_block(pin_pad_rig: PinPadRig) -> None:
    pad = pin_pad_rig.open("1234")
    pin = _entered(pad.enter_pin(PinRequest(8000, 978, PAN, format=PinFormat.ISO_0), timeout=10))
    assert pin.format is PinFormat.ISO_0 and len(pin.block) == 8 and len(pin.ksn) == 10
    assert host_reads(pin) == b"1234"


def test_pin_pad_cancel(pin_pad_rig: PinPadRig) -> None:
    assert pin_pad_rig.open("cancel").enter_pin(PinRequest(100, 978, PAN), timeout=10) == PinEntry(
        PinOutcome.CANCELLED
    )


def test_pin_pad_timeout(pin_pad_rig: PinPadRig) -> None:
    assert pin_pad_rig.open("timeout").enter_pin(PinRequest(100, 978, PAN), timeout=10) == PinEntry(
        PinOutcome.TIMEOUT
    )


def test_pin_pad_bypass_where_allowed(pin_pad_rig: PinPadRig) -> None:
    entry = pin_pad_rig.open("bypass").enter_pin(PinRequest(100, 978, PAN, allow_bypass=True), timeout=10)
    assert entry == PinEntry(PinOutcome.BYPASSED)


def test_pin_pad_bypass_where_not_allowed_times_out(pin_pad_rig: PinPadRig) -> None:
    entry = pin_pad_rig.open("bypass").enter_pin(PinRequest(100, 978, PAN, allow_bypass=False), timeout=10)
    assert entry == PinEntry(PinOutcome.TIMEOUT)


def test_pin_pad_cancelled_before_it_starts(pin_pad_rig: PinPadRig) -> None:
    token = CancelToken()
    token.cancel()
    assert pin_pad_rig.open("1234").enter_pin(PinRequest(100, 978, PAN), cancel=token).outcome is PinOutcome.CANCELLED

