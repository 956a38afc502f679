"""The life of a payment as an explicit table of allowed transitions.

Every change of a transaction's state is one row of this table, and is
written to the journal (durably) before the terminal acts on it.  A crash
at any point leaves each transaction in a state of this table; start-up
recovery moves the unfinished ones on with the ``recover_*`` events, so
that each ends in a defined state:

- ``started`` (the card was being read; nothing was shown) -> ``cancelled``;
- ``authorising`` (the request may have reached the host) -> ``reversal_pending``;
- ``offline_approved`` / ``deferred_approved`` were made durable together with
  their SAF entry, so they need nothing.

>>> next_state(State.STARTED, Event.GO_ONLINE)
<State.AUTHORISING: 'authorising'>
>>> next_state(State.DECLINED, Event.HOST_APPROVED)  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
terminal.lifecycle.TransitionError: no transition from declined on host_approved
"""

from __future__ import annotations

import enum

__all__ = [
    "APPROVED_STATES",
    "FINAL_STATES",
    "TRANSITIONS",
    "Event",
    "State",
    "TransitionError",
    "next_state",
]


class State(enum.Enum):
    STARTED = "started"  # the card is being read
    AUTHORISING = "authorising"  # online request written; being sent
    APPROVED = "approved"  # approved online by the host
    DECLINED = "declined"  # declined by the card, the host, or the terminal's own rules
    CANCELLED = "cancelled"  # not completed: cancelled, card removed, try again, ...
    REVERSAL_PENDING = "reversal_pending"  # the result was unknown: a reversal is queued
    REVERSED = "reversed"  # the host acknowledged the reversal
    OFFLINE_APPROVED = "offline_approved"  # the card approved offline (TC): advice queued
    DEFERRED_APPROVED = "deferred_approved"  # host unreachable: deferred authorisation queued
    FORWARDED = "forwarded"  # the host accepted the queued entry
    DECLINED_AFTER_FORWARDING = "declined_after_forwarding"  # the host declined a deferred authorisation
    REJECTED_BY_HOST = "rejected_by_host"  # the host refused the entry as malformed
    EXPIRED = "expired"  # the entry could not be forwarded within the policy's time
    VOID_PENDING = "void_pending"  # voided: the reversal of an approved payment is queued
    VOIDED = "voided"  # voided and, where it had reached the host, reversed


class Event(enum.Enum):
    CARD_DECLINED = "card_declined"
    NOT_COMPLETED = "not_completed"
    OFFLINE_APPROVED = "offline_approved"
    GO_ONLINE = "go_online"
    HOST_APPROVED = "host_approved"
    HOST_DECLINED = "host_declined"
    NO_ANSWER = "no_answer"
    NOT_SENT_DEFERRED = "not_sent_deferred"
    NOT_SENT_DECLINED = "not_sent_declined"
    REVERSAL_ACKNOWLEDGED = "reversal_acknowledged"
    FORWARD_ACCEPTED = "forward_accepted"
    FORWARD_DECLINED = "forward_declined"
    FORWARD_REJECTED = "forward_rejected"
    SAF_EXPIRED = "saf_expired"
    SAF_EXPIRED_AFTER_SENDING = "saf_expired_after_sending"
    VOID_QUEUED = "void_queued"
    VOID_REVERSED = "void_reversed"
    RECOVER_STARTED = "recover_started"
    RECOVER_AUTHORISING = "recover_authorising"


S, E = State, Event

TRANSITIONS: dict[tuple[State, Event], State] = {
    # reading the card
    (S.STARTED, E.CARD_DECLINED): S.DECLINED,
    (S.STARTED, E.NOT_COMPLETED): S.CANCELLED,
    (S.STARTED, E.OFFLINE_APPROVED): S.OFFLINE_APPROVED,
    (S.STARTED, E.GO_ONLINE): S.AUTHORISING,
    (S.STARTED, E.NOT_SENT_DEFERRED): S.DEFERRED_APPROVED,  # force_offline with an ARQC
    (S.STARTED, E.NOT_SENT_DECLINED): S.DECLINED,
    (S.STARTED, E.RECOVER_STARTED): S.CANCELLED,
    # online authorisation
    (S.AUTHORISING, E.HOST_APPROVED): S.APPROVED,
    (S.AUTHORISING, E.HOST_DECLINED): S.DECLINED,
    (S.AUTHORISING, E.NO_ANSWER): S.REVERSAL_PENDING,
    (S.AUTHORISING, E.NOT_SENT_DEFERRED): S.DEFERRED_APPROVED,
    (S.AUTHORISING, E.NOT_SENT_DECLINED): S.DECLINED,
    (S.AUTHORISING, E.RECOVER_AUTHORISING): S.REVERSAL_PENDING,
    (S.REVERSAL_PENDING, E.REVERSAL_ACKNOWLEDGED): S.REVERSED,
    # store and forward
    (S.OFFLINE_APPROVED, E.FORWARD_ACCEPTED): S.FORWARDED,
    (S.OFFLINE_APPROVED, E.FORWARD_DECLINED): S.DECLINED_AFTER_FORWARDING,
    (S.OFFLINE_APPROVED, E.FORWARD_REJECTED): S.REJECTED_BY_HOST,
    (S.OFFLINE_APPROVED, E.SAF_EXPIRED): S.EXPIRED,
    # expired after a send whose answer was lost: the host may hold it, so it is reversed
    (S.OFFLINE_APPROVED, E.SAF_EXPIRED_AFTER_SENDING): S.REVERSAL_PENDING,
    (S.DEFERRED_APPROVED, E.FORWARD_ACCEPTED): S.FORWARDED,
    (S.DEFERRED_APPROVED, E.FORWARD_DECLINED): S.DECLINED_AFTER_FORWARDING,
    (S.DEFERRED_APPROVED, E.FORWARD_REJECTED): S.REJECTED_BY_HOST,
    (S.DEFERRED_APPROVED, E.SAF_EXPIRED): S.EXPIRED,
    (S.DEFERRED_APPROVED, E.SAF_EXPIRED_AFTER_SENDING): S.REVERSAL_PENDING,
    # void (same batch): a reversal is queued and sent; an entry still in the
    # SAF queue is withdrawn in the same commit (the host may have received it
    # just before a crash: the reversal covers that, and is acknowledged as
    # "nothing to reverse" otherwise)
    (S.OFFLINE_APPROVED, E.VOID_QUEUED): S.VOID_PENDING,
    (S.DEFERRED_APPROVED, E.VOID_QUEUED): S.VOID_PENDING,
    (S.APPROVED, E.VOID_QUEUED): S.VOID_PENDING,
    (S.FORWARDED, E.VOID_QUEUED): S.VOID_PENDING,
    (S.VOID_PENDING, E.VOID_REVERSED): S.VOIDED,
}

FINAL_STATES = frozenset(
    {
        S.DECLINED,
        S.CANCELLED,
        S.REVERSED,
        S.DECLINED_AFTER_FORWARDING,
        S.REJECTED_BY_HOST,
        S.EXPIRED,
        S.VOIDED,
    }
)

# States in which the customer was told "approved" (and the money counts in the batch).
APPROVED_STATES = frozenset({S.APPROVED, S.OFFLINE_APPROVED, S.DEFERRED_APPROVED, S.FORWARDED})


class TransitionError(Exception):
    """A transition the table does not allow (a bug, or a replayed event)."""


def next_state(state: State, event: Event) -> State:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise TransitionError(f"no transition from {state.value} on {event.value}") from None
