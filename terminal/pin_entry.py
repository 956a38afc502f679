"""The cardholder's PIN in a payment: online PIN for the host, offline PIN for an inserted card.

Online PIN (a contactless card's CTQ "online PIN required", a C-2 card's CVM
result, a contact card's CVM list): after the card was read and before the
payment is journalled, :func:`collect_online_pin` asks the PIN pad for the
PIN, showing the amount and the masked PAN; the pad hands back an ISO 9564
PIN block and its KSN (:class:`~terminal.ports.PinEntry`), which goes to the
host with the authorisation and nowhere else: it is never journalled, logged
or traced.  Cancel and timeout end the payment not completed (nothing is
charged); a bypass (where :attr:`TerminalSettings.pin_bypass` allows it) goes
online without a PIN and says so.

Offline PIN (an inserted card's CVM list asks for a plaintext or enciphered
PIN the card checks itself): :class:`PadCardholder` is the contact kernel's
:class:`~emv.contact.Cardholder`; its ``enter_pin`` takes the digits from the
PIN pad's :class:`~terminal.ports.OfflinePinPad` side and gives them to the
kernel, which forms the VERIFY command at once.  The boundary: the clear PIN
exists only between the pad adapter and the card's VERIFY, inside the
terminal process (the pad's ``bytearray`` is wiped once it is handed over;
the kernel's ``str`` cannot be wiped, as Python strings cannot, and lives
only as long as forming the PIN block); the APDU recorder zeroes the VERIFY
data (:func:`emv.recorder.redact_command`), so no trace or result holds it.
A pad that enciphers the PIN itself (:class:`~terminal.ports.EncipheringPinPad`,
the serial pad) is asked through :class:`EncipheringPadCardholder` for an
enciphered PIN: the kernel gives the card's key and challenge and gets the
ciphertext back, and the digits never leave the pad.  Which offline PINs the
terminal claims (9F33) follows the pad (:func:`cardholder_for`).

:data:`PIN_WORDS` is what a payment's ``pin`` detail says, and the receipt
prints "PIN VERIFIED" only for ``verified`` (the issuer approved a PIN block
it checked) and ``offline_verified`` (the card said 9000 to VERIFY).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from emv.contact import Candidate, PinEntry, PinKind, PinStatus
from emv.contact.ports import EncipheredPinEntry
from emv.oda import PublicKey
from emv.outcome import CvmPerformed, Outcome, TransactionResult
from emv.pan import pan_of
from emv.tvr import Tvr
from terminal.offline import PaymentRefused
from terminal.ports import (
    CancelToken,
    DeviceError,
    EncipheringPinPad,
    OfflinePinAbility,
    OfflinePinPad,
    OfflinePinRequest,
    PinOutcome,
    PinPad,
    PinRequest,
    offline_pin_ability,
)
from terminal.ports import PinEntry as PadEntry

__all__ = [
    "PIN_WORDS",
    "EncipheringPadCardholder",
    "OnlinePin",
    "PadCardholder",
    "cardholder_for",
    "collect_online_pin",
    "online_pin_wanted",
    "pin_detail",
    "tvr_after_bypass",
]

#: A payment's ``pin`` detail, in words.
PIN_WORDS = {
    "verified": "PIN verified by the issuer",
    "offline_verified": "PIN verified by the card",
    "incorrect": "incorrect PIN",
    "tries_exceeded": "PIN tries exceeded",
    "entered": "PIN entered (not verified)",
    "bypassed": "PIN bypassed",
}


def online_pin_wanted(result: TransactionResult) -> bool:
    """The kernel chose online PIN and the payment goes online with it."""
    if result.outcome is not Outcome.ONLINE_REQUEST:
        return False
    return result.cvm is CvmPerformed.ONLINE_PIN or bool(getattr(result, "online_pin", False))


@dataclass(frozen=True)
class OnlinePin:
    """The PIN pad's answer for an online PIN: the entry (its block for the host) or a bypass."""

    entry: PadEntry

    @property
    def bypassed(self) -> bool:
        return self.entry.outcome is PinOutcome.BYPASSED


def collect_online_pin(
    pad: PinPad | None,
    result: TransactionResult,
    amount: int,
    currency: int,
    *,
    allow_bypass: bool,
    timeout: float | None,
    cancel: CancelToken | None,
    undone: str = "nothing was charged",
    purpose: str = "sale",
) -> OnlinePin:
    """Ask the PIN pad for the online PIN; PaymentRefused (in words) for cancel, timeout or a pad fault.

    Nothing is journalled yet when this is called: a refusal leaves nothing
    charged (``undone``: how the refusal says so; a refund's "nothing was refunded").
    ``purpose``: what the pad shows the PIN is for (``sale`` or ``refund``).
    """
    if pad is None:  # the kernels do not choose online PIN without a PIN pad (emv.capabilities)
        raise PaymentRefused("pin_pad", "not completed: the card asks for a PIN and no PIN pad is configured")
    pan = pan_of(result.card_data)
    if pan is None:
        raise PaymentRefused("pin_pad", "not completed: the card gave no card number to bind its PIN to")
    try:
        request = PinRequest(amount, currency, pan, allow_bypass=allow_bypass, purpose=purpose)
        entry = pad.enter_pin(request, timeout, cancel)
    except DeviceError as exc:
        raise PaymentRefused("pin_pad", f"not completed: the PIN pad cannot be used ({exc}); {undone}") from None
    if entry.outcome is PinOutcome.CANCELLED:
        raise PaymentRefused("pin_cancelled", f"not completed: PIN entry cancelled; {undone}")
    if entry.outcome is PinOutcome.TIMEOUT:
        raise PaymentRefused("pin_timeout", f"not completed: no PIN was entered in time; {undone}")
    return OnlinePin(entry)


def tvr_after_bypass(tvr_hex: str) -> str:
    """The TVR as the journal and the receipt keep it after a bypassed online PIN (EMV Book 3 Annex C1).

    Byte 3: "online PIN entered" (b3) off, "PIN entry required, PIN pad present,
    but PIN was not entered" (b4) on.  The card signed its cryptogram over the
    TVR it had; the host gets that one, unchanged.

    >>> tvr_after_bypass("0000040000")
    '0000080000'
    """
    raw = bytes.fromhex(tvr_hex)
    if len(raw) != Tvr.LENGTH:
        return raw.hex().upper()
    tvr = Tvr(raw)
    tvr.clear(Tvr.ONLINE_PIN_ENTERED)
    tvr.set(Tvr.PIN_NOT_ENTERED)
    return tvr.value.hex().upper()


def pin_detail(online: OnlinePin | None, response_code: str | None, approved: bool) -> str | None:
    """The ``pin`` detail of an online payment after the host's answer."""
    if online is None:
        return None
    if online.bypassed:
        return "bypassed"
    if approved:
        return "verified"
    if response_code == "55":
        return "incorrect"
    if response_code == "75":
        return "tries_exceeded"
    return "entered"


class PadCardholder:
    """The contact kernel's cardholder: the PIN pad for an offline PIN, the terminal's order for applications.

    ``choose`` takes the first candidate (the kernel has ordered them by the
    card's priority and the terminal's); ``confirm`` confirms (the pad shows
    the application; a customer who does not want it cancels the PIN entry).
    ``enter_pin`` asks the pad's offline side (see the module docstring); a
    pad without one, or one that fails, ends the entry as cancelled with the
    reason kept in :attr:`problem`.
    """

    def __init__(
        self,
        pad: PinPad,
        amount: int,
        currency: int,
        *,
        allow_bypass: bool,
        timeout: float | None,
        cancel: CancelToken | None,
    ) -> None:
        self._pad = pad
        self._amount = amount
        self._currency = currency
        self._allow_bypass = allow_bypass
        self._timeout = timeout
        self._cancel = cancel
        self.problem: str | None = None
        self.entries = 0  # PINs handed to the card (a count, never the digits)

    def choose(self, candidates: Sequence[Candidate]) -> Candidate | None:
        return candidates[0] if candidates else None

    def confirm(self, candidate: Candidate) -> bool:
        return True

    def enter_pin(self, kind: PinKind, tries_left: int | None, last_try: bool) -> PinEntry:
        request = self._request(kind, tries_left, last_try)
        pad = self._pad
        try:
            if not isinstance(pad, OfflinePinPad):
                raise DeviceError(f"the PIN pad {pad.url} cannot take an offline PIN for an inserted card")
            answer = pad.enter_offline_pin(request, self._timeout, self._cancel)
        except DeviceError as exc:
            self.problem = f"the PIN pad cannot be used ({exc})"
            return PinEntry.of(PinStatus.CANCEL)
        if answer.outcome is PinOutcome.ENTERED:
            self.entries += 1
            return PinEntry.digits(answer.take())
        answer.wipe()
        return PinEntry.of(_STATUS[answer.outcome])

    def _request(self, kind: PinKind, tries_left: int | None, last_try: bool) -> OfflinePinRequest:
        return OfflinePinRequest(self._amount, self._currency, kind, tries_left, last_try, self._allow_bypass)


_STATUS = {
    PinOutcome.BYPASSED: PinStatus.BYPASS,
    PinOutcome.CANCELLED: PinStatus.CANCEL,
    PinOutcome.TIMEOUT: PinStatus.TIMEOUT,
}


class EncipheringPadCardholder(PadCardholder):
    """The cardholder with a PIN pad that enciphers an offline PIN itself (:class:`~terminal.ports.EncipheringPinPad`).

    The contact kernel takes :meth:`encipher_pin` for an enciphered PIN: it
    hands the pad the card's key and challenge and sends the ciphertext the
    pad returns in VERIFY.  A pad that fails ends the entry as cancelled, the
    reason kept in :attr:`problem`, as for the digits.
    """

    def encipher_pin(
        self, key: PublicKey, challenge: bytes, tries_left: int | None, last_try: bool
    ) -> EncipheredPinEntry:
        pad = self._pad
        try:
            if not isinstance(pad, EncipheringPinPad):
                raise DeviceError(f"the PIN pad {pad.url} cannot encipher an offline PIN")
            answer = pad.encipher_offline_pin(
                self._request("enciphered", tries_left, last_try), key, challenge, self._timeout, self._cancel
            )
        except DeviceError as exc:
            self.problem = f"the PIN pad cannot be used ({exc})"
            return EncipheredPinEntry(PinStatus.CANCEL)
        if answer.outcome is PinOutcome.ENTERED:
            self.entries += 1
            return EncipheredPinEntry(PinStatus.ENTERED, answer.data)
        return EncipheredPinEntry(_STATUS[answer.outcome])


def cardholder_for(
    pad: PinPad,
    amount: int,
    currency: int,
    *,
    allow_bypass: bool,
    timeout: float | None,
    cancel: CancelToken | None,
) -> tuple[PadCardholder, OfflinePinAbility]:
    """The contact kernel's cardholder for ``pad``, and what the pad can do for an offline PIN (9F33 follows it).

    A pad that enciphers the PIN itself is asked that way for an enciphered
    PIN; a plaintext PIN needs a pad that hands over digits (inside the
    terminal's trust boundary: the simulated and the on-screen pads).
    """
    ability = offline_pin_ability(pad)
    kind = EncipheringPadCardholder if ability.enciphers else PadCardholder
    holder = kind(pad, amount, currency, allow_bypass=allow_bypass, timeout=timeout, cancel=cancel)
    return holder, ability
