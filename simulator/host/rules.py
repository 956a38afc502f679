"""The acquirer's own checks, before the issuer decides: approved once, refunds covered, reversals exact.

Every lookup names the merchant and the terminal of the message (its client
certificate's): a ``txn_id`` is the terminal's own, and means nothing under
another terminal or merchant. So a refund or a reversal can only name a
transaction of the terminal that sends it.

A transaction is approved once
------------------------------
A second authorisation or advice with the ``txn_id`` of an approved one
(reversed or not) of the same merchant and terminal is declined ``94``
(duplicate transaction), whatever its idempotency key: a repeat of the same
key and body still gets the first answer (idempotency), a new key never gets a
second approval. A declined ``txn_id`` may be decided again. The database
keeps the rule too (a unique index on the approved records), so that several
host processes cannot both approve.

A refund against a sale (``original_txn_id``)
---------------------------------------------
=======================================================  ======  ==========================
Condition                                                Code    Reason recorded
=======================================================  ======  ==========================
no approved sale with that id, of this merchant and      ``25``  ``original_not_found``
terminal (another terminal's, a declined one, unknown)
the sale was reversed (voided)                           ``12``  ``original_reversed``
another currency than the sale's                         ``12``  ``currency_differs``
more than the sale less its approved, not reversed       ``13``  ``refund_exceeds_sale``
refunds
to another card than the sale's (the card presented,     ``58``  (the allowance, below)
by the host's own token): needs the merchant's allowance
=======================================================  ======  ==========================

A refund with no card data goes to the sale's card. With card data, the card
must prove itself (:mod:`simulator.host.proofs`, any cryptogram it gave).

A refund no sale covers (unreferenced, or to another card)
----------------------------------------------------------
Money to a card that did not pay this merchant. It needs the merchant's
allowance (``posterm host issuer refund-allowance MERCHANT AMOUNT``): at most
``AMOUNT`` minor units of such refunds per currency within any 24 hours,
counting the approved, not reversed ones (recorded with the reason
``unreferenced_refund`` or ``refund_to_other_card``). No allowance, or over
it: ``58`` (transaction not permitted to the terminal). A merchant has none
until the operator gives one. An unreferenced refund needs card data (``14``).

Several host processes at once
------------------------------
Each check reads and then the acquirer writes, in the request's one
transaction (:meth:`simulator.host.acquirer.Acquirer.handle`). On SQLite that
transaction has the database to itself; on PostgreSQL workers run
transactions side by side, so each check first takes the store's lock
(:meth:`~simulator.host.store.HostStore.lock`) on what it reads, held until
the request's records are stored: the transaction it names (its approvals,
a sale's refunds, a reversal's target), then the merchant's allowance; the
issuer then locks the card (velocity). Lock order: the terminal (taken first
by the acquirer), the transaction, the allowance, the card, so that two
requests never wait for each other in a circle.

A reversal names what it reverses, exactly
------------------------------------------
Protocol v1 has no partial reversals: a reversal undoes the whole transaction,
so its ``amount`` and ``currency`` must be those of the approved, not reversed
transaction it names. A reversal of a sale with approved, not reversed refunds
against it is refused too (the customer would keep the refunds of a sale
never charged): reverse the refunds first. Refused reversals undo nothing and
are answered ``422`` (:class:`Refused`), never stored, so the same key may be
sent again once corrected. A reversal of a transaction that is unknown,
declined or already reversed is acknowledged as before ("nothing to reverse").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from simulator.host.proofs import NO_CARD_DATA_CODE, Proven, Refusal
from simulator.host.store import HostStore
from simulator.host.store_issuer import ALLOWANCE_NOTES

__all__ = [
    "ALLOWANCE_WINDOW",
    "DUPLICATE_CODE",
    "NOT_PERMITTED_CODE",
    "ORIGINAL_NOT_FOUND_CODE",
    "Cover",
    "Refused",
    "check_refund",
    "check_reversal",
    "duplicate",
    "replayed",
]

DUPLICATE_CODE: Final = "94"
ORIGINAL_NOT_FOUND_CODE: Final = "25"
INVALID_TRANSACTION_CODE: Final = "12"
INVALID_AMOUNT_CODE: Final = "13"
NOT_PERMITTED_CODE: Final = "58"
ALLOWANCE_WINDOW: Final = dt.timedelta(hours=24)
_UNREFERENCED, _OTHER_CARD = ALLOWANCE_NOTES


class Refused(Exception):
    """A message the host refuses as a whole (an HTTP error answer); nothing was done, nothing stored."""

    status = 422
    error = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Cover:
    """A refund the checks let through: the card it goes to (the host's token) and the allowance it uses.

    ``note``: recorded as the reason of an approved refund that uses the
    merchant's allowance (one of :data:`~simulator.host.store_issuer.ALLOWANCE_NOTES`), else None.
    """

    card_token: str
    note: str | None = None


def _hold_transaction(store: HostStore, merchant_id: str, terminal_id: str, txn_id: str) -> None:
    """Lock a transaction of the terminal (inside the caller's transaction, after the terminal's lock)."""
    store.lock("transaction", merchant_id, terminal_id, txn_id)


def duplicate(store: HostStore, merchant_id: str, terminal_id: str, txn_id: str) -> Refusal | None:
    """``94`` when this terminal's ``txn_id`` was approved before."""
    with store.transaction():
        _hold_transaction(store, merchant_id, terminal_id, txn_id)
        if store.approved_records(merchant_id, terminal_id, txn_id):
            return Refusal(DUPLICATE_CODE, "duplicate_transaction")
    return None


def replayed(store: HostStore, proven: Proven) -> Refusal | None:
    """``94`` when the message's one-time proof (a card's cryptogram) was approved before, by any terminal.

    A cryptogram covers the terminal's unpredictable number and the card's ATC,
    so a card never gives the same one twice: the same cryptogram under a new
    transaction id is a message replayed (by a faulty or hostile terminal, or
    by someone who recorded it), never a second purchase. An approval since
    reversed does not count: what it charged was given back, and a terminal
    whose answer was lost may rightly send the same cryptogram again once its
    reversal went through. Held under the proof's lock until the record is
    stored (after the terminal, the transaction and the allowance; before the
    card).
    """
    if proven.proof is None:
        return None
    with store.transaction():
        store.lock("proof", proven.proof)
        if store.proof_approved(proven.proof):
            return Refusal(DUPLICATE_CODE, "cryptogram_replayed")
    return None


def _allowance(
    store: HostStore, merchant_id: str, currency: int, amount: int, now: dt.datetime, note: str
) -> Refusal | None:
    with store.transaction():
        # Shared by the merchant's terminals: held until the refund is stored, so that refunds of
        # several terminals at once (other host workers) count each other against the allowance.
        store.lock("allowance", merchant_id)
        limit = store.refund_allowance(merchant_id)
        if limit <= 0:
            return Refusal(NOT_PERMITTED_CODE, f"{note}_not_allowed")
        since = (now - ALLOWANCE_WINDOW).astimezone(dt.UTC).isoformat(timespec="microseconds")
        if store.allowance_used(merchant_id, currency, since) + amount > limit:
            return Refusal(NOT_PERMITTED_CODE, "refund_allowance_exceeded")
    return None


def check_refund(
    store: HostStore,
    *,
    merchant_id: str,
    terminal_id: str,
    original_txn_id: str | None,
    amount: int,
    currency: int,
    card: Proven | None,
    now: dt.datetime,
) -> Cover | Refusal:
    """Whether a refund (online or offline) may go ahead; see the module docstring's table."""
    with store.transaction():
        return _check_refund(store, merchant_id, terminal_id, original_txn_id, amount, currency, card, now)


def _check_refund(
    store: HostStore,
    merchant_id: str,
    terminal_id: str,
    original_txn_id: str | None,
    amount: int,
    currency: int,
    card: Proven | None,
    now: dt.datetime,
) -> Cover | Refusal:
    if original_txn_id is None:
        if card is None:
            return Refusal(NO_CARD_DATA_CODE, "no_card_data")
        refusal = _allowance(store, merchant_id, currency, amount, now, _UNREFERENCED)
        return refusal or Cover(card.token, _UNREFERENCED)
    _hold_transaction(store, merchant_id, terminal_id, original_txn_id)  # its refunds: one check at a time
    sales = [r for r in store.approved_records(merchant_id, terminal_id, original_txn_id) if r.is_sale]
    if not sales:
        return Refusal(ORIGINAL_NOT_FOUND_CODE, "original_not_found")
    sale = sales[0]
    if sale.reversed:
        return Refusal(INVALID_TRANSACTION_CODE, "original_reversed")
    if sale.currency != currency:
        return Refusal(INVALID_TRANSACTION_CODE, "currency_differs")
    _, refunded = store.refunds_against(merchant_id, terminal_id, original_txn_id)
    if amount > sale.amount - refunded:
        return Refusal(INVALID_AMOUNT_CODE, "refund_exceeds_sale")
    if card is None or card.token == sale.card_token:
        return Cover(sale.card_token)
    refusal = _allowance(store, merchant_id, currency, amount, now, _OTHER_CARD)
    return refusal or Cover(card.token, _OTHER_CARD)


def check_reversal(
    store: HostStore, *, merchant_id: str, terminal_id: str, txn_id: str, amount: int, currency: int
) -> None:
    """Raise :class:`Refused` when the reversal does not name exactly what it would undo."""
    with store.transaction():
        _hold_transaction(store, merchant_id, terminal_id, txn_id)
        _check_reversal(store, merchant_id, terminal_id, txn_id, amount, currency)


def _check_reversal(
    store: HostStore, merchant_id: str, terminal_id: str, txn_id: str, amount: int, currency: int
) -> None:
    targets = [r for r in store.approved_records(merchant_id, terminal_id, txn_id) if not r.reversed]
    for target in targets:
        if (target.amount, target.currency) != (amount, currency):
            raise Refused(
                "amount: a reversal names the amount and currency of the transaction it reverses "
                "(partial reversals are not supported); nothing was reversed"
            )
        if target.is_sale:
            count, _ = store.refunds_against(merchant_id, terminal_id, txn_id)
            if count:
                raise Refused(
                    f"txn_id: {count} refund(s) against this sale are not reversed; reverse them first "
                    "(nothing was reversed)"
                )
