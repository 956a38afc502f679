"""The Polaris threat list, end to end: each attack on the hard-wallet protocol is refused at the terminal where
the terminal can tell, and otherwise caught by the operator at sync, the wallet blocked, nothing credited twice.

Real parts: the simulated host as its own process (the digital-currency operator's books in its SQLite file,
``host.db``), one per test so that each scenario starts from the simulated world's opening balances; terminals
enrolled with it and talking to it over HTTPS with mutual TLS on loopback (their journal and SAF queue in SQLite
files of their own); the simulator's wallets (SM2-signed records, their state in a SQLite file of the test's
own); the host operator's functions (``simulator.host.cbdc_admin``) and the ``posterm`` command where a person
would use it (a sale at the counter, the wallet's own sync).

Each test is named after its threat, and its docstring says where the threat is caught. After each scenario
:func:`~tests.integration.cbdc_attack_rig.check_books` forwards everything and checks the terminals' and the
operator's books: every payment shown approved credited exactly once (or declined after forwarding and
reported), no double spend credited, wallet accounts consistent, batches in balance with their ``cbdc`` lines.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from simulator.host import cbdc_admin
from simulator.host.cbdc_operator import simulator_pki
from simulator.host.service import HostService, start_host
from terminal.lifecycle import State
from tests.integration.cbdc_attack_rig import (
    MID,
    Till,
    WalksAway,
    accounts,
    check_books,
    claim_of,
    cli,
    credited_payments,
    record_of,
    wallet_on_card,
    wallet_sync,
)

#: the payee cbdc-replay's earlier record names (docs/card-profiles.md): its replay there is refused for its challenge
REPLAY_TID = "TERM0001"
TIGHT = {"156": {"per_payment": 50000, "max_count": 3, "max_total": 100000, "max_unsent_age_s": 86400}}
WIDE = {"156": {"per_payment": 5000000, "max_count": 50, "max_total": 50000000, "max_unsent_age_s": 86400}}


@pytest.fixture
def make_host(tmp_path: Path) -> Iterator[Callable[..., HostService]]:
    """Start a host of the test's own; ``limits``: the terminals' offline limits its parameters carry."""
    started: list[HostService] = []

    def start(limits: Mapping[str, Mapping[str, int]] | None = None) -> HostService:
        data_dir = tmp_path / f"host-{len(started) + 1}"
        if limits is not None:
            pki = simulator_pki()
            assert pki is not None
            cbdc_admin.seed_pki(data_dir, dataclasses.replace(pki, limits=dict(limits)))
        service = start_host(data_dir)
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()


@pytest.fixture
def host(make_host: Callable[..., HostService]) -> HostService:
    return make_host()


@pytest.fixture
def make_till(tmp_path: Path) -> Iterator[Callable[..., Till]]:
    made: list[Till] = []

    def make(host: HostService, terminal_id: str | None = None, merchant_id: str = MID) -> Till:
        till = Till(host, tmp_path / f"till-{len(made) + 1}", terminal_id, merchant_id)
        made.append(till)
        return till

    try:
        yield make
    finally:
        for till in made:
            till.close()


# ----------------------------------------------------------------------------- the threats


def test_replay(host: HostService, make_till: Callable[..., Till]) -> None:
    """Replay. Caught at the terminal: a wallet answering PAY with an old record is refused ``wrong_challenge``
    (the record is not for this payment's challenge), the record forwarded as evidence and never credited.
    Caught at the operator: a genuine record sent again under another idempotency key (another claim) is refused
    as a replay (94 ``record_replayed``) and credited once."""
    till = make_till(host, REPLAY_TID)  # the old record's payee: refused for its challenge, not its payee
    replayed = till.refused("cbdc-replay", 1234, "wrong_challenge")
    assert till.row(replayed.txn_id).state is State.WALLET_REFUSED
    assert till.queued_kinds() == ["cbdc_refused"]
    paid = till.pay("cbdc-anon", 2500)
    assert paid.approved
    till.sync()
    assert accounts(host)["D1A0000000000009"]["credited"] == 0
    # the genuine record again, as another transaction of the same terminal
    (original,) = [a for a in till.link.sent if a.txn_id == paid.txn_id]
    again = dataclasses.replace(original, txn_id="replayed-" + original.txn_id, idempotency_key="replayed-key-1")
    answer = till.link.advise(again)
    assert not answer.approved and answer.response_code == "94", answer
    assert accounts(host)["D1A0000000000001"]["credited"] == 2500
    assert Counter(r["txn_id"] for r in credited_payments(host)) == Counter({paid.txn_id: 1})
    # ... and the same record again under its own transaction but a new key: still credited once
    answer = till.link.advise(dataclasses.replace(original, idempotency_key="replayed-key-2"))
    assert not answer.approved and answer.response_code == "94", answer
    assert accounts(host)["D1A0000000000001"]["credited"] == 2500
    check_books(host, [till], ["cbdc-anon", "cbdc-replay"])


def test_replay_elsewhere_of_a_payment_not_yet_forwarded(host: HostService, make_till: Callable[..., Till]) -> None:
    """Replay at another terminal of a record whose own payee has not forwarded it yet (cbdc-replay's earlier
    record is a payment to TERM0001 still in that terminal's queue). Caught at the other terminal: ``wrong_payee``
    (the record is not for it), forwarded as evidence. The evidence of a replay proves nothing was debited there:
    it must neither take the place of the genuine payment (its payee's claim is credited, once) nor be credited
    back to the wallet at its sync (the replaying customer would get back what the payee gave goods for)."""
    payee, elsewhere = make_till(host, REPLAY_TID), make_till(host)
    elsewhere.refused("cbdc-replay", 1234, "wrong_payee")
    elsewhere.sync()  # the evidence reaches the operator first
    (evidence,) = [a for a in elsewhere.link.sent if a.kind == "cbdc_refused"]
    # the payee's own advice of that payment, as its terminal forwards it when it is back online
    original = claim_of(evidence, record_of(evidence), "original-payment-1", as_its_payee=True)
    assert (original.terminal_id, original.amount) == (REPLAY_TID, 500)
    answer = payee.link.advise(original)
    assert answer.approved and answer.response_code == "00", answer
    assert accounts(host)["D1A0000000000009"]["credited"] == 500
    # the replaying wallet's own sync gives nothing back
    assert wallet_sync(host, "cbdc-replay", "D1A0000000000009")["credited_back"] == []
    account = accounts(host)["D1A0000000000009"]
    assert (account["credited"], account["credited_back"]) == (500, 0)
    check_books(host, [payee, elsewhere], ["cbdc-replay"])


def test_clone(host: HostService, make_till: Callable[..., Till]) -> None:
    """Clone (two cards, one identity, key and counter). Caught at a terminal that saw the counter
    (``counter_replayed``). Not visible offline at two terminals that never saw it: caught by the operator at
    sync (59 ``double_spend``): the first record credited, the second declined after forwarding and reported by
    its terminal, the wallet blocked (a record of it that a terminal took before it had the list is declined 63
    after forwarding); the block list reaches both terminals with their next parameter download, and the clone
    is then refused ``wallet_blocked`` at the terminal."""
    first, second = make_till(host), make_till(host)
    host.set_faults(down=True)  # both offline
    a = first.pay("cbdc-clone-a", 1000)
    first.refused("cbdc-clone-b", 700, "counter_replayed")  # where the counter was seen, the terminal can tell
    b = second.pay("cbdc-clone-b", 700)
    assert a.approved and b.approved and a.offline and b.offline
    host.clear_faults()
    first.sync()
    second.link.echo(force=True)
    report = second.terminal.forward_now()
    assert (report.accepted, report.declined) == (0, 1)
    row = second.row(b.txn_id)
    assert row.state is State.DECLINED_AFTER_FORWARDING and row.details["response_code"] == "59"
    assert second.terminal.offline_status().declined_after_forwarding == [b.txn_id]
    assert "suspected fraud (59)" in second.terminal.result(b.txn_id).message
    account = accounts(host)["D1A000000000000A"]
    assert (account["credited"], account["blocked"]) == (1000, True)
    assert "double_spend" in account["blocked_reason"]
    blocked = cbdc_admin.blocklist(host.data_dir)["cbdc"]
    assert "D1A000000000000A" in blocked["blocked_wallets"]
    # a terminal that has not downloaded the list yet (offline again) still takes the clone ...
    host.set_faults(down=True)
    late = first.pay("cbdc-clone-a", 400)
    assert late.approved
    host.clear_faults()
    first.link.echo(force=True)
    assert first.terminal.forward_now().declined == 1  # ... and the operator declines it: the wallet is blocked
    row = first.row(late.txn_id)
    assert row.state is State.DECLINED_AFTER_FORWARDING and row.details["response_code"] == "63"
    for till, clone in ((first, "cbdc-clone-a"), (second, "cbdc-clone-b")):
        till.parameters()
        till.refused(clone, 300, "wallet_blocked")
    assert wallet_on_card("cbdc-clone-a")["counter"] == 2  # refused before PAY: nothing more debited
    assert accounts(host)["D1A000000000000A"]["credited"] == 1000
    check_books(host, [first, second], ["cbdc-clone-a", "cbdc-clone-b"])


def test_rollback(host: HostService, make_till: Callable[..., Till]) -> None:
    """Rollback (a wallet restored from a backup: every payment reuses one counter). Caught at the terminal that
    saw the counter: ``counter_replayed`` before PAY. At another terminal it is accepted offline, then caught by
    the operator at sync (59 ``double_spend``), the wallet blocked."""
    first, second = make_till(host), make_till(host)
    host.set_faults(down=True)
    paid = first.pay("cbdc-rollback", 1000)
    assert paid.approved and wallet_on_card("cbdc-rollback")["counter"] == 0  # its state went back
    # the next tap there, by another process (posterm sale): the counter it saw is kept on disk
    done = first.at_the_counter("sale", "10.00", "--currency", "CNY", "--card", "cbdc-rollback", "--json", status=1)
    assert json.loads(done.stdout)["refusal"] == "counter_replayed"
    elsewhere = second.pay("cbdc-rollback", 1500)
    assert elsewhere.approved  # this terminal never saw counter 1
    host.clear_faults()
    first.sync()
    second.link.echo(force=True)
    assert second.terminal.forward_now().declined == 1
    row = second.row(elsewhere.txn_id)
    assert row.state is State.DECLINED_AFTER_FORWARDING and row.details["response_code"] == "59"
    account = accounts(host)["D1A000000000000B"]
    assert (account["credited"], account["blocked"]) == (1000, True)
    assert "double_spend" in account["blocked_reason"]
    check_books(host, [first, second], ["cbdc-rollback"])


def test_forged_certificate(host: HostService, make_till: Callable[..., Till]) -> None:
    """Forged certificate (an operator certificate signed by a key that is not the central bank's root). Caught at
    the terminal before PAY: ``untrusted_chain``; nothing debited, nothing queued, nothing credited."""
    till = make_till(host)
    till.refused("cbdc-untrusted-operator", 1234, "untrusted_chain")
    assert till.queued_kinds() == []
    assert wallet_on_card("cbdc-untrusted-operator")["counter"] == 0
    check_books(host, [till], ["cbdc-untrusted-operator"])
    assert accounts(host)["D1A0000000000005"]["credited"] == 0


def test_expired_certificate(host: HostService, make_till: Callable[..., Till]) -> None:
    """Expired certificate (a wallet certificate valid until 2024-12-31). Caught at the terminal before PAY:
    ``certificate_expired``; nothing debited, nothing queued, nothing credited."""
    till = make_till(host)
    till.refused("cbdc-expired", 1234, "certificate_expired")
    assert till.queued_kinds() == []
    assert wallet_on_card("cbdc-expired")["counter"] == 0
    check_books(host, [till], ["cbdc-expired"])
    assert accounts(host)["D1A0000000000004"]["credited"] == 0


def test_tampered_record(host: HostService, make_till: Callable[..., Till]) -> None:
    """Tampered record (its signature does not verify). Caught at the terminal after PAY: ``record_signature``;
    the wallet has debited, so the refused record is kept and forwarded as evidence (``cbdc_refused``); the
    operator acknowledges it and never credits the merchant for it."""
    till = make_till(host)
    refused = till.refused("cbdc-tampered", 1234, "record_signature")
    assert till.row(refused.txn_id).state is State.WALLET_REFUSED
    assert till.queued_kinds() == ["cbdc_refused"]
    assert wallet_on_card("cbdc-tampered")["balance"] == 500000 - 1234  # it did debit
    till.sync()
    (sent,) = [r for r in host.records() if r["txn_id"] == refused.txn_id]
    assert sent["kind"] == "cbdc_refused"
    assert till.row(refused.txn_id).state is State.DECLINED
    assert accounts(host)["D1A0000000000008"]["credited"] == 0
    check_books(host, [till], ["cbdc-tampered"])


def test_redirected_payee(host: HostService, make_till: Callable[..., Till]) -> None:
    """Redirected payee (a wallet that signs a genuine record to another merchant than the one asking). Caught at
    the terminal after PAY: ``wrong_payee``; the record goes to the operator as evidence (``cbdc_refused``), and
    neither this merchant nor the one the record names is credited (the latter's claim is declined); the
    wallet's own sync gets back, once, what it debited for nothing."""
    till = make_till(host)
    refused = till.refused("cbdc-redirect", 1234, "wrong_payee")
    assert till.queued_kinds() == ["cbdc_refused"]
    till.sync()
    assert till.row(refused.txn_id).state is State.DECLINED
    assert accounts(host)["D1A0000000000011"]["credited"] == 0
    # the payee the record names (an accomplice's terminal) claims it: the evidence holds its place
    accomplice = make_till(host, "RDRT0001", "REDIRECT000001")
    (evidence,) = [a for a in till.link.sent if a.kind == "cbdc_refused"]
    claim = claim_of(evidence, record_of(evidence), "accomplice-1", as_its_payee=True)
    assert (claim.merchant_id, claim.terminal_id) == ("REDIRECT000001", "RDRT0001")
    answer = accomplice.link.advise(claim)
    assert not answer.approved and answer.response_code == "94", answer  # the record's place is taken
    # the wallet's own sync: the record it debited for nothing is credited back to it, once
    assert [c["amount"] for c in wallet_sync(host, "cbdc-redirect", "D1A0000000000011")["credited_back"]] == [1234]
    assert wallet_sync(host, "cbdc-redirect", "D1A0000000000011")["credited_back"] == []
    account = accounts(host)["D1A0000000000011"]
    assert (account["credited"], account["credited_back"]) == (0, 1234)
    check_books(host, [till, accomplice], ["cbdc-redirect"])


def test_over_the_terminals_limits(make_host: Callable[..., HostService], make_till: Callable[..., Till]) -> None:
    """Over-limit, the terminal's offline limits from its parameters (500.00 a payment, 3 payments and 1,000.00
    since the last sync). Caught at the terminal before PAY: ``over_payment_limit``, ``over_count_limit``,
    ``over_total_limit``; nothing debited; a sync (everything forwarded and acknowledged) opens them again."""
    host = make_host(limits=TIGHT)
    till = make_till(host)
    host.set_faults(down=True)
    till.refused("cbdc-verified", 50001, "over_payment_limit")  # the wallet's own limit is 50,000.00
    assert wallet_on_card("cbdc-verified")["counter"] == 0
    assert all(till.pay("cbdc-verified", 1000).approved for _ in range(3))
    till.refused("cbdc-verified", 1000, "over_count_limit")
    assert wallet_on_card("cbdc-verified")["counter"] == 3
    host.clear_faults()
    till.sync()
    host.set_faults(down=True)
    assert till.pay("cbdc-verified", 50000).approved and till.pay("cbdc-verified", 40000).approved
    till.refused("cbdc-verified", 10001, "over_total_limit")
    assert till.pay("cbdc-verified", 10000).approved  # exactly at the total
    assert wallet_on_card("cbdc-verified")["counter"] == 6
    check_books(host, [till], ["cbdc-verified"])
    assert accounts(host)["D1A0000000000002"]["credited"] == 3000 + 100000


def test_over_the_terminals_unsent_age_limit(
    make_host: Callable[..., HostService], make_till: Callable[..., Till]
) -> None:
    """Over-limit, the age of the oldest record not yet forwarded (1 second in this terminal's parameters). Caught
    at the terminal before PAY: ``unsent_too_old`` once the oldest unsent record is older; a sync opens it again."""
    host = make_host(limits={"156": {**WIDE["156"], "max_unsent_age_s": 1}})
    till = make_till(host)
    host.set_faults(down=True)
    assert till.pay("cbdc-verified", 1000).approved
    time.sleep(2.1)  # older than 1 s even if a time were kept to the second, whatever the machine's speed
    till.refused("cbdc-verified", 1000, "unsent_too_old")
    assert wallet_on_card("cbdc-verified")["counter"] == 1
    host.clear_faults()
    till.sync()
    assert till.pay("cbdc-verified", 1000).approved
    check_books(host, [till], ["cbdc-verified"])


def test_over_the_wallets_limits(make_host: Callable[..., HostService], make_till: Callable[..., Till]) -> None:
    """Over-limit, the wallet's own limits (an anonymous wallet: 2,000.00 a payment, 5,000.00 a day), under a
    terminal whose limits are wider. Caught at the terminal before PAY for the per-payment limit its
    certificate carries (``over_wallet_limit``), by the wallet itself for its daily limit (6A92:
    ``over_daily_limit``, nothing debited)."""
    host = make_host(limits=WIDE)
    till = make_till(host)
    till.refused("cbdc-anon", 200001, "over_wallet_limit")
    assert till.pay("cbdc-verified", 200001).approved  # the same amount from an ID-verified wallet
    assert till.pay("cbdc-anon", 200000).approved and till.pay("cbdc-anon", 200000).approved
    till.refused("cbdc-anon", 100001, "over_daily_limit")
    card = wallet_on_card("cbdc-anon")
    assert (card["counter"], card["balance"]) == (2, 100000)
    check_books(host, [till], ["cbdc-anon", "cbdc-verified"])
    assert accounts(host)["D1A0000000000001"]["credited"] == 400000


def test_torn_payment_re_tapped(host: HostService, make_till: Callable[..., Till]) -> None:
    """Torn payment completed (the wallet leaves after debiting, before its record arrives). Handled at the
    terminal: the intent was journalled before PAY; the re-tap fetches the record (GET RECORD) and completes the
    same payment, credited once at sync; a wallet sync afterwards credits nothing back."""
    till = make_till(host)
    host.set_faults(down=True)
    paid = till.pay("cbdc-torn", 1234)
    assert paid.approved and paid.state is State.WALLET_APPROVED
    events = [r["event"] for r in till.terminal.history(paid.txn_id)]
    assert events == ["wallet_intent", "wallet_torn", "wallet_approved"]
    assert len(till.terminal.transactions()) == 1
    host.clear_faults()
    till.sync()
    records = cli("sim", "wallet", "records", "cbdc-torn", status=0).stdout
    synced = cli("host", "cbdc", "wallet-sync", "D1A000000000000C", "--records", "-", "--data-dir",
                 str(host.data_dir), "--json", stdin=records, status=0)  # fmt: skip
    assert json.loads(synced.stdout)["credited_back"] == []
    account = accounts(host)["D1A000000000000C"]
    assert (account["credited"], account["credited_back"]) == (1234, 0)
    check_books(host, [till], ["cbdc-torn"])


def test_torn_payment_never_re_tapped(host: HostService, make_till: Callable[..., Till]) -> None:
    """Torn payment abandoned (the customer never presents the wallet again). At the terminal: not paid, a
    ``cbdc_torn`` notice (the intent only) forwarded; the merchant is not credited. At the operator: a claim of
    that payment by the terminal that declared it not paid is declined (63 ``declared_torn``: the customer was
    told "not paid"); the wallet's own sync shows the debited record, unclaimed and declared torn: credited back
    to the wallet, once (a second sync credits nothing), and a claim afterwards is declined (59)."""
    till = make_till(host)
    result = till.pay("cbdc-torn", 1234, reader=WalksAway("sim:card=cbdc-torn"))
    assert not result.approved and result.state is State.WALLET_NOT_PAID
    assert result.message.startswith("not paid")
    assert wallet_on_card("cbdc-torn")["balance"] == 500000 - 1234  # the wallet did debit
    assert till.queued_kinds() == ["cbdc_torn"]
    till.sync()
    assert till.row(result.txn_id).state is State.CANCELLED
    # the merchant's side claiming the payment it declared not paid (the notice with the wallet's record put in)
    (notice,) = [a for a in till.link.sent if a.kind == "cbdc_torn"]
    record = bytes.fromhex(cli("sim", "wallet", "records", "cbdc-torn", status=0).stdout.split()[0])
    answer = till.link.advise(claim_of(notice, record, "claim-before-sync"))
    assert not answer.approved and answer.response_code == "63", answer
    assert accounts(host)["D1A000000000000C"]["credited"] == 0
    # the wallet's own sync (the operator has seen only the notice: the wallet shows its certificates too)
    assert [c["amount"] for c in wallet_sync(host, "cbdc-torn", "D1A000000000000C")["credited_back"]] == [1234]
    assert wallet_sync(host, "cbdc-torn", "D1A000000000000C")["credited_back"] == []
    answer = till.link.advise(claim_of(notice, record, "claim-after-sync"))
    assert not answer.approved and answer.response_code == "59", answer
    account = accounts(host)["D1A000000000000C"]
    assert (account["credited"], account["credited_back"], account["blocked"]) == (0, 1234, False)
    check_books(host, [till], ["cbdc-torn"])


@pytest.mark.parametrize(("profile", "refusal"), [("cbdc-garbage", "malformed"), ("cbdc-mute", None)])
def test_garbage_and_mute(host: HostService, make_till: Callable[..., Till], profile: str, refusal: str | None) -> None:
    """Garbage and mute wallets (random bytes with 9000; no answer after SELECT). Caught at the terminal: a clear
    refusal at the counter (``posterm sale``: exit 1, one line, no traceback): ``malformed`` for garbage, "nothing
    was paid" for a wallet that never answers; nothing stored as approved, nothing queued, nothing credited."""
    till = make_till(host)
    done = till.at_the_counter("sale", "12.34", "--currency", "CNY", "--card", profile, "--json", status=1)
    shown = json.loads(done.stdout)
    assert shown["approved"] is False and shown.get("refusal") == refusal, shown
    assert till.queued_kinds() == []
    (row,) = till.terminal.transactions()
    assert row.state in (State.DECLINED, State.CANCELLED)
    assert wallet_on_card(profile)["counter"] == 0
    check_books(host, [till], [profile])
