"""DUKPT, derived unique key per transaction: the PIN pad's key for each PIN block, and the host's same key.

Pure: no I/O, no clock, no randomness. Two generations:

TDES DUKPT (ANSI X9.24-1:2009)
------------------------------
A 10-byte key serial number (KSN): a 59-bit initial KSN (the key set id and
the device id) and a 21-bit transaction counter that has at most 10 one bits.
The initial PIN encryption key (IPEK) is two TDES encryptions of the KSN's
leftmost 8 bytes with the counter cleared, under the base derivation key (BDK)
and under the BDK XOR ``C0C0C0C0 00000000 C0C0C0C0 00000000``
(:func:`tdes_ipek`). The key of a transaction is the IPEK put through the
non-reversible key generation process once for each one bit of the counter,
from the highest (:func:`tdes_transaction_key`), and the PIN key is its PIN
variant, XOR ``00000000 000000FF 00000000 000000FF`` (:func:`tdes_pin_key`).
Checked against the standard's published Annex A.4 vectors (tests).

AES DUKPT (ANSI X9.24-3-2017)
-----------------------------
A 12-byte KSN: the 8-byte initial key id (IKID: a 4-byte BDK id and a 4-byte
derivation id) and a 32-bit transaction counter with at most 16 one bits.
Every key is one AES-ECB encryption of 16 bytes of derivation data under the
key above it (:func:`derivation_data`): version ``01``, key block counter
``01``, the key usage (``8001`` initial key, ``8000`` key derivation, ``1000``
PIN encryption, ...), the algorithm (``0002`` AES-128), the key length in bits
(``0080``), then the IKID (for the initial key) or the derivation id and a
counter (for the others). The initial key is derived from the BDK with the
IKID (:func:`aes_initial_key`); the intermediate derivation keys walk the
counter's one bits from the highest, and the working key is derived from the
last with the working key's usage and the full counter
(:func:`aes_working_key`, as a host does from the BDK: :func:`aes_host_working_key`).
A PIN pad does not keep its initial key: it keeps future-key registers
(:class:`AesFutureKeys`, the standard's algorithm), which give the same keys.

AES-128 keys only (the PIN encryption key for ISO 9564 format 4). Checked
against two values of the X9.24-3-2017 test vector supplement (the initial
key and the first transaction's PIN key of its AES-128 example BDK), quoted
from the supplement because no copy of it is reachable from the machines this
was built on, and reproduced to the bit; and by properties (the PIN pad's
registers and the host's derivation from the BDK agree, keys differ per
counter and usage, the counter rules hold). See tests/unit/test_dukpt.py.

Keys are ``bytes`` (immutable: Python cannot wipe them); the future-key
registers are ``bytearray`` and are zeroed when a register is erased, as far
as Python allows (copies made by the cryptography library are out of reach).
"""

from __future__ import annotations

import warnings
from typing import Final

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "AES_KSN_BYTES",
    "AES_MAX_ONE_BITS",
    "KEY_USAGE_PIN",
    "TDES_KSN_BYTES",
    "TDES_MAX_ONE_BITS",
    "AesFutureKeys",
    "DukptError",
    "aes_counter",
    "aes_host_pin_key",
    "aes_host_working_key",
    "aes_initial_key",
    "aes_ksn",
    "aes_next_counter",
    "aes_working_key",
    "derivation_data",
    "tdes_counter",
    "tdes_host_pin_key",
    "tdes_ipek",
    "tdes_ksn",
    "tdes_next_counter",
    "tdes_pin_key",
    "tdes_transaction_key",
]

TDES_KSN_BYTES: Final = 10
AES_KSN_BYTES: Final = 12
TDES_COUNTER_BITS: Final = 21
TDES_MAX_ONE_BITS: Final = 10
AES_MAX_ONE_BITS: Final = 16
_TDES_COUNTER_MASK: Final = (1 << TDES_COUNTER_BITS) - 1
_KEY_MASK: Final = bytes.fromhex("C0C0C0C000000000C0C0C0C000000000")
_PIN_VARIANT: Final = bytes.fromhex("00000000000000FF00000000000000FF")

#: X9.24-3 key usage indicators (derivation data bytes 2-3).
KEY_USAGE_KEK: Final = 0x0002
KEY_USAGE_PIN: Final = 0x1000
KEY_USAGE_MAC_GENERATE: Final = 0x2000
KEY_USAGE_MAC_VERIFY: Final = 0x2001
KEY_USAGE_MAC_BOTH: Final = 0x2002
KEY_USAGE_DATA_ENCRYPT: Final = 0x3000
KEY_USAGE_DATA_DECRYPT: Final = 0x3001
KEY_USAGE_DATA_BOTH: Final = 0x3002
KEY_USAGE_DERIVATION: Final = 0x8000
KEY_USAGE_INITIAL_KEY: Final = 0x8001
_AES128: Final = 0x0002
_AES128_BITS: Final = 0x0080


class DukptError(ValueError):
    """A KSN, key or counter that DUKPT cannot use (the message names which, never a key)."""


# ----------------------------------------------------------------------------- block ciphers


def _des(key: bytes, block: bytes) -> bytes:
    """Single DES (TDES with K1 = K2 = K3) of one block."""
    return _tdes(key, block)


def _tdes(key: bytes, block: bytes) -> bytes:
    """TDES-ECB (a 16-byte key is two-key TDES, an 8-byte one single DES): also used by :mod:`terminal.pinblock`."""
    with warnings.catch_warnings():  # cryptography deprecates TripleDES; X9.24-1 DUKPT is TDES by definition
        warnings.filterwarnings("ignore", message=".*TripleDES.*")
        encryptor = Cipher(TripleDES(key), modes.ECB()).encryptor()
        return encryptor.update(block) + encryptor.finalize()


def _tdes_decrypt(key: bytes, block: bytes) -> bytes:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TripleDES.*")
        decryptor = Cipher(TripleDES(key), modes.ECB()).decryptor()
        return decryptor.update(block) + decryptor.finalize()


def _aes(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# ----------------------------------------------------------------------------- TDES DUKPT (X9.24-1)


def _tdes_check(bdk_or_key: bytes, ksn: bytes) -> None:
    if len(bdk_or_key) != 16:
        raise DukptError(f"a TDES DUKPT key is 16 bytes, not {len(bdk_or_key)}")
    if len(ksn) != TDES_KSN_BYTES:
        raise DukptError(f"a TDES KSN is {TDES_KSN_BYTES} bytes, not {len(ksn)}")


def tdes_counter(ksn: bytes) -> int:
    """The 21-bit transaction counter of a TDES KSN."""
    if len(ksn) != TDES_KSN_BYTES:
        raise DukptError(f"a TDES KSN is {TDES_KSN_BYTES} bytes, not {len(ksn)}")
    return int.from_bytes(ksn[-3:], "big") & _TDES_COUNTER_MASK


def tdes_ksn(initial_ksn: bytes, counter: int) -> bytes:
    """The KSN of ``counter`` under an initial KSN (whose counter bits are ignored)."""
    if len(initial_ksn) != TDES_KSN_BYTES:
        raise DukptError(f"a TDES KSN is {TDES_KSN_BYTES} bytes, not {len(initial_ksn)}")
    if not 0 <= counter <= _TDES_COUNTER_MASK:
        raise DukptError("a TDES DUKPT counter has 21 bits")
    base = int.from_bytes(initial_ksn, "big") & ~_TDES_COUNTER_MASK
    return (base | counter).to_bytes(TDES_KSN_BYTES, "big")


def tdes_next_counter(counter: int) -> int:
    """The next counter a TDES PIN pad uses: the next with at most 10 one bits (DukptError when exhausted)."""
    following = counter + 1
    while following <= _TDES_COUNTER_MASK and following.bit_count() > TDES_MAX_ONE_BITS:
        following += following & -following  # skip every counter below the next carry: all have too many ones
    if following > _TDES_COUNTER_MASK:
        raise DukptError("the TDES DUKPT counter is exhausted: the PIN pad needs a new initial key")
    return following


def tdes_ipek(bdk: bytes, ksn: bytes) -> bytes:
    """The initial PIN encryption key of a KSN (its counter is ignored)."""
    _tdes_check(bdk, ksn)
    base = (int.from_bytes(ksn, "big") & ~_TDES_COUNTER_MASK).to_bytes(TDES_KSN_BYTES, "big")[:8]
    return _tdes(bdk, base) + _tdes(_xor(bdk, _KEY_MASK), base)


def _nrkgp(key: bytes, register: bytes) -> bytes:
    """The non-reversible key generation process: a key and the KSN register's 8 bytes -> the next key."""

    def half(k: bytes) -> bytes:
        left, right = k[:8], k[8:]
        return _xor(_des(left, _xor(right, register)), right)

    right = half(key)
    left = half(_xor(key, _KEY_MASK))
    return left + right


def tdes_transaction_key(ipek: bytes, ksn: bytes) -> bytes:
    """The current key for the KSN's counter (the PIN pad's future key; before any variant)."""
    _tdes_check(ipek, ksn)
    counter = tdes_counter(ksn)
    if counter.bit_count() > TDES_MAX_ONE_BITS:
        raise DukptError(f"TDES DUKPT counter {counter:#x} has more than {TDES_MAX_ONE_BITS} one bits")
    register = int.from_bytes(ksn[-8:], "big") & ~_TDES_COUNTER_MASK
    key = ipek
    bit = 1 << (TDES_COUNTER_BITS - 1)
    while bit:
        if counter & bit:
            register |= bit
            key = _nrkgp(key, register.to_bytes(8, "big"))
        bit >>= 1
    return key


def tdes_pin_key(transaction_key: bytes) -> bytes:
    """The PIN encryption variant of a transaction key."""
    if len(transaction_key) != 16:
        raise DukptError("a TDES DUKPT key is 16 bytes")
    return _xor(transaction_key, _PIN_VARIANT)


def tdes_host_pin_key(bdk: bytes, ksn: bytes) -> bytes:
    """What the host does: the PIN key of a KSN, from the BDK."""
    return tdes_pin_key(tdes_transaction_key(tdes_ipek(bdk, ksn), ksn))


# ----------------------------------------------------------------------------- AES DUKPT (X9.24-3)


def derivation_data(usage: int, ikid: bytes, counter: int | None) -> bytes:
    """The 16 bytes of derivation data for an AES-128 key.

    ``counter`` None: the initial key (the whole IKID); else a derivation or
    working key (the IKID's derivation id, then the counter).
    """
    if len(ikid) != 8:
        raise DukptError(f"an AES DUKPT initial key id is 8 bytes, not {len(ikid)}")
    head = bytes([0x01, 0x01]) + usage.to_bytes(2, "big") + _AES128.to_bytes(2, "big") + _AES128_BITS.to_bytes(2, "big")
    if counter is None:
        return head + ikid
    if not 0 <= counter <= 0xFFFFFFFF:
        raise DukptError("an AES DUKPT counter has 32 bits")
    return head + ikid[4:] + counter.to_bytes(4, "big")


def _aes_key(key: bytes) -> None:
    if len(key) != 16:
        raise DukptError(f"AES-128 DUKPT keys are 16 bytes, not {len(key)}")


def aes_ksn(ikid: bytes, counter: int) -> bytes:
    """The 12-byte KSN: the initial key id and the counter."""
    if len(ikid) != 8:
        raise DukptError(f"an AES DUKPT initial key id is 8 bytes, not {len(ikid)}")
    if not 0 <= counter <= 0xFFFFFFFF:
        raise DukptError("an AES DUKPT counter has 32 bits")
    return ikid + counter.to_bytes(4, "big")


def aes_counter(ksn: bytes) -> int:
    if len(ksn) != AES_KSN_BYTES:
        raise DukptError(f"an AES KSN is {AES_KSN_BYTES} bytes, not {len(ksn)}")
    return int.from_bytes(ksn[8:], "big")


def aes_next_counter(counter: int) -> int:
    """The next counter an AES PIN pad uses: the next with at most 16 one bits (DukptError when exhausted)."""
    following = counter + 1
    while following <= 0xFFFFFFFF and following.bit_count() > AES_MAX_ONE_BITS:
        following += following & -following
    if following > 0xFFFFFFFF:
        raise DukptError("the AES DUKPT counter is exhausted: the PIN pad needs a new initial key")
    return following


def aes_initial_key(bdk: bytes, ikid: bytes) -> bytes:
    """The PIN pad's initial key (AES-128) for its initial key id, from the BDK (AES-128)."""
    _aes_key(bdk)
    return _aes(bdk, derivation_data(KEY_USAGE_INITIAL_KEY, ikid, None))


def aes_working_key(initial_key: bytes, ksn: bytes, usage: int = KEY_USAGE_PIN) -> bytes:
    """The working key of ``usage`` for the KSN's counter, from the initial key (the standard's host algorithm)."""
    _aes_key(initial_key)
    ikid, counter = ksn[:8], aes_counter(ksn)
    if counter == 0:
        raise DukptError("AES DUKPT counter 0 is never used for a transaction")
    if counter.bit_count() > AES_MAX_ONE_BITS:
        raise DukptError(f"AES DUKPT counter {counter:#x} has more than {AES_MAX_ONE_BITS} one bits")
    key = initial_key
    working = 0
    bit = 1 << 31
    while bit:
        if counter & bit:
            working |= bit
            key = _aes(key, derivation_data(KEY_USAGE_DERIVATION, ikid, working))
        bit >>= 1
    return _aes(key, derivation_data(usage, ikid, counter))


def aes_host_working_key(bdk: bytes, ksn: bytes, usage: int) -> bytes:
    """What the host does: a working key of a KSN, from the BDK."""
    if len(ksn) != AES_KSN_BYTES:
        raise DukptError(f"an AES KSN is {AES_KSN_BYTES} bytes, not {len(ksn)}")
    return aes_working_key(aes_initial_key(bdk, ksn[:8]), ksn, usage)


def aes_host_pin_key(bdk: bytes, ksn: bytes) -> bytes:
    """The PIN encryption key (AES-128) of a KSN, from the BDK."""
    return aes_host_working_key(bdk, ksn, KEY_USAGE_PIN)


class AesFutureKeys:
    """A PIN pad's AES DUKPT state: 32 intermediate derivation key registers and the counter (X9.24-3).

    Register ``i`` holds the derivation key of the counter made of the
    current counter's bits above ``i`` and bit ``i``; the initial key is
    used once, to fill them, and is not kept. Each transaction uses the
    register of its counter's lowest one bit, fills the registers below it
    (unless the counter already has the most one bits allowed) and erases
    (zeroes) the one used.

    >>> pad = AesFutureKeys(bytes(16), bytes.fromhex("0102030405060708"))
    >>> ksn, key = pad.next_key()
    >>> ksn.hex(), key == aes_working_key(bytes(16), ksn)
    ('010203040506070800000001', True)
    """

    REGISTERS: Final = 32

    def __init__(self, initial_key: bytes, ikid: bytes, counter: int = 0) -> None:
        """Load the initial key; ``counter``: the counter of the last transaction (0: none yet).

        Loading at a counter above 0 derives the registers as they would be
        after that transaction (for a PIN pad that kept only its counter).
        """
        _aes_key(initial_key)
        if len(ikid) != 8:
            raise DukptError("an AES DUKPT initial key id is 8 bytes")
        self.ikid = bytes(ikid)
        self._registers: list[bytearray | None] = [None] * self.REGISTERS
        self.counter = 0  # the next transaction's counter once loaded
        if counter == 0:
            self._fill(bytes(initial_key), 0, self.REGISTERS - 1)
            self.counter = 1
            return
        nxt = aes_next_counter(counter)
        # The registers as they are before transaction ``nxt``: register i, for the bits i above nxt's
        # lowest one bit that are zero in nxt and for that lowest bit, holds the derivation key of
        # (nxt's bits above i) | bit i; the others are empty.
        low = (nxt & -nxt).bit_length() - 1
        prefix_key = bytes(initial_key)
        walked = 0
        for i in range(self.REGISTERS - 1, low - 1, -1):
            bit = 1 << i
            value = _aes(prefix_key, derivation_data(KEY_USAGE_DERIVATION, self.ikid, walked | bit))
            if nxt & bit and i > low:
                walked |= bit
                prefix_key = value
            else:
                self._registers[i] = bytearray(value)
        self.counter = nxt

    def _fill(self, base: bytes, prefix: int, top: int) -> None:
        """Registers ``top`` .. 0 from ``base``, the derivation key of the counter ``prefix``."""
        for i in range(top, -1, -1):
            value = _aes(base, derivation_data(KEY_USAGE_DERIVATION, self.ikid, prefix | (1 << i)))
            self._erase(i)
            self._registers[i] = bytearray(value)

    def _erase(self, index: int) -> None:
        register = self._registers[index]
        if register is not None:
            register[:] = bytes(len(register))
        self._registers[index] = None

    def next_key(self, usage: int = KEY_USAGE_PIN) -> tuple[bytes, bytes]:
        """(KSN, working key) of the next transaction; the state moves on (DukptError when exhausted)."""
        counter = self.counter
        if counter > 0xFFFFFFFF:
            raise DukptError("the AES DUKPT counter is exhausted: the PIN pad needs a new initial key")
        low = (counter & -counter).bit_length() - 1
        register = self._registers[low]
        if register is None:
            raise DukptError("the PIN pad's key registers are spent")
        base = bytes(register)
        key = _aes(base, derivation_data(usage, self.ikid, counter))
        if counter.bit_count() < AES_MAX_ONE_BITS and low > 0:
            self._fill(base, counter, low - 1)
        self._erase(low)
        try:
            self.counter = aes_next_counter(counter)
        except DukptError:
            self.counter = 0x100000000  # spent: the next call refuses
        return aes_ksn(self.ikid, counter), key

    def erase(self) -> None:
        """Zero every register (the PIN pad is taken out of service)."""
        for i in range(self.REGISTERS):
            self._erase(i)
