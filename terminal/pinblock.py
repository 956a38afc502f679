"""ISO 9564-1 PIN blocks: how a PIN leaves a PIN pad, enciphered and bound to the card's PAN.

Pure: no I/O, no clock (format 4's random fill comes from the OS's random
source, inside psec). Two formats, each with its DUKPT key (:mod:`terminal.dukpt`):

==========  ====================================================  ==========================
Format      Block                                                 Key
==========  ====================================================  ==========================
``4``       16 bytes: the PIN field (``4``, length, digits, ``A``  AES-128, AES DUKPT
            fill, 8 random bytes) enciphered, XOR the PAN field    (X9.24-3) PIN working key
            (length - 12, the PAN, ``0`` fill), enciphered again
``0``       8 bytes: the PIN field (``0``, length, digits, ``F``   TDES, TDES DUKPT
            fill) XOR ``0000`` + the PAN's 12 rightmost digits     (X9.24-1) PIN variant
            before its check digit, enciphered
==========  ====================================================  ==========================

The formats themselves come from psec (``psec.pinblock``); this module adds
the TDES encipherment of format 0, one error type whose message never holds a
PIN digit (psec's do: they are never passed on), and the host's comparison
(:func:`pin_matches`).

The clear PIN. A PIN pad collects digits in a ``bytearray`` and zeroes it
(:func:`wipe`) once the block is formed; :func:`encipher` takes that buffer and
leaves it as it was. Python strings cannot be wiped: psec takes the PIN as a
``str``, so one immutable copy lives from forming the block until the garbage
collector frees it (moments, but not provably zeroed); the cryptography
library's own buffers are likewise out of reach. Nothing here logs, stores or
returns a clear PIN except :func:`decipher`, which returns a ``bytearray`` the
caller wipes.
"""

from __future__ import annotations

import enum
import hmac
import re
from dataclasses import dataclass
from typing import Final

import psec.pinblock

from terminal.dukpt import AES_KSN_BYTES, TDES_KSN_BYTES, _tdes, _tdes_decrypt

__all__ = [
    "MAX_PIN_DIGITS",
    "MIN_PIN_DIGITS",
    "EncryptedPin",
    "PinBlockError",
    "PinFormat",
    "decipher",
    "encipher",
    "pin_matches",
    "wipe",
]

MIN_PIN_DIGITS: Final = 4
MAX_PIN_DIGITS: Final = 12
_DIGITS: Final = frozenset(b"0123456789")
_PAN: Final = re.compile(r"[0-9]{1,19}", re.ASCII)


class PinBlockError(ValueError):
    """A PIN, PAN, key or block that cannot make or open a PIN block; the message holds no PIN digit."""


class PinFormat(enum.IntEnum):
    """The ISO 9564-1 PIN block formats posterm forms (the protocol's ``pin_format``)."""

    ISO_0 = 0
    ISO_4 = 4

    @property
    def block_bytes(self) -> int:
        return 16 if self is PinFormat.ISO_4 else 8

    @property
    def ksn_bytes(self) -> int:
        """The DUKPT KSN that goes with the format: 12 bytes (AES DUKPT) or 10 (TDES DUKPT)."""
        return AES_KSN_BYTES if self is PinFormat.ISO_4 else TDES_KSN_BYTES


@dataclass(frozen=True)
class EncryptedPin:
    """What leaves a PIN pad: the enciphered block, the DUKPT key serial number, the format. Never a PIN.

    >>> EncryptedPin(bytes(8), bytes(9), PinFormat.ISO_0)
    Traceback (most recent call last):
    ...
    terminal.pinblock.PinBlockError: a format 0 PIN block goes with a 10-byte KSN, not 9 bytes
    """

    block: bytes
    ksn: bytes
    format: PinFormat

    def __post_init__(self) -> None:
        fmt = PinFormat(self.format)
        if len(self.block) != fmt.block_bytes:
            raise PinBlockError(f"a format {int(fmt)} PIN block is {fmt.block_bytes} bytes, not {len(self.block)}")
        if len(self.ksn) != fmt.ksn_bytes:
            raise PinBlockError(
                f"a format {int(fmt)} PIN block goes with a {fmt.ksn_bytes}-byte KSN, not {len(self.ksn)} bytes"
            )

    def __repr__(self) -> str:  # the block is safe to show (enciphered), but keep logs short and alike
        return f"EncryptedPin(format={int(self.format)}, ksn={self.ksn.hex().upper()}, block=<{len(self.block)} bytes>)"


def wipe(buffer: bytearray) -> None:
    """Zero a buffer that held PIN digits (as far as Python allows: copies made elsewhere are out of reach)."""
    buffer[:] = bytes(len(buffer))


def _check_pin(pin: bytes | bytearray) -> None:
    if not MIN_PIN_DIGITS <= len(pin) <= MAX_PIN_DIGITS or not set(pin) <= _DIGITS:
        raise PinBlockError(f"a PIN is {MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits")


def _check_pan(pan: str, fmt: PinFormat) -> None:
    if not _PAN.fullmatch(pan) or (fmt is PinFormat.ISO_0 and len(pan) < 13):
        need = "13 to 19" if fmt is PinFormat.ISO_0 else "1 to 19"
        raise PinBlockError(f"a format {int(fmt)} PIN block needs a PAN of {need} digits")


def _check_key(key: bytes, fmt: PinFormat) -> None:
    if len(key) != 16:
        raise PinBlockError(f"a format {int(fmt)} PIN block key is 16 bytes ({'AES-128' if fmt else 'TDES'})")


def encipher(pin: bytes | bytearray, pan: str, key: bytes, fmt: PinFormat) -> bytes:
    """The enciphered PIN block of ``pin`` (ASCII digits) for ``pan`` under ``key`` (the DUKPT PIN key)."""
    fmt = PinFormat(fmt)
    _check_pin(pin)
    _check_pan(pan, fmt)
    _check_key(key, fmt)
    text = pin.decode("ascii")  # the one str copy psec needs (see the module docstring)
    try:
        if fmt is PinFormat.ISO_4:
            return psec.pinblock.encipher_pinblock_iso_4(key, text, pan)
        return _tdes(key, psec.pinblock.encode_pinblock_iso_0(text, pan))
    except ValueError:
        raise PinBlockError(f"cannot form a format {int(fmt)} PIN block") from None
    finally:
        del text


def decipher(block: bytes, pan: str, key: bytes, fmt: PinFormat) -> bytearray:
    """The PIN in a block, as ASCII digits in a buffer the caller wipes; PinBlockError if it is not one.

    A block enciphered under another key, for another PAN (format 4 checks
    it through the fill; format 0 often cannot tell), or damaged is refused
    with a message that says so and holds nothing of what was deciphered.
    """
    fmt = PinFormat(fmt)
    _check_pan(pan, fmt)
    _check_key(key, fmt)
    if len(block) != fmt.block_bytes:
        raise PinBlockError(f"a format {int(fmt)} PIN block is {fmt.block_bytes} bytes, not {len(block)}")
    try:
        if fmt is PinFormat.ISO_4:
            text = psec.pinblock.decipher_pinblock_iso_4(key, block, pan)
        else:
            text = psec.pinblock.decode_pinblock_iso_0(_tdes_decrypt(key, block), pan)
    except ValueError:
        # psec's message may quote deciphered digits: never passed on
        raise PinBlockError(f"not a format {int(fmt)} PIN block under this key for this card") from None
    try:
        return bytearray(text.encode("ascii"))
    finally:
        del text


def pin_matches(block: bytes, pan: str, key: bytes, fmt: PinFormat, expected: bytes | bytearray) -> bool:
    """Whether the block holds ``expected`` (compared in constant time); PinBlockError if it is no block."""
    pin = decipher(block, pan, key, fmt)
    try:
        return hmac.compare_digest(pin, expected)
    finally:
        wipe(pin)
