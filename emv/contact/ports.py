"""What the contact kernel asks of the world around it: the cardholder and the host.

- :class:`Cardholder`: the cardholder interface the caller supplies.  It chooses
  among candidate applications, confirms an application whose priority
  indicator (87, bit 8) asks for confirmation, and enters an offline PIN.  A
  terminal without a cardholder interface passes ``None``: applications that
  require confirmation are then not selected (EMV Book 1 12.4) and offline PIN
  counts as "PIN pad not present".
- :class:`PinEntry`: the PIN digits or why there are none (bypass, cancel,
  timeout).  The digits live only as long as forming the PIN block.
- :class:`EncipheringCardholder`: a cardholder interface whose PIN pad forms
  the enciphered PIN itself (a separate PIN pad, outside the terminal's trust
  boundary): the kernel gives it the card's PIN encipherment key and the
  card's challenge, and gets back only the ciphertext for VERIFY (P2 88), an
  :class:`EncipheredPinEntry`.  The kernel takes this path for an enciphered
  offline PIN whenever the cardholder offers it.
- :class:`HostAnswer`: what came back from the issuer for an Online Request,
  for :meth:`emv.contact.ContactKernel.complete`.

>>> PinEntry.digits("1234").pin
'1234'
>>> PinEntry.of(PinStatus.BYPASS).pin is None
True
>>> HostAnswer.approved(arpc=bytes(8)).issuer_authentication_data.hex().upper()
'00000000000000003030'
>>> HostAnswer.unable_to_go_online().response_code
b''
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from emv.oda import PublicKey

__all__ = [
    "Candidate",
    "Cardholder",
    "EncipheredPinEntry",
    "EncipheringCardholder",
    "HostAnswer",
    "PinEntry",
    "PinKind",
    "PinStatus",
]

PinKind = Literal["plaintext", "enciphered"]


@dataclass(frozen=True)
class Candidate:
    """An application on the candidate list (Book 1 12.3): ADF name, label, priority indicator 87."""

    adf_name: bytes
    label: str
    priority_indicator: int | None = None  # the byte 87, None when the card gave none
    preferred_name: str | None = None

    @property
    def priority(self) -> int:
        """1 (highest) to 15; 0 (none) sorts after all."""
        value = (self.priority_indicator or 0) & 0x0F
        return value if value else 16

    @property
    def needs_confirmation(self) -> bool:
        """Bit 8 of 87: the application may not be selected without the cardholder's confirmation."""
        return bool((self.priority_indicator or 0) & 0x80)


class PinStatus(enum.Enum):
    ENTERED = "entered"
    BYPASS = "bypass"
    CANCEL = "cancel"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class PinEntry:
    """A PIN entry: 4 to 12 digits, or bypass / cancel / timeout."""

    status: PinStatus
    pin: str | None = None

    def __post_init__(self) -> None:
        if self.status is PinStatus.ENTERED:
            if self.pin is None or not self.pin.isdigit() or not 4 <= len(self.pin) <= 12:
                raise ValueError("a PIN is 4 to 12 digits")
        elif self.pin is not None:
            raise ValueError("only an entered PIN carries digits")

    def __repr__(self) -> str:  # never show the digits
        return f"PinEntry({self.status.value})"

    @classmethod
    def digits(cls, pin: str) -> PinEntry:
        return cls(PinStatus.ENTERED, pin)

    @classmethod
    def of(cls, status: PinStatus) -> PinEntry:
        return cls(status)


@runtime_checkable
class Cardholder(Protocol):
    """The cardholder interface (PIN pad with display) the kernel talks to."""

    def choose(self, candidates: Sequence[Candidate]) -> Candidate | None:
        """Pick one application (None: the cardholder cancelled)."""
        ...

    def confirm(self, candidate: Candidate) -> bool:
        """Confirm an application that asks for it (87 bit 8)."""
        ...

    def enter_pin(self, kind: PinKind, tries_left: int | None, last_try: bool) -> PinEntry:
        """Enter the offline PIN; ``tries_left`` from the card's PIN try counter when known."""
        ...


@dataclass(frozen=True)
class EncipheredPinEntry:
    """An enciphered offline PIN as a PIN pad formed it: the VERIFY data (P2 88), or bypass / cancel / timeout.

    ``data`` is the RSA ciphertext of ``7F | PIN block (format 2) | the card's
    challenge | random padding`` under the card's key (EMV Book 2 7.2): no
    digits ever reach the kernel.
    """

    status: PinStatus
    data: bytes | None = None

    def __post_init__(self) -> None:
        if (self.status is PinStatus.ENTERED) != bool(self.data):
            raise ValueError("an enciphered PIN entry carries data exactly when a PIN was entered")

    def __repr__(self) -> str:
        return f"EncipheredPinEntry({self.status.value}, {len(self.data or b'')} bytes)"


@runtime_checkable
class EncipheringCardholder(Cardholder, Protocol):
    """A cardholder interface whose PIN pad enciphers an offline PIN itself (see the module docstring)."""

    def encipher_pin(
        self, key: PublicKey, challenge: bytes, tries_left: int | None, last_try: bool
    ) -> EncipheredPinEntry:
        """The customer enters the PIN; the pad returns it enciphered under ``key`` with ``challenge`` in it."""
        ...


@dataclass(frozen=True)
class HostAnswer:
    """The issuer's answer to an Online Request (Book 3 10.9).

    ``response_code`` is 8A (two ASCII characters, "00" approved); empty when
    the terminal could not go online.  ``issuer_authentication_data`` is 91 as
    the card takes it, 8 to 16 bytes: method 1 ARPC (8) and ARPC response code
    (2); method 2 ARPC (4), card status update (4) and proprietary
    authentication data (0-8).  The kernel carries it unchanged to EXTERNAL
    AUTHENTICATE or CDOL2.  ``scripts`` the issuer script templates 71 and 72
    as the host sent them, back to back.
    """

    online: bool
    response_code: bytes = b""
    issuer_authentication_data: bytes | None = None
    scripts: bytes = b""

    @property
    def issuer_approved(self) -> bool:
        """8A says approved ("00", or "10"/"11" partial/VIP approvals)."""
        return self.online and self.response_code in (b"00", b"10", b"11")

    @classmethod
    def approved(cls, arpc: bytes | None = None, scripts: bytes = b"") -> HostAnswer:
        """Approved ("00") with the ARPC, for tests."""
        return cls.from_host("00", arpc, scripts)

    @classmethod
    def from_host(
        cls,
        response_code: str,
        arpc: bytes | None,
        scripts: bytes = b"",
        *,
        method2: bool = False,
        issuer_authentication_data: bytes | None = None,
    ) -> HostAnswer:
        """The answer as the host protocol carries it.

        ``issuer_authentication_data``: 91 whole, as the host sent it (either
        method); it wins over ``arpc``.  Else ``arpc`` as the protocol's older
        field: method 1 (CVN 10, 16), the 8-byte ARPC, gets its response code
        appended to make 91; method 2 (``method2=True``), ARPC (4) and card
        status update (4), is taken as it is.
        """
        code = response_code.encode("ascii")
        if len(code) != 2:
            raise ValueError("an authorisation response code is two characters")
        iad = None
        if issuer_authentication_data:
            iad = bytes(issuer_authentication_data)
        elif arpc:
            iad = bytes(arpc) + code if len(arpc) == 8 and not method2 else bytes(arpc)
        return cls(True, code, iad, bytes(scripts))

    @classmethod
    def unable_to_go_online(cls) -> HostAnswer:
        return cls(False)
