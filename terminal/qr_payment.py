"""QR payments at the terminal: the code the terminal shows, the wallet code it scans (issue 13).

Both are online only (a QR payment has no offline approval: without the host
the terminal says "QR payments need the host: not taken" and nothing is
stored as approved).  Every request is idempotent through the terminal's own
order reference, so a lost answer is asked about again, never sent as new.
The states and their effects are rows of :mod:`terminal.lifecycle`
(``qr_intent`` ... ``qr_gave_up``); the intent is journalled before the first
request (write-ahead), as a card's authorisation is.

Merchant-presented (:meth:`QrPayments.show_order`)
    ``create_order`` at the host; the dynamic MPM code (point of initiation
    12, the order's merchant account templates, 62/05 the reference, 62/07
    the terminal id) goes to ``show``; then "waiting for the customer": long
    polls (``query_order(wait=...)``), with a growing pause after a failed
    poll (1, 2, 4, 8 s), until the order is paid or the time-out (default
    120 s), a cancel (the facade's, or Ctrl-C) stops the wait: the order is
    then closed at the host.  A close answered ``paid`` (the app paid first)
    is a sale.  A close that cannot be sent leaves the payment ``qr_in_doubt``:
    :mod:`terminal.qr_check` closes it later and records it if the app paid.

Consumer-presented wallet code (:meth:`QrPayments.pay_with_code`)
    ``pay_by_code`` with the 18-digit code: ``paid`` approves, ``declined``
    declines with the reason in words, ``user_paying`` ("the customer is
    confirming in the app") is queried every few seconds up to its limit
    (default 60 s).  A lost answer is resolved by a query; still unknown, or
    still confirming at the limit, the payment is cancelled at the host (a
    paid one is reversed), so that nobody is charged without a recorded sale.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from terminal.core import Core
from terminal.host import HostError, HostNoAnswer, HostRejected, HostUnreachable
from terminal.lifecycle import Event
from terminal.ports import CancelToken
from terminal.qr_link import QrAnswer, QrHost
from terminal.results import PaymentResult
from terminal.store import NewPayment, StorageError

__all__ = [
    "NEED_HOST",
    "REASON_WORDS",
    "WALLET_PREFIXES",
    "QrOptions",
    "QrPayments",
    "Show",
    "mask_code",
    "qr_result",
    "reason_words",
    "with_templates",
]

#: What the cashier is told when a QR payment meets no host.
NEED_HOST: Final = "QR payments need the host: not taken"

#: The wallets of posterm's simulated host by the first two digits of their codes (its own ranges, no real
#: wallet's): only to name the wallet before the host answers.  Any 18-digit code goes to the host.
WALLET_PREFIXES: Final = {"91": "simpay", "92": "simchat", "93": "simdc"}

#: The host's and the wallets' reasons, in the words the cashier needs.
REASON_WORDS: Final = {
    "unknown_code": "the wallet does not know this code: ask the customer to show a new one",
    "expired_code": "the code has expired: ask the customer to refresh it in the app",
    "code_used": "this code was used already: ask the customer to refresh it in the app",
    "insufficient_balance": "not enough money in the wallet",
    "wallet_declined": "the wallet declined the payment",
    "user_declined": "the customer declined in the app",
    "order_cancelled": "the payment was cancelled before it was made",
    "has_refunds": "refunds were made against it: refund the rest instead",
    "already_settled": "its batch is settled: refund it instead",
    "original_not_found": "the host does not know the original payment",
    "original_not_paid": "the original payment was not paid",
    "currency_differs": "the refund is in another currency than the payment",
    "refund_exceeds_payment": "more than was paid would go back",
    "host_refused": "the host refused the message",
}


def reason_words(reason: str | None) -> str:
    return REASON_WORDS.get(reason or "", reason or "declined")


def mask_code(code: str) -> str:
    """A wallet code as the journal keeps it: its wallet's prefix and last 4 digits (it is a bearer token).

    >>> mask_code("912345678901234567")
    '91************4567'
    """
    return code[:2] + "*" * (len(code) - 6) + code[-4:]


@dataclass(frozen=True)
class QrOptions:
    """How long a QR payment waits.  ``timeout``: a merchant-presented code is shown (seconds);
    ``confirm_limit``: a customer may confirm in the app; ``poll``: one long poll (at most 30);
    ``confirm_poll``: one query while the customer confirms ("every few seconds")."""

    timeout: float = 120.0
    confirm_limit: float = 60.0
    poll: int = 5  # (a cancel is seen between two polls)
    confirm_poll: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.timeout <= 3600 or not 0 < self.confirm_limit <= 600:
            raise ValueError("a QR time-out is more than 0 s, at most an hour (confirmation: 10 minutes)")
        if not 1 <= self.poll <= 30 or not 1 <= self.confirm_poll <= 30:
            raise ValueError("a long poll is 1 to 30 seconds")


def qr_result(core: Core, txn_id: str, message: str) -> PaymentResult:
    """The result of a QR payment as the journal has it now."""
    row = core.store.get(txn_id)
    if row is None:  # pragma: no cover - recorded just before
        raise StorageError(f"transaction {txn_id} vanished")
    return PaymentResult.from_row(row, message, kernel="qr")


#: A callback that shows a merchant-presented code: (transaction id, payload).
Show = Callable[[str, str], None]


class QrPayments:
    """One QR payment's flows on a terminal's core; callers hold the terminal's lock."""

    def __init__(
        self,
        core: Core,
        qr: QrHost,
        new_id: Callable[[], tuple[str, str]],
        *,
        options: QrOptions | None = None,
        token: CancelToken | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self.qr = qr
        self.new_id = new_id
        self.options = options or QrOptions()
        self.token = token or CancelToken()
        self.monotonic = monotonic

    # -- journal ----------------------------------------------------------------------------------

    def intent(self, kind: str, amount: int, code: int, details: dict[str, Any], *, scheme: str = "qr",
                original: str | None = None, request_key: str | None = None,
                reference: str | None = None) -> str:  # fmt: skip
        txn_id, at = self.new_id()
        if "qr_reference" in details and details["qr_reference"] is None:
            details = details | {"qr_reference": txn_id}  # a code payment's reference is its transaction id
        new = NewPayment(txn_id, kind, amount, code, scheme, "require_online", original,
                         request_key=request_key, reference=reference)  # fmt: skip
        self.core.record(txn_id, Event.QR_INTENT, {"amount": amount, "currency": code, **details}, at=at, new=new,
                         details=details)  # fmt: skip
        return txn_id

    def _say(self, txn_id: str, message: str, **data: Any) -> None:
        self.core.emit("qr_status", txn_id, message=message, **data)

    def final(self, txn_id: str, answer: QrAnswer, why: str = "") -> PaymentResult:
        """Record a final answer of the host about an order (paid, declined, closed, cancelled, reversed)."""
        core, status = self.core, answer.status
        about = f" ({why})" if why else ""
        if status == "paid":
            label = f"QR {answer.wallet.upper()}" if answer.wallet else "QR WALLET"  # what the receipt shows
            details = {"host_reference": answer.host_reference, "wallet": answer.wallet, "application_label": label}
            core.record(txn_id, Event.QR_PAID, {"status": status, "wallet": answer.wallet}, details=details,
                        scheme=answer.scheme or "qr")  # fmt: skip
            late = "; the customer paid just before the order was closed" if why else ""
            return qr_result(core, txn_id, f"approved: paid with {answer.wallet or 'the wallet'} (host reference "
                             f"{answer.host_reference}){late}")  # fmt: skip
        if status == "declined":
            core.record(txn_id, Event.QR_DECLINED, {"status": status, "reason": answer.reason},
                        details={"refusal": answer.reason})  # fmt: skip
            return qr_result(core, txn_id, f"declined: {reason_words(answer.reason)}")
        if status == "reversed":
            core.record(txn_id, Event.QR_REVERSED, {"status": status, "why": why})
            return qr_result(core, txn_id, f"not completed{about}: cancelled at the host, the wallet was paid back")
        if status in ("closed", "cancelled", "unknown"):
            core.record(txn_id, Event.QR_CLOSED, {"status": status, "why": why})
            return qr_result(core, txn_id, f"not completed{about}: the order is closed at the host, nothing is "
                             "charged")  # fmt: skip
        raise StorageError(f"QR order of {txn_id} is {status}: not a final answer")  # pragma: no cover

    def not_sent(self, txn_id: str, exc: HostError) -> PaymentResult:
        if isinstance(exc, HostRejected):
            self.core.record(txn_id, Event.QR_DECLINED, {"error": str(exc)}, details={"refusal": "host_refused"})
            return qr_result(self.core, txn_id, f"declined: the host refused the message ({exc})")
        self.core.host_failed(exc)
        self.core.record(txn_id, Event.QR_NOT_SENT, {"error": str(exc)}, details={"refusal": "host_unreachable"})
        return qr_result(self.core, txn_id, f"declined: {NEED_HOST} ({exc})")

    def gave_up(self, txn_id: str, why: str, exc: HostError) -> PaymentResult:
        self.core.record(txn_id, Event.QR_GAVE_UP, {"why": why, "error": str(exc)})
        return qr_result(
            self.core, txn_id,
            f"not completed ({why}); the host could not be told ({exc}): 'posterm qr orders --check' settles it "
            "with the host (a payment the customer made is then recorded or paid back; nothing is lost)",
        )  # fmt: skip

    # -- consumer-presented: a wallet's payment code ----------------------------------------------

    def pay_with_code(
        self, amount: int, code: int, payment_code: str, *, request_key: str | None = None,
        reference: str | None = None,
    ) -> PaymentResult:  # fmt: skip
        """Charge ``amount`` to the wallet whose 18-digit payment code was scanned (checked by the caller)."""
        wallet = WALLET_PREFIXES.get(payment_code[:2])
        # The transaction id is the order's reference: unique, and at most 64 of [A-Za-z0-9-].
        details = {"qr_mode": "code", "qr_reference": None, "code": mask_code(payment_code), "wallet": wallet}
        txn_id = self.intent("sale", amount, code, details, request_key=request_key, reference=reference)
        ref = txn_id
        try:
            answer = self.qr.pay_by_code(ref, amount, code, payment_code)
        except (HostUnreachable, HostRejected) as exc:
            return self.not_sent(txn_id, exc)
        except HostNoAnswer:
            found = self._query(ref)
            if found is None or found.status == "unknown":
                return self.cancel(txn_id, "no answer from the host")
            answer = found
        deadline = self.monotonic() + self.options.confirm_limit
        while answer.status in ("user_paying", "pending"):
            self._say(txn_id, "customer is confirming in the app")
            left = deadline - self.monotonic()
            if self.token.cancelled or left <= 0:
                why = "cancelled" if self.token.cancelled else "the customer did not confirm in time"
                return self.cancel(txn_id, why)
            try:
                answer = self.qr.query(ref, wait=max(1, min(self.options.confirm_poll, int(left))))
            except HostError:
                self.token.wait(min(self.options.confirm_poll, max(left, 0)))  # asked again until the limit
            except KeyboardInterrupt:
                return self.cancel(txn_id, "cancelled")
        if answer.status == "unknown":
            return self.cancel(txn_id, "the host has no record of the payment")
        return self.final(txn_id, answer)

    def _query(self, ref: str) -> QrAnswer | None:
        try:
            return self.qr.query(ref)
        except HostError:
            return None

    def cancel(self, txn_id: str, why: str) -> PaymentResult:
        """Cancel the order of ``txn_id`` at the host (a paid one is reversed); in doubt when it cannot be sent."""
        row = self.core.store.get(txn_id)
        assert row is not None
        ref = str(row.details.get("qr_reference") or txn_id)
        try:
            answer = self.qr.cancel(ref, row.amount, row.currency)
        except HostError as exc:
            return self.gave_up(txn_id, why, exc)
        if answer.status == "paid":  # the host refused the cancel: the payment stands, and is recorded
            return self.final(txn_id, answer)
        return self.final(txn_id, answer, why)

    # -- merchant-presented: the terminal's code ---------------------------------------------------

    def show_order(
        self, amount: int, code: int, payload_of: Callable[[Any], str], show: Show, *,
        request_key: str | None = None, reference: str | None = None,
    ) -> PaymentResult:  # fmt: skip
        """Make the order, show its code (``payload_of(order)``), wait for the app, close it when given up."""
        from terminal.qr_merchant import new_reference

        ref = new_reference(self.core.clock.now())
        txn_id = self.intent("sale", amount, code, {"qr_mode": "mpm", "qr_reference": ref},
                              request_key=request_key, reference=reference)  # fmt: skip
        try:
            order = self.qr.create_order(ref, amount, code)
        except (HostUnreachable, HostRejected) as exc:
            return self.not_sent(txn_id, exc)
        except HostNoAnswer:
            return self.cancel(txn_id, "no answer from the host when the order was made")
        self.core.record(txn_id, Event.QR_ORDER_CREATED, {"order_id": order.order_id},
                         details={"qr_order_id": order.order_id})  # fmt: skip
        try:  # from here on a Ctrl-C closes the order, wherever it lands
            payload = payload_of(order)
            show(txn_id, payload)
            self._say(txn_id, "waiting for the customer", payload=payload, order_id=order.order_id,
                      timeout=self.options.timeout)  # fmt: skip
            return self._wait_for_app(txn_id, order.order_id, order.payment)
        except KeyboardInterrupt:
            return self.close(txn_id, order.order_id, "cancelled")

    def _wait_for_app(self, txn_id: str, order_id: str, answer: QrAnswer) -> PaymentResult:
        deadline = self.monotonic() + self.options.timeout
        pause = 1.0
        why = ""
        while not answer.final:
            left = deadline - self.monotonic()
            if self.token.cancelled or left <= 0:
                why = "cancelled" if self.token.cancelled else "not paid in time"
                break
            try:
                if left < 1:
                    self.token.wait(left)
                    continue
                answer = self.qr.query_order(order_id, wait=min(self.options.poll, int(left)))
                pause = 1.0
            except HostError:
                self.token.wait(min(pause, left))  # the host is away for now: ask again, less and less often
                pause = min(pause * 2, 8.0)
            except KeyboardInterrupt:
                why = "cancelled"
                break
        if answer.final:
            return self.final(txn_id, answer)
        return self.close(txn_id, order_id, why)

    def close(self, txn_id: str, order_id: str, why: str) -> PaymentResult:
        """Close the order at the host: never charged afterwards; ``paid`` means the app won the race."""
        try:
            answer = self.qr.close_order(order_id)
        except HostError as exc:
            return self.gave_up(txn_id, why, exc)
        except KeyboardInterrupt:
            return self.gave_up(txn_id, why, HostNoAnswer("interrupted while closing the order"))
        if not answer.final:  # pragma: no cover - a close always ends an order
            return self.gave_up(txn_id, why, HostNoAnswer(f"the close left the order {answer.status}"))
        return self.final(txn_id, answer, why)


def with_templates(qr: Any, order: Any) -> Any:
    """The terminal's QR merchant data with the order's merchant account templates and terminal label."""
    from emv.qr_mpm import Template

    templates = tuple(
        Template(ident, fields["00"], tuple((k, v) for k, v in fields.items() if k != "00"))
        for ident, fields in order.templates.items()
        if "00" in fields
    )
    return replace(qr, templates=templates or qr.templates, terminal_id=order.terminal_label or qr.terminal_id)
