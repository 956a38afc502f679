"""simulator.host.inprocess through the HostLink port: decision rules, idempotency, faults, reversals, batch close.

The in-process host shares the HTTPS host's acquirer (rules, records, idempotency); these tests go through the
port as a terminal would. Its database, threads, batches and registration: test_inprocess_host_shared.py.
"""

from __future__ import annotations

import pytest

from simulator.card_data import CARDS
from simulator.host.inprocess import Call, InProcessHost
from terminal.host import (
    AnswerStatus,
    AuthorisationRequest,
    HostAnswer,
    HostLink,
    HostNoAnswer,
    HostRejected,
    HostUnreachable,
)
from tests.unit.host_messages import EUR, TID, USD, advice, auth, reversal, totals


@pytest.fixture
def host() -> InProcessHost:
    return InProcessHost()


# --------------------------------------------------------------------------- port


def test_is_a_host_link(host: InProcessHost) -> None:
    assert isinstance(host, HostLink)


# --------------------------------------------------------------------------- decision rules


def test_default_approval_has_approval_code_and_reference(host: InProcessHost) -> None:
    answer = host.authorise(auth())
    assert answer.status is AnswerStatus.APPROVED
    assert answer.response_code == "00"
    assert answer.approval_code is not None and len(answer.approval_code) == 6
    assert answer.approval_code.isalnum()
    assert answer.host_reference
    assert host.accepted_count("t1") == 1
    assert host.calls == (Call("authorise", "t1", "approved"),)


def test_references_and_codes_differ_between_transactions(host: InProcessHost) -> None:
    a = host.authorise(auth("t1"))
    b = host.authorise(auth("t2"))
    assert a.host_reference != b.host_reference
    assert a.approval_code != b.approval_code


@pytest.mark.parametrize(
    ("amount", "code"),
    [(1051, "51"), (51, "51"), (2005, "05"), (5, "05"), (10054, "54"), (1050, "00"), (1500, "00")],
)
def test_magic_amounts_on_sales(host: InProcessHost, amount: int, code: str) -> None:
    answer = host.authorise(auth(amount=amount))
    assert answer.response_code == code
    assert answer.approved is (code == "00")
    if code != "00":
        assert answer.status is AnswerStatus.DECLINED
        assert answer.approval_code is None
        assert host.accepted_count("t1") == 0
        assert host.processed_count("t1") == 1
        assert host.calls[-1].outcome == f"declined:{code}"


@pytest.mark.parametrize(("amount", "code"), [(1000, "00"), (1051, "51"), (1005, "05"), (1054, "54")])
def test_refunds_follow_the_same_rules(host: InProcessHost, amount: int, code: str) -> None:
    host.authorise(auth("t0", 2000))
    answer = host.authorise(auth("rf1", amount, kind="refund", original_txn_id="t0"))
    assert answer.response_code == code
    rec = host.records_for("rf1")[0]
    assert rec.kind == "refund" and rec.original_txn_id == "t0"


def test_blocked_card_declined_62_by_default_and_43_on_request(host: InProcessHost) -> None:
    visa, mastercard = CARDS["visa"][0], CARDS["mastercard"][0]
    host.block(visa)  # by PAN (the host keeps its token), whatever token the terminal sends
    assert host.authorise(auth("t1", card="visa")).response_code == "62"
    host.block(host.card_token(mastercard), code="43")  # or by the host's token
    assert host.authorise(auth("t2", card="mastercard")).response_code == "43"
    host.unblock(visa)
    assert host.authorise(auth("t3", card="visa")).response_code == "00"
    deferred = advice("d1", kind="deferred_authorisation", card="mastercard")
    assert host.advise(deferred).response_code == "43"


def test_offline_approvals_accepted_whatever_the_amount_or_card(host: InProcessHost) -> None:
    host.block(CARDS["visa"][0])
    host.set_refund_allowance("M1", 1051)  # the offline refund below has no sale
    for i, amount in enumerate((1000, 1051, 1005, 1054)):
        answer = host.advise(advice(f"a{i}", amount))
        assert answer.approved and answer.response_code == "00"
        assert answer.approval_code is None and answer.host_reference
    assert host.advise(advice("rf", 1051, kind="offline_refund")).approved


@pytest.mark.parametrize(("amount", "code"), [(1000, "00"), (1051, "51"), (1005, "05"), (1054, "54")])
def test_deferred_authorisation_can_be_declined_after_forwarding(
    host: InProcessHost, amount: int, code: str
) -> None:
    answer = host.advise(advice("d1", amount, kind="deferred_authorisation"))
    assert answer.response_code == code
    assert host.accepted_count("d1") == (1 if code == "00" else 0)
    if code == "00":
        assert answer.approval_code is not None and len(answer.approval_code) == 6


@pytest.mark.parametrize(
    "request_",
    [
        auth(txn_id=""),
        auth(terminal_id=""),
        auth(pan_token=""),
        auth(kind="cashback"),
        auth(amount=0),
        auth(amount=-5),
        auth(amount=10**12),
        auth(currency=0),
        auth(currency=1000),
    ],
)
def test_malformed_authorisations_rejected_and_not_recorded(
    host: InProcessHost, request_: AuthorisationRequest
) -> None:
    with pytest.raises(HostRejected, match="malformed"):
        host.authorise(request_)
    assert host.records == ()
    assert host.calls[-1].outcome == "rejected"


def test_malformed_advice_reversal_and_totals_rejected(host: InProcessHost) -> None:
    with pytest.raises(HostRejected):
        host.advise(advice(kind="online"))
    with pytest.raises(HostRejected):
        host.reverse(reversal("t1", reason="because"))
    with pytest.raises(HostRejected):
        host.close_batch(totals(("visa", EUR, "cashback", 1, 100)))
    with pytest.raises(HostRejected):
        host.close_batch(totals(("visa", EUR, "sale", -1, 100)))
    assert host.records == ()
    assert host.batch_number(TID) == 1


# --------------------------------------------------------------------------- idempotency


def test_same_key_same_body_same_answer_one_effect(host: InProcessHost) -> None:
    first = host.authorise(auth())
    second = host.authorise(auth())
    assert second == first
    assert host.accepted_count("t1") == 1
    assert len(host.records) == 1
    assert [c.outcome for c in host.calls] == ["approved", "replay"]


def test_retransmission_flag_is_ignored_in_the_comparison(host: InProcessHost) -> None:
    first = host.advise(advice("a1"))
    again = host.advise(advice("a1", retransmission=True))
    assert again == first
    assert host.accepted_count("a1") == 1
    r1 = host.reverse(reversal("a1"))
    assert host.reverse(reversal("a1", retransmission=True)) == r1
    assert len(host.records_for("a1")) == 2


def test_declines_are_replayed_too(host: InProcessHost) -> None:
    first = host.advise(advice("d1", 1051, kind="deferred_authorisation"))
    assert host.advise(advice("d1", 1051, kind="deferred_authorisation")) == first
    assert host.processed_count("d1") == 1


@pytest.mark.parametrize(
    "changed",
    [
        auth(amount=2000),
        auth(emv_data=b"\x00"),
        auth(kind="refund"),
        auth(txn_id="t-other", key="k-t1"),
    ],
)
def test_same_key_different_body_rejected(host: InProcessHost, changed: AuthorisationRequest) -> None:
    host.authorise(auth())
    with pytest.raises(HostRejected, match="idempotency key reused with a different body"):
        host.authorise(changed)
    assert len(host.records) == 1
    assert host.calls[-1].outcome == "conflict"


def test_same_key_on_another_method_is_a_conflict(host: InProcessHost) -> None:
    host.authorise(auth("t1", key="shared"))
    with pytest.raises(HostRejected, match="different body"):
        host.reverse(reversal("t1", key="shared"))
    assert not host.is_reversed("t1")


def test_an_advice_key_reused_with_another_advice_is_rejected(host: InProcessHost) -> None:
    # As over HTTPS: an advice's own key is checked per advice, whatever request carries it.
    host.advise(advice("a1", key="k"))
    first, second = host.advise_many([advice("a0", key="k0"), advice("a2", key="k")])
    assert isinstance(first, HostAnswer) and first.approved
    assert isinstance(second, HostRejected) and "another advice" in str(second)
    assert host.accepted_count("a2") == 0 and host.accepted_count("a0") == 1
    assert [c.outcome for c in host.calls[-2:]] == ["approved", "rejected"]
    with pytest.raises(HostRejected, match="different body"):  # alone, it is the first request's key again
        host.advise(advice("a3", key="k"))


def test_request_keys_are_those_of_the_https_link(host: InProcessHost) -> None:
    # A key the protocol's header cannot carry is sent as its SHA-256, as HttpsHostLink does.
    first = host.authorise(auth("t1", key="not a header key / 1"))
    assert host.authorise(auth("t1", key="not a header key / 1")) == first
    assert host.authorise(auth("t1", key="")).response_code == "94"  # an empty key too: a new key, a duplicate
    assert host.accepted_count("t1") == 1


def test_keys_are_scoped_per_terminal(host: InProcessHost) -> None:
    host.authorise(auth("t1", key="k"))
    other = host.authorise(auth("t1", key="k", terminal_id="TERM0002"))
    assert other.approved
    assert len(host.records) == 2


def test_same_txn_under_two_keys_is_accepted_once(host: InProcessHost) -> None:
    host.advise(advice("a1", key="k1"))
    assert host.advise(advice("a1", key="k2")).response_code == "94"
    assert host.accepted_count("a1") == 1
    assert host.duplicates() == {}


# --------------------------------------------------------------------------- faults


def test_down_raises_unreachable_and_records_nothing(host: InProcessHost) -> None:
    host.faults.down = True
    with pytest.raises(HostUnreachable):
        host.authorise(auth())
    with pytest.raises(HostUnreachable):
        host.close_batch(totals())
    assert host.records == ()
    assert host.batch_number(TID) == 1
    assert host.calls[0] == Call("authorise", "t1", "unreachable")
    host.faults.down = False
    assert host.authorise(auth()).approved  # the key was not consumed either


def test_no_answer_processes_then_raises_and_retry_gets_the_answer(host: InProcessHost) -> None:
    host.faults.no_answer = 1
    with pytest.raises(HostNoAnswer):
        host.advise(advice("a1"))
    assert host.accepted_count("a1") == 1  # processed: the answer was lost
    assert host.faults.no_answer == 0
    answer = host.advise(advice("a1", retransmission=True))
    assert answer.approved
    assert host.accepted_count("a1") == 1
    assert [c.outcome for c in host.calls] == ["approved+no_answer", "replay"]


def test_no_answer_then_reversal_undoes(host: InProcessHost) -> None:
    host.faults.no_answer = 1
    with pytest.raises(HostNoAnswer):
        host.authorise(auth("t1"))
    assert host.reverse(reversal("t1")).response_code == "00"
    assert host.is_reversed("t1")
    assert host.open_totals(TID) == {}


def test_fail_before_processing_has_no_effect(host: InProcessHost) -> None:
    host.faults.fail_before_processing = 2
    for _ in range(2):
        with pytest.raises(HostNoAnswer):
            host.advise(advice("a1"))
    assert host.records == ()
    assert host.advise(advice("a1")).approved
    assert host.accepted_count("a1") == 1
    assert [c.outcome for c in host.calls] == ["no_answer_before_processing"] * 2 + ["approved"]


def test_reject_next(host: InProcessHost) -> None:
    host.faults.reject_next = 1
    with pytest.raises(HostRejected, match="malformed"):
        host.advise(advice("a1"))
    assert host.records == ()
    assert host.advise(advice("a1")).approved


def test_faults_targeted_at_one_method(host: InProcessHost) -> None:
    host.faults.only = {"advise"}
    host.faults.no_answer = 1
    host.faults.down = True
    assert host.authorise(auth("t1")).approved  # not targeted
    with pytest.raises(HostUnreachable):
        host.advise(advice("a1"))
    host.faults.down = False
    with pytest.raises(HostNoAnswer):
        host.advise(advice("a1"))
    assert host.accepted_count("a1") == 1
    host.faults.clear()
    assert host.faults.only is None and host.faults.no_answer == 0


def test_no_answer_on_batch_close_then_repeat_gets_the_same_answer(host: InProcessHost) -> None:
    host.authorise(auth("t1", 1000))
    host.faults.no_answer = 1
    close = totals(("visa", EUR, "sale", 1, 1000))
    with pytest.raises(HostNoAnswer):
        host.close_batch(close)
    assert host.batch_number(TID) == 2
    answer = host.close_batch(close)
    assert answer.in_balance
    assert host.batch_number(TID) == 2  # no second close


# --------------------------------------------------------------------------- reversals


def test_reversal_undoes_an_authorisation(host: InProcessHost) -> None:
    host.authorise(auth("t1", 1000))
    answer = host.reverse(reversal("t1", reason="void"))
    assert answer.approved and answer.response_code == "00"
    assert host.is_reversed("t1")
    assert host.accepted_count("t1") == 1  # accepted once, then reversed
    rec = host.records_for("t1")[-1]
    assert rec.method == "reverse" and rec.note == "reversed 1" and rec.kind == "void"
    assert host.calls[-1] == Call("reverse", "t1", "reversed")


def test_reversal_undoes_an_advice(host: InProcessHost) -> None:
    host.advise(advice("a1"))
    host.reverse(reversal("a1", reason="recovery"))
    assert host.is_reversed("a1")
    assert host.open_totals(TID) == {}


def test_reversal_of_unknown_txn_is_acknowledged_and_recorded(host: InProcessHost) -> None:
    answer = host.reverse(reversal("ghost"))
    assert answer.response_code == "00"
    (rec,) = host.records
    assert rec.note == "nothing to reverse"
    assert host.calls[-1].outcome == "nothing_to_reverse"


def test_reversal_of_declined_or_already_reversed_is_nothing_to_reverse(host: InProcessHost) -> None:
    host.authorise(auth("t1", 1051))
    host.reverse(reversal("t1"))
    assert not host.is_reversed("t1")
    host.authorise(auth("t2"))
    host.reverse(reversal("t2", key="r1"))
    host.reverse(reversal("t2", key="r2"))
    notes = [r.note for r in host.records_for("t2") if r.method == "reverse"]
    assert notes == ["reversed 1", "nothing to reverse"]


def test_reversal_only_matches_its_terminal(host: InProcessHost) -> None:
    host.authorise(auth("t1"))
    host.reverse(reversal("t1", terminal_id="OTHER"))
    assert not host.is_reversed("t1")


# --------------------------------------------------------------------------- batch close


def _busy_day(host: InProcessHost) -> None:
    host.set_refund_allowance("M1", 500)  # r1 and or1 are refunds that no sale covers
    host.authorise(auth("s1", 1000))
    host.authorise(auth("s2", 2500))
    host.authorise(auth("s3", 1051))  # declined: not counted
    host.authorise(auth("s4", 700))
    host.reverse(reversal("s4", 700))  # reversed: not counted
    host.authorise(auth("r1", 300, kind="refund"))
    host.advise(advice("o1", 400))
    host.advise(advice("d1", 600, kind="deferred_authorisation"))
    host.advise(advice("d2", 605, kind="deferred_authorisation"))  # declined after forwarding
    host.advise(advice("or1", 200, kind="offline_refund"))
    host.authorise(auth("u1", 999, currency=USD))
    host.authorise(auth("x1", 5000, terminal_id="OTHER"))  # another terminal


def test_open_totals(host: InProcessHost) -> None:
    _busy_day(host)
    assert host.open_totals(TID) == {
        (EUR, "sale"): (4, 1000 + 2500 + 400 + 600),
        (EUR, "refund"): (2, 500),
        (USD, "sale"): (1, 999),
    }


def test_batch_close_in_balance_sums_schemes(host: InProcessHost) -> None:
    _busy_day(host)
    answer = host.close_batch(
        totals(
            ("visa", EUR, "sale", 3, 4000),
            ("mastercard", EUR, "sale", 1, 500),
            ("visa", EUR, "refund", 2, 500),
            ("visa", USD, "sale", 1, 999),
        )
    )
    assert answer.in_balance
    assert answer.differences == ()
    assert answer.host_reference
    assert host.calls[-1] == Call("close_batch", "batch-1", "in_balance")


def test_batch_close_out_of_balance_lists_differences(host: InProcessHost) -> None:
    _busy_day(host)
    answer = host.close_batch(
        totals(
            ("visa", EUR, "sale", 5, 4500 + 605),  # the terminal counted d2, declined after forwarding
            ("visa", EUR, "refund", 2, 500),
            ("visa", 826, "sale", 1, 100),  # a currency the host never saw
        )
    )
    assert not answer.in_balance
    assert answer.differences == (
        {
            "currency": 826, "kind": "sale", "terminal_count": 1, "terminal_amount": 100,
            "host_count": 0, "host_amount": 0,
        },
        {
            "currency": USD, "kind": "sale", "terminal_count": 0, "terminal_amount": 0,
            "host_count": 1, "host_amount": 999,
        },
        {
            "currency": EUR, "kind": "sale", "terminal_count": 5, "terminal_amount": 5105,
            "host_count": 4, "host_amount": 4500,
        },
    )


def test_batch_close_starts_a_new_batch(host: InProcessHost) -> None:
    host.authorise(auth("s1", 1000))
    assert host.close_batch(totals(("visa", EUR, "sale", 1, 1000))).in_balance
    assert host.batch_number(TID) == 2
    assert host.batch_number("OTHER") == 1
    assert host.open_totals(TID) == {}
    host.authorise(auth("s2", 300))
    assert host.close_batch(totals(("visa", EUR, "sale", 1, 300), batch_id=2)).in_balance
    assert host.close_batch(totals(batch_id=3)).in_balance  # an empty batch


def test_batch_close_repeated_with_other_totals_is_a_conflict(host: InProcessHost) -> None:
    host.close_batch(totals())
    with pytest.raises(HostRejected, match="different body"):
        host.close_batch(totals(("visa", EUR, "sale", 1, 1)))


def test_reversal_after_close_does_not_touch_the_new_batch(host: InProcessHost) -> None:
    host.authorise(auth("s1", 1000))
    host.close_batch(totals(("visa", EUR, "sale", 1, 1000)))
    host.reverse(reversal("s1"))
    assert host.open_totals(TID) == {}
