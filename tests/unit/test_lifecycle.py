"""terminal.lifecycle: the table of allowed transitions and their effects, checked exhaustively."""

from __future__ import annotations

import itertools
from collections import deque
from pathlib import Path

import pytest

from terminal.lifecycle import (
    APPROVED_STATES,
    COUNTED_REFUND_STATES,
    FINAL_STATES,
    FOLLOW_UPS,
    RECOVERY,
    TRANSITIONS,
    UNFINISHED_STATES,
    Event,
    FollowUp,
    Money,
    State,
    TransitionError,
    customer_paid,
    expires,
    follow_up_refusal,
    next_state,
    saf_kind,
    table_markdown,
)

S, E = State, Event

ALL_PAIRS = list(itertools.product(State, Event))
FORBIDDEN = [(s, e) for s, e in ALL_PAIRS if (s, e) not in TRANSITIONS]

# The void transitions the module documents: a queued entry is withdrawn, anything the host saw
# is reversed first.  None of them leaves a final state.
VOID_EVENTS = {E.VOID_QUEUED, E.VOID_REVERSED}


def _reachable() -> dict[State, list[Event]]:
    """Every state reachable from ``started``, with a shortest path of events to it."""
    paths: dict[State, list[Event]] = {S.STARTED: []}
    todo = deque([S.STARTED])
    while todo:
        state = todo.popleft()
        for (src, event), row in TRANSITIONS.items():
            dst = row.to
            if src is state and dst not in paths:
                paths[dst] = [*paths[state], event]
                todo.append(dst)
    return paths


PATHS = _reachable()


@pytest.mark.parametrize(
    ("pair", "target"),
    [(pair, row.to) for pair, row in TRANSITIONS.items()],
    ids=[f"{s.value}-{e.value}" for s, e in TRANSITIONS],
)
def test_every_transition_is_reachable_and_gives_the_listed_state(
    pair: tuple[State, Event], target: State
) -> None:
    source, event = pair
    assert source in PATHS, f"{source.value} cannot be reached from started"
    state = S.STARTED
    for step in PATHS[source]:
        state = next_state(state, step)
    assert state is source
    assert next_state(state, event) is target


@pytest.mark.parametrize(("state", "event"), FORBIDDEN, ids=[f"{s.value}-{e.value}" for s, e in FORBIDDEN])
def test_every_pair_not_in_the_table_raises(state: State, event: Event) -> None:
    with pytest.raises(TransitionError, match=f"no transition from {state.value} on {event.value}"):
        next_state(state, event)


def test_the_table_covers_each_pair_at_most_once_and_the_rest_is_forbidden() -> None:
    assert len(TRANSITIONS) + len(FORBIDDEN) == len(State) * len(Event)
    assert FORBIDDEN, "some pairs must be forbidden"


def test_every_state_is_reachable_from_started() -> None:
    assert set(PATHS) == set(State)


def test_every_event_is_used() -> None:
    assert {e for _, e in TRANSITIONS} == set(Event)


@pytest.mark.parametrize("state", [s for s in State if s in FINAL_STATES], ids=str)
def test_final_states_have_no_outgoing_transition(state: State) -> None:
    assert [e for (s, e) in TRANSITIONS if s is state] == []
    for event in Event:
        with pytest.raises(TransitionError):
            next_state(state, event)


def test_void_transitions_start_only_from_approved_or_void_pending_states() -> None:
    # approved and forwarded are not final: the only way out of them is a void.
    for state in (S.APPROVED, S.FORWARDED):
        assert {e for (s, e) in TRANSITIONS if s is state} == {E.VOID_QUEUED}
    # a queued approval leaves by forwarding, expiry or a void (withdrawn from the queue, and reversed)
    for state in (S.OFFLINE_APPROVED, S.DEFERRED_APPROVED):
        assert {e for (s, e) in TRANSITIONS if s is state} == {
            E.FORWARD_ACCEPTED,
            E.FORWARD_DECLINED,
            E.FORWARD_REJECTED,
            E.SAF_EXPIRED,
            E.SAF_EXPIRED_AFTER_SENDING,
            E.VOID_QUEUED,
        }
    void_sources = {s for (s, e) in TRANSITIONS if e in VOID_EVENTS}
    assert void_sources == {S.OFFLINE_APPROVED, S.DEFERRED_APPROVED, S.APPROVED, S.FORWARDED, S.VOID_PENDING}
    assert not void_sources & FINAL_STATES
    assert TRANSITIONS[(S.VOID_PENDING, E.VOID_REVERSED)].to is S.VOIDED


def test_non_final_states_all_have_a_way_out() -> None:
    for state in set(State) - FINAL_STATES:
        assert any(s is state for s, _ in TRANSITIONS), state


def test_every_non_final_state_can_reach_a_final_state() -> None:
    for state in set(State) - FINAL_STATES:
        seen, todo = {state}, [state]
        while todo:
            current = todo.pop()
            for (src, _), row in TRANSITIONS.items():
                dst = row.to
                if src is current and dst not in seen:
                    seen.add(dst)
                    todo.append(dst)
        assert seen & FINAL_STATES, f"{state.value} never ends"


def test_approved_and_final_states() -> None:
    expected = {S.APPROVED, S.OFFLINE_APPROVED, S.DEFERRED_APPROVED, S.FORWARDED, S.WALLET_APPROVED, S.WALLET_CREDITED,
                S.QR_PAID}  # fmt: skip
    assert expected == APPROVED_STATES
    # a wallet payment credited by its operator is the one approved state nothing follows
    assert {S.WALLET_CREDITED} == APPROVED_STATES & FINAL_STATES
    assert S.STARTED not in FINAL_STATES and S.AUTHORISING not in FINAL_STATES
    assert {S.DECLINED, S.CANCELLED, S.REVERSED, S.VOIDED, S.EXPIRED} <= FINAL_STATES
    assert {S.DECLINED_AFTER_FORWARDING, S.REJECTED_BY_HOST} <= FINAL_STATES
    # nothing in flight counts as approved
    for state in (S.STARTED, S.AUTHORISING, S.REVERSAL_PENDING, S.VOID_PENDING, S.WALLET_PAYING, S.WALLET_TORN,
                  S.QR_PENDING, S.QR_IN_DOUBT, S.QR_VOIDING):  # fmt: skip
        assert state not in APPROVED_STATES and state not in FINAL_STATES


def test_recovery_events_resolve_unfinished_states() -> None:
    assert next_state(S.STARTED, E.RECOVER_STARTED) is S.CANCELLED
    assert next_state(S.AUTHORISING, E.RECOVER_AUTHORISING) is S.REVERSAL_PENDING
    # a wallet payment between intent and outcome: not paid, with a notice for the wallet's operator
    for state in (S.WALLET_PAYING, S.WALLET_TORN):
        row = TRANSITIONS[(state, E.RECOVER_WALLET)]
        assert row.to is S.WALLET_NOT_PAID and row.queue_saf and saf_kind("sale", E.RECOVER_WALLET) == "cbdc_torn"
    assert {s for s in RECOVERY} == {s for s in UNFINISHED_STATES if (s, RECOVERY.get(s)) in TRANSITIONS}
    # an approval made durable with its SAF entry needs no recovery
    for state in (S.OFFLINE_APPROVED, S.DEFERRED_APPROVED, S.APPROVED):
        for event in (E.RECOVER_STARTED, E.RECOVER_AUTHORISING):
            with pytest.raises(TransitionError):
                next_state(state, event)


def test_a_replayed_event_is_refused() -> None:
    state = next_state(S.STARTED, E.GO_ONLINE)
    state = next_state(state, E.HOST_APPROVED)
    with pytest.raises(TransitionError):
        next_state(state, E.HOST_APPROVED)


# -- the effects each row carries ----------------------------------------------------------------

WALLET_QUEUED = {S.WALLET_APPROVED, S.WALLET_REFUSED, S.WALLET_NOT_PAID}
QUEUED = {S.OFFLINE_APPROVED, S.DEFERRED_APPROVED} | WALLET_QUEUED
# States in which the encrypted card data for the host may still be needed.  (``started`` holds
# none: a new payment's card data comes with its first transition, and only where that row keeps it.)
HOLDS_CARD_DATA = {S.AUTHORISING, S.OFFLINE_APPROVED, S.DEFERRED_APPROVED}
# A wallet payment's envelope (certificates, request, record: no card data, encrypted all the same) is
# kept from the intent on, replaced by the one with the record, and kept after as evidence.
WALLET_STATES = {S.WALLET_PAYING, S.WALLET_TORN, S.WALLET_APPROVED, S.WALLET_CREDITED, S.WALLET_REFUSED,
                 S.WALLET_NOT_PAID}  # fmt: skip
ROWS = list(TRANSITIONS.items())
IDS = [f"{s.value}-{e.value}" for s, e in TRANSITIONS]


@pytest.mark.parametrize(("pair", "row"), ROWS, ids=IDS)
def test_every_transition_into_a_queued_state_queues_exactly_one_saf_entry(pair: tuple[State, Event], row) -> None:
    source, _ = pair
    entering_queue = row.to in QUEUED and source not in QUEUED
    assert row.queue_saf is entering_queue
    # and the one way out of the queue settles the entry with the host's answer (or withdraws it)
    if source in QUEUED and row.to not in QUEUED:
        assert row.saf_answer in {"accepted", "declined", "rejected", "expired", "withdrawn"}
    else:
        assert row.saf_answer is None


@pytest.mark.parametrize(("pair", "row"), ROWS, ids=IDS)
def test_every_end_of_an_authorisation_drops_the_card_data(pair: tuple[State, Event], row) -> None:
    source, _ = pair
    if source in WALLET_STATES or row.to in WALLET_STATES:
        # the wallet's envelope comes with the intent and with the record, and is dropped only when no
        # payment was made and nothing is queued (refused by the wallet before it debited)
        assert row.keep_card_data is (row.to in {S.WALLET_PAYING, S.WALLET_APPROVED, S.WALLET_REFUSED})
        assert row.drop_card_data is (row.to is S.DECLINED and source in {S.WALLET_PAYING, S.WALLET_TORN})
        return
    if source in HOLDS_CARD_DATA and row.to not in HOLDS_CARD_DATA:
        assert row.drop_card_data, "the authorisation is over: the card data must go (PCI DSS 3.3.1)"
    if row.keep_card_data:
        assert row.to in HOLDS_CARD_DATA and not row.drop_card_data
        # card data comes with a payment's first transition; the one other: an inserted card's second
        # GENERATE AC (its TC, unable to go online) replaces the ARQC's data for the deferred advice
        assert source is S.STARTED or pair == (S.AUTHORISING, E.NOT_SENT_DEFERRED), (
            "card data comes only with a payment's first transition"
        )
    if source is S.STARTED:
        assert row.keep_card_data is (row.to in HOLDS_CARD_DATA)


@pytest.mark.parametrize(("pair", "row"), ROWS, ids=IDS)
def test_reversals_are_queued_exactly_where_the_result_may_stand_at_the_host(
    pair: tuple[State, Event], row
) -> None:
    source, event = pair
    # a lost answer, a crash mid-authorisation, a void, an expiry after a send whose answer was lost,
    # and an inserted card that refused, at its second GENERATE AC, what the issuer approved
    expected = {
        E.NO_ANSWER: "no_answer",
        E.CARD_REFUSED_APPROVAL: "card_declined",
        E.RECOVER_AUTHORISING: "recovery",
        E.VOID_QUEUED: "void",
        E.SAF_EXPIRED_AFTER_SENDING: "expired",
    }.get(event)
    assert row.queue_reversal == expected
    if row.queue_reversal is not None:
        assert row.to in {S.REVERSAL_PENDING, S.VOID_PENDING}
    assert row.reversal_done is (source in {S.REVERSAL_PENDING, S.VOID_PENDING})


@pytest.mark.parametrize(("pair", "row"), ROWS, ids=IDS)
def test_each_rows_money_effect_matches_its_states(pair: tuple[State, Event], row) -> None:
    source, _ = pair
    was, now = source in APPROVED_STATES, row.to in APPROVED_STATES
    if not was and now:
        assert row.money is Money.TAKEN
    elif was and now:
        assert row.money is Money.KEPT
    elif was and not now:
        assert row.money is Money.RETURNED
    elif row.to is S.REVERSAL_PENDING:
        assert row.money is Money.UNKNOWN  # the host may have approved: the reversal undoes it
    elif row.to is S.QR_IN_DOUBT:
        assert row.money is Money.UNKNOWN  # the app may have paid: the host is asked again (qr_check)
    elif row.to is S.WALLET_TORN:
        assert row.money is Money.UNKNOWN  # the wallet may have debited: its record is fetched, or a notice sent
    else:
        assert row.money is Money.NONE


def test_refunds_go_only_against_a_sale_the_host_confirmed() -> None:
    assert FOLLOW_UPS[(FollowUp.REFUND, "sale")] == {S.APPROVED, S.FORWARDED, S.QR_PAID}
    for state in State:
        why = follow_up_refusal(FollowUp.REFUND, "sale", state)
        assert (why is None) is (state in {S.APPROVED, S.FORWARDED, S.QR_PAID})
        assert why is None or why.strip()
        assert follow_up_refusal(FollowUp.REFUND, "refund", state) is not None


def test_voids_go_only_against_what_counts_and_say_why_not() -> None:
    for kind in ("sale", "refund"):
        for state in State:
            why = follow_up_refusal(FollowUp.VOID, kind, state)
            # a QR refund went back to the wallet at once: there is nothing to cancel at the host
            voidable = APPROVED_STATES - WALLET_STATES - ({S.QR_PAID} if kind == "refund" else set())
            assert (why is None) is (state in voidable), (kind, state)
            assert why is None or "void" not in why or state in {S.VOID_PENDING, S.VOIDED, S.QR_VOIDING, S.QR_PAID} \
                or "queue" in why


def test_a_refund_that_may_still_be_paid_counts_against_its_original() -> None:
    assert APPROVED_STATES <= COUNTED_REFUND_STATES
    assert {S.AUTHORISING, S.REVERSAL_PENDING, S.VOID_PENDING} <= COUNTED_REFUND_STATES
    assert not COUNTED_REFUND_STATES & {S.DECLINED, S.CANCELLED, S.REVERSED, S.VOIDED, S.EXPIRED}


def test_customer_paid() -> None:
    assert customer_paid(500, S.APPROVED, [(300, S.APPROVED), (100, S.DECLINED)]) == 200
    assert customer_paid(500, S.VOIDED, []) == 0
    assert customer_paid(500, S.FORWARDED, [(500, S.FORWARDED)]) == 0


def test_the_documentation_shows_the_table_of_the_code() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "terminal-core.md").read_text(encoding="utf-8")
    assert table_markdown() in doc, (
        "docs/terminal-core.md is out of date: paste the output of "
        "python -c 'from terminal.lifecycle import table_markdown; print(table_markdown())'"
    )


def test_wallet_payments_are_neither_voided_nor_refunded_nor_expired() -> None:
    """A wallet pays offline with a record the operator credits: the terminal cannot undo it, nor drop it."""
    for state in WALLET_STATES:
        for action in FollowUp:
            assert follow_up_refusal(action, "sale", state)
        assert not expires(state)
    assert "wallet" in str(follow_up_refusal(FollowUp.VOID, "sale", S.WALLET_APPROVED))
    assert expires(S.OFFLINE_APPROVED) and expires(S.DEFERRED_APPROVED)


def test_each_wallet_outcome_queues_its_kind_of_entry() -> None:
    """CBDC-SPEC section 10: cbdc_payment, cbdc_refused, cbdc_torn."""
    assert saf_kind("sale", E.WALLET_APPROVED) == "cbdc_payment"
    assert saf_kind("sale", E.WALLET_REFUSED) == "cbdc_refused"
    assert saf_kind("sale", E.WALLET_NOT_PAID) == "cbdc_torn"
    # the record of a refused payment is kept and forwarded as evidence; the customer was not charged
    row = TRANSITIONS[(S.WALLET_PAYING, E.WALLET_REFUSED)]
    assert row.queue_saf and row.keep_card_data and row.money is Money.NONE
    # a decline after forwarding returns what was taken, like a card's
    assert TRANSITIONS[(S.WALLET_APPROVED, E.FORWARD_DECLINED)].to is S.DECLINED_AFTER_FORWARDING
