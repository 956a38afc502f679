"""QR payments after the fact: the orders left in doubt, refunds to the wallet, voids.

An order is in doubt (``qr_in_doubt``) when the terminal gave up without the
host's last word: the close or cancel could not be sent, an answer was lost,
or the process stopped mid-wait (start-up recovery moves ``qr_pending`` there).
:func:`check_orders` asks the host again, with the same idempotent requests:

- a merchant-presented order is closed (by its order id, or cancelled by its
  reference when the order id never came back): ``paid`` (the app paid while
  the terminal was giving up) is recorded as the sale it is, never lost;
  ``closed`` / ``cancelled`` end it unpaid;
- a wallet code payment is cancelled (a paid one reversed: the customer was
  told "not completed");
- a refund is sent again (the host answers the same refund once);
- a void (``qr_voiding``) sends its cancel again.

It runs with ``posterm qr orders --check``, before every QR sale and before
a settlement (a batch is not closed with an order in doubt).  An order the
host still cannot be asked about stays in doubt, and is listed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from terminal.core import Core
from terminal.host import HostError, HostRejected, HostUnreachable
from terminal.lifecycle import QR_CHECKED_STATES, Event, State
from terminal.offline import PaymentRefused
from terminal.ports import CancelToken
from terminal.qr_link import qr_host_of
from terminal.qr_payment import NEED_HOST, QrOptions, QrPayments, qr_result, reason_words
from terminal.results import PaymentResult
from terminal.store import TxnRow

__all__ = [
    "Checked",
    "before_settling",
    "check_orders",
    "is_qr",
    "qr_flow",
    "refund_to_wallet",
    "void_answer",
    "void_at_host",
]


def qr_flow(
    core: Core,
    new_id: Callable[[], tuple[str, str]],
    *,
    options: QrOptions | None = None,
    token: CancelToken | None = None,
) -> QrPayments:
    """The QR flows over the terminal's host link (``new_id``: the payments' transaction ids);
    PaymentRefused ``host_unreachable`` without one."""
    qr = qr_host_of(core.host, core.config.terminal_id, core.config.merchant_id)
    if qr is None:
        raise PaymentRefused("host_unreachable", f"{NEED_HOST} (no host link)")
    return QrPayments(core, qr, new_id, options=options, token=token)


def before_settling(core: Core, new_id: Callable[[], tuple[str, str]]) -> None:
    """Ask the host about the QR payments in doubt before a settlement (one still in doubt refuses it)."""
    if core.store.list_transactions(states=sorted(QR_CHECKED_STATES | {State.QR_PENDING}, key=lambda s: s.value)):
        with contextlib.suppress(PaymentRefused):
            check_orders(qr_flow(core, new_id))


def is_qr(row: TxnRow) -> bool:
    """Whether a journalled payment is a QR payment (its details name the mode)."""
    return row.details.get("qr_mode") is not None


@dataclass(frozen=True)
class Checked:
    """One order asked about: its state now, what it means, and whether it is still in doubt."""

    txn_id: str
    state: State
    message: str
    in_doubt: bool


def _one(flow: QrPayments, row: TxnRow) -> PaymentResult:
    qr, ref = flow.qr, str(row.details.get("qr_reference") or row.txn_id)
    if row.state is State.QR_VOIDING:
        return void_answer(flow, row.txn_id)
    if row.kind == "refund":
        original = flow.core.store.get(row.original_txn_id or "")
        if original is None:  # pragma: no cover - a refund is made against a journalled sale
            raise HostRejected(f"the original of {row.txn_id} is not in the journal")
        return _refund_answer(flow, row.txn_id, original, ref)
    order_id = row.details.get("qr_order_id")
    if row.details.get("qr_mode") == "mpm" and order_id:
        answer = qr.close_order(str(order_id))
        return flow.final(row.txn_id, answer, "given up earlier")
    answer = qr.cancel(ref, row.amount, row.currency)
    return flow.final(row.txn_id, answer, "" if answer.status == "paid" else "given up earlier")


def check_orders(flow: QrPayments) -> list[Checked]:
    """Ask the host about every QR payment in doubt (see the module docstring)."""
    out = []
    for row in flow.core.store.list_transactions(states=sorted(QR_CHECKED_STATES, key=lambda s: s.value)):
        try:
            result = _one(flow, row)
        except HostError as exc:
            out.append(Checked(row.txn_id, row.state, f"still in doubt: {exc}", True))
            continue
        flow.core.emit("qr_checked", row.txn_id, state=result.state.value, message=result.message)
        out.append(Checked(row.txn_id, result.state, result.message, result.state in QR_CHECKED_STATES))
    return out


def _refund_answer(flow: QrPayments, txn_id: str, original: TxnRow, ref: str) -> PaymentResult:
    original_ref = str(original.details.get("qr_reference") or original.txn_id)
    row = flow.core.store.get(txn_id)
    assert row is not None
    answer = flow.qr.refund(ref, original_ref, row.amount, row.currency)
    if answer.approved:
        flow.core.record(txn_id, Event.QR_PAID, {"status": "approved", "refunded_total": answer.refunded_total},
                         details={"host_reference": answer.host_reference})  # fmt: skip
        return qr_result(flow.core, txn_id, "refunded to the wallet")
    flow.core.record(txn_id, Event.QR_DECLINED, {"status": "declined", "reason": answer.reason},
                     details={"refusal": answer.reason})  # fmt: skip
    return qr_result(flow.core, txn_id, f"declined: {reason_words(answer.reason)}")


def refund_to_wallet(flow: QrPayments, original: TxnRow, amount: int) -> PaymentResult:
    """Refund ``amount`` of a QR sale to the wallet that paid it (the caller checked the money rule)."""
    txn_id = flow.intent(
        "refund", amount, original.currency,
        {"qr_mode": "refund", "qr_reference": None, "application_label": original.details.get("application_label")},
        scheme=original.scheme,
        original=original.txn_id,
    )  # fmt: skip
    try:
        return _refund_answer(flow, txn_id, original, txn_id)
    except (HostUnreachable, HostRejected) as exc:
        return flow.not_sent(txn_id, exc)
    except HostError as exc:
        return flow.gave_up(txn_id, "no answer from the host", exc)


def void_answer(flow: QrPayments, txn_id: str) -> PaymentResult:
    row = flow.core.store.get(txn_id)
    assert row is not None
    answer = flow.qr.cancel(str(row.details.get("qr_reference") or txn_id), row.amount, row.currency)
    if answer.status == "reversed":
        flow.core.record(txn_id, Event.QR_REVERSED, {"status": answer.status, "void": True})
        return qr_result(flow.core, txn_id, "voided: the wallet was paid back")
    flow.core.record(txn_id, Event.QR_PAID, {"status": answer.status, "reason": answer.reason})
    return qr_result(flow.core, txn_id, f"not voided: {reason_words(answer.reason)}")


def void_at_host(flow: QrPayments, row: TxnRow) -> PaymentResult:
    """Void a QR sale of the open batch: cancelled at the host, which pays the wallet back."""
    flow.core.record(row.txn_id, Event.QR_VOID, {"void": True})
    try:
        return void_answer(flow, row.txn_id)
    except (HostUnreachable, HostRejected) as exc:
        flow.core.record(row.txn_id, Event.QR_NOT_SENT, {"error": str(exc)})
        return qr_result(flow.core, row.txn_id, f"not voided: {NEED_HOST.split(':')[0]} ({exc})")
    except HostError as exc:
        return qr_result(
            flow.core, row.txn_id,
            f"voided, but the host did not answer ({exc}): 'posterm qr orders --check' asks it again",
        )  # fmt: skip
