"""The store's digital-currency bookkeeping: wallets' last counters, and the unsent records in the SAF queue.

The last counter seen from each wallet is a row of its own (``cbdc_counters``,
sealed like the money rows, checked on every read): it only goes up, and it
outlives the payments, which the retention policy purges.  What has not been
sent is not kept twice: it is read from the transactions' store-and-forward
columns (the ``saf`` view): a digital-currency entry is one of a transaction
of scheme :data:`CBDC_SCHEME`; a payment is such an entry of any kind but the
evidence kinds of :data:`CBDC_EVIDENCE_KINDS` (a record refused after PAY, a
torn payment's notice: nothing the merchant is credited for; CBDC-SPEC §10).  :mod:`terminal.cbdc_state` is the
face the payment code uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from terminal.store_core import StorageCorrupt, StoreCore

__all__ = ["CBDC_EVIDENCE_KINDS", "CBDC_PAYMENT_KIND", "CBDC_SCHEME", "CbdcAccess", "CbdcUnsent"]

CBDC_SCHEME: Final = "cbdc"
"""The scheme of a digital-currency transaction (its settlement lines are their own)."""

CBDC_PAYMENT_KIND: Final = "cbdc_payment"
"""The SAF kind of a digital-currency payment approved at the terminal."""

CBDC_EVIDENCE_KINDS: Final = ("cbdc_refused", "cbdc_torn")
"""SAF kinds of digital-currency entries that credit nobody: not counted against the offline limits' count and total."""

MAX_COUNTER: Final = 0xFFFFFFFF


@dataclass(frozen=True)
class CbdcUnsent:
    """Digital-currency entries of the SAF queue not yet acknowledged by the host.

    ``count`` and ``total``: payments (entries of any kind but
    :data:`CBDC_EVIDENCE_KINDS`) of the currency asked for; ``oldest_at``: when the oldest unsent digital-currency
    entry of any kind (payment, refused record, torn notice) and any currency
    was made, None when there is none.
    """

    count: int
    total: int
    oldest_at: str | None


class CbdcAccess(StoreCore):
    """The digital-currency verbs of :class:`terminal.store.Store`."""

    def _counter_row(self, wallet_id: str, counter: int, seen_at: str, seal: bytes | None) -> int:
        if seal is None or bytes(seal) != self._chain.row_seal("cbdc_counters", (wallet_id, counter, seen_at)):
            raise StorageCorrupt(
                f"the last counter of wallet {wallet_id} was changed outside posterm or damaged; "
                "run 'posterm journal verify'"
            )
        return int(counter)

    def cbdc_counter(self, wallet_id: str) -> int | None:
        """The last counter seen from ``wallet_id`` (16 upper-case hex digits), None if never seen.

        Raises :class:`~terminal.store_core.StorageCorrupt` when the row's seal
        does not match: a lowered counter would let a replayed record through.
        """
        with self._reading() as cur:
            row = cur.execute(
                "SELECT wallet_id, counter, seen_at, seal FROM cbdc_counters WHERE wallet_id=?", (wallet_id,)
            ).fetchone()
        return None if row is None else self._counter_row(*row)

    def cbdc_counters(self) -> dict[str, int]:
        """Every wallet's last counter seen, by wallet id (each row's seal checked)."""
        with self._reading() as cur:
            rows = cur.execute("SELECT wallet_id, counter, seen_at, seal FROM cbdc_counters ORDER BY wallet_id")
            return {str(row[0]): self._counter_row(*row) for row in rows.fetchall()}

    def cbdc_wallets_seen(self) -> int:
        """How many wallets have a counter recorded (no seal is checked: a count for reports)."""
        with self._reading() as cur:
            return int(cur.execute("SELECT COUNT(*) FROM cbdc_counters").fetchone()[0])

    def note_cbdc_counter(self, wallet_id: str, counter: int, at: str) -> int:
        """Record that ``wallet_id`` showed ``counter``; the wallet's last counter seen afterwards.

        The counter never goes down: a lower or equal one changes nothing.
        Inside :meth:`~terminal.store_core.StoreCore.atomic` it commits with the
        payment's own rows.
        """
        if isinstance(counter, bool) or not isinstance(counter, int) or not 0 <= counter <= MAX_COUNTER:
            raise ValueError(f"a wallet counter is a whole number from 0 to {MAX_COUNTER}, not {counter!r}")
        with self._write() as cur:
            row = cur.execute(
                "SELECT wallet_id, counter, seen_at, seal FROM cbdc_counters WHERE wallet_id=?", (wallet_id,)
            ).fetchone()
            if row is not None and self._counter_row(*row) >= counter:
                return int(row[1])
            seal = self._chain.row_seal("cbdc_counters", (wallet_id, counter, at))
            cur.execute(
                "INSERT INTO cbdc_counters(wallet_id, counter, seen_at, seal) VALUES(?,?,?,?) "
                "ON CONFLICT(wallet_id) DO UPDATE SET counter=excluded.counter, seen_at=excluded.seen_at, "
                "seal=excluded.seal",
                (wallet_id, counter, at, seal),
            )
            return counter

    def cbdc_unsent(self, currency: int) -> CbdcUnsent:
        """The digital-currency entries of the SAF queue that the host has not acknowledged yet."""
        with self._reading() as cur:
            count, total = cur.execute(
                "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM transactions "
                "WHERE saf_status='queued' AND scheme=? AND currency=? AND saf_kind NOT IN (?, ?)",
                (CBDC_SCHEME, int(currency), *CBDC_EVIDENCE_KINDS),
            ).fetchone()
            oldest = cur.execute(
                "SELECT saf_created_at FROM transactions WHERE saf_status='queued' AND scheme=? "
                "ORDER BY saf_id LIMIT 1",
                (CBDC_SCHEME,),
            ).fetchone()
        return CbdcUnsent(int(count), int(total), None if oldest is None else str(oldest[0]))
