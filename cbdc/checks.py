"""The terminal's checks of a hard wallet, each failure a named :class:`Refusal` (docs/cbdc-protocol.md §5-6).

Checks return the first refusal that applies, or None; they never raise on a
wallet's data (parsing, which can fail, happens before them in the kernel).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cbdc import sm2
from cbdc.protocol import Certificate, PaymentRecord, PaymentRequest, Role, WalletInfo
from cbdc.sm3 import sm3
from cbdc.state import Intent, OfflineState

__all__ = [
    "Limits",
    "ParameterError",
    "Refusal",
    "TrustStore",
    "check_limits",
    "check_record",
    "check_wallet",
    "clear_certificate_cache",
    "verify_chain",
]


class Refusal(enum.StrEnum):
    """Why the terminal (or the wallet) refused a digital-currency payment."""

    # before PAY: nothing debited
    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNTRUSTED_CHAIN = "untrusted_chain"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CERTIFICATE_NOT_YET_VALID = "certificate_not_yet_valid"
    WALLET_BLOCKED = "wallet_blocked"
    COUNTER_REPLAYED = "counter_replayed"
    CURRENCY_MISMATCH = "currency_mismatch"
    OVER_WALLET_LIMIT = "over_wallet_limit"
    OVER_PAYMENT_LIMIT = "over_payment_limit"
    OVER_COUNT_LIMIT = "over_count_limit"
    OVER_TOTAL_LIMIT = "over_total_limit"
    UNSENT_TOO_OLD = "unsent_too_old"
    # the wallet's own refusals (status words)
    INSUFFICIENT_BALANCE = "insufficient_balance"
    OVER_DAILY_LIMIT = "over_daily_limit"
    WALLET_LOCKED = "wallet_locked"
    # after PAY: the wallet has debited
    RECORD_SIGNATURE = "record_signature"
    WRONG_PAYEE = "wrong_payee"
    WRONG_CHALLENGE = "wrong_challenge"
    AMOUNT_MISMATCH = "amount_mismatch"
    WRONG_WALLET = "wrong_wallet"
    CHAIN_BROKEN = "chain_broken"


class ParameterError(ValueError):
    """The ``cbdc`` section of a parameter download is not usable; the message names what is wrong."""


@dataclass(frozen=True)
class Limits:
    """The terminal's offline limits for one currency (§6)."""

    per_payment: int  # minor units
    max_count: int  # payments since the last successful sync
    max_total: int  # minor units since the last successful sync
    max_unsent_age_s: int  # age of the oldest unsent record


@dataclass(frozen=True)
class TrustStore:
    """Roots, block lists and offline limits from the terminal's parameters (§8)."""

    roots: Mapping[bytes, bytes] = field(default_factory=dict)  # root id (4 bytes) -> public key (64 bytes)
    blocked_wallets: frozenset[bytes] = frozenset()
    blocked_operators: frozenset[bytes] = frozenset()
    limits: Mapping[int, Limits] = field(default_factory=dict)  # ISO 4217 numeric -> limits
    version: int = 0

    @classmethod
    def from_parameters(cls, data: Mapping[str, Any]) -> TrustStore:
        """Build from the §8 dict, checking every root's checksum = SM3(id ‖ key) and every value's form.

        >>> TrustStore.from_parameters({"version": 1, "roots": [{"id": "00000001", "public_key": "00" * 64,
        ...                              "checksum": "00" * 32}]})
        Traceback (most recent call last):
        ...
        cbdc.checks.ParameterError: cbdc.roots[0] (00000001): the checksum does not match SM3(id || key)
        """
        if not isinstance(data, Mapping):
            raise ParameterError("cbdc: not an object")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise ParameterError("cbdc.version: not a non-negative integer")
        roots = {}
        for i, root in enumerate(_list(data, "roots")):
            where = f"cbdc.roots[{i}]"
            if not isinstance(root, Mapping):
                raise ParameterError(f"{where}: not an object")
            root_id = _hex(root.get("id"), 4, f"{where}.id")
            key = _hex(root.get("public_key"), 64, f"{where}.public_key")
            checksum = _hex(root.get("checksum"), 32, f"{where}.checksum")
            if sm3(root_id + key) != checksum:
                raise ParameterError(f"{where} ({root_id.hex().upper()}): the checksum does not match SM3(id || key)")
            if not sm2.is_valid_public_key(key):
                raise ParameterError(f"{where} ({root_id.hex().upper()}): the public key is not a point of the curve")
            if root_id in roots:
                raise ParameterError(f"{where}: root {root_id.hex().upper()} appears twice")
            roots[root_id] = key
        wallets = frozenset(
            _hex(w, 8, f"cbdc.blocked_wallets[{i}]") for i, w in enumerate(_list(data, "blocked_wallets"))
        )
        operators = frozenset(
            _hex(o, 4, f"cbdc.blocked_operators[{i}]") for i, o in enumerate(_list(data, "blocked_operators"))
        )
        raw_limits = data.get("limits", {})
        if not isinstance(raw_limits, Mapping):
            raise ParameterError("cbdc.limits: not an object")
        limits = {}
        for code, entry in raw_limits.items():
            if not (isinstance(code, str) and code.isascii() and code.isdigit() and 0 < int(code) <= 999):
                # the code is untrusted text and the message one line: shown as a repr if it is not printable
                shown = code if isinstance(code, str) and code.isprintable() else repr(code)
                raise ParameterError(f"cbdc.limits.{shown}: not an ISO 4217 numeric currency code")
            where = f"cbdc.limits.{code}"
            if not isinstance(entry, Mapping):
                raise ParameterError(f"{where}: not an object")
            values = [_count(entry.get(name), f"{where}.{name}") for name in Limits.__dataclass_fields__]
            limits[int(code)] = Limits(*values)
        return cls(roots, wallets, operators, limits, version)

    def to_parameters(self) -> dict[str, Any]:
        """The §8 dict (what a host would send for this store)."""
        return {
            "version": self.version,
            "roots": [
                {"id": rid.hex().upper(), "public_key": key.hex().upper(), "checksum": sm3(rid + key).hex().upper()}
                for rid, key in self.roots.items()
            ],
            "blocked_wallets": sorted(w.hex().upper() for w in self.blocked_wallets),
            "blocked_operators": sorted(o.hex().upper() for o in self.blocked_operators),
            "limits": {
                str(code): {name: getattr(lim, name) for name in Limits.__dataclass_fields__}
                for code, lim in self.limits.items()
            },
        }


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ParameterError(f"cbdc.{key}: not a list")
    return value


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _hex(value: object, size: int, where: str) -> bytes:
    """Exactly ``2 * size`` hex digits (``bytes.fromhex`` alone would take spaces between them)."""
    if not isinstance(value, str) or len(value) != 2 * size or not _HEX_DIGITS.issuperset(value):
        raise ParameterError(f"{where}: not {2 * size} hex digits")
    return bytes.fromhex(value)


def _count(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ParameterError(f"{where}: missing or not a non-negative integer")
    return value


@functools.lru_cache(maxsize=128)
def _certificate_verifies(issuer_key: bytes, signed_bytes: bytes, signature: bytes) -> bool:
    """Memoised: a terminal meets the same operator certificate on every wallet of that operator (and the
    same wallet certificate on each of its taps), and a verification is a pure function of its inputs."""
    return sm2.verify(issuer_key, signed_bytes, signature)


def clear_certificate_cache() -> None:
    """Forget the memoised certificate verifications (for benchmarks of a first tap)."""
    _certificate_verifies.cache_clear()


def _signed_by(cert: Certificate, issuer_key: bytes) -> bool:
    return bool(cert.signature) and _certificate_verifies(issuer_key, cert.signed_bytes, cert.signature)


def _dates(cert: Certificate, on: date) -> Refusal | None:
    if on < cert.not_before:
        return Refusal.CERTIFICATE_NOT_YET_VALID
    if on > cert.not_after:
        return Refusal.CERTIFICATE_EXPIRED
    return None


def verify_chain(wallet_cert: Certificate, operator_cert: Certificate, trust: TrustStore, on: date) -> Refusal | None:
    """Root -> operator -> wallet: signatures, ids, roles; then dates (against ``on``), then the block lists."""
    if operator_cert.role != Role.OPERATOR or wallet_cert.role != Role.WALLET:
        return Refusal.UNTRUSTED_CHAIN
    root_key = trust.roots.get(operator_cert.issuer_id)
    if root_key is None or not _signed_by(operator_cert, root_key):
        return Refusal.UNTRUSTED_CHAIN
    if wallet_cert.issuer_id != operator_cert.subject_id or not _signed_by(wallet_cert, operator_cert.public_key):
        return Refusal.UNTRUSTED_CHAIN
    if not sm2.is_valid_public_key(wallet_cert.public_key):
        return Refusal.UNTRUSTED_CHAIN
    refusal = _dates(operator_cert, on) or _dates(wallet_cert, on)
    if refusal is not None:
        return refusal
    if operator_cert.subject_id in trust.blocked_operators or wallet_cert.subject_id in trust.blocked_wallets:
        return Refusal.WALLET_BLOCKED
    return None


def check_wallet(
    info: WalletInfo, wallet_cert: Certificate, request: PaymentRequest, state: OfflineState
) -> Refusal | None:
    """The wallet's identity and counter against the certificate and what this terminal saw, then the sale."""
    if info.wallet_id != wallet_cert.subject_id:
        return Refusal.UNTRUSTED_CHAIN  # the ids do not link
    if info.counter + 1 > 0xFFFFFFFF:
        return Refusal.MALFORMED  # a wallet at the end of its counter cannot sign another record
    if info.counter + 1 <= state.last_counter(info.wallet_id):
        return Refusal.COUNTER_REPLAYED
    if info.currency != request.currency:
        return Refusal.CURRENCY_MISMATCH
    limit = wallet_cert.per_payment_limit
    if limit is not None and request.amount > limit:
        return Refusal.OVER_WALLET_LIMIT
    return None


def check_limits(request: PaymentRequest, trust: TrustStore, state: OfflineState) -> Refusal | None:
    """The terminal's offline limits (§6); a currency without limits in the parameters is refused outright."""
    limits = trust.limits.get(request.currency)
    if limits is None or request.amount > limits.per_payment:
        return Refusal.OVER_PAYMENT_LIMIT
    if state.count_since_sync + 1 > limits.max_count:
        return Refusal.OVER_COUNT_LIMIT
    if state.total_since_sync + request.amount > limits.max_total:
        return Refusal.OVER_TOTAL_LIMIT
    if state.oldest_unsent_age_s is not None and state.oldest_unsent_age_s > limits.max_unsent_age_s:
        return Refusal.UNSENT_TOO_OLD
    return None


def check_record(record: PaymentRecord, intent: Intent, wallet_public_key: bytes) -> Refusal | None:
    """After PAY: the record must verify with the wallet's key and be exactly the payment intended.

    The signature comes first: nothing in a record that does not verify is believed.
    """
    if not record.signature or not sm2.verify(wallet_public_key, record.signed_bytes, record.signature):
        return Refusal.RECORD_SIGNATURE
    request = intent.request
    if record.wallet_id != intent.wallet_id:
        return Refusal.WRONG_WALLET
    if record.merchant_id != request.merchant_id or record.terminal_id != request.terminal_id:
        return Refusal.WRONG_PAYEE
    if record.challenge != request.challenge or record.date_time_bytes != request.date_time_bytes:
        return Refusal.WRONG_CHALLENGE
    if record.counter != intent.expected_counter:
        return Refusal.COUNTER_REPLAYED
    if record.amount != request.amount:
        return Refusal.AMOUNT_MISMATCH
    if record.currency != request.currency:
        return Refusal.CURRENCY_MISMATCH
    if record.previous_hash != intent.previous_hash:
        return Refusal.CHAIN_BROKEN
    return None
