"""terminal.lifecycle: the table of allowed transitions, checked exhaustively."""

from __future__ import annotations

import itertools
from collections import deque

import pytest

from terminal.lifecycle import (
    APPROVED_STATES,
    FINAL_STATES,
    TRANSITIONS,
    Event,
    State,
    TransitionError,
    next_state,
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
        for (src, event), dst in TRANSITIONS.items():
            if src is state and dst not in paths:
                paths[dst] = [*paths[state], event]
                todo.append(dst)
    return paths


PATHS = _reachable()


@pytest.mark.parametrize(
    ("pair", "target"),
    list(TRANSITIONS.items()),
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
    assert TRANSITIONS[(S.VOID_PENDING, E.VOID_REVERSED)] is S.VOIDED


def test_non_final_states_all_have_a_way_out() -> None:
    for state in set(State) - FINAL_STATES:
        assert any(s is state for s, _ in TRANSITIONS), state


def test_every_non_final_state_can_reach_a_final_state() -> None:
    for state in set(State) - FINAL_STATES:
        seen, todo = {state}, [state]
        while todo:
            current = todo.pop()
            for (src, _), dst in TRANSITIONS.items():
                if src is current and dst not in seen:
                    seen.add(dst)
                    todo.append(dst)
        assert seen & FINAL_STATES, f"{state.value} never ends"


def test_approved_and_final_states() -> None:
    expected = {S.APPROVED, S.OFFLINE_APPROVED, S.DEFERRED_APPROVED, S.FORWARDED}
    assert expected == APPROVED_STATES
    assert not APPROVED_STATES & FINAL_STATES
    assert S.STARTED not in FINAL_STATES and S.AUTHORISING not in FINAL_STATES
    assert {S.DECLINED, S.CANCELLED, S.REVERSED, S.VOIDED, S.EXPIRED} <= FINAL_STATES
    assert {S.DECLINED_AFTER_FORWARDING, S.REJECTED_BY_HOST} <= FINAL_STATES
    # nothing in flight counts as approved
    for state in (S.STARTED, S.AUTHORISING, S.REVERSAL_PENDING, S.VOID_PENDING):
        assert state not in APPROVED_STATES and state not in FINAL_STATES


def test_recovery_events_resolve_unfinished_states() -> None:
    assert next_state(S.STARTED, E.RECOVER_STARTED) is S.CANCELLED
    assert next_state(S.AUTHORISING, E.RECOVER_AUTHORISING) is S.REVERSAL_PENDING
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
