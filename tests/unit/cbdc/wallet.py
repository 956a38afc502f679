"""A test-only hard wallet and its PKI: signs with gmssl (independent of cbdc.sm2, which verifies).

The wallet answers the commands of docs/cbdc-protocol.md §4 from memory, and
has knobs for the misbehaviours the kernel must survive.  Keys are derived
from seeds (deterministic, so tests repeat), and so are the signatures' k.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from gmssl import sm2 as gm_sm2

from cbdc import tlv
from cbdc.checks import Limits, TrustStore
from cbdc.protocol import (
    AID,
    LABEL,
    Certificate,
    PaymentRecord,
    PaymentRequest,
    ProtocolError,
    Role,
    SelectResponse,
    StatusWord,
    Tier,
    WalletInfo,
)
from cbdc.sm3 import sm3

N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
G = gm_sm2.default_ecc_table["g"]
ROOT_ID = bytes.fromhex("00000001")
OPERATOR_ID = bytes.fromhex("0A000001")
WALLET_ID = bytes.fromhex("D1A0000000000001")
MERCHANT = "MERCHANT000001"
TERMINAL = "TERM0001"
DAY = date(2026, 12, 6)
NOW = datetime(2026, 12, 6, 9, 30, 0)
CNY = 156


class WalletGone(Exception):
    """The wallet left the field (what a reader's transport raises)."""


def gmssl_signer(private: int, public: bytes) -> gm_sm2.CryptSM2:
    """gmssl's signer for a key pair.  Its constructor does ``public_key.lstrip("04")`` when the hex starts
    with "04" (meant for an uncompressed point's prefix), which eats the first digits of a raw x ‖ y whose
    x begins with 04 and makes it sign with a wrong ZA: so the key is set after construction."""
    signer = gm_sm2.CryptSM2(private_key=f"{private:064x}", public_key="")
    signer.public_key = public.hex()
    return signer


@dataclass(frozen=True)
class Key:
    private: int
    public: bytes

    @classmethod
    def from_seed(cls, seed: str) -> Key:
        d = int.from_bytes(sm3(seed.encode()), "big") % (N - 2) + 1
        signer = gm_sm2.CryptSM2(private_key=f"{d:064x}", public_key="")
        return cls(d, bytes.fromhex(signer._kg(d, G)))

    def sign(self, message: bytes) -> bytes:
        """SM2 with SM3 and the default user id, by gmssl; k derived from the key and the message."""
        signer = gmssl_signer(self.private, self.public)
        salt = 0
        while True:
            k = int.from_bytes(sm3(self.private.to_bytes(32, "big") + message + bytes([salt])), "big") % (N - 1) + 1
            signature = signer.sign_with_sm3(message, f"{k:064x}")
            if signature is not None:
                return bytes.fromhex(signature)
            salt += 1


ROOT = Key.from_seed("test root")
OPERATOR = Key.from_seed("test operator")
WALLET = Key.from_seed("test wallet")

ANONYMOUS_LIMITS = (200_000, 500_000, 1_000_000)  # per payment, daily, balance (minor units)


def operator_certificate(
    issuer: Key = ROOT, *, subject: bytes = OPERATOR_ID, key: Key = OPERATOR, issuer_id: bytes = ROOT_ID,
    role: int = Role.OPERATOR, not_before: date = date(2026, 1, 1), not_after: date = date(2030, 12, 31),
) -> Certificate:  # fmt: skip
    unsigned = Certificate(subject, issuer_id, role, key.public, not_before, not_after)
    return unsigned.with_signature(issuer.sign(unsigned.encode_unsigned()))


def wallet_certificate(
    issuer: Key = OPERATOR, *, subject: bytes = WALLET_ID, key: Key = WALLET, issuer_id: bytes = OPERATOR_ID,
    role: int = Role.WALLET, not_before: date = date(2026, 1, 1), not_after: date = date(2028, 12, 31),
    limits: tuple[int, int, int] = ANONYMOUS_LIMITS,
) -> Certificate:  # fmt: skip
    unsigned = Certificate(subject, issuer_id, role, key.public, not_before, not_after, Tier.ANONYMOUS, *limits)
    return unsigned.with_signature(issuer.sign(unsigned.encode_unsigned()))


def root_entry(root_id: bytes, key: Key) -> dict[str, str]:
    checksum = sm3(root_id + key.public).hex()
    return {"id": root_id.hex().upper(), "public_key": key.public.hex().upper(), "checksum": checksum}


def parameters(**changes: object) -> dict[str, object]:
    """The §8 ``cbdc`` section trusting ROOT."""
    base: dict[str, object] = {
        "version": 3,
        "roots": [root_entry(ROOT_ID, ROOT)],
        "blocked_wallets": [],
        "blocked_operators": [],
        "limits": {"156": {"per_payment": 200_000, "max_count": 20, "max_total": 500_000, "max_unsent_age_s": 86_400}},
    }
    base.update(changes)
    return base


def trust(**changes: object) -> TrustStore:
    return TrustStore.from_parameters(parameters(**changes))


def limits(per_payment: int = 200_000, max_count: int = 20, max_total: int = 500_000) -> Limits:
    return Limits(per_payment, max_count, max_total, 86_400)


def request(amount: int = 1234, challenge: bytes = bytes(range(16)), **changes: object) -> PaymentRequest:
    base = PaymentRequest(amount, CNY, MERCHANT, TERMINAL, challenge, NOW)
    return replace(base, **changes) if changes else base  # type: ignore[arg-type]


def _ok(data: bytes = b"") -> bytes:
    return data + b"\x90\x00"


def _sw(word: int) -> bytes:
    return word.to_bytes(2, "big")


@dataclass
class FakeWallet:
    """A hard wallet in memory.  ``exchange`` is the transport port.

    Knobs: ``leave_after_debit`` (raise WalletGone on PAY after debiting, once), ``gone_on`` (INS bytes
    on which the wallet raises WalletGone before doing anything), ``answer`` (INS -> a fixed R-APDU),
    ``alter_record`` (change the record's fields before signing), ``alter_bytes`` (change the signed
    record's bytes before sending), ``locked`` (6985 to PAY).
    """

    key: Key = WALLET
    certificate: Certificate = field(default_factory=wallet_certificate)
    operator: Certificate = field(default_factory=operator_certificate)
    wallet_id: bytes = WALLET_ID
    balance: int = 500_000
    currency: int = CNY
    counter: int = 0
    last_hash: bytes = bytes(32)
    spent_today: int = 0
    records: dict[int, bytes] = field(default_factory=dict)
    leave_after_debit: bool = False
    gone_on: set[int] = field(default_factory=set)
    answer: dict[int, bytes] = field(default_factory=dict)
    alter_record: Callable[[PaymentRecord], PaymentRecord] | None = None
    alter_bytes: Callable[[bytes], bytes] | None = None
    locked: bool = False
    commands: list[bytes] = field(default_factory=list)
    compute_seconds: float = 0.0  # time spent inside PAY (checks, debit, signing), for benchmarks to subtract

    def exchange(self, command: bytes) -> bytes:
        self.commands.append(command)
        ins = command[1]
        if ins in self.gone_on:
            raise WalletGone("the wallet left the field")
        if ins in self.answer:
            return self.answer[ins]
        if command[:4] == bytes.fromhex("00A40400"):
            if command[5 : 5 + command[4]] != AID:
                return _sw(StatusWord.APPLICATION_NOT_FOUND)
            return _ok(SelectResponse(AID, LABEL, 1).encode())
        if command[0] != 0x80:
            return _sw(StatusWord.CLA_NOT_SUPPORTED)
        if ins == 0xCA:
            info = WalletInfo(self.wallet_id, self.counter, self.last_hash, self.currency, self.balance)
            return _ok(info.encode())
        if ins == 0xB2:
            return {1: _ok(self.certificate.encode()), 2: _ok(self.operator.encode())}.get(
                command[2], _sw(StatusWord.WRONG_P1_P2)
            )
        if ins == 0x54:
            started = time.perf_counter()
            try:
                return self._pay(command)
            finally:
                self.compute_seconds += time.perf_counter() - started
        if ins == 0x56:
            return self._get_record(command)
        return _sw(StatusWord.INS_NOT_SUPPORTED)

    def _pay(self, command: bytes) -> bytes:
        if len(command) < 6 or command[4] != len(command) - 6:
            return _sw(StatusWord.WRONG_LENGTH)
        try:
            req = PaymentRequest.parse(command[5:-1])
        except (ProtocolError, ValueError):
            return _sw(StatusWord.MALFORMED_REQUEST)
        limits = self.certificate
        if self.locked:
            return _sw(StatusWord.LOCKED)
        if req.currency != self.currency:
            return _sw(StatusWord.CURRENCY_NOT_HELD)
        if req.amount > (limits.per_payment_limit or 0):
            return _sw(StatusWord.OVER_PAYMENT_LIMIT)
        if self.spent_today + req.amount > (limits.daily_limit or 0):
            return _sw(StatusWord.OVER_DAILY_LIMIT)
        if req.amount > self.balance:
            return _sw(StatusWord.BALANCE_TOO_LOW)
        self.balance -= req.amount
        self.spent_today += req.amount
        unsigned = PaymentRecord.for_request(req, self.wallet_id, self.counter + 1, self.last_hash)
        if self.alter_record is not None:
            unsigned = self.alter_record(unsigned)
        raw = tlv.encode(
            0xE4, unsigned.encode_unsigned() + tlv.encode(0xDF5F, self.key.sign(unsigned.encode_unsigned()))
        )
        if self.alter_bytes is not None:
            raw = self.alter_bytes(raw)
        self.counter += 1
        self.last_hash = sm3(raw)
        self.records[self.counter] = raw
        if self.leave_after_debit:
            self.leave_after_debit = False
            raise WalletGone("the wallet left after debiting")
        return _ok(raw)

    def _get_record(self, command: bytes) -> bytes:
        if len(command) == 5:
            wanted = self.counter
        elif len(command) == 10 and command[4] == 4:
            wanted = int.from_bytes(command[5:9], "big")
        else:
            return _sw(StatusWord.WRONG_LENGTH)
        raw = self.records.get(wanted)
        return _ok(raw) if raw is not None else _sw(StatusWord.RECORD_NOT_FOUND)
