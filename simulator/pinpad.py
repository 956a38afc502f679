"""The simulated PIN pads: a DUKPT key that advances per PIN block, and ``sim:pin=...`` as a PIN pad device.

``sim:pin=1234`` enters 1234 (4 to 12 digits), ``sim:pin=cancel`` cancels,
``sim:pin=timeout`` lets the entry time out, ``sim:pin=bypass`` presses Enter
with no digits (bypassed where the request allows it; where it does not, the
pad ignores the key and the entry times out). Each answers at once: the
customer of a simulator is quick. Options in the query:

``format=4|0``
    the format this pad forms, whatever the request asks (a pad configured for
    TDES DUKPT, format 0); default: the request's;
``state-dir=DIR``
    where the KSN counters are kept (default ``$POSTERM_SIM_STATE``, else the
    user state directory), as for the simulated wallets.

The keys (:class:`PinKeys`). Every simulated PIN pad is loaded from the
simulator's test BDKs (:mod:`simulator.pin_keys`, simulator only) with one
initial key id (AES DUKPT, format 4) and one initial KSN (TDES DUKPT,
format 0); the counters are kept in ``pinpad-keys.json`` in the state
directory, advanced under a file lock before each block is formed, so that no
KSN is used twice, across processes too (the simulated host refuses no
repeated KSN, but a real one may). A simulator shortcut: a real PIN pad
erases its initial key and keeps future-key registers
(:class:`terminal.dukpt.AesFutureKeys`); this one derives each key again from
the initial key and the counter, which gives the same keys.

The clear PIN is a ``bytearray`` from the URL (or the pty pad's option) to the
block, wiped after (see :mod:`terminal.pinblock` for what Python cannot wipe).

Offline PIN for an inserted card: the pad hands its digits to the contact
kernel (:meth:`SimulatorPinPad.enter_offline_pin`, a plaintext PIN), and for an
enciphered PIN forms the card's enciphered PIN data itself
(:func:`encipher_offline`, as a separate EMV PIN pad does, and as the pty pad
answers ``EPIN``): the terminal takes the enciphering path when a pad has it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from simulator.cbdc.state import state_dir
from simulator.pin_keys import SIM_AES_BDK, SIM_AES_IKID, SIM_TDES_BDK, SIM_TDES_INITIAL_KSN
from terminal.dukpt import (
    DukptError,
    aes_initial_key,
    aes_ksn,
    aes_next_counter,
    aes_working_key,
    tdes_ipek,
    tdes_ksn,
    tdes_next_counter,
    tdes_pin_key,
    tdes_transaction_key,
)
from terminal.files import atomic_write
from terminal.pinblock import MAX_PIN_DIGITS, MIN_PIN_DIGITS, EncryptedPin, PinBlockError, PinFormat, encipher, wipe
from terminal.ports import (
    CancelToken,
    DeviceError,
    DeviceUrlError,
    EncipheredOfflinePin,
    OfflinePin,
    OfflinePinRequest,
    PinEntry,
    PinOutcome,
    PinRequest,
    PublicKey,
)

__all__ = [
    "ACTIONS",
    "KEYS_FILE",
    "PinAction",
    "PinKeys",
    "SimulatorPinPad",
    "encipher_offline",
    "enciphered_answer",
    "offline_answer",
    "parse_action",
]

KEYS_FILE: Final = "pinpad-keys.json"
#: What a simulated customer does instead of entering digits.
ACTIONS: Final = ("cancel", "timeout", "bypass")
_OPTIONS: Final = "format=4|0, state-dir=DIR"


@dataclass(frozen=True)
class PinAction:
    """What the simulated customer does: a word of :data:`ACTIONS`, or enter digits (``digits``)."""

    word: str  # "digits" | "cancel" | "timeout" | "bypass"
    digits: bytes = b""

    def __repr__(self) -> str:
        return f"PinAction({self.word!r})"  # never the digits


def parse_action(text: str, where: str) -> PinAction:
    """``1234`` (4 to 12 digits) or ``cancel`` / ``timeout`` / ``bypass``; DeviceUrlError naming ``where``."""
    word = text.strip().lower()
    if word in ACTIONS:
        return PinAction(word)
    if word.isascii() and word.isdigit() and MIN_PIN_DIGITS <= len(word) <= MAX_PIN_DIGITS:
        return PinAction("digits", word.encode("ascii"))
    raise DeviceUrlError(
        f"{where}: expected a PIN of {MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits, or {', '.join(ACTIONS)}"
    )


class PinKeys:
    """The simulated PIN pads' DUKPT keys: form a PIN block under the next KSN of the format's key."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = state_dir(directory)
        self.path = self.directory / KEYS_FILE
        self._aes_initial = aes_initial_key(SIM_AES_BDK, SIM_AES_IKID)
        self._tdes_ipek = tdes_ipek(SIM_TDES_BDK, SIM_TDES_INITIAL_KSN)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, int]]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock = os.open(self.directory / (KEYS_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DeviceError(f"simulated PIN pad: cannot use its state folder {self.directory}: {exc}") from exc
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            counters = self._read()
            yield counters
            atomic_write(self.path, (json.dumps(counters, sort_keys=True) + "\n").encode("ascii"))
        except OSError as exc:
            raise DeviceError(f"simulated PIN pad: cannot keep its key counters in {self.path}: {exc}") from exc
        finally:
            os.close(lock)

    def _read(self) -> dict[str, int]:
        if not self.path.exists():
            return {"aes": 0, "tdes": 0}
        try:
            doc = json.loads(self.path.read_text(encoding="ascii"))
            return {"aes": int(doc["aes"]), "tdes": int(doc["tdes"])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DeviceError(f"simulated PIN pad: {self.path} is damaged ({type(exc).__name__}); remove it") from None

    def counters(self) -> dict[str, int]:
        """The counters of the last KSN used per key (``aes``, ``tdes``; 0: none yet)."""
        return self._read()

    def form(self, pin: bytearray, pan: str, fmt: PinFormat) -> EncryptedPin:
        """The PIN block of ``pin`` for ``pan`` under the next KSN; ``pin`` is wiped whatever happens."""
        try:
            with self._locked() as counters:
                if fmt is PinFormat.ISO_4:
                    counters["aes"] = aes_next_counter(counters["aes"])
                    ksn = aes_ksn(SIM_AES_IKID, counters["aes"])
                    key = aes_working_key(self._aes_initial, ksn)
                else:
                    counters["tdes"] = tdes_next_counter(counters["tdes"])
                    ksn = tdes_ksn(SIM_TDES_INITIAL_KSN, counters["tdes"])
                    key = tdes_pin_key(tdes_transaction_key(self._tdes_ipek, ksn))
            return EncryptedPin(encipher(pin, pan, key, fmt), ksn, fmt)
        except (DukptError, PinBlockError) as exc:
            raise DeviceError(f"simulated PIN pad: {exc}") from None
        finally:
            wipe(pin)


def answer(action: PinAction, request: PinRequest, keys: PinKeys, fmt: PinFormat | None = None) -> PinEntry:
    """What the simulated customer's action gives for ``request`` (the block formed with ``keys``)."""
    if action.word == "cancel":
        return PinEntry(PinOutcome.CANCELLED)
    if action.word == "timeout" or (action.word == "bypass" and not request.allow_bypass):
        return PinEntry(PinOutcome.TIMEOUT)
    if action.word == "bypass":
        return PinEntry(PinOutcome.BYPASSED)
    buffer = bytearray(action.digits)  # the customer's keystrokes; wiped by form()
    return PinEntry(PinOutcome.ENTERED, keys.form(buffer, request.pan, request.format if fmt is None else fmt))


def offline_answer(action: PinAction, request: OfflinePinRequest) -> OfflinePin:
    """What the simulated customer's action gives for an offline PIN: the digits go to the card's VERIFY."""
    if action.word == "cancel":
        return OfflinePin(PinOutcome.CANCELLED)
    if action.word == "timeout" or (action.word == "bypass" and not request.allow_bypass):
        return OfflinePin(PinOutcome.TIMEOUT)
    if action.word == "bypass":
        return OfflinePin(PinOutcome.BYPASSED)
    return OfflinePin(PinOutcome.ENTERED, bytearray(action.digits))


def encipher_offline(digits: bytearray, key: PublicKey, challenge: bytes) -> bytes:
    """The enciphered PIN data for VERIFY (P2 88), EMV Book 2 7.2, formed in the pad; ``digits`` is wiped.

    ``7F | PIN block format 2 (2, length, digits, F padding: 8 bytes) | the card's
    challenge (8) | random padding`` up to the key's length, RSA with the card's
    public key.  DeviceError for a key or challenge no card has.
    """
    block = bytearray(8)
    message = bytearray()
    try:
        if not MIN_PIN_DIGITS <= len(digits) <= MAX_PIN_DIGITS or not all(0x30 <= d <= 0x39 for d in digits):
            raise DeviceError("an offline PIN is 4 to 12 digits")
        if len(challenge) != 8 or not 17 + 8 <= key.size <= 256 or not any(key.exponent):
            raise DeviceError("the card's key or challenge does not fit an enciphered PIN")
        nibbles = [2, len(digits), *(d - 0x30 for d in digits)]
        nibbles += [0xF] * (16 - len(nibbles))
        for i in range(8):
            block[i] = nibbles[2 * i] << 4 | nibbles[2 * i + 1]
        message += b"\x7f" + block + challenge + secrets.token_bytes(key.size - 17)
        n = int.from_bytes(key.modulus, "big")
        if int.from_bytes(message, "big") >= n:
            raise DeviceError("the card's key is too small for its own length")
        e = int.from_bytes(key.exponent, "big")
        return pow(int.from_bytes(message, "big"), e, n).to_bytes(key.size, "big")
    finally:
        wipe(digits)
        wipe(block)
        wipe(message)


def enciphered_answer(
    action: PinAction, request: OfflinePinRequest, key: PublicKey, challenge: bytes
) -> EncipheredOfflinePin:
    """What the simulated customer's action gives for an enciphered offline PIN the pad forms itself."""
    if action.word == "cancel":
        return EncipheredOfflinePin(PinOutcome.CANCELLED)
    if action.word == "timeout" or (action.word == "bypass" and not request.allow_bypass):
        return EncipheredOfflinePin(PinOutcome.TIMEOUT)
    if action.word == "bypass":
        return EncipheredOfflinePin(PinOutcome.BYPASSED)
    return EncipheredOfflinePin(PinOutcome.ENTERED, encipher_offline(bytearray(action.digits), key, challenge))


def _parse(url: str) -> tuple[PinAction, PinFormat | None, str | None]:
    _, _, rest = url.partition(":")
    rest, _, query = rest.partition("?")
    key, sep, value = rest.partition("=")
    if key != "pin" or not sep:
        raise DeviceUrlError("expected sim:pin=DIGITS, sim:pin=cancel, timeout or bypass")
    action = parse_action(value, "sim:pin=...")
    fmt: PinFormat | None = None
    folder: str | None = None
    for item in filter(None, query.split("&")):
        name, has, text = item.partition("=")
        name = name.strip().replace("_", "-")
        if name == "format" and has and text.strip() in ("0", "4") and fmt is None:
            fmt = PinFormat(int(text.strip()))
        elif name == "state-dir" and has and text.strip() and folder is None:
            folder = text.strip()
        else:
            raise DeviceUrlError(f"sim:pin=...: bad or repeated option {name!r} (options: {_OPTIONS})")
    return action, fmt, folder


class SimulatorPinPad:
    """A PIN pad whose customer always does the same thing (see the module docstring for the URL).

    The URL holds the simulated PIN: ``url`` and ``repr`` show it masked.
    """

    kind = "pin-pad"

    def __init__(self, url: str, action: PinAction, fmt: PinFormat | None, keys: PinKeys) -> None:
        self._action = action
        self._format = fmt
        self.keys = keys
        masked = "****" if action.word == "digits" else action.word
        _, _, query = url.partition("?")
        self.url = f"sim:pin={masked}" + (f"?{query}" if query else "")

    @classmethod
    def open(cls, url: str) -> SimulatorPinPad:
        action, fmt, folder = _parse(url)
        return cls(url, action, fmt, PinKeys(folder))

    @staticmethod
    def check(url: str) -> None:
        _parse(url)

    def enter_pin(
        self, request: PinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> PinEntry:
        if cancel is not None and cancel.cancelled:
            return PinEntry(PinOutcome.CANCELLED)
        return answer(self._action, request, self.keys, self._format)

    def enter_offline_pin(
        self, request: OfflinePinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> OfflinePin:
        """The simulated customer's PIN for an inserted card's VERIFY (its digits: the URL's, as typed)."""
        if cancel is not None and cancel.cancelled:
            return OfflinePin(PinOutcome.CANCELLED)
        return offline_answer(self._action, request)

    def encipher_offline_pin(
        self,
        request: OfflinePinRequest,
        key: PublicKey,
        challenge: bytes,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
    ) -> EncipheredOfflinePin:
        """The simulated customer's PIN enciphered for the card by the pad itself (:func:`encipher_offline`)."""
        if cancel is not None and cancel.cancelled:
            return EncipheredOfflinePin(PinOutcome.CANCELLED)
        return enciphered_answer(self._action, request, key, challenge)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"SimulatorPinPad({self.url!r})"


def keys_file(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where the simulated PIN pads keep their counters."""
    return state_dir(directory) / KEYS_FILE
