"""Ports the terminal core declares and the drivers implement: card readers, code scanners, printers, PIN pads.

Every device is opened from a URL through :mod:`terminal.registry`; an
adapter class per URL scheme implements one of these protocols.  The errors
here are the only ones a driver lets out, so that the core, the diagnostics
and the user see the same named conditions whatever the hardware:

============================  ==============================================
:class:`DeviceError`          the device cannot be opened or used (base)
:class:`DeviceUrlError`       the URL names nothing usable (user input)
:class:`DeviceGone`           it was there and is not any more (unplugged)
:class:`NoCardError`          no card came into the field before the timeout
:class:`CardRemovedError`     the card left the field during a transaction
:class:`CollisionDetected`    more than one card in the field ("one card only")
:class:`WaitCancelled`        the wait was cancelled (:class:`CancelToken`)
:class:`NoCodeError`          no code was scanned before the timeout
:class:`PrinterError`         the printer refused a job; ``.status`` says why
============================  ==============================================

Card errors during a transaction derive from
:class:`emv.apdu.CardCommunicationError`, which the kernels turn into their
outcomes (try again, present one card only).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from emv.apdu import ApduTransport, CardCommunicationError, CollisionDetected
from emv.oda import PublicKey
from emv.pan import mask_pan
from terminal.pinblock import EncryptedPin, PinFormat

__all__ = [
    "PIN_PURPOSES",
    "CancelToken",
    "CardReader",
    "CardRemovedError",
    "CardSession",
    "CodeScanner",
    "CollisionDetected",
    "DeviceError",
    "DeviceGone",
    "DeviceUrlError",
    "EncipheredOfflinePin",
    "EncipheringPinPad",
    "EncryptedPin",
    "NoCardError",
    "NoCodeError",
    "OfflinePin",
    "OfflinePinAbility",
    "OfflinePinPad",
    "OfflinePinRequest",
    "PinEntry",
    "PinFormat",
    "PinOutcome",
    "PinPad",
    "PinRequest",
    "PrinterError",
    "PrinterStatus",
    "PublicKey",
    "ReceiptPrinter",
    "ScannedCode",
    "WaitCancelled",
    "codes",
    "offline_pin_ability",
]


class DeviceError(Exception):
    """A device could not be opened or used; the message says which and why."""


class DeviceUrlError(DeviceError):
    """A device URL (or host link name) that names nothing usable: no such scheme, profile or option.

    The user's input, not an outage: ``posterm`` reports it with exit status 2
    where other device errors are 3 (see :mod:`terminal.exit_status`).
    """


class DeviceGone(DeviceError, CardCommunicationError):
    """The device was removed (reader unplugged, serial port gone, printer off the network).

    Also a :class:`~emv.apdu.CardCommunicationError`, so that a reader pulled
    out in the middle of a transaction ends it like a card taken away.
    """


class NoCardError(CardCommunicationError):
    """No card came into the field before the timeout."""


class CardRemovedError(CardCommunicationError):
    """The card left the field (or stopped answering) during a transaction."""


class WaitCancelled(Exception):
    """A wait for the customer (card, code) was cancelled."""


class NoCodeError(Exception):
    """No code was scanned before the timeout."""


class CancelToken:
    """Set by whoever wants a wait to stop (the facade's ``cancel``); waits poll or block on it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking at once on cancel; True if cancelled."""
        return self._event.wait(timeout)


@runtime_checkable
class CardSession(ApduTransport, Protocol):
    """A card in the field: an APDU transport that can be closed.

    ``exchange`` raises :class:`CardRemovedError` when the card is gone and
    :class:`DeviceGone` when the reader is.  ``atr`` is the card's ATR (for a
    contactless card, what the reader reports: the ATS or a PC/SC ATR built
    from it).
    """

    @property
    def atr(self) -> bytes: ...

    def close(self) -> None: ...


@runtime_checkable
class CardReader(Protocol):
    """A contactless or contact reader, opened from a device URL."""

    url: str

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        """Block until one card is in the field.

        Raises :class:`NoCardError` on timeout, :class:`WaitCancelled` when
        ``cancel`` is set, :class:`CollisionDetected` when several cards are in
        the field, :class:`DeviceGone` when the reader goes away.
        """
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ScannedCode:
    """One decoded code: its text, the symbology where the scanner says (``QRCODE``, ``EAN13``, ...)."""

    text: str
    symbology: str | None = None
    raw: bytes = b""
    source: str = ""  # the scanner's URL


@runtime_checkable
class CodeScanner(Protocol):
    """A QR / barcode scanner: a serial scanner, a camera, image files."""

    url: str

    def read(self, timeout: float | None = None, cancel: CancelToken | None = None) -> ScannedCode:
        """The next decoded code; :class:`NoCodeError` on timeout, :class:`WaitCancelled` on cancel.

        Garbage (undecodable bytes, partial lines) is dropped, never returned.
        """
        ...

    def close(self) -> None: ...


def codes(scanner: CodeScanner, cancel: CancelToken | None = None) -> Iterator[ScannedCode]:
    """The stream of codes from a scanner until ``cancel`` is set (timeouts are waited through)."""
    token = cancel or CancelToken()
    while not token.cancelled:
        try:
            yield scanner.read(timeout=0.5, cancel=token)
        except (NoCodeError, WaitCancelled):
            continue


class PrinterStatus(enum.Enum):
    READY = "ready"
    PAPER_LOW = "paper_low"
    PAPER_OUT = "paper_out"
    COVER_OPEN = "cover_open"
    OFFLINE = "offline"
    UNKNOWN = "unknown"  # the printer does not answer status queries


class PrinterError(DeviceError):
    """A job could not be printed; ``status`` says why (paper out, cover open, offline, ...)."""

    def __init__(self, message: str, status: PrinterStatus = PrinterStatus.UNKNOWN) -> None:
        super().__init__(message)
        self.status = status


@runtime_checkable
class ReceiptPrinter(Protocol):
    """An ESC/POS receipt printer (serial, USB, network) or the simulator's."""

    url: str

    def print_job(self, data: bytes) -> None:
        """Send one ESC/POS job; :class:`PrinterError` if it cannot be printed (nothing half-sent
        is reported as printed)."""
        ...

    def status(self) -> PrinterStatus: ...

    def close(self) -> None: ...


#: What a PIN is asked for (:attr:`PinRequest.purpose`).
PIN_PURPOSES: Final = ("sale", "refund")


class PinOutcome(enum.Enum):
    """How a PIN entry ended."""

    ENTERED = "entered"  # a PIN block was formed
    CANCELLED = "cancelled"  # the customer pressed Cancel, or the terminal cancelled the wait
    TIMEOUT = "timeout"  # nobody finished entering a PIN in time
    BYPASSED = "bypassed"  # the customer pressed Enter with no digits where bypass was allowed


@dataclass(frozen=True)
class PinRequest:
    """What a PIN pad is asked: the amount shown, the card (its PAN, bound into the block; shown masked).

    ``allow_bypass``: whether Enter with no digits ends the entry as
    :attr:`PinOutcome.BYPASSED` (a PIN pad where it is not allowed ignores it).
    ``format``: the PIN block format wanted (4: AES DUKPT, 0: TDES DUKPT).
    ``purpose``: ``sale`` or ``refund``; a pad shows it, so that a customer
    keying a PIN to be paid back is told so.
    """

    amount: int  # minor units
    currency: int  # ISO 4217 numeric
    pan: str
    allow_bypass: bool = False
    format: PinFormat = PinFormat.ISO_4
    purpose: str = "sale"

    def __post_init__(self) -> None:
        if self.purpose not in PIN_PURPOSES:
            raise ValueError(f"a PIN is asked for a {' or a '.join(PIN_PURPOSES)}, not {self.purpose!r}")

    @property
    def masked_pan(self) -> str:
        """The PAN as a PIN pad may show it (first 6 / last 4 at most)."""
        return mask_pan(self.pan)

    def __repr__(self) -> str:
        return (
            f"PinRequest(amount={self.amount}, currency={self.currency}, pan={self.masked_pan!r}, "
            f"allow_bypass={self.allow_bypass}, format={int(self.format)}, purpose={self.purpose!r})"
        )


@dataclass(frozen=True)
class PinEntry:
    """The result of a PIN entry: the outcome and, when a PIN was entered, the enciphered block. Never a PIN."""

    outcome: PinOutcome
    pin: EncryptedPin | None = None

    def __post_init__(self) -> None:
        if (self.outcome is PinOutcome.ENTERED) != (self.pin is not None):
            raise ValueError("a PIN entry has a PIN block exactly when a PIN was entered")


@runtime_checkable
class PinPad(Protocol):
    """A PIN pad, opened from a device URL: the PIN leaves it only as an ISO 9564 PIN block with its KSN.

    :meth:`enter_pin` shows the amount and the masked PAN and waits for the
    customer; it returns a :class:`PinEntry` (entered, cancelled, timed out or
    bypassed). ``timeout``: seconds the customer has (None: the pad's own);
    ``cancel``: the terminal's cancel (the entry ends :attr:`PinOutcome.CANCELLED`).
    Raises :class:`DeviceError` when the pad cannot be used (``DeviceGone``
    when it went away), never a clear PIN.
    """

    url: str

    def enter_pin(
        self, request: PinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> PinEntry: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class OfflinePinRequest:
    """An offline PIN for an inserted chip card's VERIFY: the amount shown, the tries the card has left.

    ``kind``: ``plaintext`` or ``enciphered`` (how the card gets it; the pad
    does not care). ``tries_left``: from the card's PIN try counter, None when
    unknown; ``last_try``: the pad warns the customer.
    """

    amount: int
    currency: int
    kind: str = "plaintext"
    tries_left: int | None = None
    last_try: bool = False
    allow_bypass: bool = True


class OfflinePin:
    """The digits of an offline PIN on their way from the pad to the card's VERIFY, or why there are none.

    The one place a clear PIN exists in the terminal: made by the pad, handed
    to the contact kernel (which forms the card's PIN block, format 2, and
    enciphers it when the card asks) and wiped by :meth:`wipe` right after.
    Never stored, logged or shown: ``repr`` gives the outcome only.
    """

    __slots__ = ("_digits", "outcome")

    def __init__(self, outcome: PinOutcome, digits: bytearray | None = None) -> None:
        if (outcome is PinOutcome.ENTERED) != (digits is not None):
            raise ValueError("an offline PIN has digits exactly when a PIN was entered")
        self.outcome = outcome
        self._digits = digits

    def take(self) -> str:
        """The digits, once (the buffer is wiped): ValueError when there are none."""
        if self._digits is None:
            raise ValueError(f"no PIN: {self.outcome.value}")
        try:
            return self._digits.decode("ascii")
        finally:
            self.wipe()

    def wipe(self) -> None:
        if self._digits is not None:
            for i in range(len(self._digits)):
                self._digits[i] = 0
            self._digits = None

    def __repr__(self) -> str:
        return f"OfflinePin({self.outcome.value})"


@runtime_checkable
class OfflinePinPad(Protocol):
    """A PIN pad that is also the terminal's secure path to an inserted card: it hands over an offline PIN.

    A separate capability from :class:`PinPad` (which lets a PIN out only as
    an enciphered block for the host): an integrated terminal's PIN pad and
    card slot sit in one tamper-responsive enclosure, and the clear PIN goes
    from the keys to the card's VERIFY inside it.  Here that path is the
    terminal process: the digits go from the pad adapter to the contact
    kernel's VERIFY and nowhere else (docs/pinpad-protocol.md, "Offline PIN").
    Only a pad inside the terminal's trust boundary has it (the simulated pad,
    the on-screen pad); a separate PIN pad enciphers the PIN itself
    (:class:`EncipheringPinPad`) and cannot give a card a plaintext PIN.
    """

    def enter_offline_pin(
        self, request: OfflinePinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> OfflinePin: ...


@dataclass(frozen=True)
class EncipheredOfflinePin:
    """An enciphered offline PIN as the PIN pad formed it, for the card's VERIFY (P2 88); never digits.

    ``data``: the RSA ciphertext, as long as the card's key, of ``7F | PIN
    block format 2 | the card's challenge | random padding`` (EMV Book 2 7.2),
    present exactly when a PIN was entered.
    """

    outcome: PinOutcome
    data: bytes | None = None

    def __post_init__(self) -> None:
        if (self.outcome is PinOutcome.ENTERED) != bool(self.data):
            raise ValueError("an enciphered offline PIN has data exactly when a PIN was entered")

    def __repr__(self) -> str:
        return f"EncipheredOfflinePin({self.outcome.value}, {len(self.data or b'')} bytes)"


@runtime_checkable
class EncipheringPinPad(Protocol):
    """A PIN pad that enciphers an offline PIN for an inserted card itself: the PIN never leaves it in clear.

    How separate EMV PIN pads work: the terminal gives the pad the card's PIN
    encipherment public key (the ICC PIN encipherment key 9F2D/9F2E, or the
    ICC key 9F46/9F47, recovered and checked by the kernel) and the 8-byte
    challenge the card answered to GET CHALLENGE; the pad shows the amount
    (and the tries left), takes the PIN and returns only the ciphertext.
    ``cancel``, ``timeout`` and bypass as :meth:`PinPad.enter_pin`.
    A pad that speaks the method but cannot do it (a serial pad that did not
    say so when opened) tells by :meth:`offline_pin_ability`.
    """

    def encipher_offline_pin(
        self,
        request: OfflinePinRequest,
        key: PublicKey,
        challenge: bytes,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
    ) -> EncipheredOfflinePin: ...


@dataclass(frozen=True)
class OfflinePinAbility:
    """What a PIN pad can do for an inserted card's offline PIN, which decides what the terminal claims (9F33).

    ``digits``: it hands the digits to the kernel (:class:`OfflinePinPad`, a
    pad inside the terminal's trust boundary): plaintext PIN, and enciphered
    PIN enciphered by the kernel.  ``enciphers``: it forms the enciphered PIN
    itself (:class:`EncipheringPinPad`); the terminal uses this path for an
    enciphered PIN whenever the pad has it.

    ``unavailable``: the configured pad could not be opened to ask (why, in
    words).  The terminal still has a PIN pad, so it keeps claiming offline
    PIN: a card that asks for one ends "the PIN pad cannot be used", as an
    online PIN does, rather than being quietly taken with its next method.

    >>> OfflinePinAbility(enciphers=True).plaintext, OfflinePinAbility(enciphers=True).enciphered
    (False, True)
    >>> OfflinePinAbility(unavailable="cannot open /dev/ttyUSB0").plaintext
    True
    """

    digits: bool = False
    enciphers: bool = False
    unavailable: str | None = None

    @property
    def plaintext(self) -> bool:
        return self.digits or self.unavailable is not None

    @property
    def enciphered(self) -> bool:
        return self.digits or self.enciphers or self.unavailable is not None


def offline_pin_ability(pad: object) -> OfflinePinAbility:
    """What ``pad`` can do for an offline PIN: its own word when it has one, else the protocols it implements.

    A pad whose ability is known only once it is opened (the serial pad's
    answer to ``PING``; :class:`terminal.devices.LazyPinPad`, which opens the
    pad it names) has an ``offline_pin_ability()`` method; a pad that cannot
    be opened is :attr:`OfflinePinAbility.unavailable`.
    """
    if pad is None:
        return OfflinePinAbility()
    own = getattr(pad, "offline_pin_ability", None)
    if callable(own):
        try:
            said = own()
        except DeviceError as exc:
            return OfflinePinAbility(unavailable=str(exc))
        if isinstance(said, OfflinePinAbility):
            return said
    return OfflinePinAbility(digits=isinstance(pad, OfflinePinPad), enciphers=isinstance(pad, EncipheringPinPad))
