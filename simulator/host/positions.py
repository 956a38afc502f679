"""What the host holds in money, summed from its records: the open batch's totals and each sale's position.

Apart from :mod:`simulator.host.acquirer` because this is the read side of the
journal: pure arithmetic over :class:`~simulator.host.store.Record` rows, used
by the acquirer to reconcile a batch close, by the admin commands and the
in-process host to show what a sale was charged and refunded, and by tests as
their money check.  It decides nothing and writes nothing.
:mod:`simulator.host.acquirer` re-exports every name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from simulator.host.store import Record

__all__ = ["SalePosition", "open_totals", "sale_positions"]


@dataclass(frozen=True)
class SalePosition:
    """What the host holds for one sale: charged, and refunded against it (approved, not reversed).

    ``charged`` sums the sale, deferred authorisation and offline approval
    records with the sale's ``txn_id``; ``refunded`` the refund and offline
    refund records whose ``original_txn_id`` is that ``txn_id``. A refund whose
    original the host never charged shows with ``charged == 0``.
    """

    txn_id: str
    terminal_id: str
    currency: int
    charged: int
    refunded: int

    @property
    def net(self) -> int:
        """What the customer has paid according to the host (negative: paid out more than charged)."""
        return self.charged - self.refunded


def open_totals(records: Iterable[Record]) -> dict[tuple[int, str], tuple[int, int]]:
    """(currency, settlement kind) -> (count, amount) of approved, not reversed authorisations and advices."""
    out: dict[tuple[int, str], tuple[int, int]] = {}
    for record in records:
        kind = record.settlement_kind
        if kind is None or not record.approved or record.reversed:
            continue
        count, amount = out.get((record.currency, kind), (0, 0))
        out[(record.currency, kind)] = (count + 1, amount + record.amount)
    return out


def sale_positions(records: Iterable[Record], terminal_id: str | None = None) -> dict[str, SalePosition]:
    """Per sale ``txn_id``: what the host holds as charged and as refunded against it.

    The money check of a test: for every sale, ``refunded`` never exceeds
    ``charged``. Only approved, not reversed records count.
    """
    charged: dict[str, list[Any]] = {}  # txn_id -> [terminal_id, currency, charged, refunded]
    for record in records:
        if terminal_id is not None and record.terminal_id != terminal_id:
            continue
        kind = record.settlement_kind
        if kind is None or not record.approved or record.reversed:
            continue
        if kind == "sale":
            entry = charged.setdefault(record.txn_id, [record.terminal_id, record.currency, 0, 0])
            entry[2] += record.amount
        elif record.original_txn_id is not None:
            entry = charged.setdefault(record.original_txn_id, [record.terminal_id, record.currency, 0, 0])
            entry[3] += record.amount
    return {txn: SalePosition(txn, tid, cur, c, r) for txn, (tid, cur, c, r) in charged.items()}
