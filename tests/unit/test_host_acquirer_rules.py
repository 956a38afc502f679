"""The acquirer refuses what no issuer would approve (issue 11): through the HostLink port, as a terminal sends.

Card data and a verifiable cryptogram for every payment, a transaction approved once, refunds covered by
their sale (or the merchant's allowance), reversals of exactly what they undo, and the host's own card
token whatever token a terminal sends. The in-process host shares the HTTPS host's acquirer; here it
runs on each store engine (a SQLite file, a PostgreSQL database: tests/conftest.py). The same findings
over HTTPS with real terminals: tests/integration/test_host_acquirer_rules.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from emv import tlv
from host_link import wire
from simulator.card_data import card_emv_data
from simulator.host import admin
from simulator.host.acquirer import Acquirer, Peer
from simulator.host.inprocess import MEMORY_HOST_DIR, MEMORY_HOST_REFUND_ALLOWANCE, InProcessHost, open_memory_host
from simulator.host.keys import HostKeys
from simulator.host.proofs import Claim, EmvCardProof, Proven, Refusal
from simulator.host.storage import Location
from simulator.host.store import HostStore
from terminal.host import HostRejected
from terminal.response_codes import decline_reason
from tests.unit.host_messages import EUR, TID, USD, advice, auth, reversal

OTHER_TID = "TERM0002"
PAN = "4761739001010010"  # simulator.card_data.CARDS["visa"]


@pytest.fixture
def host(host_store_at: Location, host_store_keys: HostKeys) -> Iterator[InProcessHost]:
    """The acquirer behind the HostLink port, on each store engine (tests/conftest.py)."""
    with InProcessHost(host_store_at, keys=host_store_keys) as inprocess:
        yield inprocess


def note(host: InProcessHost, txn_id: str) -> str:
    (record,) = [r for r in host.records_for(txn_id) if r.method != "reverse"][-1:]
    return record.note


# --------------------------------------------------------------------------- card data and cryptogram


def test_a_sale_with_empty_emv_data_and_a_made_up_token_is_declined(host: InProcessHost) -> None:
    answer = host.authorise(auth("t1", emv_data=b"", pan_token="0123456789abcdef0123456789abcdef"))
    assert (answer.approved, answer.response_code) == (False, "14")
    assert note(host, "t1") == "no_card_data"
    assert decline_reason(answer.response_code) == "invalid card number (14)"


def test_card_data_without_a_cryptogram_is_declined_82(host: InProcessHost) -> None:
    pan_only = bytes.fromhex("5A08" + PAN + "9F02060000000010009F3602000A")
    answer = host.authorise(auth("t1", emv_data=pan_only))
    assert (answer.response_code, note(host, "t1")) == ("82", "no_cryptogram")


def test_a_card_that_signed_another_amount_proves_nothing_about_this_one(host: InProcessHost) -> None:
    signed_for_ten = card_emv_data(1000, EUR)
    answer = host.authorise(auth("t1", 100_000, emv_data=signed_for_ten))  # the message says 1000.00
    assert (answer.response_code, note(host, "t1")) == ("13", "amount_differs_from_card")
    in_dollars = host.authorise(auth("t2", 1000, currency=USD, emv_data=signed_for_ten))
    assert (in_dollars.response_code, note(host, "t2")) == ("13", "currency_differs_from_card")


def test_a_cryptogram_that_does_not_verify_is_declined_82(host: InProcessHost) -> None:
    forged = bytearray(card_emv_data(1000, EUR))
    forged[forged.index(bytes.fromhex("9F2608")) + 3] ^= 0x01
    answer = host.authorise(auth("t1", emv_data=bytes(forged)))
    assert (answer.response_code, answer.arpc, note(host, "t1")) == ("82", None, "arqc_failed")


def test_a_sale_must_carry_an_arqc_an_offline_approval_a_tc(host: InProcessHost) -> None:
    answer = host.authorise(auth("t1", emv_data=card_emv_data(1000, EUR, cryptogram="tc")))
    assert (answer.response_code, note(host, "t1")) == ("82", "tc_not_arqc")
    offline = host.advise(advice("o1", 1000, emv_data=card_emv_data(1000, EUR, cryptogram="arqc")))
    assert (offline.approved, offline.response_code) == (False, "82")


def test_a_deferred_authorisation_carries_an_arqc_or_the_tc_a_chip_card_gave_with_y3(host: InProcessHost) -> None:
    """A deferred advice: the tap's ARQC, or an inserted card's TC after "unable to go online" (8A Y3), verified
    and decided by the issuer; a TC without Y3 is no deferred authorisation (82); an AAC never."""
    deferred = "deferred_authorisation"
    arqc = host.advise(advice("d1", 1000, kind=deferred, emv_data=card_emv_data(1000, EUR)))
    assert arqc.approved and note(host, "d1") == "approved"
    y3 = card_emv_data(1000, EUR, cryptogram="tc", atc=2) + tlv.encode(0x8A, b"Y3")
    tc = host.advise(advice("d2", 1000, kind=deferred, emv_data=y3))
    assert tc.approved and tc.approval_code and note(host, "d2") == "deferred_card_tc_y3"
    no_y3 = host.advise(advice("d3", 1000, kind=deferred, emv_data=card_emv_data(1000, EUR, cryptogram="tc", atc=3)))
    assert (no_y3.approved, no_y3.response_code, note(host, "d3")) == (False, "82", "tc_without_y3")
    z3 = card_emv_data(1000, EUR, cryptogram="tc", atc=4) + tlv.encode(0x8A, b"Z3")
    assert host.advise(advice("d4", 1000, kind=deferred, emv_data=z3)).response_code == "82"
    aac = card_emv_data(1000, EUR, cryptogram="aac", atc=5) + tlv.encode(0x8A, b"Y3")
    assert host.advise(advice("d5", 1000, kind=deferred, emv_data=aac)).response_code == "82"
    forged = bytearray(y3.replace(bytes.fromhex("9F360200 02"), bytes.fromhex("9F360200 06")))
    forged[forged.index(bytes.fromhex("9F2608")) + 3] ^= 0x01
    refused = host.advise(advice("d6", 1000, kind=deferred, emv_data=bytes(forged)))
    assert (refused.approved, refused.response_code, note(host, "d6")) == (False, "82", "tc_failed")
    magic = card_emv_data(1051, EUR, cryptogram="tc", atc=7) + tlv.encode(0x8A, b"Y3")  # the issuer still decides
    assert host.advise(advice("d7", 1051, kind=deferred, emv_data=magic)).response_code == "51"


def test_an_offline_approval_whose_tc_does_not_verify_is_declined_after_forwarding(host: InProcessHost) -> None:
    good = card_emv_data(400, EUR, cryptogram="tc")
    assert host.advise(advice("o1", 400, emv_data=good)).approved
    forged = bytearray(card_emv_data(400, EUR, cryptogram="tc", atc=2))
    forged[forged.index(bytes.fromhex("9F2608")) + 3] ^= 0x01
    declined = host.advise(advice("o2", 400, emv_data=bytes(forged)))
    assert (declined.approved, declined.response_code, note(host, "o2")) == (False, "82", "tc_failed")
    other_amount = host.advise(advice("o3", 4000, emv_data=good))  # the TC covers 4.00, the advice says 40.00
    assert (other_amount.approved, other_amount.response_code) == (False, "13")
    assert host.advise(advice("o4", 400, emv_data=b"")).response_code == "14"


def test_pan_in_track_2_only_is_card_data_and_5a_and_57_must_agree(host: InProcessHost) -> None:
    assert host.authorise(auth("t1", emv_data=card_emv_data(1000, EUR, track2=True))).approved
    other_track2 = bytes.fromhex("4761739001010028" + "D3012201" + "0000000000")
    both = card_emv_data(1000, EUR) + tlv.encode(0x57, other_track2)
    assert host.authorise(auth("t2", emv_data=both)).response_code == "14"
    assert note(host, "t2") == "card_data_inconsistent"


# --------------------------------------------------------------------------- one approval per transaction


def test_the_same_txn_id_is_approved_once_whatever_the_key(host: InProcessHost) -> None:
    first = host.authorise(auth("t1", key="k1"))
    again = host.authorise(auth("t1", key="k2"))
    assert first.approved and (again.approved, again.response_code) == (False, "94")
    assert decline_reason(again.response_code) == "duplicate transaction (94)"
    assert host.authorise(auth("t1", key="k1")) == first  # the same key and body: the first answer again
    assert host.advise(advice("t1", key="k3")).response_code == "94"  # nor as an advice
    assert host.accepted_count("t1") == 1 and host.duplicates() == {}


def test_a_reversed_txn_id_is_not_approved_again_a_declined_one_may_be(host: InProcessHost) -> None:
    host.authorise(auth("t1"))
    host.reverse(reversal("t1"))
    assert host.authorise(auth("t1", key="k-again")).response_code == "94"
    assert host.authorise(auth("t2", 1051)).response_code == "51"
    assert host.authorise(auth("t2", 1000, key="k-t2-again")).approved


def test_a_cryptogram_is_approved_once_whatever_the_txn_id_and_terminal(host: InProcessHost) -> None:
    tapped = card_emv_data(1000, EUR)
    assert host.authorise(auth("t1", emv_data=tapped)).approved
    replays = [auth("t2", emv_data=tapped), auth("t3", emv_data=tapped, terminal_id=OTHER_TID)]
    for replay in replays:
        answer = host.authorise(replay)
        assert (answer.approved, answer.response_code, note(host, replay.txn_id)) == (
            False,
            "94",
            "cryptogram_replayed",
        )
    tc = card_emv_data(1000, EUR, cryptogram="tc")
    assert host.advise(advice("a1", emv_data=tc)).response_code == "00"
    assert host.advise(advice("a2", emv_data=tc)).response_code == "94"  # an offline approval's TC too
    assert host.authorise(auth("t4")).approved  # the same card tapped again: another cryptogram
    assert [r.txn_id for r in host.records if r.approved] == ["t1", "a1", "t4"]


def test_a_cryptogram_whose_approval_was_reversed_may_come_again(host: InProcessHost) -> None:
    tapped = card_emv_data(1000, EUR)
    assert host.authorise(auth("t1", emv_data=tapped)).approved
    host.reverse(reversal("t1"))  # the terminal never had the answer: it reversed
    assert host.authorise(auth("t2", emv_data=tapped)).approved


def test_txn_ids_are_per_terminal(host: InProcessHost) -> None:
    assert host.authorise(auth("t1")).approved
    assert host.authorise(auth("t1", terminal_id=OTHER_TID)).approved


# --------------------------------------------------------------------------- refunds


def test_a_refund_of_ten_times_the_sale_naming_another_terminals_sale_is_declined(host: InProcessHost) -> None:
    assert host.authorise(auth("s1", 1000)).approved
    answer = host.authorise(auth("rf1", 10_000, kind="refund", original_txn_id="s1", terminal_id=OTHER_TID))
    assert (answer.approved, answer.response_code) == (False, "25")
    assert host.sale_positions(OTHER_TID) == {}  # nothing paid out


def test_refunds_against_a_sale_add_up_to_what_it_charged(host: InProcessHost) -> None:
    host.authorise(auth("s1", 1000))
    assert host.authorise(auth("rf1", 600, kind="refund", original_txn_id="s1")).approved
    over = host.authorise(auth("rf2", 401, kind="refund", original_txn_id="s1"))
    assert (over.response_code, note(host, "rf2")) == ("13", "refund_exceeds_sale")
    assert host.advise(advice("rf3", 401, kind="offline_refund", original_txn_id="s1")).response_code == "13"
    host.reverse(reversal("rf1", 600))  # a reversed refund gives its amount back
    assert host.authorise(auth("rf4", 1000, kind="refund", original_txn_id="s1")).approved
    assert host.sale_positions(TID)["s1"].net == 0


def test_a_refund_without_a_card_goes_to_the_sales_card(host: InProcessHost) -> None:
    host.authorise(auth("s1", 1000))
    answer = host.authorise(auth("rf1", 300, kind="refund", original_txn_id="s1", emv_data=b""))
    assert answer.approved
    sale, refund = host.records_for("s1")[0], host.records_for("rf1")[0]
    assert refund.pan_token == sale.pan_token == host.card_token(PAN)


@pytest.mark.parametrize(
    ("setup", "code", "why"),
    [
        ("declined", "25", "original_not_found"),
        ("reversed", "12", "original_reversed"),
        ("unknown", "25", "original_not_found"),
    ],
)
def test_a_refund_needs_an_approved_sale_not_reversed(host: InProcessHost, setup: str, code: str, why: str) -> None:
    if setup != "unknown":
        host.authorise(auth("s1", 1051 if setup == "declined" else 1000))
    if setup == "reversed":
        host.reverse(reversal("s1"))
    answer = host.authorise(auth("rf1", 100, kind="refund", original_txn_id="s1"))
    assert (answer.response_code, note(host, "rf1")) == (code, why)


def test_a_refund_in_another_currency_is_declined(host: InProcessHost) -> None:
    host.authorise(auth("s1", 1000))
    answer = host.authorise(auth("rf1", 100, kind="refund", original_txn_id="s1", currency=USD))
    assert (answer.response_code, note(host, "rf1")) == ("12", "currency_differs")


def test_a_refund_no_sale_covers_needs_the_merchants_allowance(host: InProcessHost) -> None:
    assert host.authorise(auth("u1", 500, kind="refund")).response_code == "58"
    assert note(host, "u1") == "unreferenced_refund_not_allowed"
    host.set_refund_allowance("M1", 800)
    assert host.authorise(auth("u2", 500, kind="refund")).approved
    assert note(host, "u2") == "unreferenced_refund"
    assert host.advise(advice("u3", 301, kind="offline_refund")).response_code == "58"  # 500 + 301 > 800
    assert host.authorise(auth("u4", 300, kind="refund", terminal_id=OTHER_TID)).approved  # per merchant
    assert host.authorise(auth("u5", 1, kind="refund", currency=USD)).approved  # per currency
    host.reverse(reversal("u2", 500))
    assert host.authorise(auth("u6", 500, kind="refund")).approved  # a reversed one frees its amount
    assert host.authorise(auth("u7", 100, kind="refund", emv_data=b"")).response_code == "14"  # to whom?


def test_a_refund_to_another_card_is_covered_by_its_sale_and_the_allowance(host: InProcessHost) -> None:
    host.authorise(auth("s1", 1000))
    answer = host.authorise(auth("rf1", 400, kind="refund", original_txn_id="s1", card="mastercard"))
    assert (answer.response_code, note(host, "rf1")) == ("58", "refund_to_other_card_not_allowed")
    host.set_refund_allowance("M1", 10_000)
    assert host.authorise(auth("rf2", 400, kind="refund", original_txn_id="s1", card="mastercard")).approved
    assert note(host, "rf2") == "refund_to_other_card"
    assert host.authorise(auth("rf3", 601, kind="refund", original_txn_id="s1", card="mastercard")).response_code == (
        "13"
    )


# --------------------------------------------------------------------------- reversals


def test_a_reversal_must_name_the_amount_it_reverses(host: InProcessHost) -> None:
    host.authorise(auth("s1", 1000))
    with pytest.raises(HostRejected, match="partial reversals are not supported"):
        host.reverse(reversal("s1", 1))
    with pytest.raises(HostRejected, match="partial reversals"):
        host.reverse(reversal("s1", 1000, key="r-usd", currency=USD))
    assert not host.is_reversed("s1")
    assert host.reverse(reversal("s1", 1000, key="r-right")).approved
    assert host.is_reversed("s1")


def test_a_sale_with_refunds_is_not_reversed_before_them(host: InProcessHost) -> None:
    host.authorise(auth("s1", 1000))
    host.authorise(auth("rf1", 400, kind="refund", original_txn_id="s1"))
    with pytest.raises(HostRejected, match="reverse them first"):
        host.reverse(reversal("s1", 1000))
    host.reverse(reversal("rf1", 400))
    host.reverse(reversal("s1", 1000, key="r-s1-after"))
    assert host.is_reversed("s1") and all(p.net >= 0 for p in host.sale_positions().values())


# --------------------------------------------------------------------------- the host's card token


def test_a_blocked_card_is_blocked_whatever_token_the_terminal_sends(host: InProcessHost) -> None:
    host.block(PAN, "43")
    for n, (terminal, token) in enumerate([(TID, "tok-a"), (OTHER_TID, "tok-b"), (OTHER_TID, "")]):
        answer = host.authorise(auth(f"t{n}", terminal_id=terminal, pan_token=token or "x"))
        assert answer.response_code == "43"
    assert host.authorise(auth("t9", card="mastercard")).approved
    host.unblock(host.card_token(PAN))
    assert host.authorise(auth("t10")).approved


def test_velocity_counts_the_card_on_every_terminal(host: InProcessHost) -> None:
    host.set_velocity(2, 3600)
    assert host.authorise(auth("t1", terminal_id=TID, pan_token="a" * 32)).approved
    assert host.authorise(auth("t2", terminal_id=OTHER_TID, pan_token="b" * 32)).approved
    assert host.authorise(auth("t3", terminal_id="TERM0003", pan_token="c" * 32)).response_code == "65"
    assert host.authorise(auth("t4", card="mastercard")).approved


def test_records_keep_the_hosts_token_never_the_pan(host: InProcessHost) -> None:
    host.authorise(auth("t1", pan_token="terminal-token"))
    (record,) = host.records
    assert record.pan_token == host.card_token(PAN) != "terminal-token"
    assert PAN not in repr(record) and len(record.pan_token) == 32


def test_the_memory_host_is_made_with_a_default_allowance_the_operator_can_change(tmp_path: Path) -> None:
    memory = open_memory_host("memory", tmp_path)
    assert memory.authorise(auth("u1", MEMORY_HOST_REFUND_ALLOWANCE, kind="refund")).approved
    assert memory.authorise(auth("u2", 1, kind="refund")).response_code == "58"  # the 24 hours' allowance is used
    memory.close()
    admin.set_refund_allowance(tmp_path / MEMORY_HOST_DIR, "M1", 0)  # this merchant: none, whatever the default
    reopened = open_memory_host("memory", tmp_path)  # made once: reopening does not give it back
    assert reopened.authorise(auth("u3", 1, kind="refund", terminal_id=OTHER_TID)).response_code == "58"
    assert reopened.authorise(auth("u4", 1, kind="refund", merchant_id="M2")).approved  # M2: the default
    admin.set_refund_allowance(tmp_path / MEMORY_HOST_DIR, "*", 0)
    assert reopened.authorise(auth("u5", 1, kind="refund", merchant_id="M3")).response_code == "58"
    assert InProcessHost().authorise(auth("u1", 1, kind="refund")).response_code == "58"  # any other host: none


class WalletProof:
    """A stand-in for a later means of payment's proof (a QR wallet's, a digital-currency record's)."""

    def recognises(self, tags: Mapping[int, bytes]) -> bool:
        return 0xDF7F in tags

    def verify(self, tags: Mapping[int, bytes], claim: Claim, token: Callable[[str], str]) -> Proven | Refusal:
        if tags[0xDF7F] != b"signed":
            return Refusal("82", "wallet_signature_failed")
        return Proven(token("wallet-1"))


def test_another_means_of_payment_brings_its_own_proof(host_store: HostStore) -> None:
    acquirer = Acquirer(host_store, proofs=(EmvCardProof(), WalletProof()))
    peer = Peer(TID, "M1")

    def code(txn_id: str, emv_data: bytes) -> str:
        body = wire.authorisation_json(auth(txn_id, emv_data=emv_data))
        return str(acquirer.handle("authorisation", body, peer, txn_id).json()["response_code"])

    assert code("w1", tlv.encode(0xDF7F, b"signed")) == "00"
    assert code("w2", tlv.encode(0xDF7F, b"forged")) == "82"
    assert code("c1", card_emv_data(1000, EUR)) == "00"  # cards still prove themselves as before
    assert code("n1", tlv.encode(0x9F02, bytes(6))) == "14"  # what no proof recognises: no card data
    assert host_store.records()[0].pan_token == host_store.card_token("wallet-1")
