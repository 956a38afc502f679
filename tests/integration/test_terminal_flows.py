"""The terminal core end to end: simulated cards, a real SQLite file, the memory host and its faults."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from terminal.facade import SettlementRefused, TerminalEvent, TerminalSettings
from terminal.host import Advice, AuthorisationRequest, HostAnswer, HostRejected
from terminal.lifecycle import APPROVED_STATES, Event, State
from terminal.money import currency, format_amount
from terminal.offline import OfflineBehavior, OfflineLimitExceeded, PaymentRefused
from terminal.receipts import render_escpos, render_text
from terminal.reports import render_report
from terminal.store import NewPayment

if TYPE_CHECKING:
    from tests.integration.conftest import Rig

EUR = 978
ONLINE = "visa-qvsdc-online"
OFFLINE = "visa-qvsdc-offline"


def saf_rows(rig: Rig) -> list[tuple[Any, ...]]:
    return rig.sql("SELECT txn_id, kind, status, idempotency_key, attempts FROM saf ORDER BY id")


def sensitive_ids(rig: Rig) -> set[str]:
    return {r[0] for r in rig.sql("SELECT txn_id FROM sensitive")}


def deferred(rig: Rig, amount: int, profile: str = ONLINE) -> str:
    """A deferred authorisation: the host is down while an online card is tapped."""
    rig.card(profile)
    rig.host.faults.down = True
    try:
        result = rig.terminal.sale(amount, EUR)
    finally:
        rig.host.faults.down = False
    assert result.state is State.DEFERRED_APPROVED, result
    return result.txn_id


def offline(rig: Rig, amount: int = 1234) -> str:
    rig.card(OFFLINE)
    result = rig.terminal.sale(amount, EUR)
    assert result.state is State.OFFLINE_APPROVED, result
    return result.txn_id


def online(rig: Rig, amount: int = 2000, profile: str = ONLINE) -> str:
    rig.card(profile)
    result = rig.terminal.sale(amount, EUR)
    assert result.state is State.APPROVED, result
    return result.txn_id


# -- authorisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [ONLINE, "mc-cda-online"])
def test_online_approval(rig: Rig, profile: str) -> None:
    rig.card(profile)
    result = rig.terminal.sale(2000, EUR)
    assert result.approved and result.state is State.APPROVED
    assert not result.offline and not result.deferred
    assert result.approval_code and len(result.approval_code) == 6 and result.response_code == "00"
    assert result.masked_pan is not None and "*" in result.masked_pan
    assert [(c.method, c.outcome) for c in rig.host.calls] == [("authorise", "approved")]
    (record,) = rig.host.records_for(result.txn_id)
    assert record.approved and record.amount == 2000 and record.kind == "sale"
    assert rig.sql("SELECT state FROM transactions WHERE txn_id=?", (result.txn_id,)) == [("approved",)]
    assert result.txn_id not in sensitive_ids(rig)
    assert rig.terminal.offline_status().queued == 0


@pytest.mark.parametrize(("amount", "code"), [(1251, "51"), (1205, "05"), (1254, "54")])
def test_host_decline(rig: Rig, amount: int, code: str) -> None:
    rig.card(ONLINE)
    result = rig.terminal.sale(amount, EUR)
    assert not result.approved and result.state is State.DECLINED
    assert result.response_code == code and code in result.message
    assert result.approval_code is None
    assert result.txn_id not in sensitive_ids(rig)
    assert saf_rows(rig) == []


def test_card_decline_never_reaches_the_host(rig: Rig) -> None:
    rig.card("visa-expired")
    result = rig.terminal.sale(1234, EUR)
    assert result.state is State.DECLINED and not result.approved
    assert "card" in result.message
    assert rig.host.calls == ()
    assert saf_rows(rig) == [] and sensitive_ids(rig) == set()


def test_a_card_that_cannot_be_read_is_cancelled(rig: Rig) -> None:
    rig.card("visa-mute")
    result = rig.terminal.sale(1234, EUR)
    assert result.state is State.CANCELLED and not result.approved
    assert rig.host.calls == () and saf_rows(rig) == []


def _durability_probe(rig: Rig, state: str) -> list[tuple[Any, ...]]:
    """At the moment the UI hears ``state``, read the row through a second connection."""
    seen: list[tuple[Any, ...]] = []

    def listener(event: TerminalEvent) -> None:
        if event.kind == "state_changed" and event.data.get("state") == state:
            assert event.txn_id is not None
            rows = rig.sql(
                "SELECT t.state, s.status, s.kind FROM transactions t JOIN saf s ON s.txn_id = t.txn_id "
                "WHERE t.txn_id=?",
                (event.txn_id,),
            )
            seen.append((event.txn_id, *rows))

    rig.terminal.subscribe(listener)
    return seen


def test_offline_approval_is_queued_and_durable_before_it_is_shown(rig: Rig) -> None:
    seen = _durability_probe(rig, "offline_approved")
    rig.card(OFFLINE)
    result = rig.terminal.sale(1234, EUR)
    assert result.state is State.OFFLINE_APPROVED and result.approved and result.offline
    assert seen == [(result.txn_id, ("offline_approved", "queued", "offline_approval"))]
    assert rig.host.calls == ()  # the card approved it: nothing was sent yet
    assert rig.terminal.get(result.txn_id).details["cryptogram_type"] == "TC"  # type: ignore[union-attr]
    status = rig.terminal.offline_status()
    assert status.queued == 1 and status.totals == {EUR: (1, 1234)}
    assert result.txn_id in sensitive_ids(rig)  # kept until forwarded


def test_host_down_gives_a_deferred_authorisation_durable_before_it_is_shown(rig: Rig) -> None:
    seen = _durability_probe(rig, "deferred_approved")
    rig.card(ONLINE)
    rig.host.faults.down = True
    result = rig.terminal.sale(2000, EUR)
    assert result.state is State.DEFERRED_APPROVED and result.approved and result.deferred
    assert "deferred" in result.message
    assert seen == [(result.txn_id, ("deferred_approved", "queued", "deferred_authorisation"))]
    assert [(c.method, c.outcome) for c in rig.host.calls] == [("authorise", "unreachable")]
    assert rig.terminal.offline_status().totals == {EUR: (1, 2000)}
    assert result.txn_id in sensitive_ids(rig)


def test_require_online_with_the_host_down_is_declined_and_nothing_queued(rig: Rig) -> None:
    rig.card(ONLINE)
    rig.host.faults.down = True
    result = rig.terminal.sale(2000, EUR, offline_behavior=OfflineBehavior.REQUIRE_ONLINE)
    assert not result.approved and result.state is State.DECLINED
    assert "requires online" in result.message
    assert saf_rows(rig) == [] and sensitive_ids(rig) == set()
    assert [t.state for t in rig.terminal.store.list_transactions()] == [State.DECLINED]


@pytest.mark.parametrize(
    ("limits", "before", "advance", "amount", "limit"),
    [
        ({"per_payment": {EUR: 1000}}, [], 0, 1234, "per_payment_amount"),
        ({"total_per_currency": {EUR: 3000}}, [2000], 0, 2000, "total_stored_amount"),
        ({"max_count": 2}, [1000, 1000], 0, 1000, "stored_count"),
        ({"max_age_seconds": 3600}, [1000], 7200, 1000, "oldest_age"),
        ({"per_payment": {840: 5000}}, [], 0, 1000, "currency_not_allowed"),
    ],
)
def test_each_offline_limit_refuses_and_queues_nothing(
    make_rig: Callable[..., Rig],
    with_limits: Callable[..., TerminalSettings],
    limits: dict[str, Any],
    before: list[int],
    advance: float,
    amount: int,
    limit: str,
) -> None:
    rig = make_rig(with_limits(**limits))
    for earlier in before:
        deferred(rig, earlier)
    rig.clock.advance(advance)
    queue_before = saf_rows(rig)
    rig.card(ONLINE)
    rig.host.faults.down = True
    # the card was read and the host could not be reached: a decline that names the limit
    result = rig.terminal.sale(amount, EUR)
    assert result.state is State.DECLINED and not result.approved
    assert f"offline limit {limit!r}" in result.message
    assert saf_rows(rig) == queue_before
    refused = [t for t in rig.terminal.store.list_transactions() if t.state is State.DECLINED]
    assert len(refused) == 1 and refused[0].txn_id not in sensitive_ids(rig)


def test_force_offline_over_a_limit_is_refused_before_the_tap(
    make_rig: Callable[..., Rig], with_limits: Callable[..., TerminalSettings]
) -> None:
    rig = make_rig(with_limits(per_payment={EUR: 1000}))
    rig.card(OFFLINE)
    with pytest.raises(OfflineLimitExceeded) as err:
        rig.terminal.sale(1234, EUR, offline_behavior=OfflineBehavior.FORCE_OFFLINE)
    assert err.value.limit == "per_payment_amount"
    assert rig.terminal.store.list_transactions() == [] and saf_rows(rig) == []


def test_an_offline_card_without_offline_room_is_sent_online(
    make_rig: Callable[..., Rig], with_limits: Callable[..., TerminalSettings]
) -> None:
    rig = make_rig(with_limits(max_count=0))
    rig.card(OFFLINE)
    result = rig.terminal.sale(1234, EUR)
    assert result.state is State.APPROVED and not result.offline
    assert saf_rows(rig) == []


# -- no answer, reversals, recovery ----------------------------------------------------------------


def test_no_answer_reverses_at_once_when_the_host_is_back(rig: Rig) -> None:
    rig.card(ONLINE)
    rig.host.faults.only = {"authorise"}
    rig.host.faults.no_answer = 1
    result = rig.terminal.sale(2000, EUR)
    assert result.state is State.REVERSED and not result.approved
    assert rig.host.is_reversed(result.txn_id)
    assert [(c.method, c.outcome) for c in rig.host.calls] == [
        ("authorise", "approved+no_answer"),
        ("reverse", "reversed"),
    ]
    assert rig.terminal.offline_status().reversals_queued == 0
    assert sensitive_ids(rig) == set()


def test_no_answer_queues_a_reversal_sent_before_the_next_online_message(rig: Rig) -> None:
    rig.card(ONLINE)
    rig.host.faults.only = {"authorise", "reverse"}
    rig.host.faults.no_answer = 2  # the authorisation and the first reversal both lose their answer
    first = rig.terminal.sale(2000, EUR)
    assert first.state is State.REVERSAL_PENDING and not first.approved
    assert rig.terminal.offline_status().reversals_queued == 1
    assert rig.sql("SELECT reason, status FROM reversals WHERE txn_id=?", (first.txn_id,)) == [
        ("no_answer", "queued")
    ]
    assert first.txn_id not in sensitive_ids(rig)
    rig.host.faults.clear()
    calls_before = len(rig.host.calls)
    second = rig.terminal.sale(2100, EUR)
    assert second.state is State.APPROVED
    assert list(rig.host.calls[calls_before:]) == [
        ("reverse", first.txn_id, "replay"),  # the same key: the host answers as the first time
        ("authorise", second.txn_id, "approved"),
    ]
    assert rig.terminal.get(first.txn_id).state is State.REVERSED  # type: ignore[union-attr]
    assert rig.host.is_reversed(first.txn_id) and not rig.host.is_reversed(second.txn_id)
    assert rig.terminal.offline_status().reversals_queued == 0


def test_a_queued_reversal_blocks_online_authorisation_while_it_cannot_be_sent(rig: Rig) -> None:
    rig.card(ONLINE)
    rig.host.faults.only = {"authorise", "reverse"}
    rig.host.faults.no_answer = 1
    rig.host.faults.fail_before_processing = 1
    first = rig.terminal.sale(2000, EUR)
    assert first.state is State.REVERSAL_PENDING
    rig.host.faults.fail_before_processing = 1  # the reversal fails again on the next sale
    second = rig.terminal.sale(2100, EUR)
    # the authorisation was never sent ahead of the reversal: deferred instead
    assert second.state is State.DEFERRED_APPROVED
    assert not any(c.method == "authorise" and c.txn_id == second.txn_id for c in rig.host.calls)


def test_recovery_reverses_a_transaction_left_authorising(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(request: AuthorisationRequest) -> HostAnswer:
        raise RuntimeError("the link crashed mid-request")

    monkeypatch.setattr(rig.host, "authorise", crash)
    rig.card(ONLINE)
    with pytest.raises(RuntimeError):
        rig.terminal.sale(2000, EUR)
    ((txn_id, state),) = rig.sql("SELECT txn_id, state FROM transactions")
    assert state == "authorising"
    monkeypatch.undo()
    terminal = rig.reopen()
    row = terminal.get(txn_id)
    assert row is not None and row.state is State.REVERSAL_PENDING
    reversals = rig.sql("SELECT reason, status FROM reversals WHERE txn_id=?", (txn_id,))
    assert reversals == [("recovery", "queued")]
    assert txn_id not in sensitive_ids(rig)
    assert [e.txn_id for e in rig.events_of("recovered")] == [txn_id]
    # a second start-up finds nothing more to do
    terminal = rig.reopen()
    assert terminal.recover() == []
    assert len(rig.sql("SELECT id FROM reversals")) == 1
    report = terminal.forward_now()
    assert report.reversals_sent == 1
    assert terminal.get(txn_id).state is State.REVERSED  # type: ignore[union-attr]
    assert [(c.method, c.txn_id) for c in rig.host.calls] == [("reverse", txn_id)]
    assert terminal.store.verify().ok


def test_recovery_of_a_state_written_directly(rig: Rig) -> None:
    store = rig.terminal.store
    store.record(
        "crash-1",
        Event.GO_ONLINE,
        datetime.now(UTC).isoformat(),
        {"amount": 777},
        new=NewPayment("crash-1", "sale", 777, EUR, "visa", "prefer_online"),
        sensitive=b"\x01" * 40,
    )
    terminal = rig.reopen()
    assert terminal.get("crash-1").state is State.REVERSAL_PENDING  # type: ignore[union-attr]
    assert terminal.store.counts() == {"saf_queued": 0, "reversals_queued": 1, "sensitive_rows": 0}
    with pytest.raises(SettlementRefused, match="reversal"):
        terminal.settle()
    terminal.forward_now()
    assert terminal.get("crash-1").state is State.REVERSED  # type: ignore[union-attr]
    assert rig.host.calls[-1] == ("reverse", "crash-1", "nothing_to_reverse")


# -- store and forward -----------------------------------------------------------------------------


def test_forwarding_is_fifo_and_empties_the_queue(rig: Rig) -> None:
    ids: list[str] = []
    makers: list[Callable[[], str]] = [
        lambda: offline(rig, 1000),
        lambda: deferred(rig, 2000),
        lambda: offline(rig, 1100),
    ]
    for make in makers:
        ids.append(make())
        rig.clock.advance(1)
    assert [r[0] for r in saf_rows(rig)] == ids
    before = len(rig.host.calls)
    report = rig.terminal.forward_now()
    assert report.accepted == 3 and report.failed == 0 and report.stopped_by is None
    assert [(c.method, c.txn_id) for c in rig.host.calls[before:]] == [("advise", i) for i in ids]
    assert [r[2] for r in saf_rows(rig)] == ["accepted"] * 3
    for txn_id in ids:
        assert rig.terminal.get(txn_id).state is State.FORWARDED  # type: ignore[union-attr]
    assert sensitive_ids(rig) == set()
    assert rig.terminal.offline_status().queued == 0
    assert len(rig.events_of("saf_forwarded")) == 3
    # the deferred authorisation now has the host's approval code
    assert rig.terminal.get(ids[1]).details["approval_code"]  # type: ignore[union-attr]


def test_idempotency_key_is_fixed_at_creation_and_a_resend_is_a_retransmission(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    txn_id = offline(rig)
    ((_, _, _, key, attempts),) = saf_rows(rig)
    assert attempts == 0
    sent: list[Advice] = []
    real = rig.host.advise_many  # the in-process host takes the queue in batches, as the HTTPS host does

    def spy(advices: list[Advice]) -> list[HostAnswer | HostRejected]:
        sent.extend(advices)
        return real(advices)

    monkeypatch.setattr(rig.host, "advise_many", spy)
    rig.host.faults.only = {"advise"}
    rig.host.faults.no_answer = 1
    report = rig.terminal.forward_now()
    assert report.failed == 1 and report.accepted == 0 and report.stopped_by
    assert saf_rows(rig) == [(txn_id, "offline_approval", "queued", key, 1)]
    assert rig.terminal.get(txn_id).state is State.OFFLINE_APPROVED  # type: ignore[union-attr]
    report = rig.terminal.forward_now()
    assert report.accepted == 1
    assert [a.idempotency_key for a in sent] == [key, key]
    assert [a.retransmission for a in sent] == [False, True]
    assert [c.outcome for c in rig.host.calls] == ["approved+no_answer", "replay"]
    assert rig.host.accepted_count(txn_id) == 1 and rig.host.duplicates() == {}
    assert rig.terminal.get(txn_id).state is State.FORWARDED  # type: ignore[union-attr]


def test_decline_after_forwarding_is_reported(rig: Rig) -> None:
    txn_id = deferred(rig, 1251)
    report = rig.terminal.forward_now()
    assert report.declined == 1 and report.accepted == 0
    (event,) = rig.events_of("saf_declined")
    assert event.txn_id == txn_id and event.data["response_code"] == "51" and event.data["amount"] == 1251
    row = rig.terminal.get(txn_id)
    assert row is not None and row.state is State.DECLINED_AFTER_FORWARDING
    status = rig.terminal.offline_status()
    assert status.declined_after_forwarding == [txn_id] and status.queued == 0
    assert txn_id not in sensitive_ids(rig)
    # not lost on a restart either
    assert rig.reopen().offline_status().declined_after_forwarding == [txn_id]


def test_a_rejected_entry_is_rejected_by_host(rig: Rig) -> None:
    txn_id = offline(rig)
    rig.host.faults.only = {"advise"}
    rig.host.faults.reject_next = 1
    report = rig.terminal.forward_now()
    assert report.rejected == 1
    assert rig.terminal.get(txn_id).state is State.REJECTED_BY_HOST  # type: ignore[union-attr]
    assert [e.txn_id for e in rig.events_of("saf_rejected")] == [txn_id]
    assert txn_id in rig.terminal.offline_status().declined_after_forwarding
    assert saf_rows(rig)[0][2] == "rejected" and sensitive_ids(rig) == set()


def test_expiry_by_policy(rig: Rig) -> None:
    txn_id = offline(rig)
    rig.clock.advance(rig.settings.retry.expire_after_seconds + 60)
    report = rig.terminal.forward_now()
    assert report.expired == 1 and report.accepted == 0
    assert [e.txn_id for e in rig.events_of("saf_expired")] == [txn_id]
    assert rig.terminal.get(txn_id).state is State.EXPIRED  # type: ignore[union-attr]
    assert not any(c.method == "advise" for c in rig.host.calls)
    assert saf_rows(rig)[0][2] == "expired" and sensitive_ids(rig) == set()


class _OneAtATime:
    """The rig's host behind a link that has no ``advise_many``: the terminal sends advices one by one."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def authorise(self, request: AuthorisationRequest) -> HostAnswer:
        return self.inner.authorise(request)  # type: ignore[no-any-return]

    def advise(self, advice: Advice) -> HostAnswer:
        return self.inner.advise(advice)  # type: ignore[no-any-return]

    def reverse(self, reversal: Any) -> HostAnswer:
        return self.inner.reverse(reversal)  # type: ignore[no-any-return]

    def close_batch(self, totals: Any) -> Any:
        return self.inner.close_batch(totals)


def test_expiry_after_a_lost_answer_reverses_what_the_host_may_hold(rig: Rig) -> None:
    sent = offline(rig)
    marked = offline(rig, 1500)  # in the same send chunk: marked as sending (write-ahead), never sent
    never = offline(rig, 1600)  # beyond the limit of that forwarding
    host = rig.host
    rig.terminal.host = _OneAtATime(host)  # one advice per request, so that ``marked`` is never sent
    host.faults.only = {"advise"}
    host.faults.no_answer = 1  # the host takes the first advice; its answer is lost
    report = rig.terminal.forward_now(limit=2)
    assert report.failed == 1 and host.accepted_count(sent) == 1
    host.faults.clear()
    rig.clock.advance(rig.settings.retry.expire_after_seconds + 60)
    calls = len(host.calls)
    report = rig.terminal.forward_now()
    # all expire; what may have reached the host is reversed, before anything else is sent
    assert report.expired == 3 and report.reversals_sent == 2 and report.accepted == 0
    assert [c.method for c in host.calls[calls:]] == ["reverse", "reverse"]
    assert host.is_reversed(sent) and host.accepted_count(marked) == 0
    states = {t: rig.terminal.get(t).state for t in (sent, marked, never)}  # type: ignore[union-attr]
    assert states == {sent: State.REVERSED, marked: State.REVERSED, never: State.EXPIRED}
    assert [e.txn_id for e in rig.events_of("saf_expired")] == [sent, marked, never]
    assert {r[0]: r[2] for r in saf_rows(rig)} == dict.fromkeys((sent, marked, never), "expired")
    assert sensitive_ids(rig) == set() and rig.terminal.store.counts()["reversals_queued"] == 0


@pytest.mark.parametrize("how", ["forward_now", "after_the_backoff"])
def test_backoff(rig: Rig, how: str) -> None:
    txn_id = offline(rig)
    rig.host.faults.down = True
    report = rig.terminal.forward_now()
    assert report.failed == 1 and "HostUnreachable" in (report.stopped_by or "")
    ((next_at,),) = rig.sql("SELECT next_attempt_at FROM saf")
    delay = (datetime.fromisoformat(next_at) - rig.clock.now()).total_seconds()
    assert rig.settings.retry.base_seconds <= delay <= rig.settings.retry.base_seconds * (
        1 + rig.settings.retry.jitter
    )
    status = rig.terminal.offline_status()
    assert status.last_error and "HostUnreachable" in status.last_error
    rig.host.faults.down = False
    calls = len(rig.host.calls)
    rig.clock.advance(1)
    report = rig.terminal.forward_due()
    assert report.accepted == 0 and len(rig.host.calls) == calls  # skipped: not due yet
    if how == "forward_now":
        report = rig.terminal.forward_now()
    else:
        rig.clock.advance(delay)
        report = rig.terminal.forward_due()
    assert report.accepted == 1
    assert rig.terminal.get(txn_id).state is State.FORWARDED  # type: ignore[union-attr]


# -- refunds and voids -----------------------------------------------------------------------------


def test_refund_against_the_original_without_a_tap(rig: Rig) -> None:
    sale = online(rig, 2000)
    rig.terminal.reader = None  # no card is needed
    first = rig.terminal.refund(500, EUR, original_txn_id=sale)
    assert first.state is State.APPROVED and first.kind == "refund"
    assert first.masked_pan == rig.terminal.get(sale).masked_pan  # type: ignore[union-attr]
    (record,) = rig.host.records_for(first.txn_id)
    assert record.kind == "refund" and record.original_txn_id == sale and record.amount == 500
    second = rig.terminal.refund(1500, EUR, original_txn_id=sale)
    assert second.state is State.APPROVED
    count = len(rig.terminal.store.list_transactions())
    with pytest.raises(PaymentRefused) as err:
        rig.terminal.refund(1, EUR, original_txn_id=sale)
    assert err.value.reason == "amount" and "20.00 EUR of it already refunded, 0.00 EUR left" in str(err.value)
    assert len(rig.terminal.store.list_transactions()) == count
    with pytest.raises(PaymentRefused) as err:
        rig.terminal.refund(100, 840, original_txn_id=sale)
    assert err.value.reason == "currency"
    with pytest.raises(PaymentRefused) as err:
        rig.terminal.refund(100, EUR, original_txn_id="no-such-txn")
    assert err.value.reason == "not_found"


def test_refund_over_the_original_at_once_is_refused(rig: Rig) -> None:
    sale = online(rig, 2000)
    with pytest.raises(PaymentRefused) as err:
        rig.terminal.refund(2001, EUR, original_txn_id=sale)
    assert err.value.reason == "amount"


def test_a_declined_sale_cannot_be_refunded(rig: Rig) -> None:
    rig.card(ONLINE)
    declined = rig.terminal.sale(1251, EUR)
    with pytest.raises(PaymentRefused) as err:
        rig.terminal.refund(100, EUR, original_txn_id=declined.txn_id)
    assert err.value.reason == "original_not_refundable"


def test_refund_with_the_card(rig: Rig) -> None:
    rig.card(ONLINE)
    result = rig.terminal.refund(1000, EUR)
    assert result.state is State.APPROVED and result.kind == "refund" and result.masked_pan
    (record,) = rig.host.records_for(result.txn_id)
    assert record.kind == "refund" and record.approved
    assert sensitive_ids(rig) == set()


def test_void_of_an_online_approval_reverses_it_at_the_host(rig: Rig) -> None:
    txn_id = online(rig)
    result = rig.terminal.void(txn_id)
    assert result.state is State.VOIDED and not result.approved
    assert rig.host.calls[-1] == ("reverse", txn_id, "reversed")
    assert rig.host.is_reversed(txn_id)
    assert rig.sql("SELECT reason, status FROM reversals") == [("void", "done")]
    with pytest.raises(PaymentRefused) as err:
        rig.terminal.void(txn_id)
    assert err.value.reason == "not_voidable"


def test_void_while_the_host_is_down_stays_pending_until_forwarded(rig: Rig) -> None:
    txn_id = online(rig)
    rig.host.faults.down = True
    result = rig.terminal.void(txn_id)
    assert result.state is State.VOID_PENDING and "reversal is sent when the host can be reached" in result.message
    rig.host.faults.down = False
    assert rig.terminal.forward_now().reversals_sent == 1
    assert rig.terminal.get(txn_id).state is State.VOIDED  # type: ignore[union-attr]
    assert rig.host.is_reversed(txn_id)


@pytest.mark.parametrize("make", ["offline", "deferred"])
def test_void_of_a_queued_approval_withdraws_it(rig: Rig, make: str) -> None:
    txn_id = offline(rig) if make == "offline" else deferred(rig, 2000)
    calls = len(rig.host.calls)
    result = rig.terminal.void(txn_id)
    assert result.state is State.VOIDED
    assert saf_rows(rig)[0][2] == "withdrawn"
    assert rig.terminal.offline_status().queued == 0 and sensitive_ids(rig) == set()
    assert rig.terminal.forward_now().accepted == 0
    # the host never gets the payment itself, only the reversal that covers a crash after sending
    new_calls = rig.host.calls[calls:]
    assert [c.method for c in new_calls] == ["reverse"]
    assert new_calls[0].outcome == "nothing_to_reverse"


def test_void_of_another_batch_is_refused(rig: Rig) -> None:
    txn_id = online(rig)
    rig.terminal.settle()
    with pytest.raises(PaymentRefused) as err:
        rig.terminal.void(txn_id)
    assert err.value.reason == "other_batch" and "refund it instead" in str(err.value)
    assert rig.terminal.get(txn_id).state is State.APPROVED  # type: ignore[union-attr]
    with pytest.raises(PaymentRefused) as err:
        rig.terminal.void("no-such-txn")
    assert err.value.reason == "not_found"


# -- settlement and reports ------------------------------------------------------------------------


def test_settlement_refused_while_queued_then_in_balance(rig: Rig) -> None:
    sale = online(rig, 2000)
    offline(rig, 1234)
    deferred(rig, 3000)
    rig.terminal.reader = None
    rig.terminal.refund(500, EUR, original_txn_id=sale)
    batch = rig.terminal.batch()["batch_id"]  # type: ignore[index]
    with pytest.raises(SettlementRefused) as err:
        rig.terminal.settle()
    message = str(err.value)
    assert "\n" not in message and "2 payment(s)" in message and "forward" in message
    assert rig.terminal.store.closed_batches() == []
    assert rig.terminal.forward_now().accepted == 2
    result = rig.terminal.settle()
    assert result.in_balance and result.differences == () and result.batch_id == batch
    assert result.new_batch_id == batch + 1
    by_kind = {(line.kind, line.currency): (line.count, line.amount) for line in result.lines}
    assert by_kind == {("sale", EUR): (3, 6234), ("refund", EUR): (1, 500)}
    assert rig.terminal.store.closed_batches() == [batch]
    info = rig.terminal.store.batch_info(batch)
    assert info["closed_at"] and info["in_balance"] is True
    assert rig.terminal.batch()["batch_id"]  # type: ignore[index] == batch + 1
    assert rig.terminal.batch_lines()[1] == ()
    assert [e.data["batch_id"] for e in rig.events_of("settled")] == [batch]
    assert rig.host.open_totals(rig.terminal.config.terminal_id) == {}
    after = online(rig, 1000)
    assert rig.terminal.get(after).batch_id == batch + 1  # type: ignore[union-attr]
    assert rig.terminal.store.verify().ok


def test_settlement_refused_without_a_host_answer(rig: Rig) -> None:
    online(rig)
    rig.host.faults.down = True
    with pytest.raises(SettlementRefused, match="run settle again"):
        rig.terminal.settle()
    assert rig.terminal.store.closed_batches() == []
    rig.host.faults.down = False
    result = rig.terminal.settle()  # finishes the close that was started, with the frozen totals
    assert result.in_balance and result.batch_id == 1
    assert rig.terminal.store.closed_batches() == [1]


def test_x_report_totals_equal_the_journal_sum(rig: Rig) -> None:
    sale = online(rig, 2000)
    online(rig, 4500, "mc-cda-online")
    offline(rig, 1234)
    deferred(rig, 3000)
    voided = online(rig, 999)
    rig.terminal.void(voided)
    rig.card(ONLINE)
    rig.terminal.sale(1251, EUR)  # declined by the host
    rig.card("visa-expired")
    rig.terminal.sale(1234, EUR)  # declined by the card
    rig.terminal.reader = None
    rig.terminal.refund(700, EUR, original_txn_id=sale)

    # the journal alone: a transaction's first row says what it is, its last row its state
    start: dict[str, dict[str, Any]] = {}
    last: dict[str, str] = {}
    for row in rig.terminal.store.journal_rows():
        if row["txn_id"] not in start and not row["txn_id"].startswith("batch-"):
            start[row["txn_id"]] = row["data"]
        last[row["txn_id"]] = row["state"]
    journal: dict[tuple[str, int], list[int]] = {}
    approved = {s.value for s in APPROVED_STATES}
    for txn_id, data in start.items():
        if last[txn_id] in approved:
            acc = journal.setdefault((data["kind"], data["currency"]), [0, 0])
            acc[0] += 1
            acc[1] += data["amount"]

    _, lines = rig.terminal.batch_lines()
    report: dict[tuple[str, int], list[int]] = {}
    for line in lines:
        acc = report.setdefault((line.kind, line.currency), [0, 0])
        acc[0] += line.count
        acc[1] += line.amount
    assert report == journal == {("sale", EUR): [4, 10734], ("refund", EUR): [1, 700]}
    batch = rig.terminal.batch()["batch_id"]  # type: ignore[index]
    info = rig.terminal.store.batch_info(batch)
    opened = datetime.fromisoformat(info["opened_at"])
    saf_pending = rig.terminal.offline_status().queued
    tid = rig.terminal.config.terminal_id
    text = render_report("X", batch, tid, opened, None, lines, saf_pending=saf_pending)
    eur = currency(EUR)
    assert re.search(rf"TOTAL SALES +4 +{re.escape(format_amount(10734, eur))}", text), text
    assert re.search(rf"TOTAL REFUNDS +1 +{re.escape(format_amount(700, eur))}", text), text
    assert re.search(rf"NET +{re.escape(format_amount(10734 - 700, eur))}", text), text
    assert re.search(r"SAF PENDING +2\b", text), text


# -- receipts --------------------------------------------------------------------------------------


def test_receipts_say_offline_deferred_or_approval_code_and_never_the_pan(
    rig: Rig, pans: dict[str, str]
) -> None:
    cases = {"offline": offline(rig), "deferred": deferred(rig, 2000), "online": online(rig)}
    approval = rig.terminal.get(cases["online"]).details["approval_code"]  # type: ignore[union-attr]
    expected = {"offline": "OFFLINE", "deferred": "DEFERRED", "online": approval}
    for name, txn_id in cases.items():
        for copy in ("customer", "merchant"):
            data = rig.terminal.receipt(txn_id, copy)
            text = render_text(data, copy)
            escpos = render_escpos(data, copy)
            assert expected[name] in text, (name, text)
            assert expected[name].encode() in escpos
            assert "APPROVED" in text and "DUPLICATE" not in text
            assert data.masked_pan in text
            for pan in pans.values():
                assert pan not in text and pan.encode() not in escpos
        if name != "offline":
            assert "OFFLINE" not in render_text(data, "customer")
        if name != "deferred":
            assert "DEFERRED" not in render_text(data, "customer")
        assert escpos.startswith(b"\x1b@")


def test_only_a_reprint_is_marked_duplicate(rig: Rig) -> None:
    txn_id = online(rig)
    # looking at a receipt on screen gives none out
    assert not rig.terminal.receipt(txn_id, "customer", issue=False).reprint
    first = render_text(rig.terminal.receipt(txn_id, "customer"), "customer")
    assert "DUPLICATE" not in first
    assert "DUPLICATE" not in render_text(rig.terminal.receipt(txn_id, "merchant"), "merchant")
    text = render_text(rig.terminal.receipt(txn_id, "customer"), "customer")
    assert "DUPLICATE" in text
    assert b"DUPLICATE" in render_escpos(rig.terminal.receipt(txn_id, "merchant"), "merchant")
    with pytest.raises(KeyError):
        rig.terminal.receipt("no-such-txn")


def test_a_voided_payment_prints_voided(rig: Rig) -> None:
    txn_id = online(rig)
    rig.terminal.void(txn_id)
    assert "VOIDED" in render_text(rig.terminal.receipt(txn_id), "customer")


class _BatchingHost:
    """The memory host behind a link that sends advices in batches (as the HTTPS link does)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[int] = []

    def authorise(self, request: AuthorisationRequest) -> HostAnswer:
        return self.inner.authorise(request)  # type: ignore[no-any-return]

    def advise(self, advice: Advice) -> HostAnswer:
        raise AssertionError("a batching link gets its advices through advise_many")

    def reverse(self, reversal: Any) -> HostAnswer:
        return self.inner.reverse(reversal)  # type: ignore[no-any-return]

    def close_batch(self, totals: Any) -> Any:
        return self.inner.close_batch(totals)

    def advise_many(self, advices: Any) -> list[HostAnswer | HostRejected]:
        self.batches.append(len(advices))
        out: list[HostAnswer | HostRejected] = []
        for advice in advices:
            try:
                out.append(self.inner.advise(advice))
            except HostRejected as exc:
                out.append(exc)
        return out


def test_a_batching_link_gets_the_queue_in_batches_and_one_bad_entry_stands_alone(rig: Rig) -> None:
    first, second, third = offline(rig, 1000), deferred(rig, 1105), offline(rig, 1200)
    memory = rig.host
    link = _BatchingHost(memory)
    rig.terminal.host = link
    memory.faults.only = {"advise"}
    memory.faults.down = True
    report = rig.terminal.forward_now()  # the whole request fails: every entry stays queued
    assert report.failed == 3 and len(rig.terminal.store.saf_queued()) == 3
    memory.faults.down = False
    memory.faults.reject_next = 1  # the first advice of the next request is malformed
    report = rig.terminal.forward_now()
    assert link.batches == [3, 3]
    assert (report.rejected, report.declined, report.accepted) == (1, 1, 1)
    states = {t: rig.terminal.get(t).state for t in (first, second, third)}  # type: ignore[union-attr]
    assert states == {
        first: State.REJECTED_BY_HOST,
        second: State.DECLINED_AFTER_FORWARDING,  # amount ends in 05: "do not honour" after forwarding
        third: State.FORWARDED,
    }
    assert [c.outcome for c in memory.calls if c.method == "advise"] == [
        "unreachable",  # the first request stopped at the first advice
        "rejected",
        "declined:05",
        "approved",
    ]
