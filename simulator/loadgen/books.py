"""A simulated terminal's books (its journal in memory) and their comparison with the host's records.

Each payment is a :class:`Txn` whose state changes only along
:data:`TRANSITIONS` (state, event) -> state, as the terminal's own lifecycle
table does:

- online: ``authorising`` -> ``approved`` | ``declined``; no answer after the
  request went out (even after retries with the same key) -> ``reversal_pending``
  -> ``reversed`` once the host acknowledged the reversal;
- not sent (the host unreachable, a reversal not yet delivered):
  ``authorising`` -> ``stored`` (a deferred authorisation in the SAF queue) or
  ``declined`` (no room offline, or a refund, which needs the host);
- approved offline by the card (a TC): ``stored`` from the start;
- forwarded: ``stored`` -> ``accepted`` | ``declined_after`` | ``rejected``;
- void: ``approved`` -> ``void_pending`` -> ``voided``.

What the batch counts (:data:`COUNTED`): ``approved`` and ``accepted``. A
settled book has nothing ``authorising``, ``stored``, ``reversal_pending`` or
``void_pending`` left.

:func:`reconcile` compares the books of every terminal with the host's
records: every approved, not reversed payment at the host must be counted by
its terminal with the same kind and amount, and every counted payment must be
at the host exactly once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COUNTED",
    "TRANSITIONS",
    "Books",
    "Ev",
    "Reconciliation",
    "St",
    "Txn",
    "reconcile",
    "settlement_kind",
]


class St(enum.Enum):
    AUTHORISING = "authorising"
    APPROVED = "approved"
    DECLINED = "declined"
    REVERSAL_PENDING = "reversal_pending"
    REVERSED = "reversed"
    STORED = "stored"
    ACCEPTED = "accepted"
    DECLINED_AFTER = "declined_after"
    REJECTED = "rejected"
    VOID_PENDING = "void_pending"
    VOIDED = "voided"


class Ev(enum.Enum):
    HOST_APPROVED = "host_approved"
    HOST_DECLINED = "host_declined"
    NO_ANSWER = "no_answer"
    NOT_SENT_DEFERRED = "not_sent_deferred"
    NOT_SENT_DECLINED = "not_sent_declined"
    REVERSAL_DONE = "reversal_done"
    ADVICE_ACCEPTED = "advice_accepted"
    ADVICE_DECLINED = "advice_declined"
    ADVICE_REJECTED = "advice_rejected"
    VOID = "void"


#: The allowed changes; anything else is a bug of the generator (raised, never ignored).
TRANSITIONS: Mapping[tuple[St, Ev], St] = {
    (St.AUTHORISING, Ev.HOST_APPROVED): St.APPROVED,
    (St.AUTHORISING, Ev.HOST_DECLINED): St.DECLINED,
    (St.AUTHORISING, Ev.NO_ANSWER): St.REVERSAL_PENDING,
    (St.AUTHORISING, Ev.NOT_SENT_DEFERRED): St.STORED,
    (St.AUTHORISING, Ev.NOT_SENT_DECLINED): St.DECLINED,
    (St.REVERSAL_PENDING, Ev.REVERSAL_DONE): St.REVERSED,
    (St.STORED, Ev.ADVICE_ACCEPTED): St.ACCEPTED,
    (St.STORED, Ev.ADVICE_DECLINED): St.DECLINED_AFTER,
    (St.STORED, Ev.ADVICE_REJECTED): St.REJECTED,
    (St.APPROVED, Ev.VOID): St.VOID_PENDING,
    (St.VOID_PENDING, Ev.REVERSAL_DONE): St.VOIDED,
}

COUNTED = frozenset({St.APPROVED, St.ACCEPTED})
_OPEN = frozenset({St.AUTHORISING, St.STORED, St.REVERSAL_PENDING, St.VOID_PENDING})
_SETTLEMENT = {
    "sale": "sale",
    "refund": "refund",
    "offline_approval": "sale",
    "deferred_authorisation": "sale",
    "offline_refund": "refund",
}


def settlement_kind(kind: str) -> str:
    """What a batch total counts a payment of ``kind`` as: ``sale`` or ``refund``."""
    return _SETTLEMENT[kind]


@dataclass
class Txn:
    """One payment in a terminal's books. ``kind`` is what was sent last (a sale becomes a deferred authorisation)."""

    txn_id: str
    key: str
    kind: str
    amount: int
    currency: int
    emv_data: bytes
    pan_token: str
    card: int | None  # the online card's number in the pool (a refund goes to the same card)
    created_at: str
    original_txn_id: str | None = None
    state: St = St.AUTHORISING
    response_code: str | None = None
    refunded: int = 0  # for a sale: approved refunds against it

    @property
    def counted(self) -> bool:
        return self.state in COUNTED


@dataclass
class Books:
    """A terminal's journal: payments by id, in order."""

    terminal_id: str
    merchant_id: str
    txns: dict[str, Txn] = field(default_factory=dict)

    def add(self, txn: Txn) -> Txn:
        if txn.txn_id in self.txns:
            raise ValueError(f"transaction id {txn.txn_id} used twice")
        self.txns[txn.txn_id] = txn
        return txn

    def apply(self, txn: Txn, event: Ev) -> St:
        """Move ``txn`` along the table (and a refund's amount onto its sale); the new state."""
        try:
            new = TRANSITIONS[(txn.state, event)]
        except KeyError:
            raise RuntimeError(f"{txn.txn_id}: no transition from {txn.state.value} on {event.value}") from None
        was_counted = txn.counted
        txn.state = new
        if txn.original_txn_id is not None and settlement_kind(txn.kind) == "refund" and txn.counted != was_counted:
            sale = self.txns[txn.original_txn_id]
            sale.refunded += txn.amount if txn.counted else -txn.amount
        return new

    def open_items(self) -> list[Txn]:
        """Payments not yet settled either way (stored, reversal or void pending, authorising)."""
        return [t for t in self.txns.values() if t.state in _OPEN]

    def totals(self) -> list[tuple[int, str, int, int]]:
        """(currency, kind, count, amount) of what this batch counts, for the batch close."""
        sums: dict[tuple[int, str], list[int]] = {}
        for txn in self.txns.values():
            if txn.counted:
                entry = sums.setdefault((txn.currency, settlement_kind(txn.kind)), [0, 0])
                entry[0] += 1
                entry[1] += txn.amount
        return [(cur, kind, n, amount) for (cur, kind), (n, amount) in sorted(sums.items())]

    def counted(self) -> dict[str, tuple[str, int]]:
        """txn id -> (settlement kind, amount) of every counted payment."""
        return {t.txn_id: (settlement_kind(t.kind), t.amount) for t in self.txns.values() if t.counted}


@dataclass(frozen=True)
class Reconciliation:
    """The generator's books against the host's records (each list holds ``terminal/txn_id`` names)."""

    counted_by_terminals: int
    counted_by_host: int
    missing_at_host: tuple[str, ...]  # counted by the terminal, not approved (or reversed) at the host
    unknown_to_terminals: tuple[str, ...]  # approved and not reversed at the host, not counted by its terminal
    different: tuple[str, ...]  # both count it, with another merchant, kind or amount
    duplicated: tuple[str, ...]  # approved and not reversed more than once at the host

    @property
    def matched(self) -> bool:
        return not (self.missing_at_host or self.unknown_to_terminals or self.different or self.duplicated)

    def to_json(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "counted_by_terminals": self.counted_by_terminals,
            "counted_by_host": self.counted_by_host,
            "missing_at_host": list(self.missing_at_host),
            "unknown_to_terminals": list(self.unknown_to_terminals),
            "different": list(self.different),
            "duplicated": list(self.duplicated),
        }


def reconcile(books: Iterable[Books], host_records: Iterable[Mapping[str, Any]]) -> Reconciliation:
    """Compare ``books`` with the host's records (``posterm host records --json``'s objects).

    Only the records of the books' terminals count (a host that served other
    terminals too is fine); a record counts when it is an authorisation or
    advice, approved and not reversed.
    """
    ours: dict[tuple[str, str], tuple[str, str, int]] = {}
    merchants: dict[str, str] = {}
    for book in books:
        merchants[book.terminal_id] = book.merchant_id
        for txn_id, (kind, amount) in book.counted().items():
            ours[(book.terminal_id, txn_id)] = (book.merchant_id, kind, amount)
    theirs: dict[tuple[str, str], tuple[str, str, int]] = {}
    duplicated: list[str] = []
    for record in host_records:
        terminal_id = str(record["terminal_id"])
        if terminal_id not in merchants or record.get("method") == "reverse":
            continue
        if not record.get("approved") or record.get("reversed"):
            continue
        settled_as = _SETTLEMENT.get(str(record.get("kind")))
        if settled_as is None:
            continue
        key = (terminal_id, str(record["txn_id"]))
        if key in theirs:
            duplicated.append("/".join(key))
        theirs[key] = (str(record.get("merchant_id")), settled_as, int(record["amount"]))
    missing = sorted("/".join(k) for k in ours.keys() - theirs.keys())
    unknown = sorted("/".join(k) for k in theirs.keys() - ours.keys())
    different = sorted("/".join(k) for k in ours.keys() & theirs.keys() if ours[k] != theirs[k])
    return Reconciliation(len(ours), len(theirs), tuple(missing), tuple(unknown), tuple(different), tuple(duplicated))
