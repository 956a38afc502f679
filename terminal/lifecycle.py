"""The life of a payment as an explicit table of allowed transitions, with their effects.

Every change of a transaction's state is one row of :data:`TRANSITIONS`:
``(state, event) -> Transition(to, money, effects...)``.  The row says what
the change does besides moving the state (queue a store-and-forward entry,
queue a reversal, drop the sensitive card data, record the host's answer to a
queued entry, mark a reversal delivered) and what it does to the customer's
money.  :class:`terminal.store.Store` applies a row and everything it names in
one durable commit, and mints the idempotency keys itself: callers pass only
data, so an effect can neither be forgotten nor applied twice.

A crash at any point leaves each transaction in a state of this table;
start-up recovery moves the unfinished ones on with the ``recover_*`` events:

- ``started`` (the card was being read; nothing was shown) -> ``cancelled``;
- ``authorising`` (the request may have reached the host) -> ``reversal_pending``;
- ``offline_approved`` / ``deferred_approved`` were made durable together with
  their SAF entry, so they need nothing;
- ``wallet_paying`` / ``wallet_torn`` (a digital-currency wallet's intent was
  written, its record never came back or was never stored) -> ``wallet_not_paid``
  with a "torn, not paid" notice queued, so that the wallet's operator credits
  the wallet back if it did debit (:data:`RECOVERY` names the event of each).

A digital-currency hard wallet (:mod:`terminal.cbdc_payment`) pays offline
with a signed record: its intent is journalled before the PAY command
(``wallet_intent``), and the record, verified, is queued for the operator
(``wallet_approved``); a record that fails a check is queued as evidence and
the payment declined (``wallet_refused``); a payment torn and never
completed ends ``wallet_not_paid`` with a notice queued.  Nothing of a wallet
payment is voided or refunded at the terminal (the wallet's operator pays a
wallet back), and its queued entries never expire (a record is the merchant's
claim, and a notice the wallet's): the table has no such rows.

A QR payment (:mod:`terminal.qr_payment`) is online only and queues nothing:
its intent is journalled before the first request (``qr_intent``), every
request is idempotent through the terminal's reference, and a payment left
without the host's last word is ``qr_in_doubt``, asked about again later
(the rows marked ``check_at_host``, :mod:`terminal.qr_check`): an order the
app paid meanwhile is recorded (``qr_paid``), one still open is closed.

What may follow what *between* payments (a refund against a sale, a void of a
sale or of a refund) is the second table, :data:`FOLLOW_UPS`, with the reason
in words for every state it refuses.  Together they keep the money rule:

    for every sale, at every moment, what the customer has paid is the sale
    amount less its refunds, or nothing if it was voided or reversed, and
    never below nothing.

>>> next_state(State.STARTED, Event.GO_ONLINE)
<State.AUTHORISING: 'authorising'>
>>> TRANSITIONS[State.AUTHORISING, Event.NO_ANSWER].queue_reversal
'no_answer'
>>> next_state(State.DECLINED, Event.HOST_APPROVED)  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
terminal.lifecycle.TransitionError: no transition from declined on host_approved
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "APPROVED_STATES",
    "COUNTED_REFUND_STATES",
    "FINAL_STATES",
    "FOLLOW_UPS",
    "QR_CHECKED_STATES",
    "RECOVERY",
    "TRANSITIONS",
    "UNFINISHED_STATES",
    "Event",
    "FollowUp",
    "Money",
    "State",
    "Transition",
    "TransitionError",
    "customer_paid",
    "expires",
    "follow_up_refusal",
    "next_state",
    "saf_kind",
    "table_markdown",
    "transition",
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
    # digital-currency hard wallets (CBDC)
    WALLET_PAYING = "wallet_paying"  # the intent is durable: the PAY command may be sent (write-ahead)
    WALLET_TORN = "wallet_torn"  # no record came back: the same wallet is asked for again
    WALLET_APPROVED = "wallet_approved"  # the record verified: approved offline, the record queued (cbdc_payment)
    WALLET_CREDITED = "wallet_credited"  # the wallet's operator accepted the record and credited the merchant
    WALLET_REFUSED = "wallet_refused"  # a record that fails a check: declined, the record queued as evidence
    WALLET_NOT_PAID = "wallet_not_paid"  # torn and never completed: not paid, a notice queued (cbdc_torn)
    # QR payments (online only, terminal.qr_payment): an order shown, a wallet code scanned, a refund to a wallet
    QR_PENDING = "qr_pending"  # the intent is durable: the request may reach the host (write-ahead)
    QR_PAID = "qr_paid"  # the host says paid (a sale), or refunded to the wallet (a refund)
    QR_IN_DOUBT = "qr_in_doubt"  # the terminal gave up without the host's last word: checked at the host later
    QR_VOIDING = "qr_voiding"  # voided: the cancel (reversal) at the host is asked for


class Event(enum.Enum):
    CARD_DECLINED = "card_declined"
    NOT_COMPLETED = "not_completed"
    OFFLINE_APPROVED = "offline_approved"
    GO_ONLINE = "go_online"
    HOST_APPROVED = "host_approved"
    HOST_DECLINED = "host_declined"
    NO_ANSWER = "no_answer"
    # an inserted card refused (AAC, or did not complete) what its issuer had approved: reverse it
    CARD_REFUSED_APPROVAL = "card_refused_approval"
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
    WALLET_DECLINED = "wallet_declined"  # refused before the wallet debited (the terminal's check or the wallet's)
    WALLET_INTENT = "wallet_intent"  # the intent journalled, just before the PAY command
    WALLET_TORN = "wallet_torn"  # PAY got no answer (or a garbled one)
    WALLET_APPROVED = "wallet_approved"  # the record passed every check
    WALLET_REFUSED = "wallet_refused"  # the record failed a check after the wallet debited
    WALLET_NOT_PAID = "wallet_not_paid"  # torn, and the customer did not present the wallet again
    RECOVER_WALLET = "recover_wallet"  # start-up found a wallet payment left between intent and outcome
    QR_INTENT = "qr_intent"  # a QR order, code payment or wallet refund journalled, before its request
    QR_ORDER_CREATED = "qr_order_created"  # the host made the merchant-presented order: its id noted
    QR_PAID = "qr_paid"  # the host says paid (or refunded); a cancel it refused leaves the payment paid
    QR_DECLINED = "qr_declined"  # the host or the wallet declined (the reason kept)
    QR_NOT_SENT = "qr_not_sent"  # the host could not be reached: nothing was sent
    QR_CLOSED = "qr_closed"  # closed or cancelled at the host before any payment: never charged
    QR_REVERSED = "qr_reversed"  # cancelled at the host after payment: the wallet was paid back
    QR_GAVE_UP = "qr_gave_up"  # no last word from the host (no answer, or the close could not be sent)
    RECOVER_QR = "recover_qr"  # start-up found a QR request left between its intent and its answer
    QR_VOID = "qr_void"  # the void of a QR sale: its cancel at the host is asked for


class Money(enum.Enum):
    """What a transition does to the customer's money, as the terminal's books show it.

    For a sale "the money" is the amount charged; for a refund, the amount paid back.
    """

    NONE = "none"  # nothing changes hands
    TAKEN = "taken"  # the amount now counts: charged (sale) or paid back (refund)
    KEPT = "kept"  # it counted and still does (the host confirmed what the card approved)
    RETURNED = "returned"  # it counted and no longer does (voided, reversed, refused later)
    UNKNOWN = "unknown"  # the host may have approved, the answer was lost: a reversal undoes it
    # (for a wallet: it may have debited, the record was lost: the same wallet again, or a notice to its operator)


@dataclass(frozen=True)
class Transition:
    """One row of the table: the next state and everything the change implies.

    ``queue_saf``: the payment enters the store-and-forward queue (its kind of
    entry comes from :func:`saf_kind`).  ``saf_answer``: the queued entry is
    settled with this status (accepted, declined, rejected, expired,
    withdrawn).  ``queue_reversal``: a reversal with this reason is queued.
    ``reversal_done``: the queued reversal was delivered.  ``keep_card_data``:
    the encrypted data objects for the host may be stored with this change
    (they are needed later); ``drop_card_data``: they are deleted, because the
    authorisation they served is complete (PCI DSS 3.3.1).
    """

    to: State
    money: Money
    queue_saf: bool = False
    saf_answer: str | None = None
    queue_reversal: str | None = None
    reversal_done: bool = False
    keep_card_data: bool = False
    drop_card_data: bool = False
    check_at_host: bool = False  # a QR order the terminal must ask the host about again (terminal.qr_check)

    def effects(self) -> tuple[str, ...]:
        """The effects in words, for the documentation table."""
        out = []
        if self.keep_card_data:
            out.append("keep card data")
        if self.queue_saf:
            out.append("queue SAF entry")
        if self.saf_answer:
            out.append(f"SAF entry {self.saf_answer}")
        if self.queue_reversal:
            out.append(f"queue reversal ({self.queue_reversal})")
        if self.reversal_done:
            out.append("reversal delivered")
        if self.drop_card_data:
            out.append("drop card data")
        if self.check_at_host:
            out.append("check at the host later")
        return tuple(out)


S, E, M, T = State, Event, Money, Transition

TRANSITIONS: dict[tuple[State, Event], Transition] = {
    # reading the card
    (S.STARTED, E.CARD_DECLINED): T(S.DECLINED, M.NONE),
    (S.STARTED, E.NOT_COMPLETED): T(S.CANCELLED, M.NONE),
    (S.STARTED, E.OFFLINE_APPROVED): T(S.OFFLINE_APPROVED, M.TAKEN, queue_saf=True, keep_card_data=True),
    (S.STARTED, E.GO_ONLINE): T(S.AUTHORISING, M.NONE, keep_card_data=True),
    # force_offline with an ARQC, or a refund stored for later
    (S.STARTED, E.NOT_SENT_DEFERRED): T(S.DEFERRED_APPROVED, M.TAKEN, queue_saf=True, keep_card_data=True),
    (S.STARTED, E.NOT_SENT_DECLINED): T(S.DECLINED, M.NONE),
    (S.STARTED, E.RECOVER_STARTED): T(S.CANCELLED, M.NONE, drop_card_data=True),
    # online authorisation
    (S.AUTHORISING, E.HOST_APPROVED): T(S.APPROVED, M.TAKEN, drop_card_data=True),
    (S.AUTHORISING, E.HOST_DECLINED): T(S.DECLINED, M.NONE, drop_card_data=True),
    (S.AUTHORISING, E.NO_ANSWER): T(S.REVERSAL_PENDING, M.UNKNOWN, queue_reversal="no_answer", drop_card_data=True),
    (S.AUTHORISING, E.CARD_REFUSED_APPROVAL): T(
        S.REVERSAL_PENDING, M.UNKNOWN, queue_reversal="card_declined", drop_card_data=True
    ),
    # (an inserted card's second GENERATE AC replaces the data kept at GO_ONLINE: its TC goes with the advice)
    (S.AUTHORISING, E.NOT_SENT_DEFERRED): T(S.DEFERRED_APPROVED, M.TAKEN, queue_saf=True, keep_card_data=True),
    (S.AUTHORISING, E.NOT_SENT_DECLINED): T(S.DECLINED, M.NONE, drop_card_data=True),
    (S.AUTHORISING, E.RECOVER_AUTHORISING): T(
        S.REVERSAL_PENDING, M.UNKNOWN, queue_reversal="recovery", drop_card_data=True
    ),
    (S.REVERSAL_PENDING, E.REVERSAL_ACKNOWLEDGED): T(S.REVERSED, M.NONE, reversal_done=True),
    # store and forward: the host's answer settles the entry and ends the card data's use
    (S.OFFLINE_APPROVED, E.FORWARD_ACCEPTED): T(S.FORWARDED, M.KEPT, saf_answer="accepted", drop_card_data=True),
    (S.OFFLINE_APPROVED, E.FORWARD_DECLINED): T(
        S.DECLINED_AFTER_FORWARDING, M.RETURNED, saf_answer="declined", drop_card_data=True
    ),
    (S.OFFLINE_APPROVED, E.FORWARD_REJECTED): T(
        S.REJECTED_BY_HOST, M.RETURNED, saf_answer="rejected", drop_card_data=True
    ),
    (S.OFFLINE_APPROVED, E.SAF_EXPIRED): T(S.EXPIRED, M.RETURNED, saf_answer="expired", drop_card_data=True),
    # expired after a send whose answer was lost: the host may hold it, so it is reversed
    (S.OFFLINE_APPROVED, E.SAF_EXPIRED_AFTER_SENDING): T(
        S.REVERSAL_PENDING, M.RETURNED, saf_answer="expired", queue_reversal="expired", drop_card_data=True
    ),
    (S.DEFERRED_APPROVED, E.FORWARD_ACCEPTED): T(S.FORWARDED, M.KEPT, saf_answer="accepted", drop_card_data=True),
    (S.DEFERRED_APPROVED, E.FORWARD_DECLINED): T(
        S.DECLINED_AFTER_FORWARDING, M.RETURNED, saf_answer="declined", drop_card_data=True
    ),
    (S.DEFERRED_APPROVED, E.FORWARD_REJECTED): T(
        S.REJECTED_BY_HOST, M.RETURNED, saf_answer="rejected", drop_card_data=True
    ),
    (S.DEFERRED_APPROVED, E.SAF_EXPIRED): T(S.EXPIRED, M.RETURNED, saf_answer="expired", drop_card_data=True),
    (S.DEFERRED_APPROVED, E.SAF_EXPIRED_AFTER_SENDING): T(
        S.REVERSAL_PENDING, M.RETURNED, saf_answer="expired", queue_reversal="expired", drop_card_data=True
    ),
    # void (same batch): a reversal is queued and sent; an entry still in the SAF queue is
    # withdrawn in the same commit (the host may have received it just before a crash: the
    # reversal covers that, and is acknowledged as "nothing to reverse" otherwise)
    (S.OFFLINE_APPROVED, E.VOID_QUEUED): T(
        S.VOID_PENDING, M.RETURNED, saf_answer="withdrawn", queue_reversal="void", drop_card_data=True
    ),
    (S.DEFERRED_APPROVED, E.VOID_QUEUED): T(
        S.VOID_PENDING, M.RETURNED, saf_answer="withdrawn", queue_reversal="void", drop_card_data=True
    ),
    (S.APPROVED, E.VOID_QUEUED): T(S.VOID_PENDING, M.RETURNED, queue_reversal="void"),
    (S.FORWARDED, E.VOID_QUEUED): T(S.VOID_PENDING, M.RETURNED, queue_reversal="void"),
    (S.VOID_PENDING, E.VOID_REVERSED): T(S.VOIDED, M.NONE, reversal_done=True),
    # digital-currency hard wallets: refused before the intent (the wallet's certificates, the limits, ...)
    (S.STARTED, E.WALLET_DECLINED): T(S.DECLINED, M.NONE),
    # the intent (and the envelope of a "torn, not paid" notice: certificates, request) before PAY
    (S.STARTED, E.WALLET_INTENT): T(S.WALLET_PAYING, M.NONE, keep_card_data=True),
    (S.WALLET_PAYING, E.WALLET_DECLINED): T(S.DECLINED, M.NONE, drop_card_data=True),
    (S.WALLET_PAYING, E.WALLET_APPROVED): T(S.WALLET_APPROVED, M.TAKEN, queue_saf=True, keep_card_data=True),
    (S.WALLET_PAYING, E.WALLET_REFUSED): T(S.WALLET_REFUSED, M.NONE, queue_saf=True, keep_card_data=True),
    (S.WALLET_PAYING, E.WALLET_TORN): T(S.WALLET_TORN, M.UNKNOWN),
    (S.WALLET_PAYING, E.WALLET_NOT_PAID): T(S.WALLET_NOT_PAID, M.NONE, queue_saf=True),
    (S.WALLET_PAYING, E.RECOVER_WALLET): T(S.WALLET_NOT_PAID, M.NONE, queue_saf=True),
    # the same wallet presented again: its record fetched (or PAY sent again if it had not debited)
    (S.WALLET_TORN, E.WALLET_APPROVED): T(S.WALLET_APPROVED, M.TAKEN, queue_saf=True, keep_card_data=True),
    (S.WALLET_TORN, E.WALLET_REFUSED): T(S.WALLET_REFUSED, M.NONE, queue_saf=True, keep_card_data=True),
    (S.WALLET_TORN, E.WALLET_DECLINED): T(S.DECLINED, M.NONE, drop_card_data=True),
    (S.WALLET_TORN, E.WALLET_NOT_PAID): T(S.WALLET_NOT_PAID, M.NONE, queue_saf=True),
    (S.WALLET_TORN, E.RECOVER_WALLET): T(S.WALLET_NOT_PAID, M.NONE, queue_saf=True),
    # the operator's answers; the records stay (encrypted) as the merchant's and the wallet's evidence
    (S.WALLET_APPROVED, E.FORWARD_ACCEPTED): T(S.WALLET_CREDITED, M.KEPT, saf_answer="accepted"),
    (S.WALLET_APPROVED, E.FORWARD_DECLINED): T(S.DECLINED_AFTER_FORWARDING, M.RETURNED, saf_answer="declined"),
    (S.WALLET_APPROVED, E.FORWARD_REJECTED): T(S.REJECTED_BY_HOST, M.RETURNED, saf_answer="rejected"),
    (S.WALLET_REFUSED, E.FORWARD_ACCEPTED): T(S.DECLINED, M.NONE, saf_answer="accepted"),
    (S.WALLET_REFUSED, E.FORWARD_DECLINED): T(S.DECLINED, M.NONE, saf_answer="declined"),
    (S.WALLET_REFUSED, E.FORWARD_REJECTED): T(S.DECLINED, M.NONE, saf_answer="rejected"),
    (S.WALLET_NOT_PAID, E.FORWARD_ACCEPTED): T(S.CANCELLED, M.NONE, saf_answer="accepted"),
    (S.WALLET_NOT_PAID, E.FORWARD_DECLINED): T(S.CANCELLED, M.NONE, saf_answer="declined"),
    (S.WALLET_NOT_PAID, E.FORWARD_REJECTED): T(S.CANCELLED, M.NONE, saf_answer="rejected"),
    # QR payments: online only, nothing queued; the terminal's own reference makes every request idempotent,
    # so a request in doubt is asked about again (query, close, cancel, refund) rather than queued
    (S.STARTED, E.QR_INTENT): T(S.QR_PENDING, M.NONE),
    (S.QR_PENDING, E.QR_ORDER_CREATED): T(S.QR_PENDING, M.NONE),
    (S.QR_PENDING, E.QR_PAID): T(S.QR_PAID, M.TAKEN),
    (S.QR_PENDING, E.QR_DECLINED): T(S.DECLINED, M.NONE),
    (S.QR_PENDING, E.QR_NOT_SENT): T(S.DECLINED, M.NONE),
    (S.QR_PENDING, E.QR_CLOSED): T(S.CANCELLED, M.NONE),
    (S.QR_PENDING, E.QR_REVERSED): T(S.REVERSED, M.NONE),
    (S.QR_PENDING, E.QR_GAVE_UP): T(S.QR_IN_DOUBT, M.UNKNOWN, check_at_host=True),
    (S.QR_PENDING, E.RECOVER_QR): T(S.QR_IN_DOUBT, M.UNKNOWN, check_at_host=True),
    # in doubt: an order the app paid meanwhile is recorded (never lost); one still open is closed or cancelled
    (S.QR_IN_DOUBT, E.QR_PAID): T(S.QR_PAID, M.TAKEN),
    (S.QR_IN_DOUBT, E.QR_DECLINED): T(S.DECLINED, M.NONE),
    (S.QR_IN_DOUBT, E.QR_CLOSED): T(S.CANCELLED, M.NONE),
    (S.QR_IN_DOUBT, E.QR_REVERSED): T(S.REVERSED, M.NONE),
    # void of a QR sale (same batch, no refunds): cancelled at the host, which pays the wallet back
    (S.QR_PAID, E.QR_VOID): T(S.QR_VOIDING, M.RETURNED, check_at_host=True),
    (S.QR_VOIDING, E.QR_REVERSED): T(S.VOIDED, M.NONE),
    (S.QR_VOIDING, E.QR_PAID): T(S.QR_PAID, M.TAKEN),  # the host refused the cancel (refunds, settled)
    (S.QR_VOIDING, E.QR_NOT_SENT): T(S.QR_PAID, M.TAKEN),  # nothing was sent: still paid
}

#: The event start-up recovery applies to a payment a crash left in each unfinished state.
RECOVERY: dict[State, Event] = {
    S.STARTED: E.RECOVER_STARTED,
    S.AUTHORISING: E.RECOVER_AUTHORISING,
    S.WALLET_PAYING: E.RECOVER_WALLET,
    S.WALLET_TORN: E.RECOVER_WALLET,
    S.QR_PENDING: E.RECOVER_QR,
}

#: The kind of store-and-forward entry a wallet's event queues (:func:`saf_kind`): CBDC-SPEC section 10.
_WALLET_SAF_KINDS = {
    E.WALLET_APPROVED: "cbdc_payment",
    E.WALLET_REFUSED: "cbdc_refused",
    E.WALLET_NOT_PAID: "cbdc_torn",
    E.RECOVER_WALLET: "cbdc_torn",
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
        S.WALLET_CREDITED,  # approved, and nothing follows it at the terminal
    }
)

# States of card payments in which the customer was told "approved".
_CARD_APPROVED = frozenset({S.APPROVED, S.OFFLINE_APPROVED, S.DEFERRED_APPROVED, S.FORWARDED})

# States in which the customer was told "approved" (and the money counts in the batch).
APPROVED_STATES = _CARD_APPROVED | {S.WALLET_APPROVED, S.WALLET_CREDITED, S.QR_PAID}

#: The states of a QR payment the terminal asks the host about again (:mod:`terminal.qr_check`).
QR_CHECKED_STATES = frozenset(row.to for row in TRANSITIONS.values() if row.check_at_host)

# States a crash may leave a payment in that recovery or a queued reversal must finish.
UNFINISHED_STATES = frozenset(
    {S.STARTED, S.AUTHORISING, S.REVERSAL_PENDING, S.VOID_PENDING, S.WALLET_PAYING, S.WALLET_TORN,
     S.QR_PENDING, S.QR_IN_DOUBT, S.QR_VOIDING}
)  # fmt: skip


class TransitionError(Exception):
    """A transition the table does not allow (a bug, or a replayed event)."""


def transition(state: State, event: Event) -> Transition:
    """The row for ``(state, event)``; :class:`TransitionError` when the table has none."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise TransitionError(f"no transition from {state.value} on {event.value}") from None


def next_state(state: State, event: Event) -> State:
    return transition(state, event).to


def saf_kind(kind: str, event: Event) -> str:
    """The kind of store-and-forward entry a payment of ``kind`` gets on ``event``.

    >>> saf_kind("sale", Event.OFFLINE_APPROVED), saf_kind("refund", Event.NOT_SENT_DEFERRED)
    ('offline_approval', 'offline_refund')
    >>> saf_kind("sale", Event.WALLET_APPROVED), saf_kind("sale", Event.RECOVER_WALLET)
    ('cbdc_payment', 'cbdc_torn')
    """
    if event in _WALLET_SAF_KINDS:
        return _WALLET_SAF_KINDS[event]
    if kind == "refund":
        return "offline_refund"
    return "offline_approval" if event is Event.OFFLINE_APPROVED else "deferred_authorisation"


def expires(state: State) -> bool:
    """Whether a queued entry of a payment in ``state`` may expire unsent (the table has a row for it).

    >>> expires(State.OFFLINE_APPROVED), expires(State.WALLET_APPROVED)
    (True, False)
    """
    return (state, Event.SAF_EXPIRED) in TRANSITIONS


# -- what may follow what, between payments ---------------------------------------------------


class FollowUp(enum.Enum):
    REFUND = "refund"  # a refund against this payment (an original sale)
    VOID = "void"  # the void of this payment (a sale or a refund, same batch)


# The states of a payment of a kind in which a follow-up is allowed.  A refund goes only
# against a sale the host has confirmed: one still queued may yet be declined by the host
# (and then the customer would get back what was never taken), so it is voided instead.
FOLLOW_UPS: dict[tuple[FollowUp, str], frozenset[State]] = {
    (FollowUp.REFUND, "sale"): frozenset({S.APPROVED, S.FORWARDED, S.QR_PAID}),
    (FollowUp.REFUND, "refund"): frozenset(),
    (FollowUp.VOID, "sale"): _CARD_APPROVED | {S.QR_PAID},
    (FollowUp.VOID, "refund"): _CARD_APPROVED,
}

# Why a follow-up is refused, in words, by the state of the payment it names.
_REFUSED_BECAUSE: dict[State, str] = {
    S.STARTED: "it is not finished",
    S.AUTHORISING: "it is not finished",
    S.DECLINED: "it was declined: nothing was paid",
    S.CANCELLED: "it was not completed: nothing was paid",
    S.REVERSAL_PENDING: "its result was unknown and it is being reversed: nothing stays paid",
    S.REVERSED: "it was reversed: nothing was paid",
    S.OFFLINE_APPROVED: "it has not reached the host yet (void it, or forward the queue first)",
    S.DEFERRED_APPROVED: "it has not reached the host yet (void it, or forward the queue first)",
    S.DECLINED_AFTER_FORWARDING: "the host declined it after forwarding: nothing was paid",
    S.REJECTED_BY_HOST: "the host refused it: nothing was paid",
    S.EXPIRED: "it expired before the host could confirm it: nothing was collected",
    S.VOID_PENDING: "it was voided",
    S.VOIDED: "it was voided",
    S.WALLET_PAYING: "it is not finished",
    S.WALLET_TORN: "it is not finished",
    S.WALLET_APPROVED: "it was paid from a digital-currency wallet: the wallet's operator pays a wallet back, "
    "not the terminal",
    S.WALLET_CREDITED: "it was paid from a digital-currency wallet: the wallet's operator pays a wallet back, "
    "not the terminal",
    S.WALLET_REFUSED: "it was declined: nothing was paid",
    S.WALLET_NOT_PAID: "it was not completed: nothing was paid",
    S.QR_PENDING: "it is not finished",
    S.QR_IN_DOUBT: "its result is not known yet: it is checked at the host ('posterm qr orders --check')",
    S.QR_VOIDING: "it was voided",
    S.QR_PAID: "a QR refund went back to the wallet at once: it cannot be voided",
}

# The states of a refund that count against its original: approved, and anything that may
# still end approved or is being undone (until the undoing is confirmed, the refund counts).
COUNTED_REFUND_STATES = APPROVED_STATES | {
    S.STARTED, S.AUTHORISING, S.REVERSAL_PENDING, S.VOID_PENDING, S.QR_PENDING, S.QR_IN_DOUBT,
}  # fmt: skip


def follow_up_refusal(action: FollowUp, kind: str, state: State) -> str | None:
    """Why ``action`` may not follow a ``kind`` payment in ``state``, or None when it may.

    >>> follow_up_refusal(FollowUp.REFUND, "sale", State.DEFERRED_APPROVED)
    'it has not reached the host yet (void it, or forward the queue first)'
    >>> follow_up_refusal(FollowUp.VOID, "sale", State.FORWARDED) is None
    True
    """
    if state in FOLLOW_UPS.get((action, kind), frozenset()):
        return None
    if action is FollowUp.REFUND and kind != "sale":
        return f"it is a {kind}: only a sale can be refunded"
    return _REFUSED_BECAUSE.get(state, f"it is {state.value}")


def customer_paid(sale_amount: int, sale_state: State, refunds: Iterable[tuple[int, State]]) -> int:
    """What the customer has paid for a sale, by the terminal's books.

    The sale's amount if it counts (an approved state), less every refund
    against it that counts; nothing when the sale was voided or reversed.

    >>> customer_paid(500, State.APPROVED, [(300, State.APPROVED), (100, State.FORWARDED)])
    100
    >>> customer_paid(500, State.VOIDED, [])
    0
    """
    charged = sale_amount if sale_state in APPROVED_STATES else 0
    return charged - sum(amount for amount, state in refunds if state in APPROVED_STATES)


def table_markdown() -> str:
    """The transition table as Markdown, as docs/terminal-core.md shows it (checked by a test)."""
    lines = ["| from | event | to | money | effects |", "| --- | --- | --- | --- | --- |"]
    for (state, event), row in TRANSITIONS.items():
        effects = ", ".join(row.effects()) or "-"
        lines.append(f"| {state.value} | {event.value} | {row.to.value} | {row.money.value} | {effects} |")
    return "\n".join(lines)
