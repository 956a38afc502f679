"""The terminal data the contact kernel works with: :class:`ContactConfig`.

A small frozen configuration of its own (the contactless :class:`emv.config.TerminalConfig`
describes Entry Point combinations, not contact applications).  Build it from a
terminal configuration with :meth:`ContactConfig.from_terminal`, or take
:meth:`ContactConfig.example` in tests.

Terminal capabilities 9F33 follow from the configuration (EMV Book 4 Annex A2):
byte 1 manual key entry, magnetic stripe, IC with contacts; byte 2 the CVMs,
online PIN only with a PIN pad, and each offline PIN only with a PIN pad that
can take it (``plaintext_pin``, ``enciphered_pin``: a separate PIN pad cannot
hand a clear PIN to the card, so it claims no plaintext PIN; one that cannot
encipher for the card claims no enciphered PIN either); byte 3 SDA, DDA, card
capture and CDA.  A CVM the terminal does not claim is "not supported" in CVM
list processing (Book 3 10.5): the rule fails and the card's next rule applies
where the rule says so.

>>> cfg = ContactConfig.example(pin_pad=True)
>>> cfg.terminal_capabilities().hex().upper()
'E0F8E8'
>>> ContactConfig.example(pin_pad=False).terminal_capabilities().hex().upper()
'E028E8'
>>> from dataclasses import replace
>>> replace(cfg, plaintext_pin=False).terminal_capabilities().hex().upper()   # a serial PIN pad
'E078E8'
>>> cfg.application_for(bytes.fromhex("A0000000031010")).label
'VISA'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from emv.capk import CapkStore
from emv.config import ExceptionFile, TerminalConfig
from emv.oda import CertificateRevocationList
from emv.risk import RandomSelection

__all__ = ["ContactApplication", "ContactConfig"]

# 9F33 byte 2
CVM_PLAINTEXT_PIN = 0x80
CVM_ONLINE_PIN = 0x40
CVM_SIGNATURE = 0x20
CVM_ENCIPHERED_PIN = 0x10
CVM_NO_CVM = 0x08
# 9F33 byte 3
SECURITY_SDA = 0x80
SECURITY_DDA = 0x40
SECURITY_CARD_CAPTURE = 0x20
SECURITY_CDA = 0x08


@dataclass(frozen=True)
class ContactApplication:
    """One application (AID) the terminal supports on the contact interface.

    ``partial_selection``: the card's ADF name may extend the AID (Book 1 12.3.1).
    ``priority``: the terminal's own order among applications the card ranks
    equally (lower first).  Amounts are in minor units of the transaction currency;
    ``floor_limit`` None means no floor limit check.
    """

    aid: bytes
    label: str = ""
    partial_selection: bool = True
    application_version: bytes = b"\x00\x8c"
    tac_denial: bytes = bytes(5)
    tac_online: bytes = bytes(5)
    tac_default: bytes = bytes(5)
    floor_limit: int | None = 0
    random_selection: RandomSelection = field(default_factory=RandomSelection)
    default_ddol: bytes = bytes.fromhex("9F3704")
    priority: int = 0


@dataclass(frozen=True)
class ContactConfig:
    """Terminal data for the contact kernel."""

    applications: tuple[ContactApplication, ...]
    capks: CapkStore = field(default_factory=CapkStore)
    pin_pad: bool = False
    plaintext_pin: bool = True  # with a PIN pad: it can give the card a plaintext offline PIN
    enciphered_pin: bool = True  # with a PIN pad: it can give the card an enciphered offline PIN
    online_capable: bool = True
    terminal_type: int = 0x22
    additional_capabilities: bytes = bytes.fromhex("6000F0A001")
    country: bytes = b"\x02\x76"
    exception_file: ExceptionFile = field(default_factory=ExceptionFile)
    revocation_list: CertificateRevocationList | None = None
    data: Mapping[int, bytes] = field(default_factory=dict)  # merchant and terminal data objects
    max_pin_entries: int = 3  # PIN entries offered in one transaction before giving up

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))

    def terminal_capabilities(self) -> bytes:
        """9F33 as this terminal has it (see the module docstring)."""
        cvm = CVM_SIGNATURE | CVM_NO_CVM
        if self.pin_pad:
            cvm |= CVM_ONLINE_PIN if self.online_capable else 0
            cvm |= CVM_PLAINTEXT_PIN if self.plaintext_pin else 0
            cvm |= CVM_ENCIPHERED_PIN if self.enciphered_pin else 0
        return bytes([0xE0, cvm, SECURITY_SDA | SECURITY_DDA | SECURITY_CARD_CAPTURE | SECURITY_CDA])

    def application_for(self, adf_name: bytes) -> ContactApplication | None:
        """The terminal application that ``adf_name`` matches: exactly, or by partial selection."""
        for app in self.applications:
            if adf_name == app.aid:
                return app
        for app in self.applications:
            if app.partial_selection and adf_name.startswith(app.aid) and len(adf_name) > len(app.aid):
                return app
        return None

    def data_objects(self) -> dict[int, bytes]:
        """The terminal's own data objects (a DOL may ask for them)."""
        out = {
            0x9F35: bytes([self.terminal_type]),
            0x9F33: self.terminal_capabilities(),
            0x9F40: self.additional_capabilities,
            0x9F1A: self.country,
        }
        out.update(self.data)
        return out

    @classmethod
    def from_terminal(
        cls, terminal: TerminalConfig, *, applications: tuple[ContactApplication, ...] | None = None
    ) -> ContactConfig:
        """A contact configuration from the contactless terminal's: keys, merchant data, PIN pad.

        Without ``applications``, one per combination's AID, with its TACs,
        application version and the terminal floor limit.
        """
        if applications is None:
            seen: dict[bytes, ContactApplication] = {}
            for c in terminal.combinations:
                if c.aid in seen:
                    continue
                seen[c.aid] = ContactApplication(
                    aid=c.aid,
                    label=c.label,
                    application_version=c.application_version,
                    tac_denial=c.tac_denial or bytes(5),
                    tac_online=c.tac_online or bytes(5),
                    tac_default=c.tac_default or bytes(5),
                    floor_limit=terminal.terminal_floor_limit,
                    default_ddol=c.default_ddol or bytes.fromhex("9F3704"),
                )
            applications = tuple(seen.values())
        objects = terminal.data_objects()
        keep = (0x9F15, 0x9F16, 0x9F1C, 0x9F4E, 0x9F01, 0x9F1E, 0x9F1B)
        return cls(
            applications=applications,
            capks=terminal.capks,
            pin_pad=terminal.pin_pad,
            online_capable=terminal.online_capable,
            terminal_type=objects[0x9F35][0],
            additional_capabilities=terminal.additional_capabilities,
            country=objects[0x9F1A],
            exception_file=terminal.exception_file,
            revocation_list=terminal.revocation_list,
            data={t: objects[t] for t in keep if t in objects},
        )

    @classmethod
    def example(cls, capks: CapkStore | None = None, *, pin_pad: bool = True) -> ContactConfig:
        """Visa and Mastercard contact applications with the usual action codes, for tests.

        Floor limit 50.00 (minor units 5000), country 0276, terminal type 22.
        """
        visa = ContactApplication(
            aid=bytes.fromhex("A0000000031010"),
            label="VISA",
            application_version=bytes.fromhex("008C"),
            tac_denial=bytes.fromhex("0010000000"),
            tac_online=bytes.fromhex("DC4004F800"),
            tac_default=bytes.fromhex("DC4000A800"),
            floor_limit=5000,
        )
        mastercard = ContactApplication(
            aid=bytes.fromhex("A0000000041010"),
            label="MASTERCARD",
            application_version=bytes.fromhex("0002"),
            tac_denial=bytes.fromhex("0000000000"),
            tac_online=bytes.fromhex("FC50BCF800"),
            tac_default=bytes.fromhex("FC50BCA000"),
            floor_limit=5000,
        )
        return cls(
            applications=(visa, mastercard),
            capks=capks if capks is not None else CapkStore(),
            pin_pad=pin_pad,
            data={
                0x9F15: bytes.fromhex("5411"),
                0x9F16: b"POSTERM0000001 ",
                0x9F1C: b"TERM0001",
                0x9F4E: b"posterm test shop, Berlin",
                0x9F01: bytes.fromhex("000000123456"),
                0x9F1E: b"SIM00001",
                0x9F1B: (5000).to_bytes(4, "big"),
            },
        )
