"""Digital-currency material for the host operator's tests, signed here with gmssl (not with the cbdc package).

A :class:`Kit` is a central bank root, an operator it certifies and wallets
the operator certifies, with their SM2 keys made at random (the same for a
whole test session: :func:`kit`); a rogue root signs an untrusted operator.
:class:`KitWallet` makes payment records (CBDC-SPEC section 4, E4) that chain
one to the next, and clones of them; :func:`envelope` wraps a record as a
terminal forwards it (section 10, E6), and :func:`advice` makes the advice.
Everything is encoded here from the spec's tables, so the operator's
verification (through ``cbdc``) is checked against an independent encoder.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from gmssl import sm2

from emv.tlv import encode
from simulator.host.cbdc_operator import OperatorPki

__all__ = ["CNY", "Kit", "KitWallet", "advice", "envelope", "kit", "sm3"]

CNY = 156
_N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)
_G = sm2.default_ecc_table["g"]


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


@dataclass(frozen=True)
class KeyPair:
    private: str  # hex
    public: str  # hex x || y (128 digits)

    def sign(self, message: bytes) -> bytes:
        """r || s over SM3(ZA || M), ZA with this key and the default user id."""
        signer = sm2.CryptSM2(private_key=self.private, public_key=self.public)
        while True:
            signature = signer.sign_with_sm3(message)
            if signature is not None:  # gmssl gives None for the rare nonce that makes no signature
                return bytes.fromhex(signature)


def new_key() -> KeyPair:
    """A random key pair, never one whose x starts with byte 04: gmssl takes such a key for an 04-prefixed one
    (and computes ZA, hence every signature, over the wrong bytes: one key in 256 signed nothing valid)."""
    while True:
        d = secrets.randbelow(_N - 2) + 1
        private = f"{d:064x}"
        public = sm2.CryptSM2(private_key=private, public_key="")._kg(d, _G)
        if not public.startswith("04"):
            return KeyPair(private, public)


def _bcd(value: int, digits: int) -> bytes:
    return bytes.fromhex(f"{value:0{digits}d}")


def _date(value: dt.date) -> bytes:
    return bytes.fromhex(value.strftime("%Y%m%d"))


def certificate(
    subject: bytes, issuer: bytes, role: int, key: KeyPair, signer: KeyPair, *, wallet: bool,
    not_before: dt.date = dt.date(2025, 1, 1), not_after: dt.date = dt.date(2035, 12, 31),
) -> bytes:  # fmt: skip
    """An E2 certificate signed by ``signer`` (CBDC-SPEC section 3)."""
    body = b"".join(
        encode(t, v)
        for t, v in (
            (0xDF71, b"\x01"), (0xDF72, subject), (0xDF73, issuer), (0xDF74, bytes([role])),
            (0xDF75, bytes.fromhex(key.public)), (0xDF76, _date(not_before)), (0xDF77, _date(not_after)),
        )
    )  # fmt: skip
    if wallet:
        body += b"".join(
            encode(t, v)
            for t, v in ((0xDF78, b"\x01"), (0xDF79, _bcd(200000, 12)), (0xDF7A, _bcd(500000, 12)),
                         (0xDF7B, _bcd(1000000, 12)))
        )  # fmt: skip
    return encode(0xE2, body + encode(0xDF5F, signer.sign(body)))


@dataclass(frozen=True)
class Payment:
    """What a record says (and the request a terminal sent for it)."""

    amount: int
    merchant_id: str
    terminal_id: str
    challenge: bytes
    when: dt.datetime
    currency: int = CNY

    def request(self) -> bytes:
        """The E3 payment request."""
        return encode(0xE3, b"".join(encode(t, v) for t, v in self._fields()))

    def _fields(self) -> list[tuple[int, bytes]]:
        return [
            (0xDF51, _bcd(self.amount, 12)), (0xDF44, _bcd(self.currency, 4)),
            (0xDF52, self.merchant_id.encode()), (0xDF56, self.terminal_id.encode()),
            (0xDF53, self.challenge), (0xDF54, bytes.fromhex(self.when.strftime("%Y%m%d%H%M%S"))),
        ]  # fmt: skip


@dataclass
class KitWallet:
    """A wallet: its id, key and certificate chain, and the head of its chain of records."""

    wallet_id: bytes
    key: KeyPair
    certificate: bytes
    operator_certificate: bytes
    counter: int = 0
    last_hash: bytes = bytes(32)
    made: dict[int, bytes] = field(default_factory=dict)

    @property
    def hex(self) -> str:
        return self.wallet_id.hex().upper()

    def record(self, payment: Payment, *, counter: int, previous_hash: bytes) -> bytes:
        """A signed E4 record (CBDC-SPEC section 4), whatever the chain says."""
        body = b"".join(
            encode(t, v)
            for t, v in (
                (0xDF40, b"\x01"), (0xDF41, self.wallet_id), (0xDF42, counter.to_bytes(4, "big")),
                (0xDF51, _bcd(payment.amount, 12)), (0xDF44, _bcd(payment.currency, 4)),
                (0xDF52, payment.merchant_id.encode()), (0xDF56, payment.terminal_id.encode()),
                (0xDF53, payment.challenge), (0xDF54, bytes.fromhex(payment.when.strftime("%Y%m%d%H%M%S"))),
                (0xDF43, previous_hash),
            )
        )  # fmt: skip
        return encode(0xE4, body + encode(0xDF5F, self.key.sign(body)))

    def pay(self, amount: int, merchant_id: str, terminal_id: str, *, when: dt.datetime | None = None
            ) -> tuple[bytes, Payment, int, bytes]:  # fmt: skip
        """The next record of the chain: (record, payment, its counter, the previous hash)."""
        payment = Payment(amount, merchant_id, terminal_id, secrets.token_bytes(16),
                          when or dt.datetime(2026, 12, 6, 9, 30, tzinfo=dt.UTC))  # fmt: skip
        counter, previous = self.counter + 1, self.last_hash
        raw = self.record(payment, counter=counter, previous_hash=previous)
        self.counter, self.last_hash = counter, sm3(raw)
        self.made[counter] = raw
        return raw, payment, counter, previous


def envelope(wallet: KitWallet, record: bytes | None, payment: Payment, counter: int, previous: bytes) -> bytes:
    """The E6 envelope a terminal forwards (a torn notice: ``record`` None)."""
    parts = (record or b"") + wallet.certificate + wallet.operator_certificate + payment.request()
    parts += encode(0xDF41, wallet.wallet_id) + encode(0xDF42, counter.to_bytes(4, "big")) + encode(0xDF43, previous)
    return encode(0xE6, parts)


def advice(kind: str, txn_id: str, data: bytes, payment: Payment, wallet: KitWallet, *,
           terminal_id: str | None = None, merchant_id: str | None = None, key: str | None = None,
           amount: int | None = None) -> dict[str, Any]:  # fmt: skip
    """An advice as the protocol carries it (a JSON object)."""
    return {
        "txn_id": txn_id,
        "idempotency_key": key or f"k-{txn_id}",
        "kind": kind,
        "amount": amount if amount is not None else payment.amount,
        "currency": payment.currency,
        "terminal_id": terminal_id or payment.terminal_id,
        "merchant_id": merchant_id or payment.merchant_id,
        "emv_data": data.hex().upper(),
        "pan_token": wallet.hex,
        "created_at": "2026-12-06T09:30:00Z",
    }


@dataclass(frozen=True)
class Kit:
    """A root, an operator, a rogue root's operator, and a way to make wallets."""

    root_id: bytes
    root: KeyPair
    operator_id: bytes
    operator: KeyPair
    operator_certificate: bytes
    rogue_operator: KeyPair
    rogue_certificate: bytes

    def wallet(self, wallet_id: str, *, rogue: bool = False, key: KeyPair | None = None) -> KitWallet:
        """A wallet certified by the operator (``rogue``: by the operator a rogue root signed)."""
        key = key or new_key()
        signer = self.rogue_operator if rogue else self.operator
        wid = bytes.fromhex(wallet_id)
        cert = certificate(wid, self.operator_id, 3, key, signer, wallet=True)
        return KitWallet(wid, key, cert, self.rogue_certificate if rogue else self.operator_certificate)

    def clone(self, wallet: KitWallet) -> KitWallet:
        """A second wallet with the same identity, key and chain head (a cloned secure element)."""
        return KitWallet(wallet.wallet_id, wallet.key, wallet.certificate, wallet.operator_certificate,
                          wallet.counter, wallet.last_hash)  # fmt: skip

    def pki(self, openings: dict[str, int]) -> OperatorPki:
        return OperatorPki(((self.root_id.hex().upper(), self.root.public.upper()),), openings)


@functools.cache
def kit() -> Kit:
    root, operator, rogue_root, rogue_operator = new_key(), new_key(), new_key(), new_key()
    root_id, operator_id = bytes.fromhex("000000A1"), bytes.fromhex("000001A1")
    operator_cert = certificate(operator_id, root_id, 2, operator, root, wallet=False)
    rogue_cert = certificate(operator_id, root_id, 2, rogue_operator, rogue_root, wallet=False)
    return Kit(root_id, root, operator_id, operator, operator_cert, rogue_operator, rogue_cert)
