"""The simulated host's wallet side: QR payments by code, merchant-presented orders, refunds, the apps.

Wallets and their codes
-----------------------
The simulator has three wallets of its own; a payment code is 18 digits whose
first two name the wallet. These prefixes are **posterm's simulator's own**,
chosen not to be the ranges of any real wallet (real wallet codes must never
reach this host, and a simulated code must never look like a real one):

=======  =========  ============================================
prefix   wallet     what it stands for
=======  =========  ============================================
``91``   simpay     a commercial wallet
``92``   simchat    another commercial wallet
``93``   simdc      the digital-currency wallet app
=======  =========  ============================================

The other 16 digits are random. A code is single-use and valid
:data:`CODE_TTL` (60 s) from when the app shows it
(``posterm sim wallet code --account A``); the host keeps its keyed digest,
never the code. Seeded accounts (migration 9): ``alice`` (simpay),
``bob`` (simchat), ``dora`` (simdc), each with a balance in EUR (978) and CNY
(156), and ``empty`` (simpay, nothing).

Orders
------
Every QR payment of a terminal is an order, found by the terminal's own
reference (unique per terminal) or the host's order id. Its states and what
moves them (:data:`TRANSITIONS`):

==============  ==================  ===============  ==========================================
from            event               to               effect
==============  ==================  ===============  ==========================================
(none)          code paid           ``paid``         the account is debited
(none)          code, confirm mode  ``user_paying``  the customer confirms in the app
(none)          code refused        ``declined``     (reason: unknown, expired, used code, ...)
(none)          cancel              ``cancelled``    a tombstone: a later payment is refused
(none)          order created       ``pending``      merchant-presented, waits for an app
``user_paying`` app confirms        ``paid``         the account is debited
``user_paying`` app declines        ``declined``
``user_paying`` cancel              ``cancelled``
``pending``     app pays            ``paid``         the account is debited
``pending``     terminal closes     ``closed``       never charged afterwards
``pending``     cancel              ``cancelled``
``paid``        cancel              ``reversed``     the account is credited (before settlement,
                                                     without refunds)
==============  ==================  ===============  ==========================================

Anything else changes nothing and answers the order as it is: a close of a
paid order says ``paid`` (the app won the race; the terminal records the
sale), a second cancel says what the first did. Every move is one
conditional statement (:meth:`~simulator.host.store_wallet.WalletTables.move_order`)
taken under the order's terminal lock, the same lock the terminal's own
requests and its batch close take: an app's payment and the terminal's close
of one order are serialised, and the loser learns the winner's state.

Refunds go back to the account that paid, at most what was paid in all
(the refunds' own references make them idempotent). Paid orders and refunds
count in the host batch open when they happened, per wallet as the scheme
``qr-<wallet>``; a cancel after that batch was closed is refused (refund
instead).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import replace
from typing import Any, Final

from simulator.host.rules import Refused
from simulator.host.store import HostStore
from simulator.host.store_wallet import QrOrder, QrRefund

__all__ = [
    "CODE_DIGITS",
    "CODE_TTL",
    "MODES",
    "ORDER_TTL",
    "TRANSITIONS",
    "WAITING_STATES",
    "WALLET_GUI",
    "WALLET_PREFIXES",
    "AppRefused",
    "NotFound",
    "ReferenceConflict",
    "Unknown",
    "WalletDesk",
    "app_pay",
    "confirm",
    "issue_code",
    "order_answer",
    "wallet_of",
]

#: The simulator's wallets by the prefix of their codes (posterm's own ranges, not real wallets').
WALLET_PREFIXES: Final = {"91": "simpay", "92": "simchat", "93": "simdc"}
CODE_DIGITS: Final = 18
CODE_TTL: Final = dt.timedelta(seconds=60)
#: How long a merchant-presented order may be paid after it was created.
ORDER_TTL: Final = dt.timedelta(minutes=10)
#: How the wallets answer a code payment (``posterm host wallet mode``).
MODES: Final = ("normal", "confirm", "decline")
#: The globally unique identifier of the simulated acquirer's wallet template (ID 26) in an MPM code.
WALLET_GUI: Final = "org.posterm.wallet"
#: The states in which an order may still change by itself (the app): a long poll waits while in them.
WAITING_STATES: Final = frozenset({"pending", "user_paying"})

#: (state before, event) -> state after; ``None`` before: no order yet.
TRANSITIONS: Final[dict[tuple[str | None, str], str]] = {
    (None, "code_paid"): "paid",
    (None, "code_confirm"): "user_paying",
    (None, "code_refused"): "declined",
    (None, "cancel"): "cancelled",
    (None, "create"): "pending",
    ("user_paying", "app_confirm"): "paid",
    ("user_paying", "app_decline"): "declined",
    ("user_paying", "cancel"): "cancelled",
    ("pending", "app_pay"): "paid",
    ("pending", "close"): "closed",
    ("pending", "cancel"): "cancelled",
    ("paid", "cancel"): "reversed",
}


def _from(event: str) -> tuple[str, ...]:
    """The states ``event`` moves an order from."""
    return tuple(s for (s, e) in TRANSITIONS if e == event and s is not None)


class NotFound(Refused):
    """No such order of this terminal (404)."""

    status = 404
    error = "not_found"


class ReferenceConflict(Refused):
    """A terminal's reference used before for another order or refund (another amount, currency, kind): 409.

    A reference is the terminal's idempotency handle on its order: reused with
    other content it is refused as a reused idempotency key is, nothing done.
    """

    status = 409
    error = "idempotency_conflict"


class AppRefused(ValueError):
    """A wallet app's action refused (one line: unknown account or order, closed order, no balance)."""


class Unknown(AppRefused):
    """The app named an order or an account the host does not know (or a code that names no order)."""


def _stamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).isoformat(timespec="microseconds")


def wallet_of(code: str) -> str | None:
    """The wallet whose code this is (by its prefix), or None; ``code`` must be 18 digits.

    >>> wallet_of("930000000000000042"), wallet_of("100000000000000042"), wallet_of("9300")
    ('simdc', None, None)
    """
    if len(code) != CODE_DIGITS or not (code.isascii() and code.isdigit()):
        return None
    return WALLET_PREFIXES.get(code[:2])


def _code_hash(store: HostStore, code: str) -> str:
    return store.digest(f"wallet-code:{code}")


def _new_order_id(store: HostStore) -> str:
    """``Q`` and the host's sequence, then 6 random hex digits (an order id is in a code anyone may scan)."""
    return f"{store.next_reference('qr_order')}{secrets.token_hex(3).upper()}"


def _host_reference(store: HostStore) -> str:
    return store.next_reference("qr")


def order_answer(order: QrOrder | None, reference: str | None = None) -> dict[str, Any]:
    """The protocol's ``QrPayment`` of an order (``status: unknown`` for none)."""
    if order is None:
        return {
            "order_id": None, "reference": reference, "mode": None, "status": "unknown", "reason": None,
            "wallet": None, "amount": None, "currency": None, "refunded": 0, "host_reference": None,
            "paid_at": None,
        }  # fmt: skip
    return {
        "order_id": order.order_id,
        "reference": order.reference,
        "mode": order.mode,
        "status": order.state,
        "reason": order.reason,
        "wallet": order.wallet,
        "amount": order.amount,
        "currency": order.currency,
        "refunded": order.refunded,
        "host_reference": order.host_reference,
        "paid_at": order.paid_at,
    }


def _mpm_data(order: QrOrder) -> dict[str, Any]:
    """What the terminal puts in its dynamic MPM code for this order."""
    return {
        "templates": {"26": {"00": WALLET_GUI, "01": order.merchant_id, "02": order.order_id}},
        "reference_label": order.reference,
        "terminal_label": order.terminal_id,
    }


class WalletDesk:
    """The terminal's QR messages at the host, processed inside the acquirer's transaction.

    Each method is called by :class:`simulator.host.acquirer.Acquirer` with
    the terminal's lock held and the idempotency cache checked, and returns
    the answer's JSON object; :class:`ReferenceConflict` or :class:`NotFound`
    refuse the message as a whole (nothing stored).
    """

    def __init__(self, store: HostStore) -> None:
        self.store = store

    # ------------------------------------------------------------------ consumer-presented codes

    def pay_by_code(
        self, body: dict[str, Any], merchant_id: str, terminal_id: str, now: dt.datetime
    ) -> dict[str, Any]:
        store, at = self.store, _stamp(now)
        reference, code = body["reference"], body["code"]
        code_hash = _code_hash(store, code)
        existing = store.qr_order_by_reference(merchant_id, terminal_id, reference)
        if existing is not None:
            if existing.state == "cancelled":
                return {**order_answer(existing), "status": "declined", "reason": "order_cancelled"}
            if (existing.mode, existing.amount, existing.currency) == ("code", body["amount"], body["currency"]):
                return order_answer(existing)  # a reference is one payment: its outcome, whatever code came again
            raise ReferenceConflict(f"reference {reference} is another order's: give each payment its own reference")
        order = QrOrder(
            order_id=_new_order_id(store), merchant_id=merchant_id, terminal_id=terminal_id, reference=reference,
            mode="code", state="declined", reason=None, wallet=wallet_of(code), account=None, code_hash=None,
            amount=body["amount"], currency=body["currency"], refunded=0, batch=None,
            host_reference=_host_reference(store), created_at=at, updated_at=at, paid_at=None, expires_at=None,
        )  # fmt: skip
        known = store.wallet_code(code_hash) if order.wallet is not None else None
        reason = None
        if known is None:
            reason = "unknown_code"
        elif known.expires_at < at:
            reason = "expired_code"
        elif known.order_id is not None or not store.claim_code(code_hash, order.order_id):
            reason = "code_used"
        if reason is not None:
            order = replace(order, state=TRANSITIONS[(None, "code_refused")], reason=reason)
            store.add_order(order)
            return order_answer(order)
        assert known is not None
        order = replace(order, account=known.account, wallet=known.wallet, code_hash=code_hash)
        mode = store.wallet_mode()
        if mode == "decline":
            order = replace(order, state=TRANSITIONS[(None, "code_refused")], reason="wallet_declined")
        elif mode == "confirm":
            order = replace(order, state=TRANSITIONS[(None, "code_confirm")])
        elif store.debit(known.account, order.currency, order.amount, at):
            batch = store.batch_number(merchant_id, terminal_id)
            order = replace(order, state=TRANSITIONS[(None, "code_paid")], batch=batch, paid_at=at)
        else:
            order = replace(order, state=TRANSITIONS[(None, "code_refused")], reason="insufficient_balance")
        store.add_order(order)
        return order_answer(order)

    def cancel(self, body: dict[str, Any], merchant_id: str, terminal_id: str, now: dt.datetime) -> dict[str, Any]:
        """Cancel or reverse the order of ``reference``; an unknown one is cancelled before it comes."""
        store, at = self.store, _stamp(now)
        reference = body["reference"]
        order = store.qr_order_by_reference(merchant_id, terminal_id, reference)
        if order is None:
            order = QrOrder(
                order_id=_new_order_id(store), merchant_id=merchant_id, terminal_id=terminal_id,
                reference=reference, mode="code", state=TRANSITIONS[(None, "cancel")],
                reason="cancelled_before_payment", wallet=None, account=None, code_hash=None,
                amount=body["amount"], currency=body["currency"], refunded=0, batch=None,
                host_reference=_host_reference(store), created_at=at, updated_at=at, paid_at=None, expires_at=None,
            )  # fmt: skip
            store.add_order(order)
            return order_answer(order)
        if (order.amount, order.currency) != (body["amount"], body["currency"]):
            raise ReferenceConflict(
                f"the cancel names {body['amount']} in {body['currency']}, order {reference} is {order.amount} "
                f"in {order.currency}: nothing cancelled"
            )
        if order.state == "paid":
            if order.refunded:
                return {**order_answer(order), "reason": "has_refunds"}
            if order.batch != store.batch_number(merchant_id, terminal_id):
                return {**order_answer(order), "reason": "already_settled"}
            assert order.account is not None
            if store.move_order(order.order_id, ("paid",), TRANSITIONS[("paid", "cancel")], at):
                store.credit(order.account, order.currency, order.amount, at)
        elif order.state in _from("cancel"):
            store.move_order(order.order_id, (order.state,), TRANSITIONS[(order.state, "cancel")], at)
        return order_answer(store.qr_order(order.order_id))

    # ------------------------------------------------------------------ merchant-presented orders

    def create_order(
        self, body: dict[str, Any], merchant_id: str, terminal_id: str, now: dt.datetime
    ) -> dict[str, Any]:
        store, at = self.store, _stamp(now)
        reference = body["reference"]
        order = store.qr_order_by_reference(merchant_id, terminal_id, reference)
        if order is not None:
            if (order.mode, order.amount, order.currency) != ("mpm", body["amount"], body["currency"]):
                raise ReferenceConflict(f"reference {reference} is another order's: give each order its own reference")
        else:
            order = QrOrder(
                order_id=_new_order_id(store), merchant_id=merchant_id, terminal_id=terminal_id, reference=reference,
                mode="mpm", state=TRANSITIONS[(None, "create")], reason=None, wallet=None, account=None,
                code_hash=None, amount=body["amount"], currency=body["currency"], refunded=0, batch=None,
                host_reference=_host_reference(store), created_at=at, updated_at=at, paid_at=None,
                expires_at=_stamp(now + ORDER_TTL),
            )  # fmt: skip
            store.add_order(order)
        return {**order_answer(order), "expires_at": order.expires_at, "mpm": _mpm_data(order)}

    def close_order(
        self, body: dict[str, Any], merchant_id: str, terminal_id: str, now: dt.datetime
    ) -> dict[str, Any]:
        """Close a pending order (never charged afterwards); a paid one is answered ``paid``."""
        order = self.own_order(body["order_id"], merchant_id, terminal_id)
        if order.state in _from("close"):
            self.store.move_order(order.order_id, _from("close"), TRANSITIONS[(order.state, "close")], _stamp(now))
        return order_answer(self.store.qr_order(order.order_id))

    def query(self, reference: str, merchant_id: str, terminal_id: str) -> dict[str, Any]:
        """The order of the terminal's ``reference`` as it is now (``status: unknown`` when there is none)."""
        return order_answer(self.store.qr_order_by_reference(merchant_id, terminal_id, reference), reference)

    def own_order(self, order_id: str, merchant_id: str, terminal_id: str) -> QrOrder:
        """The order ``order_id`` of this terminal, else :class:`NotFound` (another's is not shown)."""
        order = self.store.qr_order(order_id)
        if order is None or (order.merchant_id, order.terminal_id) != (merchant_id, terminal_id):
            raise NotFound(f"no QR order {order_id} of this terminal")
        return order

    # ------------------------------------------------------------------ refunds

    def refund(self, body: dict[str, Any], merchant_id: str, terminal_id: str, now: dt.datetime) -> dict[str, Any]:
        store, at = self.store, _stamp(now)
        refund_reference, original = body["refund_reference"], body["original_reference"]
        done = store.qr_refund(merchant_id, terminal_id, refund_reference)
        order = store.qr_order_by_reference(merchant_id, terminal_id, original)
        if done is not None:
            if order is None or (done.order_id, done.amount, done.currency) != (
                order.order_id,
                body["amount"],
                body["currency"],
            ):
                raise ReferenceConflict(f"refund reference {refund_reference} is another refund's")
            return self._refund_answer(body, "approved", None, order.refunded, done.host_reference)
        reason = None
        if order is None:
            reason = "original_not_found"
        elif order.state != "paid":
            reason = "original_not_paid"
        elif order.currency != body["currency"]:
            reason = "currency_differs"
        elif not store.add_to_refunded(order.order_id, body["amount"], at):
            reason = "refund_exceeds_payment"
        if reason is not None or order is None:
            refunded = order.refunded if order is not None else 0
            return self._refund_answer(body, "declined", reason, refunded, _host_reference(store))
        assert order.account is not None and order.wallet is not None
        store.credit(order.account, order.currency, body["amount"], at)
        reference = _host_reference(store)
        store.add_qr_refund(
            QrRefund(
                merchant_id, terminal_id, refund_reference, order.order_id, body["amount"], body["currency"],
                order.wallet, store.batch_number(merchant_id, terminal_id), reference, at,
            )
        )  # fmt: skip
        return self._refund_answer(body, "approved", None, order.refunded + body["amount"], reference)

    @staticmethod
    def _refund_answer(
        body: dict[str, Any], status: str, reason: str | None, refunded: int, reference: str
    ) -> dict[str, Any]:
        return {
            "refund_reference": body["refund_reference"],
            "original_reference": body["original_reference"],
            "status": status,
            "reason": reason,
            "amount": body["amount"],
            "currency": body["currency"],
            "refunded_total": refunded,
            "host_reference": reference,
        }


# ----------------------------------------------------------------------------- the apps' side (admin path)


def issue_code(store: HostStore, account: str, now: dt.datetime) -> tuple[str, str, str]:
    """A new single-use payment code of ``account``'s wallet: (code, wallet, expires at)."""
    found = store.wallet_account(account)
    if found is None:
        raise Unknown(f"no wallet account {account!r} (see 'posterm host wallet accounts')")
    prefix = next(p for p, w in WALLET_PREFIXES.items() if w == found.wallet)
    expires = _stamp(now + CODE_TTL)
    while True:
        code = prefix + "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS - len(prefix)))
        with store.transaction():
            if store.add_wallet_code(_code_hash(store, code), account, found.wallet, _stamp(now), expires):
                return code, found.wallet, expires


def _locked_order(store: HostStore, order_id: str) -> QrOrder:
    """The order, read again under its terminal's lock (inside the caller's transaction)."""
    order = store.qr_order(order_id)
    if order is None:
        raise Unknown(f"no QR order {order_id}")
    store.lock("terminal", order.merchant_id, order.terminal_id)
    again = store.qr_order(order_id)
    assert again is not None
    return again


def app_pay(store: HostStore, order_id: str, account: str, now: dt.datetime) -> QrOrder:
    """A wallet app pays the merchant-presented order ``order_id`` from ``account``: the order, paid.

    Refused (:class:`AppRefused`, nothing charged): an unknown order or
    account, an order that is not pending (closed by the terminal, paid
    already), past its time, or more than the balance.
    """
    at = _stamp(now)
    with store.transaction():
        order = _locked_order(store, order_id)
        payer = store.wallet_account(account)
        if payer is None:
            raise Unknown(f"no wallet account {account!r} (see 'posterm host wallet accounts')")
        if order.mode != "mpm":
            raise AppRefused(f"order {order_id} is not a merchant-presented order")
        if order.state not in _from("app_pay"):
            why = " by the terminal" if order.state == "closed" else ""
            raise AppRefused(f"order {order_id} is {order.state}{why}: nothing paid")
        if order.expires_at is not None and order.expires_at < at:
            raise AppRefused(f"order {order_id} expired at {order.expires_at}: nothing paid")
        if not store.debit(account, order.currency, order.amount, at):
            raise AppRefused(f"account {account}: the balance does not cover {order.amount} in {order.currency}")
        batch = store.batch_number(order.merchant_id, order.terminal_id)
        moved = store.move_order(
            order_id, _from("app_pay"), "paid", at, account=account, wallet=payer.wallet, batch=batch, paid_at=at
        )
        assert moved  # under the terminal's lock, read again: nobody moved it meanwhile
        paid = store.qr_order(order_id)
    assert paid is not None
    return paid


def confirm(store: HostStore, order_id: str, now: dt.datetime, *, accept: bool = True) -> QrOrder:
    """The customer confirms (or declines, ``accept=False``) in the app an order that is ``user_paying``."""
    at = _stamp(now)
    with store.transaction():
        order = _locked_order(store, order_id)
        if order.state not in _from("app_confirm"):
            raise AppRefused(f"order {order_id} is {order.state}, not waiting for the customer")
        assert order.account is not None
        if not accept:
            store.move_order(order_id, _from("app_decline"), "declined", at, reason="user_declined")
        elif store.debit(order.account, order.currency, order.amount, at):
            batch = store.batch_number(order.merchant_id, order.terminal_id)
            store.move_order(order_id, _from("app_confirm"), "paid", at, batch=batch, paid_at=at)
        else:
            store.move_order(order_id, _from("app_decline"), "declined", at, reason="insufficient_balance")
        done = store.qr_order(order_id)
    assert done is not None
    return done
