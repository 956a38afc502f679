"""The simulator's wallets (simulator.cbdc) against the terminal's protocol package (cbdc): two implementations
of CBDC-SPEC written apart, meeting only here.  Every profile ends with the outcome docs/card-profiles.md gives.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cbdc import kernel
from cbdc.checks import TrustStore
from cbdc.protocol import PaymentRecord, PaymentRequest
from cbdc.state import OfflineState
from emv.apdu import CardCommunicationError
from simulator.cbdc import pki
from simulator.cbdc import profiles as wallet_profiles
from simulator.cbdc.wallet import WalletCard
from simulator.transport import as_transport

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
ERRORS = (CardCommunicationError,)
# profile -> (outcome kind, refusal) on a first tap at a terminal that has not seen the wallet
EXPECTED = {
    "cbdc-anon": ("approved", None),
    "cbdc-verified": ("approved", None),
    "cbdc-dual": ("approved", None),
    "cbdc-clone-a": ("approved", None),
    "cbdc-clone-b": ("approved", None),
    "cbdc-rollback": ("approved", None),
    "cbdc-low-balance": ("wallet_declined", "insufficient_balance"),
    "cbdc-locked": ("wallet_declined", "wallet_locked"),
    "cbdc-expired": ("refused", "certificate_expired"),
    "cbdc-untrusted-operator": ("refused", "untrusted_chain"),
    "cbdc-blocked": ("refused", "wallet_blocked"),
    "cbdc-garbage": ("refused", "malformed"),
    "cbdc-tampered": ("refused", "record_signature"),
    "cbdc-replay": ("refused", "wrong_challenge"),
    "cbdc-redirect": ("refused", "wrong_payee"),
    "cbdc-mute": ("no_wallet", None),
    "cbdc-torn": ("torn", None),
}


def _trust() -> TrustStore:
    return TrustStore.from_parameters(
        {
            "version": 1,
            "roots": pki.trust_roots(),  # the checksums the simulator computes are the ones cbdc checks
            "blocked_wallets": [pki.wallet("blocked").wallet_id.hex().upper()],
            "blocked_operators": [],
            "limits": {"156": {"per_payment": 200000, "max_count": 20, "max_total": 500000, "max_unsent_age_s": 86400}},
        }
    )


def _request(amount: int = 1234) -> PaymentRequest:
    return PaymentRequest(amount, 156, "POSTERM0000001", "TERM0001", os.urandom(16), NOW)


def _pay(card: WalletCard, state: OfflineState | None = None) -> tuple[kernel.WalletOutcome, list[kernel.Intent]]:
    intents: list[kernel.Intent] = []
    card.reset()
    outcome = kernel.pay(
        as_transport(card), _request(), _trust(), state or OfflineState(), NOW, intents.append, transport_errors=ERRORS
    )
    return outcome, intents


def test_every_profile_is_listed_here() -> None:
    assert sorted(EXPECTED) == wallet_profiles.list_names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_wallet_ends_as_documented_at_the_terminals_kernel(tmp_path: Path, name: str) -> None:
    kind, refusal = EXPECTED[name]
    outcome, _ = _pay(WalletCard(name, state_dir=tmp_path))
    assert (outcome.kind.value, None if outcome.refusal is None else outcome.refusal.value) == (kind, refusal)


def test_a_torn_payment_resumes_as_the_same_payment(tmp_path: Path) -> None:
    card = WalletCard("cbdc-torn", state_dir=tmp_path)
    torn, intents = _pay(card)
    assert torn.kind.value == "torn" and len(intents) == 1
    card.reset()  # presented again
    resumed = kernel.resume(as_transport(card), intents[0], _trust(), OfflineState(), transport_errors=ERRORS)
    assert resumed.kind.value == "approved" and resumed.record is not None
    assert resumed.record.counter == intents[0].expected_counter


def test_rollback_and_clones_are_caught_by_a_terminal_that_saw_the_counter(tmp_path: Path) -> None:
    for first, second in (("cbdc-rollback", "cbdc-rollback"), ("cbdc-clone-a", "cbdc-clone-b")):
        approved, _ = _pay(WalletCard(first, state_dir=tmp_path))
        assert approved.kind.value == "approved" and isinstance(approved.record, PaymentRecord)
        seen = OfflineState(last_counters={approved.record.wallet_id.hex().upper(): approved.record.counter})
        again, _ = _pay(WalletCard(second, state_dir=tmp_path), seen)
        assert (again.kind.value, again.refusal and again.refusal.value) == ("refused", "counter_replayed"), first


def test_the_records_a_wallet_keeps_parse_and_chain_for_cbdc(tmp_path: Path) -> None:
    card = WalletCard("cbdc-verified", state_dir=tmp_path)
    records = []
    for _ in range(3):
        outcome, _ = _pay(card)
        assert outcome.kind.value == "approved" and outcome.record is not None
        records.append(outcome.record)
    _, kept = card.store.snapshot(card.profile)
    assert [PaymentRecord.parse(raw).raw for raw in kept] == [r.raw for r in records]
    assert [r.previous_hash for r in records[1:]] == [r.hash for r in records[:-1]]
