"""What the ECR interface knows of a payment: the register's request, and the payment as the screen shows it.

A register names its payment by the ``Idempotency-Key`` it sent: the key is
the payment's id in the interface (``/v1/payments/{key}``).  What the
terminal itself calls the payment (``txn_id``, the receipt number) exists only
once the card was read and the first journal row written; until then the
payment lives only here, in memory.

Statuses, in the order a payment goes through them:

``starting``
    accepted; the card has not been asked for yet;
``waiting_for_card``
    the reader polls ("present card", one light lit);
``processing``
    the card was read (or no card is needed: a refund to the original's card),
    the kernel, the journal and the host are at work;

and one final status:

``approved``
    the terminal's state is one the customer was told "approved" in
    (approved, offline_approved, deferred_approved, forwarded);
``declined``
    by the card, the host, or the host after forwarding;
``not_completed``
    nothing was charged, or what may have been is being reversed: cancelled,
    no card in time, the card read failed, a device or the storage could not
    be used, the host's answer lost (``state`` says ``reversal_pending``);
``refused``
    the terminal's payment rules refused it before anything was charged (a
    refund over what is left, an offline limit, an unknown original); the
    message says why in words;
``voided``
    approved, then voided (void_pending until the host has the reversal).

A final payment may still move: a sale approved offline can be declined by
the issuer when it is forwarded, and any approved payment can be voided.  The
interface reads the journal again when asked, so the status is always the
payment as it stands.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from terminal.facade import PaymentResult
from terminal.lifecycle import State
from terminal.money import Currency, MoneyError, currency, format_amount
from terminal.offline import OfflineBehavior, PaymentRefused
from terminal.store import TxnRow

__all__ = [
    "FINAL_STATUSES",
    "RUNNING_STATUSES",
    "EcrPayment",
    "PaymentRequest",
    "RequestError",
    "status_of",
    "status_of_refusal",
]

STARTING = "starting"
WAITING = "waiting_for_card"
PROCESSING = "processing"
APPROVED = "approved"
DECLINED = "declined"
NOT_COMPLETED = "not_completed"
REFUSED = "refused"
VOIDED = "voided"

RUNNING_STATUSES = (STARTING, WAITING, PROCESSING)
FINAL_STATUSES = (APPROVED, DECLINED, NOT_COMPLETED, REFUSED, VOIDED)

#: EMV Book A reader statuses with the number of the four contactless lights lit, for the
#: stages before the kernel has said anything (emv.outcome.ReaderStatus has the same table).
_READER_STATUS = {STARTING: ("idle", 0), WAITING: ("ready_to_read", 1), PROCESSING: ("processing", 2)}

# PaymentRefused reasons that mean "not completed" (someone or something stopped it) rather than
# "refused by the payment rules": terminal.card_reading's and the facade's device reasons.
_NOT_COMPLETED_REASONS = frozenset(
    {"cancelled", "no_card", "one_card_only", "reader_gone", "reader_error", "no_reader", "storage"}
)
_DECLINED_STATES = frozenset(
    {State.DECLINED, State.DECLINED_AFTER_FORWARDING, State.REJECTED_BY_HOST, State.WALLET_REFUSED}
)
_VOIDED_STATES = frozenset({State.VOIDED, State.VOID_PENDING})
_UNFINISHED_STATES = frozenset({State.STARTED, State.AUTHORISING, State.WALLET_PAYING, State.WALLET_TORN})
_WAITING_READER_STATUSES = frozenset({"ready_to_read", "idle", "not_ready"})
#: How many EMV Book A messages one payment keeps (a card asked for again three times says a dozen).
_MAX_MESSAGES = 32


class RequestError(ValueError):
    """A request that passed the schema but cannot be a payment (the message says why in words)."""


def status_of(result: PaymentResult) -> str:
    """The interface's status of a journalled payment, as it stands."""
    if result.approved:
        return APPROVED
    if result.state in _VOIDED_STATES:
        return VOIDED
    if result.state in _DECLINED_STATES:
        return DECLINED
    if result.state in _UNFINISHED_STATES:
        return PROCESSING
    return NOT_COMPLETED


def status_of_refusal(exc: PaymentRefused) -> str:
    """``not_completed`` for a cancel or a device, ``refused`` for the payment rules."""
    return NOT_COMPLETED if exc.reason in _NOT_COMPLETED_REASONS else REFUSED


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class PaymentRequest:
    """A register's request to start a payment, checked and with its defaults filled in.

    Two requests are the same request when these fields are equal: the
    currency is compared as a currency (``"EUR"``, ``"978"`` and ``978`` are
    one), and a field left out equals its default.
    """

    kind: str
    amount: int
    currency: Currency
    reference: str | None = None
    original_txn_id: str | None = None
    unreferenced: bool = False
    present_card: bool = False
    to_other_card: bool = False
    offline_behavior: OfflineBehavior = OfflineBehavior.PREFER_ONLINE

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> PaymentRequest:
        """The request a schema-valid body asks for; :class:`RequestError` when its parts do not fit together."""
        try:
            cur = currency(body["currency"])
        except MoneyError as exc:
            raise RequestError(f"currency: {exc}") from None
        kind = str(body["kind"])
        original = body.get("original_txn_id")
        unreferenced = bool(body.get("unreferenced", False))
        present_card = bool(body.get("present_card", False))
        to_other_card = bool(body.get("to_other_card", False))
        if kind == "sale" and (original is not None or unreferenced or present_card or to_other_card):
            raise RequestError("a sale takes no original_txn_id, unreferenced, present_card or to_other_card")
        if kind == "refund":
            if original is None and not unreferenced:
                raise RequestError(
                    "say what is refunded: original_txn_id (to the card of that payment), or unreferenced: true "
                    "(to the card presented, with no original payment)"
                )
            if original is not None and unreferenced:
                raise RequestError("give either original_txn_id or unreferenced: true, not both")
            if (present_card or to_other_card) and original is None:
                raise RequestError("present_card and to_other_card go with original_txn_id")
            if to_other_card and not present_card:
                raise RequestError("to_other_card goes with present_card: true (the card presented is the other card)")
        return cls(
            kind=kind,
            amount=int(body["amount"]),
            currency=cur,
            reference=body.get("reference"),
            original_txn_id=original,
            unreferenced=unreferenced,
            present_card=present_card,
            to_other_card=to_other_card,
            offline_behavior=OfflineBehavior(body.get("offline_behavior", "prefer_online")),
        )

    @property
    def needs_card(self) -> bool:
        """A sale, an unreferenced refund, or a refund whose card is to be checked: the reader is used."""
        return self.kind == "sale" or self.original_txn_id is None or self.present_card

    def matches(self, row: TxnRow) -> bool:
        """Whether a journalled payment (found by this request's key after a restart) is what this asks for."""
        return (
            row.kind == self.kind
            and row.amount == self.amount
            and row.currency == self.currency.numeric
            and row.details.get("reference") == self.reference
            and row.original_txn_id == self.original_txn_id
            and row.offline_behavior == self.offline_behavior.value
        )

    @classmethod
    def of_row(cls, row: TxnRow) -> PaymentRequest:
        """What was asked for, as far as the journal tells it (a payment found after a restart)."""
        try:
            cur = currency(row.currency)
        except MoneyError:
            cur = Currency(f"{row.currency:03d}", row.currency, 2)
        try:
            behavior = OfflineBehavior(row.offline_behavior)
        except ValueError:
            behavior = OfflineBehavior.PREFER_ONLINE
        return cls(
            kind=row.kind,
            amount=row.amount,
            currency=cur,
            reference=row.details.get("reference"),
            original_txn_id=row.original_txn_id,
            unreferenced=row.kind == "refund" and row.original_txn_id is None,
            offline_behavior=behavior,
        )

    def describe(self) -> str:
        """``sale 12.34 EUR`` (what a busy answer says is running)."""
        return f"{self.kind} {format_amount(self.amount, self.currency)}"


@dataclass
class EcrPayment:
    """One payment as the interface shows it; changed only under its desk's lock.

    ``key`` is the register's idempotency key (None for a payment the
    interface did not start, found by its ``txn_id``).  ``version`` grows by
    one with every change, so a register can wait for the next one.
    """

    id: str
    key: str | None
    request: PaymentRequest
    status: str = STARTING
    prompt: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    txn_id: str | None = None
    state: str | None = None
    result: PaymentResult | None = None
    reason: str | None = None
    message: str = "starting"
    card_read: bool = False
    cancel_requested: bool = False
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    version: int = 1
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def changed(self) -> None:
        self.version += 1
        self.updated_at = _now()

    def show_prompt(self, prompt: str) -> None:
        """The reader polls for the card (again, after a card taken away too early: nothing was read)."""
        self.status, self.prompt, self.message, self.card_read = WAITING, prompt, prompt, False

    def show_message(self, message: dict[str, Any]) -> None:
        """An EMV Book A message as the kernel and the terminal emit it.

        "Present card" (ready to read) keeps the payment waiting for the
        card; any other says a card is in the field, being read or read.
        """
        if message.get("status") not in _WAITING_READER_STATUSES:
            self.card_read = True
            self.status = PROCESSING
        if len(self.messages) < _MAX_MESSAGES:
            self.messages.append(dict(message))
        self.message = str(message.get("text") or self.message)

    def finish(self, result: PaymentResult) -> None:
        self.result = result
        self.txn_id = result.txn_id
        self.state = result.state.value
        self.status = status_of(result)
        self.message = result.message
        if self.status == DECLINED:
            self.reason = result.response_code or result.state.value
        elif self.status == NOT_COMPLETED:
            self.reason = result.state.value
        else:
            self.reason = None
        if self.status != PROCESSING:
            self.done.set()

    def fail(self, status: str, reason: str, message: str) -> None:
        self.status, self.reason, self.message = status, reason, message
        self.done.set()

    def display(self) -> dict[str, Any]:
        """What the customer's screen shows now: the prompt, the last EMV message, the reader status and lights."""
        last = self.messages[-1] if self.messages else None
        if last is not None:
            reader_status, lights = str(last.get("status")), int(last.get("lights", 0))
        else:
            reader_status, lights = _READER_STATUS.get(self.status, ("idle", 0))
        return {
            "prompt": self.prompt if self.status == WAITING else None,
            "amount": format_amount(self.request.amount, self.request.currency),
            "message": last,
            "reader_status": reader_status,
            "lights": lights,
        }

    def to_json(self, base: str = "/v1/payments") -> dict[str, Any]:
        request = self.request
        link = f"{base}/{self.id}"
        result = self.result.to_json() if self.result is not None else None
        return {
            "id": self.id,
            "idempotency_key": self.key,
            "kind": request.kind,
            "amount": request.amount,
            "currency": request.currency.code,
            "currency_numeric": request.currency.numeric,
            "reference": request.reference,
            "original_txn_id": request.original_txn_id,
            "offline_behavior": request.offline_behavior.value,
            "status": self.status,
            "final": self.final,
            "approved": self.status == APPROVED,
            "message": self.message,
            "reason": self.reason,
            "display": self.display(),
            "messages": list(self.messages),
            "txn_id": self.txn_id,
            "state": self.state,
            "result": result,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
            "links": {
                "self": link,
                "events": f"{link}/events",
                "cancel": f"{link}/cancel",
                "void": f"{link}/void",
                "receipt": f"{link}/receipt",
            },
        }
