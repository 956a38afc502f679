"""The host's digital-currency operator on both store engines, through the acquirer (the advices' one way in).

Records are signed here with gmssl (tests/unit/cbdc_host_kit.py), the operator verifies them with the
``cbdc`` package; the store is a real SQLite file or a database of the private PostgreSQL cluster.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cbdc.protocol import PaymentRecord
from emv.tlv import decode, encode
from simulator.host.acquirer import Acquirer, Peer
from simulator.host.cbdc_operator import cbdc_section, seed
from simulator.host.cbdc_sync import SyncError, wallet_sync
from simulator.host.params import for_terminal
from simulator.host.schema import first_error
from simulator.host.store import HostStore
from tests.unit.cbdc_host_kit import CNY, KitWallet, Payment, advice, envelope, kit, sm3

MID, TID, OTHER_TID = "MERCHANT000001", "TERM0001", "TERM0002"
NOW = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC)
OPENING = 100_000


@pytest.fixture()
def host(host_store: HostStore) -> Acquirer:
    """An acquirer over a store whose operator trusts the kit's root; wallets C1..C9, D3..D9, F1..F9 hold 1,000.00 CNY.

    (D1 and D2 are no wallets of the PKI: they open with nothing.)
    """
    openings = {f"D1A00000000000{x}{i}": OPENING for x in "CDF" for i in range(1, 10) if f"{x}{i}" not in ("D1", "D2")}
    seed(host_store, kit().pki(openings), NOW.isoformat())
    return Acquirer(host_store, clock=lambda: NOW)


_keys = iter(range(10**9))


def send(host: Acquirer, *advices: dict[str, Any], terminal_id: str = TID, key: str | None = None
         ) -> list[dict[str, Any]]:  # fmt: skip
    """POST /v1/advices as the acquirer sees it; the results."""
    body = {"advices": list(advices)}
    assert first_error("AdvicesRequest", body) is None
    reply = host.handle("advices", body, Peer(terminal_id, MID), key or f"req-{next(_keys)}")
    assert reply.status == 200
    results: list[dict[str, Any]] = reply.json()["results"]
    for result in results:
        assert first_error("AdviceResult", result) is None
    return results


def pay(host: Acquirer, wallet: KitWallet, amount: int, txn: str, *, terminal_id: str = TID,
        kind: str = "cbdc_payment") -> dict[str, Any]:  # fmt: skip
    raw, payment, counter, previous = wallet.pay(amount, MID, terminal_id)
    data = envelope(wallet, raw, payment, counter, previous)
    return send(host, advice(kind, txn, data, payment, wallet), terminal_id=terminal_id)[0]


def account(store: HostStore, wallet: KitWallet) -> tuple[int, int, bool]:
    """(balance, records held, blocked) of a wallet at the operator."""
    held = store.cbdc_wallet(wallet.hex)
    assert held is not None
    return held.balance, len(store.cbdc_records(wallet.hex)), store.cbdc_block_reason("wallet", wallet.hex) is not None


def credited(store: HostStore) -> list[tuple[str, int]]:
    """(txn_id, amount) of the records that count in the batch totals (approved cbdc payments)."""
    return [(r.txn_id, r.amount) for r in store.records() if r.approved and r.kind == "cbdc_payment"]


def test_a_payment_is_verified_and_credited_once(host: Acquirer) -> None:
    store = host.store
    wallet = kit().wallet("D1A00000000000F1")
    result = pay(host, wallet, 1234, "c1")
    assert (result["outcome"], result["response_code"], result["message"]) == ("accepted", "00", None)
    assert account(store, wallet) == (OPENING - 1234, 1, False)
    assert credited(store) == [("c1", 1234)]
    held = store.cbdc_record(wallet.hex, 1)
    assert held is not None and held.status == "credited" and held.claimed_terminal_id == TID
    assert held.record_hash == sm3(wallet.made[1]).hex().upper()
    record = store.records()[-1]
    assert (record.pan_token, record.kind, record.note) == (wallet.hex, "cbdc_payment", "credited")


def test_the_same_advice_again_gets_the_same_answer_and_credits_nothing_more(host: Acquirer) -> None:
    wallet = kit().wallet("D1A00000000000F2")
    raw, payment, counter, previous = wallet.pay(500, MID, TID)
    item = advice("cbdc_payment", "c2", envelope(wallet, raw, payment, counter, previous), payment, wallet)
    first = send(host, item, key="same-request")
    again = host.handle("advices", {"advices": [item]}, Peer(TID, MID), "same-request")  # the request repeated
    assert again.replayed and again.json()["results"] == first
    in_another_request = send(host, item)  # the advice's own key in a new request
    assert in_another_request == first
    assert account(host.store, wallet) == (OPENING - 500, 1, False)
    assert credited(host.store) == [("c2", 500)]


def test_the_same_record_claimed_again_under_another_key_is_a_replay_never_credited_twice(host: Acquirer) -> None:
    wallet = kit().wallet("D1A00000000000F3")
    raw, payment, counter, previous = wallet.pay(700, MID, TID)
    data = envelope(wallet, raw, payment, counter, previous)
    assert send(host, advice("cbdc_payment", "c3", data, payment, wallet))[0]["response_code"] == "00"
    same_txn = send(host, advice("cbdc_payment", "c3", data, payment, wallet, key="another-key"))[0]
    assert (same_txn["outcome"], same_txn["response_code"]) == ("declined", "94")
    new_txn = send(host, advice("cbdc_payment", "c3-again", data, payment, wallet))[0]
    assert (new_txn["outcome"], new_txn["response_code"]) == ("declined", "94")
    assert "record_replayed" in new_txn["message"]
    assert account(host.store, wallet) == (OPENING - 700, 1, False)  # a replay is no fraud of the wallet's
    assert credited(host.store) == [("c3", 700)]


def test_a_clone_spending_the_same_counter_is_a_double_spend_and_the_wallet_is_blocked(host: Acquirer) -> None:
    store = host.store
    wallet = kit().wallet("D1A00000000000F4")
    clone = kit().clone(wallet)
    assert pay(host, wallet, 1000, "d1")["response_code"] == "00"
    refused = pay(host, clone, 2000, "d2", terminal_id=OTHER_TID)  # counter 1 again, another record
    assert (refused["outcome"], refused["response_code"]) == ("declined", "59")
    assert "double_spend" in refused["message"]
    assert account(store, wallet) == (OPENING - 1000, 1, True)
    assert [c["reason"] for c in store.cbdc_conflicts(wallet.hex)] == ["double_spend"]
    assert credited(store) == [("d1", 1000)]
    later = pay(host, wallet, 10, "d3")  # counter 2, a good record, of a blocked wallet
    assert (later["response_code"], later["message"]) == ("63", "declined after forwarding (wallet_blocked)")
    assert credited(store) == [("d1", 1000)]


def test_a_record_that_does_not_chain_to_the_one_held_is_a_chain_fork(host: Acquirer) -> None:
    wallet = kit().wallet("D1A00000000000F5")
    assert pay(host, wallet, 100, "f1")["response_code"] == "00"
    wallet.last_hash = bytes(range(32))  # counter 2 chained to something else than record 1 (a rolled-back wallet)
    forked = pay(host, wallet, 100, "f2")
    assert (forked["response_code"], "chain_fork" in forked["message"]) == ("59", True)
    assert account(host.store, wallet) == (OPENING - 100, 1, True)


def test_spending_beyond_what_the_wallet_held_is_an_overspend(host: Acquirer) -> None:
    wallet = kit().wallet("D1A00000000000F6")
    assert pay(host, wallet, 60_000, "o1")["response_code"] == "00"
    over = pay(host, wallet, 50_000, "o2")
    assert (over["response_code"], "overspend" in over["message"]) == ("59", True)
    assert account(host.store, wallet) == (OPENING - 60_000, 2, True)
    assert credited(host.store) == [("o1", 60_000)]
    synced = wallet_sync(host.operator, wallet.hex, [wallet.made[1], wallet.made[2]], NOW)
    assert synced.credited_back == ()  # its merchant may have given the goods: the operator gives nothing back


def test_a_topped_up_wallet_may_spend_its_top_up(host: Acquirer) -> None:
    wallet = kit().wallet("D1A00000000000F7")
    host.store.add_cbdc_money(wallet.hex, topups=50_000)
    assert pay(host, wallet, 60_000, "t1")["response_code"] == "00"
    assert pay(host, wallet, 50_000, "t2")["response_code"] == "00"
    assert account(host.store, wallet) == (OPENING + 50_000 - 110_000, 2, False)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "record_signature"),  # the signature's last byte
        (lambda raw: raw[:30] + bytes([raw[30] ^ 1]) + raw[31:], "record_signature"),  # a signed byte
        (lambda raw: encode(0xE4, decode(raw)[0].value[:-2]), "malformed"),  # the signature cut short
    ],
)
def test_a_tampered_record_is_a_security_violation(
    host: Acquirer, change: Callable[[bytes], bytes], reason: str
) -> None:
    wallet = kit().wallet("D1A00000000000F8")
    raw, payment, counter, previous = wallet.pay(100, MID, TID)
    data = envelope(wallet, change(raw), payment, counter, previous)
    result = send(host, advice("cbdc_payment", "s1", data, payment, wallet))[0]
    assert (result["outcome"], result["response_code"]) == ("declined", "63")
    assert result["message"] == f"declined after forwarding ({reason})"
    assert host.store.cbdc_records(wallet.hex) == [] and credited(host.store) == []


def test_a_wallet_of_an_operator_no_trusted_root_signed_is_refused(host: Acquirer) -> None:
    wallet = kit().wallet("D1A00000000000E1", rogue=True)
    result = pay(host, wallet, 100, "u1")
    assert (result["response_code"], result["message"]) == ("63", "declined after forwarding (untrusted_chain)")
    assert credited(host.store) == []


def test_a_payment_claimed_by_another_terminal_or_not_as_asked_is_refused(host: Acquirer) -> None:
    wallet = kit().wallet("D1A00000000000F9")
    raw, payment, counter, previous = wallet.pay(100, MID, TID)
    data = envelope(wallet, raw, payment, counter, previous)
    stolen = send(host, advice("cbdc_payment", "w1", data, payment, wallet, terminal_id=OTHER_TID),
                  terminal_id=OTHER_TID)[0]  # fmt: skip
    assert (stolen["response_code"], "wrong_payee" in stolen["message"]) == ("63", True)
    inflated = send(host, advice("cbdc_payment", "w2", data, payment, wallet, amount=10_000))[0]
    assert (inflated["response_code"], "amount_mismatch" in inflated["message"]) == ("63", True)
    other_request = replace(payment, challenge=bytes(16))  # the request the terminal says it sent: not the record's
    mixed = envelope(wallet, raw, other_request, counter, previous)
    mismatch = send(host, advice("cbdc_payment", "w3", mixed, payment, wallet))[0]
    assert (mismatch["response_code"], "envelope_mismatch" in mismatch["message"]) == ("63", True)
    off_chain = send(host, advice("cbdc_payment", "w4", envelope(wallet, raw, payment, counter + 1, previous),
                                  payment, wallet))[0]  # fmt: skip
    assert (off_chain["response_code"], "envelope_mismatch" in off_chain["message"]) == ("63", True)
    assert send(host, advice("cbdc_payment", "w5", data, payment, wallet))[0]["response_code"] == "00"


def test_a_refused_record_is_evidence_never_credited_to_the_merchant_but_given_back_at_sync(host: Acquirer) -> None:
    store = host.store
    wallet = kit().wallet("D1A00000000000D1")
    clone = kit().clone(wallet)
    evidence = pay(host, wallet, 300, "r1", kind="cbdc_refused")
    assert (evidence["outcome"], evidence["response_code"]) == ("accepted", "00")
    assert evidence["message"] == "acknowledged, nothing credited (refused_at_terminal)"
    held = store.cbdc_record(wallet.hex, 1)
    assert held is not None and held.status == "refused"
    assert credited(store) == [] and account(store, wallet)[0] == 0  # D1 has no opening: not in the PKI
    refused = pay(host, clone, 300, "r2")
    assert refused["response_code"] == "59" and store.cbdc_block_reason("wallet", wallet.hex) is not None
    # the wallet's sync: the record its terminal refused is credited back to it, once
    upload = [wallet.certificate, wallet.operator_certificate, wallet.made[1]]
    report = wallet_sync(host.operator, wallet.hex, upload, NOW)
    assert [(c["counter"], c["txn_id"], c["amount"]) for c in report.credited_back] == [(1, "r1", 300)]
    assert wallet_sync(host.operator, wallet.hex, upload, NOW).credited_back == ()
    held = store.cbdc_record(wallet.hex, 1)
    assert held is not None and held.status == "credited_back"


def test_a_malformed_envelope_is_rejected_and_nothing_is_kept(host: Acquirer) -> None:
    wallet = kit().wallet("D1A00000000000D2")
    raw, payment, counter, previous = wallet.pay(100, MID, TID)
    bad = envelope(wallet, raw, payment, counter, previous)[:-3]
    result = send(host, advice("cbdc_payment", "m1", bad, payment, wallet))[0]
    assert (result["outcome"], result["response_code"]) == ("rejected", "30")
    torn_with_record = send(host, advice("cbdc_torn", "m2", envelope(wallet, raw, payment, counter, previous),
                                         payment, wallet))[0]  # fmt: skip
    assert torn_with_record["outcome"] == "rejected" and "torn notice carries no payment record" in (
        torn_with_record["message"]
    )
    assert host.store.records() == []


def test_a_blocked_wallet_is_in_every_terminals_next_parameters_with_a_higher_version(host: Acquirer) -> None:
    store = host.store
    before = for_terminal(store, MID, TID, operator=host.operator)
    section = json.loads(before.document)["cbdc"]
    assert first_error("ParametersResponse", json.loads(before.document)) is None
    root = kit()
    assert section["roots"] == [{
        "id": root.root_id.hex().upper(), "public_key": root.root.public.upper(),
        "checksum": sm3(root.root_id + bytes.fromhex(root.root.public)).hex().upper(),
    }]  # fmt: skip
    assert section["blocked_wallets"] == [] and section["limits"]["156"]["per_payment"] == 200000
    wallet = kit().wallet("D1A00000000000D3")
    clone = kit().clone(wallet)
    pay(host, wallet, 100, "b1")
    assert pay(host, clone, 100, "b2", terminal_id=OTHER_TID)["response_code"] == "59"
    after = for_terminal(store, MID, TID, operator=host.operator)
    document = json.loads(after.document)
    assert after.version > before.version
    assert document["cbdc"]["version"] > section["version"]
    assert document["cbdc"]["blocked_wallets"] == [wallet.hex]
    assert first_error("ParametersResponse", document) is None
    other = json.loads(for_terminal(store, MID, OTHER_TID, operator=host.operator).document)
    assert other["cbdc"]["blocked_wallets"] == [wallet.hex]
    from cbdc.checks import TrustStore

    trust = TrustStore.from_parameters(document["cbdc"])  # what the terminal builds from it
    assert trust.blocked_wallets == frozenset({wallet.wallet_id}) and trust.version == document["cbdc"]["version"]
    assert cbdc_section(store) == document["cbdc"]
    assert for_terminal(store, MID, TID, operator=host.operator).version == after.version  # nothing moved since


def torn(host: Acquirer, wallet: KitWallet, amount: int, txn: str) -> bytes:
    """A payment torn at the terminal: the wallet debited (its record made), the terminal's notice sent."""
    raw, payment, counter, previous = wallet.pay(amount, MID, TID)
    notice = send(host, advice("cbdc_torn", txn, envelope(wallet, None, payment, counter, previous), payment,
                               wallet))[0]  # fmt: skip
    assert (notice["outcome"], notice["response_code"]) == ("accepted", "00")
    assert notice["message"] == "acknowledged, nothing credited (torn_not_paid)"
    return raw


def test_wallet_sync_credits_a_torn_record_back_once(host: Acquirer) -> None:
    store = host.store
    wallet = kit().wallet("D1A00000000000D4")
    paid = pay(host, wallet, 1000, "p1")
    assert paid["response_code"] == "00"
    torn_record = torn(host, wallet, 400, "p2")
    unclaimed_raw, *_ = wallet.pay(50, MID, TID)  # its terminal may still hold it: not credited back
    upload = [wallet.made[1], torn_record, unclaimed_raw, wallet.operator_certificate, wallet.certificate]
    report = wallet_sync(host.operator, wallet.hex, upload, NOW)
    assert (report.records, report.new, report.credited_back_total, report.frauds) == (3, 2, 400, ())
    assert [(c["counter"], c["txn_id"]) for c in report.credited_back] == [(2, "p2")]
    again = wallet_sync(host.operator, wallet.hex, [torn_record], NOW)  # the key is known now
    assert (again.new, again.credited_back) == (0, ())
    held = store.cbdc_wallet(wallet.hex)
    assert held is not None and (held.credited, held.credited_back) == (1000, 400)
    assert [r.status for r in store.cbdc_records(wallet.hex)] == ["credited", "credited_back", "unclaimed"]
    claimed = send(host, advice("cbdc_payment", "p2-late", envelope(wallet, torn_record, *_payment_of(wallet, 2)),
                                _payment_of(wallet, 2)[0], wallet))[0]  # fmt: skip
    assert (claimed["response_code"], "credited_back" in claimed["message"]) == ("59", True)
    late = send(host, advice("cbdc_payment", "p3", envelope(wallet, unclaimed_raw, *_payment_of(wallet, 3)),
                             _payment_of(wallet, 3)[0], wallet))[0]  # fmt: skip
    assert late["response_code"] == "00"  # an unclaimed record is its payee's to claim
    assert credited(store) == [("p1", 1000), ("p3", 50)]


def _payment_of(wallet: KitWallet, counter: int) -> tuple[Any, int, bytes]:
    """The payment, counter and previous hash of a record the kit made (read back from its bytes)."""
    record = PaymentRecord.parse(wallet.made[counter])
    payment = Payment(record.amount, record.merchant_id, record.terminal_id, record.challenge, record.date_time,
                      record.currency)  # fmt: skip
    return payment, counter, record.previous_hash


def test_wallet_sync_catches_a_clone_and_refuses_an_upload_that_does_not_verify(host: Acquirer) -> None:
    store = host.store
    wallet = kit().wallet("D1A00000000000D5")
    clone = kit().clone(wallet)
    assert pay(host, wallet, 100, "q1")["response_code"] == "00"
    clone_record, *_ = clone.pay(100, MID, OTHER_TID)
    report = wallet_sync(host.operator, wallet.hex, [clone_record], NOW)
    assert report.frauds == ({"counter": 1, "reason": "double_spend"},) and report.blocked
    stranger = kit().wallet("D1A00000000000D6")
    with pytest.raises(SyncError, match="not verified wallet"):
        wallet_sync(host.operator, stranger.hex, [stranger.pay(1, MID, TID)[0]], NOW)
    with pytest.raises(SyncError, match="not D1A00000000000D5"):
        wallet_sync(host.operator, wallet.hex, [stranger.pay(1, MID, TID)[0]], NOW)
    forged = kit().wallet("D1A00000000000D5")  # the same id, another key: its records do not verify
    with pytest.raises(SyncError, match="signature does not verify"):
        wallet_sync(host.operator, wallet.hex, [forged.pay(1, MID, TID)[0]], NOW)
    assert len(store.cbdc_records(wallet.hex)) == 1


def test_the_batch_totals_count_credited_payments_only(host: Acquirer) -> None:
    good, blocked_one = kit().wallet("D1A00000000000C1"), kit().wallet("D1A00000000000C2")
    clone = kit().clone(blocked_one)
    store = host.store
    assert pay(host, good, 1500, "s1")["response_code"] == "00"
    assert pay(host, good, 2500, "s2")["response_code"] == "00"
    assert pay(host, blocked_one, 700, "s3", kind="cbdc_refused")["response_code"] == "00"
    torn(host, good, 300, "s4")
    assert pay(host, clone, 900, "s5")["response_code"] == "59"
    cbdc_line = {"scheme": "cbdc", "currency": CNY, "kind": "sale", "count": 2, "amount": 4000}
    wrong = host.handle("batch-close", {"batch_id": 1, "terminal_id": TID, "lines": [
        {**cbdc_line, "count": 3, "amount": 4700}]}, Peer(TID, MID), "close-wrong")  # fmt: skip
    assert wrong.json()["in_balance"] is False  # the refused record counted by the terminal: out of balance
    assert wrong.json()["differences"] == [{"currency": CNY, "kind": "sale", "terminal_count": 3,
                                            "terminal_amount": 4700, "host_count": 2, "host_amount": 4000}]
    assert pay(host, good, 100, "s6")["response_code"] == "00"
    right = host.handle("batch-close", {"batch_id": 2, "terminal_id": TID, "lines": [
        {**cbdc_line, "count": 1, "amount": 100}]}, Peer(TID, MID), "close-right")  # fmt: skip
    assert right.json() == {**right.json(), "in_balance": True, "differences": []}
    assert store.cbdc_wallet(good.hex) is not None


def test_a_new_host_starts_from_the_simulators_pki_and_the_terminals_shipped_block_list(
    host_store: HostStore,
) -> None:
    from simulator.cbdc import pki
    from simulator.host.cbdc_operator import simulator_pki

    served = json.loads(for_terminal(host_store, MID, TID).document)  # the first use seeds the operator
    shipped = simulator_pki()
    assert shipped is not None
    assert served["cbdc"]["roots"] == pki.trust_roots()
    assert served["cbdc"]["blocked_wallets"] == sorted(shipped.blocked_wallets)
    assert "cbdc" not in served["config"]  # beside config, never in it (the terminal refuses it there)
    assert first_error("ParametersResponse", served) is None
    anon = host_store.cbdc_wallet("D1A0000000000001")
    assert anon is not None and anon.balance == pki.opening_balances()["D1A0000000000001"]


def test_two_syncs_at_once_credit_a_torn_record_back_once(
    host: Acquirer, host_store_at: Any, open_host_store: Callable[..., HostStore]
) -> None:
    """Two host processes (two stores on one database) run the same wallet's sync at the same moment."""
    import threading

    from simulator.host.cbdc_operator import Operator

    wallet = kit().wallet("D1A00000000000D7")
    torn_record = torn(host, wallet, 400, "x1")
    upload = [wallet.certificate, wallet.operator_certificate, torn_record]
    stores = [open_host_store(host_store_at) for _ in range(2)]
    barrier = threading.Barrier(2)
    reports: list[Any] = [None, None]

    def sync(index: int) -> None:
        barrier.wait(10)
        reports[index] = wallet_sync(Operator(stores[index]), wallet.hex, upload, NOW)

    threads = [threading.Thread(target=sync, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    assert sorted(r.credited_back_total for r in reports) == [0, 400]
    held = host.store.cbdc_wallet(wallet.hex)
    assert held is not None and held.credited_back == 400


@pytest.fixture(scope="module")
def fuzz_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Acquirer, KitWallet, tuple[Any, ...]]]:
    """One SQLite host for every example, its operator trusting a wallet that made one record."""
    wallet = kit().wallet("D1A00000000000E9")
    record = wallet.pay(100, MID, TID)
    store = HostStore(tmp_path_factory.mktemp("fuzz") / "host.db")
    seed(store, kit().pki({wallet.hex: OPENING}), NOW.isoformat())
    try:
        yield Acquirer(store, clock=lambda: NOW), wallet, record
    finally:
        store.close()


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_bytes_in_a_digital_currency_advice_end_in_an_answer(
    fuzz_host: tuple[Acquirer, KitWallet, tuple[Any, ...]], data: st.DataObject
) -> None:
    """The envelope, and the wallet's bytes in it, are untrusted: any of them ends in rejected / declined /
    accepted-without-credit, never an exception, never a credit."""
    host, wallet, (raw, payment, counter, previous) = fuzz_host
    good = envelope(wallet, raw, payment, counter, previous)
    kind = data.draw(st.sampled_from(["cbdc_payment", "cbdc_refused", "cbdc_torn"]))
    emv = data.draw(st.one_of(
        st.binary(max_size=300),
        st.builds(lambda i, b: good[:i] + bytes([b]) + good[i + 1:], st.integers(0, len(good) - 1),
                  st.integers(0, 255)),
        st.builds(lambda i: good[:i], st.integers(0, len(good))),
    ))  # fmt: skip
    item = advice(kind, f"z{next(_keys)}", emv, payment, wallet)
    result = send(host, item)[0]
    assert result["outcome"] in ("rejected", "declined", "accepted")
    if emv != good or kind != "cbdc_payment":
        assert item["txn_id"] not in {txn for txn, _ in credited(host.store)}
    assert len(credited(host.store)) <= 1  # the one good record, credited once whatever came before


def test_a_blocked_operators_wallets_are_refused_and_the_parameters_say_so(host: Acquirer) -> None:
    from simulator.host.cbdc_operator import block

    operator_id = kit().operator_id.hex().upper()
    version = cbdc_section(host.store)["version"]
    assert block(host.store, "operator", operator_id, "licence withdrawn", NOW.isoformat())
    section = cbdc_section(host.store)
    assert (section["blocked_operators"], section["version"]) == ([operator_id], version + 1)
    refused = pay(host, kit().wallet("D1A00000000000C9"), 100, "op1")
    assert (refused["response_code"], refused["message"]) == ("63", "declined after forwarding (operator_blocked)")
    with host.store.transaction():
        assert host.store.cbdc_unblock("operator", operator_id, NOW.isoformat())
    assert pay(host, kit().wallet("D1A00000000000C8"), 100, "op2")["response_code"] == "00"
