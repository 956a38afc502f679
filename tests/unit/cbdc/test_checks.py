"""The terminal's checks: the trust store from parameters, the certificate chain, the offline limits, a record."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from cbdc.checks import Limits, ParameterError, Refusal, TrustStore, check_limits, check_record, verify_chain
from cbdc.protocol import PaymentRecord, Role
from cbdc.state import Intent, OfflineState
from tests.unit.cbdc.wallet import (
    OPERATOR,
    OPERATOR_ID,
    ROOT,
    ROOT_ID,
    WALLET,
    WALLET_ID,
    Key,
    operator_certificate,
    parameters,
    request,
    root_entry,
    trust,
    wallet_certificate,
)

DAY = date(2026, 12, 6)
ROGUE = Key.from_seed("rogue")


def test_parameters_build_the_store_and_round_trip() -> None:
    store = trust(blocked_wallets=["d1a0000000000007"], blocked_operators=["0A000009"])
    assert store.roots == {ROOT_ID: ROOT.public}
    assert store.blocked_wallets == {bytes.fromhex("D1A0000000000007")}
    assert store.blocked_operators == {bytes.fromhex("0A000009")}
    assert store.limits[156] == Limits(200_000, 20, 500_000, 86_400)
    assert store.version == 3
    assert TrustStore.from_parameters(store.to_parameters()) == store


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"roots": [{**root_entry(ROOT_ID, ROOT), "checksum": "00" * 32}]}, r"roots\[0\] \(00000001\): the checksum"),
        ({"roots": [{**root_entry(ROOT_ID, ROOT), "id": "0001"}]}, r"roots\[0\]\.id: not 8 hex digits"),
        ({"roots": [root_entry(ROOT_ID, ROOT), root_entry(ROOT_ID, ROOT)]}, "appears twice"),
        ({"roots": "x"}, "roots: not a list"),
        ({"version": "3"}, "version"),
        ({"version": True}, "version"),
        ({"blocked_wallets": ["D1A0"]}, r"blocked_wallets\[0\]"),
        ({"blocked_operators": ["zzzzzzzz"]}, r"blocked_operators\[0\]"),
        ({"blocked_operators": ["0A 00 01"]}, r"blocked_operators\[0\]: not 8 hex digits"),  # fromhex skips spaces
        ({"blocked_wallets": ["+1A0000000000007"]}, r"blocked_wallets\[0\]"),
        ({"limits": {"١٥٦": {}}}, "not an ISO 4217"),  # Arabic-Indic digits: isdigit() and int() take them
        ({"limits": {"CNY": {}}}, "not an ISO 4217"),
        (
            {"limits": {"156": {"per_payment": 1, "max_count": 1, "max_total": -1, "max_unsent_age_s": 1}}},
            r"limits\.156\.max_total",
        ),
        ({"limits": {"156": {"per_payment": 1}}}, r"limits\.156\.max_count: missing"),
    ],
)
def test_bad_parameters_name_what_is_wrong(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        TrustStore.from_parameters(parameters(**change))


def test_a_root_key_off_the_curve_is_refused_even_with_its_checksum() -> None:
    off = Key(1, bytes(63) + b"\x01")
    with pytest.raises(ParameterError, match="not a point of the curve"):
        TrustStore.from_parameters(parameters(roots=[root_entry(ROOT_ID, off)]))


def test_a_good_chain() -> None:
    assert verify_chain(wallet_certificate(), operator_certificate(), trust(), DAY) is None


@pytest.mark.parametrize(
    ("wallet_kwargs", "operator_kwargs", "refusal"),
    [
        ({}, {"issuer": ROGUE}, Refusal.UNTRUSTED_CHAIN),  # operator not signed by the root
        ({}, {"issuer_id": bytes.fromhex("00000002")}, Refusal.UNTRUSTED_CHAIN),  # unknown root
        ({"issuer": ROGUE}, {}, Refusal.UNTRUSTED_CHAIN),  # wallet not signed by its operator
        ({"issuer_id": bytes.fromhex("0A000002")}, {}, Refusal.UNTRUSTED_CHAIN),  # ids do not link
        ({}, {"role": Role.WALLET}, Refusal.UNTRUSTED_CHAIN),
        ({"not_after": date(2026, 12, 5)}, {}, Refusal.CERTIFICATE_EXPIRED),
        ({"not_before": date(2026, 12, 7)}, {}, Refusal.CERTIFICATE_NOT_YET_VALID),
        ({}, {"not_after": date(2026, 12, 5)}, Refusal.CERTIFICATE_EXPIRED),
        ({"not_after": DAY}, {"not_before": DAY}, None),  # valid through its last day, from its first
    ],
)
def test_chain_refusals(wallet_kwargs: dict[str, Any], operator_kwargs: dict[str, Any], refusal: Refusal) -> None:
    if operator_kwargs.get("role") == Role.WALLET:
        operator = wallet_certificate(ROOT, subject=bytes(8), key=OPERATOR, issuer_id=ROOT_ID)
    else:
        operator = operator_certificate(**operator_kwargs)
    assert verify_chain(wallet_certificate(**wallet_kwargs), operator, trust(), DAY) == refusal


def test_a_tampered_certificate_is_untrusted() -> None:
    wallet = wallet_certificate()
    forged = replace(wallet, signed_bytes=wallet.signed_bytes.replace(bytes.fromhex("000000200000"),
                                                                      bytes.fromhex("000099999999")))  # fmt: skip
    assert forged.signed_bytes != wallet.signed_bytes
    assert verify_chain(forged, operator_certificate(), trust(), DAY) == Refusal.UNTRUSTED_CHAIN


def test_blocked_wallets_and_operators() -> None:
    assert verify_chain(wallet_certificate(), operator_certificate(), trust(blocked_wallets=[WALLET_ID.hex()]),
                        DAY) == Refusal.WALLET_BLOCKED  # fmt: skip
    assert verify_chain(wallet_certificate(), operator_certificate(), trust(blocked_operators=[OPERATOR_ID.hex()]),
                        DAY) == Refusal.WALLET_BLOCKED  # fmt: skip


def test_offline_limits() -> None:
    store = trust()
    assert check_limits(request(200_000), store, OfflineState()) is None
    assert check_limits(request(200_001), store, OfflineState()) == Refusal.OVER_PAYMENT_LIMIT
    assert check_limits(request(1), store, OfflineState(count_since_sync=20)) == Refusal.OVER_COUNT_LIMIT
    assert check_limits(request(1), store, OfflineState(count_since_sync=19)) is None
    assert check_limits(request(100), store, OfflineState(total_since_sync=499_901)) == Refusal.OVER_TOTAL_LIMIT
    assert check_limits(request(100), store, OfflineState(total_since_sync=499_900)) is None
    assert check_limits(request(1), store, OfflineState(oldest_unsent_age_s=86_401)) == Refusal.UNSENT_TOO_OLD
    assert check_limits(request(1), store, OfflineState(oldest_unsent_age_s=86_400)) is None
    assert check_limits(request(1, currency=978), store, OfflineState()) == Refusal.OVER_PAYMENT_LIMIT


def _intent() -> Intent:
    return Intent(request(), WALLET_ID, 5, b"\x11" * 32, b"", b"")


def _signed(**changes: Any) -> PaymentRecord:
    unsigned = replace(PaymentRecord.for_request(request(), WALLET_ID, 5, b"\x11" * 32), **changes)
    return unsigned.with_signature(WALLET.sign(unsigned.encode_unsigned()))


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({}, None),
        ({"merchant_id": "OTHER"}, Refusal.WRONG_PAYEE),
        ({"terminal_id": "TERM0002"}, Refusal.WRONG_PAYEE),
        ({"challenge": bytes(16)}, Refusal.WRONG_CHALLENGE),
        ({"counter": 4}, Refusal.COUNTER_REPLAYED),
        ({"amount": 1}, Refusal.AMOUNT_MISMATCH),
        ({"currency": 978}, Refusal.CURRENCY_MISMATCH),
        ({"wallet_id": bytes(8)}, Refusal.WRONG_WALLET),
        ({"previous_hash": bytes(32)}, Refusal.CHAIN_BROKEN),
    ],
)
def test_record_checks(changes: dict[str, Any], refusal: Refusal | None) -> None:
    assert check_record(_signed(**changes), _intent(), WALLET.public) == refusal


def test_a_record_that_does_not_verify_is_refused_before_anything_else() -> None:
    good = _signed()
    assert check_record(good, _intent(), OPERATOR.public) == Refusal.RECORD_SIGNATURE
    bad = bytearray(good.raw)
    bad[-1] ^= 1
    assert check_record(PaymentRecord.parse(bytes(bad)), _intent(), WALLET.public) == Refusal.RECORD_SIGNATURE
    other = _signed(amount=1)
    assert check_record(other, _intent(), OPERATOR.public) == Refusal.RECORD_SIGNATURE
