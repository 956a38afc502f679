"""The PIN pad contract. Import into a test file that defines ``pin_pad_rig``: ``rig.open(action) -> PinPad``.

``action`` is what the simulated customer does: a PIN (digits), ``cancel``, ``timeout`` or ``bypass``.
What a pad answers is checked as the host would: the block deciphers, under the key the host derives from
the simulator's BDK for the block's KSN, to the PIN that was entered.
"""

from __future__ import annotations

from typing import Protocol

from simulator.pin_keys import SIM_AES_BDK, SIM_AES_IKID, SIM_TDES_BDK, SIM_TDES_KEY_SET_ID
from simulator.pki import load_pki
from terminal.dukpt import aes_host_pin_key, tdes_host_pin_key
from terminal.pinblock import EncryptedPin, PinFormat, decipher
from terminal.ports import (
    CancelToken,
    EncipheredOfflinePin,
    EncipheringPinPad,
    OfflinePinRequest,
    PinEntry,
    PinOutcome,
    PinPad,
    PinRequest,
    PublicKey,
    offline_pin_ability,
)

__all__ = [
    "PinPadRig",
    "host_reads",
    "test_pin_pad_bypass_where_allowed",
    "test_pin_pad_bypass_where_not_allowed_times_out",
    "test_pin_pad_cancel",
    "test_pin_pad_cancelled_before_it_starts",
    "test_pin_pad_enciphers_an_offline_pin_only_the_card_reads",
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



def test_pin_pad_enciphers_an_offline_pin_only_the_card_reads(pin_pad_rig: PinPadRig) -> None:
    """EMV Book 2 7.2: 7F | PIN block format 2 | the card's challenge | random padding, under the card's key."""
    pad = pin_pad_rig.open("86429753")
    assert offline_pin_ability(pad).enciphers and isinstance(pad, EncipheringPinPad)
    icc = load_pki().icc("visa-qvsdc-offline")
    key = PublicKey(icc.n.to_bytes(icc.size, "big"), icc.e.to_bytes(3 if icc.e > 255 else 1, "big"))
    challenge = bytes.fromhex("0102030405060708")
    request = OfflinePinRequest(1234, 978, "enciphered", tries_left=2)
    sealed = [pad.encipher_offline_pin(request, key, challenge, timeout=10) for _ in range(2)]
    assert all(s.outcome is PinOutcome.ENTERED and s.data is not None and len(s.data) == key.size for s in sealed)
    assert sealed[0].data != sealed[1].data  # the padding is random
    for one in sealed:
        assert one.data is not None
        plain = pow(int.from_bytes(one.data, "big"), icc.d, icc.n).to_bytes(icc.size, "big")
        assert plain[0] == 0x7F and plain[1:9].hex().upper() == "2886429753FFFFFF" and plain[9:17] == challenge
    assert "86429753" not in repr(sealed[0])
    token = CancelToken()
    token.cancel()
    assert pad.encipher_offline_pin(request, key, challenge, cancel=token) == EncipheredOfflinePin(PinOutcome.CANCELLED)
