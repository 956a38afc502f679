"""The hard-wallet application: AID, commands, status words, and the four templates.

Parsing is strict (docs/cbdc-protocol.md §2): a template must be the whole
answer, each tag at most once, every mandatory tag present with its exact
length, and in a signed template (E2, E4) the signature DF5F last.  Unknown
tags are allowed (before DF5F, where the signature covers them) and ignored.
Every failure is a :class:`ProtocolError` whose ``reason`` names the tag.

A parsed certificate or record keeps ``raw`` (the exact bytes received) and
``signed_bytes`` (the bytes its signature covers, cut from ``raw``: never a
re-encoding); a record's ``hash`` is SM3 of ``raw``.

>>> select_command().hex().upper()
'00A404000BF0504F535443424443010100'
>>> read_certificate_command(OPERATOR_CERTIFICATE).hex().upper()
'80B2020000'
>>> get_record_command(7).hex().upper()
'80560000040000000700'
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

from cbdc import tlv
from cbdc._fields import (
    MAX_AMOUNT,
    ProtocolError,
    UnsupportedVersion,
    ascii_field,
    bcd_date,
    bcd_n12,
    check_ascii,
    currency_code,
    date_time,
    from_ascii,
    from_bcd_date,
    from_bcd_n12,
    from_currency,
    from_date_time,
)
from cbdc._templates import Tag
from cbdc._templates import counter as _counter
from cbdc._templates import encode_elements as _encode
from cbdc._templates import parse_template as _template
from cbdc.sm3 import sm3

__all__ = [
    "AID",
    "KERNEL_ID",
    "LABEL",
    "OPERATOR_CERTIFICATE",
    "PROTOCOL_VERSION",
    "WALLET_CERTIFICATE",
    "ZERO_HASH",
    "Certificate",
    "Ins",
    "PaymentRecord",
    "PaymentRequest",
    "ProtocolError",
    "Role",
    "SelectResponse",
    "StatusWord",
    "Tag",
    "Tier",
    "UnsupportedVersion",
    "WalletInfo",
    "get_record_command",
    "get_wallet_info_command",
    "pay_command",
    "ppse_entry",
    "read_certificate_command",
    "select_command",
    "split_response",
]

AID = bytes.fromhex("F0504F5354434244430101")  # "F0" proprietary + "POSTCBDC" + 01 01
LABEL = "DIGITAL CNY"
KERNEL_ID = bytes.fromhex("810156")  # domestic kernel (b8-b7 = 10), short id 01, country 0156
PROTOCOL_VERSION = 1
CERTIFICATE_VERSION = 1
ZERO_HASH = bytes(32)
WALLET_CERTIFICATE = 0x01  # READ CERTIFICATE P1
OPERATOR_CERTIFICATE = 0x02
CLA_PROPRIETARY = 0x80


class Ins(enum.IntEnum):
    SELECT = 0xA4
    GET_WALLET_INFO = 0xCA
    READ_CERTIFICATE = 0xB2
    PAY = 0x54
    GET_RECORD = 0x56


class StatusWord(enum.IntEnum):
    OK = 0x9000
    WRONG_LENGTH = 0x6700
    LOCKED = 0x6985
    MALFORMED_REQUEST = 0x6A80
    APPLICATION_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    WRONG_P1_P2 = 0x6A86
    BALANCE_TOO_LOW = 0x6A90
    OVER_PAYMENT_LIMIT = 0x6A91
    OVER_DAILY_LIMIT = 0x6A92
    CURRENCY_NOT_HELD = 0x6A93
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00


class Role(enum.IntEnum):
    OPERATOR = 0x02
    WALLET = 0x03


class Tier(enum.IntEnum):
    ANONYMOUS = 0x01
    ID_VERIFIED = 0x02


# --------------------------------------------------------------------------- commands


def select_command(aid: bytes = AID) -> bytes:
    return bytes([0x00, Ins.SELECT, 0x04, 0x00, len(aid)]) + aid + b"\x00"


def get_wallet_info_command() -> bytes:
    return bytes([CLA_PROPRIETARY, Ins.GET_WALLET_INFO, 0x00, 0x00, 0x00])


def read_certificate_command(which: int) -> bytes:
    """``which``: WALLET_CERTIFICATE (01) or OPERATOR_CERTIFICATE (02)."""
    return bytes([CLA_PROPRIETARY, Ins.READ_CERTIFICATE, which, 0x00, 0x00])


def pay_command(request: PaymentRequest) -> bytes:
    data = request.encode()
    return bytes([CLA_PROPRIETARY, Ins.PAY, 0x00, 0x00, len(data)]) + data + b"\x00"


def get_record_command(counter: int | None = None) -> bytes:
    """The last record (no counter), or the record with ``counter``."""
    head = bytes([CLA_PROPRIETARY, Ins.GET_RECORD, 0x00, 0x00])
    if counter is None:
        return head + b"\x00"
    return head + b"\x04" + counter.to_bytes(4, "big") + b"\x00"


def split_response(response: bytes) -> tuple[bytes, int]:
    """(data, SW1SW2) of an R-APDU; fewer than two bytes is a ProtocolError."""
    if len(response) < 2:
        raise ProtocolError("response shorter than a status word")
    return response[:-2], int.from_bytes(response[-2:], "big")


def ppse_entry(priority: int = 1) -> bytes:
    """The wallet's entry in a PPSE directory: ``61 [4F aid][50 label][87 priority][9F2A 81 01 56]``."""
    body = tlv.encode(0x4F, AID) + tlv.encode(0x50, LABEL.encode("ascii"))
    body += tlv.encode(0x87, bytes([priority])) + tlv.encode(0x9F2A, KERNEL_ID)
    return tlv.encode(0x61, body)


# --------------------------------------------------------------------------- SELECT


@dataclass(frozen=True)
class SelectResponse:
    """``6F [84 AID][A5 [50 label][DF40 version]]``, the answer to SELECT."""

    aid: bytes
    label: str
    version: int

    @classmethod
    def parse(cls, data: bytes) -> SelectResponse:
        try:
            fci = tlv.decode_one(data, Tag.FCI)
            inner = {e.tag: e for e in tlv.decode(fci.value)}
            prop = inner.get(Tag.FCI_PROPRIETARY)
            name = inner.get(Tag.DF_NAME)
            if prop is None or name is None:
                raise ProtocolError("6F: missing 84 or A5")
            fields_ = {e.tag: e.value for e in tlv.decode(prop.value)}
        except tlv.TlvError as exc:
            raise ProtocolError(f"6F: {exc}") from exc
        version = fields_.get(Tag.VERSION)
        if version is None or len(version) != 1:
            raise ProtocolError("A5: missing DF40")
        if version[0] != PROTOCOL_VERSION:
            raise UnsupportedVersion(f"protocol version {version[0]}")
        return cls(name.value, from_ascii(fields_.get(Tag.APPLICATION_LABEL, b""), "50"), version[0])

    def encode(self) -> bytes:
        prop = tlv.encode(Tag.APPLICATION_LABEL, self.label.encode("ascii"))
        prop += tlv.encode(Tag.VERSION, bytes([self.version]))
        return tlv.encode(Tag.FCI, tlv.encode(Tag.DF_NAME, self.aid) + tlv.encode(Tag.FCI_PROPRIETARY, prop))


# --------------------------------------------------------------------------- E1 wallet info


@dataclass(frozen=True)
class WalletInfo:
    """E1, the answer to GET WALLET INFO.  ``balance`` is informative only: nothing trusts it."""

    wallet_id: bytes
    counter: int  # of the last record; 0 = none yet
    last_hash: bytes  # hash of the last record; 32 zero bytes before the first
    currency: int
    balance: int
    version: int = PROTOCOL_VERSION
    raw: bytes = b""

    _MANDATORY = (Tag.VERSION, Tag.WALLET_ID, Tag.COUNTER, Tag.PREVIOUS_HASH, Tag.CURRENCY, Tag.BALANCE)

    @property
    def wallet_id_hex(self) -> str:
        return self.wallet_id.hex().upper()

    @classmethod
    def parse(cls, data: bytes) -> WalletInfo:
        v = _template(data, Tag.WALLET_INFO, cls._MANDATORY, signed=False).values
        if v[Tag.VERSION][0] != PROTOCOL_VERSION:
            raise UnsupportedVersion(f"protocol version {v[Tag.VERSION][0]}")
        counter = _counter(v[Tag.COUNTER])
        if counter == 0 and v[Tag.PREVIOUS_HASH] != ZERO_HASH:
            raise ProtocolError("E1: DF43 is not zero with no record yet")
        return cls(
            wallet_id=v[Tag.WALLET_ID],
            counter=counter,
            last_hash=v[Tag.PREVIOUS_HASH],
            currency=from_currency(v[Tag.CURRENCY], "DF44"),
            balance=from_bcd_n12(v[Tag.BALANCE], "DF45"),
            version=v[Tag.VERSION][0],
            raw=bytes(data),
        )

    def encode(self) -> bytes:
        return tlv.encode(
            Tag.WALLET_INFO,
            _encode(
                [
                    (Tag.VERSION, bytes([self.version])),
                    (Tag.WALLET_ID, self.wallet_id),
                    (Tag.COUNTER, self.counter.to_bytes(4, "big")),
                    (Tag.PREVIOUS_HASH, self.last_hash),
                    (Tag.CURRENCY, currency_code(self.currency)),
                    (Tag.BALANCE, bcd_n12(self.balance)),
                ]
            ),
        )


# --------------------------------------------------------------------------- E2 certificate


@dataclass(frozen=True)
class Certificate:
    """E2: an operator's certificate (signed by a root) or a wallet's (signed by its operator)."""

    subject_id: bytes  # 4 bytes (operator) or 8 (wallet)
    issuer_id: bytes  # 4 bytes
    role: int  # Role.OPERATOR or Role.WALLET (anything else parses, and the chain check refuses it)
    public_key: bytes  # 64 bytes x ‖ y
    not_before: date
    not_after: date  # valid through that day
    tier: int | None = None  # wallet certificates only, with the three limits
    per_payment_limit: int | None = None
    daily_limit: int | None = None
    balance_limit: int | None = None
    version: int = CERTIFICATE_VERSION
    signature: bytes = b""
    raw: bytes = field(default=b"", repr=False)
    signed_bytes: bytes = field(default=b"", repr=False)

    _MANDATORY = (
        Tag.CERT_VERSION,
        Tag.SUBJECT_ID,
        Tag.ISSUER_ID,
        Tag.ROLE,
        Tag.PUBLIC_KEY,
        Tag.NOT_BEFORE,
        Tag.NOT_AFTER,
    )
    _WALLET_ONLY = (Tag.TIER, Tag.PER_PAYMENT_LIMIT, Tag.DAILY_LIMIT, Tag.BALANCE_LIMIT)

    @classmethod
    def parse(cls, data: bytes) -> Certificate:
        parsed = _template(data, Tag.CERTIFICATE, cls._MANDATORY, signed=True)
        v = parsed.values
        if v[Tag.CERT_VERSION][0] != CERTIFICATE_VERSION:
            raise UnsupportedVersion(f"certificate version {v[Tag.CERT_VERSION][0]}")
        role = v[Tag.ROLE][0]
        has = [tag in v for tag in cls._WALLET_ONLY]
        if role == Role.WALLET and not all(has):
            raise ProtocolError("E2: a wallet certificate without its tier and limits")
        if role != Role.WALLET and any(has):
            raise ProtocolError("E2: tier or limits in a certificate that is not a wallet's")
        expected_subject = 8 if role == Role.WALLET else 4
        if len(v[Tag.SUBJECT_ID]) != expected_subject:
            raise ProtocolError("E2: wrong length of DF72")
        wallet = role == Role.WALLET
        return cls(
            subject_id=v[Tag.SUBJECT_ID],
            issuer_id=v[Tag.ISSUER_ID],
            role=role,
            public_key=v[Tag.PUBLIC_KEY],
            not_before=from_bcd_date(v[Tag.NOT_BEFORE], "DF76"),
            not_after=from_bcd_date(v[Tag.NOT_AFTER], "DF77"),
            tier=v[Tag.TIER][0] if wallet else None,
            per_payment_limit=from_bcd_n12(v[Tag.PER_PAYMENT_LIMIT], "DF79") if wallet else None,
            daily_limit=from_bcd_n12(v[Tag.DAILY_LIMIT], "DF7A") if wallet else None,
            balance_limit=from_bcd_n12(v[Tag.BALANCE_LIMIT], "DF7B") if wallet else None,
            version=v[Tag.CERT_VERSION][0],
            signature=parsed.signature,
            raw=bytes(data),
            signed_bytes=parsed.signed_bytes,
        )

    def encode_unsigned(self) -> bytes:
        """The elements before DF5F, in the order of the spec: what the issuer signs."""
        pairs = [
            (Tag.CERT_VERSION, bytes([self.version])),
            (Tag.SUBJECT_ID, self.subject_id),
            (Tag.ISSUER_ID, self.issuer_id),
            (Tag.ROLE, bytes([self.role])),
            (Tag.PUBLIC_KEY, self.public_key),
            (Tag.NOT_BEFORE, bcd_date(self.not_before)),
            (Tag.NOT_AFTER, bcd_date(self.not_after)),
        ]
        if self.role == Role.WALLET:
            if self.tier is None or None in (self.per_payment_limit, self.daily_limit, self.balance_limit):
                raise ValueError("a wallet certificate needs its tier and three limits")
            pairs += [
                (Tag.TIER, bytes([self.tier])),
                (Tag.PER_PAYMENT_LIMIT, bcd_n12(self.per_payment_limit or 0)),
                (Tag.DAILY_LIMIT, bcd_n12(self.daily_limit or 0)),
                (Tag.BALANCE_LIMIT, bcd_n12(self.balance_limit or 0)),
            ]
        return _encode(pairs)

    def with_signature(self, signature: bytes) -> Certificate:
        """The signed certificate, parsed back from its encoding (so ``raw`` and ``signed_bytes`` are set)."""
        body = self.encode_unsigned() + tlv.encode(Tag.SIGNATURE, signature)
        return Certificate.parse(tlv.encode(Tag.CERTIFICATE, body))

    def encode(self) -> bytes:
        """The exact bytes received, or (built here) the signed encoding."""
        if self.raw:
            return self.raw
        if not self.signature:
            raise ValueError("an unsigned certificate has no encoding; use encode_unsigned()")
        return tlv.encode(Tag.CERTIFICATE, self.encode_unsigned() + tlv.encode(Tag.SIGNATURE, self.signature))


# --------------------------------------------------------------------------- E3 payment request


@dataclass(frozen=True)
class PaymentRequest:
    """E3, what the terminal asks the wallet to pay: amount, currency, payee, a fresh challenge, date and time."""

    amount: int  # minor units, > 0
    currency: int  # ISO 4217 numeric (156)
    merchant_id: str  # ASCII 1-15
    terminal_id: str  # ASCII 8
    challenge: bytes  # 16 random bytes, drawn by the caller
    date_time: datetime  # kept in UTC to the second, as encoded (a naive datetime is taken as UTC)

    _MANDATORY = (Tag.AMOUNT, Tag.CURRENCY, Tag.MERCHANT_ID, Tag.TERMINAL_ID, Tag.CHALLENGE, Tag.DATE_TIME)

    def __post_init__(self) -> None:
        # the date and time as encoded: UTC, whole seconds (a naive datetime is taken as UTC)
        when = self.date_time
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        object.__setattr__(self, "date_time", when.replace(microsecond=0))
        if not 0 < self.amount <= MAX_AMOUNT:
            raise ValueError(f"amount out of range: {self.amount}")
        currency_code(self.currency)
        check_ascii(self.merchant_id, "merchant id", (1, 15))
        check_ascii(self.terminal_id, "terminal id", (8, 8))
        if len(self.challenge) != 16:
            raise ValueError("the challenge is 16 bytes")

    @property
    def date_time_bytes(self) -> bytes:
        return date_time(self.date_time)

    def encode(self) -> bytes:
        return tlv.encode(
            Tag.PAYMENT_REQUEST,
            _encode(
                [
                    (Tag.AMOUNT, bcd_n12(self.amount)),
                    (Tag.CURRENCY, currency_code(self.currency)),
                    (Tag.MERCHANT_ID, ascii_field(self.merchant_id)),
                    (Tag.TERMINAL_ID, ascii_field(self.terminal_id)),
                    (Tag.CHALLENGE, self.challenge),
                    (Tag.DATE_TIME, self.date_time_bytes),
                ]
            ),
        )

    @property
    def raw(self) -> bytes:
        return self.encode()

    @classmethod
    def parse(cls, data: bytes) -> PaymentRequest:
        v = _template(data, Tag.PAYMENT_REQUEST, cls._MANDATORY, signed=False).values
        try:
            return cls(
                amount=from_bcd_n12(v[Tag.AMOUNT], "DF51"),
                currency=from_currency(v[Tag.CURRENCY], "DF44"),
                merchant_id=from_ascii(v[Tag.MERCHANT_ID], "DF52"),
                terminal_id=from_ascii(v[Tag.TERMINAL_ID], "DF56"),
                challenge=v[Tag.CHALLENGE],
                date_time=from_date_time(v[Tag.DATE_TIME], "DF54"),
            )
        except ProtocolError:
            raise
        except ValueError as exc:
            raise ProtocolError(f"E3: {exc}") from exc


# --------------------------------------------------------------------------- E4 payment record


@dataclass(frozen=True)
class PaymentRecord:
    """E4, the wallet's signed record of one payment (chained to its previous record by hash)."""

    wallet_id: bytes
    counter: int
    amount: int
    currency: int
    merchant_id: str
    terminal_id: str
    challenge: bytes
    date_time: datetime
    previous_hash: bytes
    version: int = PROTOCOL_VERSION
    signature: bytes = b""
    raw: bytes = field(default=b"", repr=False)
    signed_bytes: bytes = field(default=b"", repr=False)
    date_time_bytes: bytes = field(default=b"", repr=False)  # DF54 as received

    _MANDATORY = (
        Tag.VERSION,
        Tag.WALLET_ID,
        Tag.COUNTER,
        Tag.AMOUNT,
        Tag.CURRENCY,
        Tag.MERCHANT_ID,
        Tag.TERMINAL_ID,
        Tag.CHALLENGE,
        Tag.DATE_TIME,
        Tag.PREVIOUS_HASH,
    )

    @property
    def wallet_id_hex(self) -> str:
        return self.wallet_id.hex().upper()

    @property
    def hash(self) -> bytes:
        """SM3 of the whole E4 encoding as received (what the wallet's next record chains to)."""
        if not self.raw:
            raise ValueError("an unsigned record has no hash")
        return sm3(self.raw)

    @classmethod
    def parse(cls, data: bytes) -> PaymentRecord:
        parsed = _template(data, Tag.PAYMENT_RECORD, cls._MANDATORY, signed=True)
        v = parsed.values
        if v[Tag.VERSION][0] != PROTOCOL_VERSION:
            raise UnsupportedVersion(f"protocol version {v[Tag.VERSION][0]}")
        return cls(
            wallet_id=v[Tag.WALLET_ID],
            counter=_counter(v[Tag.COUNTER]),
            amount=from_bcd_n12(v[Tag.AMOUNT], "DF51"),
            currency=from_currency(v[Tag.CURRENCY], "DF44"),
            merchant_id=from_ascii(v[Tag.MERCHANT_ID], "DF52"),
            terminal_id=from_ascii(v[Tag.TERMINAL_ID], "DF56"),
            challenge=v[Tag.CHALLENGE],
            date_time=from_date_time(v[Tag.DATE_TIME], "DF54"),
            previous_hash=v[Tag.PREVIOUS_HASH],
            version=v[Tag.VERSION][0],
            signature=parsed.signature,
            raw=bytes(data),
            signed_bytes=parsed.signed_bytes,
            date_time_bytes=v[Tag.DATE_TIME],
        )

    @classmethod
    def for_request(
        cls, request: PaymentRequest, wallet_id: bytes, counter: int, previous_hash: bytes
    ) -> PaymentRecord:
        """The unsigned record a wallet makes for ``request`` (for wallets and tests)."""
        return cls(
            wallet_id=wallet_id,
            counter=counter,
            amount=request.amount,
            currency=request.currency,
            merchant_id=request.merchant_id,
            terminal_id=request.terminal_id,
            challenge=request.challenge,
            date_time=request.date_time,
            previous_hash=previous_hash,
        )

    def encode_unsigned(self) -> bytes:
        """The elements before DF5F, in the order of the spec: what the wallet signs."""
        return _encode(
            [
                (Tag.VERSION, bytes([self.version])),
                (Tag.WALLET_ID, self.wallet_id),
                (Tag.COUNTER, self.counter.to_bytes(4, "big")),
                (Tag.AMOUNT, bcd_n12(self.amount)),
                (Tag.CURRENCY, currency_code(self.currency)),
                (Tag.MERCHANT_ID, ascii_field(self.merchant_id)),
                (Tag.TERMINAL_ID, ascii_field(self.terminal_id)),
                (Tag.CHALLENGE, self.challenge),
                (Tag.DATE_TIME, self.date_time_bytes or date_time(self.date_time)),
                (Tag.PREVIOUS_HASH, self.previous_hash),
            ]
        )

    def with_signature(self, signature: bytes) -> PaymentRecord:
        """The signed record, parsed back from its encoding (so ``raw``, ``signed_bytes`` and ``hash`` work)."""
        body = self.encode_unsigned() + tlv.encode(Tag.SIGNATURE, signature)
        return PaymentRecord.parse(tlv.encode(Tag.PAYMENT_RECORD, body))

    def encode(self) -> bytes:
        """The exact bytes received (or made by :meth:`with_signature`)."""
        if not self.raw:
            raise ValueError("an unsigned record has no encoding; use encode_unsigned()")
        return self.raw

    def unsigned(self) -> PaymentRecord:
        """The same fields without signature or encoding (for building altered records in tests)."""
        return replace(self, signature=b"", raw=b"", signed_bytes=b"")
