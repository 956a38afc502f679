"""What the terminal knows offline about digital currency, for the hard-wallet kernel (CBDC-SPEC §6, §9).

The kernel (``cbdc.kernel.pay``) is pure: what the terminal remembers comes in
as an offline state.  This module builds it from the store:

- the last counter this terminal saw from each wallet (the replay check:
  a wallet must show a counter above it) — a row per wallet, recorded with
  :func:`note_counter_seen`;
- the count and total of digital-currency payments since the last sync, i.e.
  not yet acknowledged by the host, and the age of the oldest unsent
  digital-currency record — read from the SAF queue, not kept twice
  (:meth:`terminal.store.Store.cbdc_unsent`).

Usage by the payment code::

    state = offline_state(store, currency=156, now=clock())
    state.last_counters.get(wallet_id)    # wallet_id: 8 bytes; None if never seen
    state.count_since_sync, state.total_since_sync, state.oldest_unsent_age_s
    ...
    with store.atomic():                  # the record and the counter commit together
        store.record(txn_id, ...)
        note_counter_seen(store, wallet_id, record_counter, at)

``last_counters`` is a read-only mapping that asks the store for the wallet
it is asked about (one primary-key lookup), so building the state costs two
queries whatever the number of wallets ever seen.  A counter row whose seal
does not match raises :class:`~terminal.store.StorageCorrupt`: a counter
lowered outside posterm would let a replayed record through, so it fails
closed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from terminal.store import Store
from terminal.store_cbdc import CBDC_EVIDENCE_KINDS, CBDC_PAYMENT_KIND, CBDC_SCHEME

__all__ = [
    "CBDC_EVIDENCE_KINDS",
    "CBDC_PAYMENT_KIND",
    "CBDC_SCHEME",
    "CbdcOfflineState",
    "SeenCounters",
    "last_counter",
    "note_counter_seen",
    "offline_state",
    "wallet_hex",
]

_HEX16: Final = re.compile(r"[0-9A-Fa-f]{16}")


def wallet_hex(wallet_id: bytes | str) -> str:
    """A wallet id as the store keeps it: 16 upper-case hex digits (from 8 bytes, or from hex).

    >>> wallet_hex(bytes.fromhex("d1a0000000000001")), wallet_hex("d1a0000000000007")
    ('D1A0000000000001', 'D1A0000000000007')
    """
    if isinstance(wallet_id, bytes | bytearray | memoryview):
        raw = bytes(wallet_id)
        if len(raw) != 8:
            raise ValueError(f"a wallet id is 8 bytes, not {len(raw)}")
        return raw.hex().upper()
    if isinstance(wallet_id, str) and _HEX16.fullmatch(wallet_id):
        return wallet_id.upper()
    raise ValueError(f"a wallet id is 8 bytes or 16 hex digits, not {wallet_id!r}")


class SeenCounters(Mapping[bytes, int]):
    """The last counter seen per wallet, read from the store when asked (keys: 8-byte wallet ids).

    Iterating lists every wallet ever seen (as 8-byte ids); a lookup reads one row.
    """

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getitem__(self, wallet_id: bytes) -> int:
        try:
            key = wallet_hex(wallet_id)
        except ValueError:
            raise KeyError(wallet_id) from None
        counter = self._store.cbdc_counter(key)
        if counter is None:
            raise KeyError(wallet_id)
        return counter

    def __iter__(self) -> Iterator[bytes]:
        return iter([bytes.fromhex(key) for key in self._store.cbdc_counters()])

    def __len__(self) -> int:
        return self._store.cbdc_wallets_seen()

    def __repr__(self) -> str:
        return f"SeenCounters({self._store.path})"


@dataclass(frozen=True)
class CbdcOfflineState:
    """The terminal's digital-currency offline state for one currency (the shape of ``cbdc.kernel.OfflineState``).

    ``count_since_sync`` / ``total_since_sync``: digital-currency payments of
    ``currency`` (minor units) the host has not acknowledged yet;
    ``oldest_unsent_age_s``: seconds since the oldest digital-currency record
    (payment, refused record or torn notice, any currency) still unsent was
    made, None when everything has been sent.
    """

    currency: int
    last_counters: Mapping[bytes, int]
    count_since_sync: int
    total_since_sync: int
    oldest_unsent_age_s: float | None


def offline_state(store: Store, currency: int, now: datetime) -> CbdcOfflineState:
    """The offline state for a payment in ``currency`` (ISO 4217 number) at ``now`` (aware)."""
    unsent = store.cbdc_unsent(currency)
    age = None
    if unsent.oldest_at is not None:
        age = max(0.0, (now - datetime.fromisoformat(unsent.oldest_at)).total_seconds())
    return CbdcOfflineState(
        currency=int(currency),
        last_counters=SeenCounters(store),
        count_since_sync=unsent.count,
        total_since_sync=unsent.total,
        oldest_unsent_age_s=age,
    )


def last_counter(store: Store, wallet_id: bytes | str) -> int | None:
    """The last counter this terminal saw from ``wallet_id``; None if it never saw the wallet."""
    return store.cbdc_counter(wallet_hex(wallet_id))


def note_counter_seen(store: Store, wallet_id: bytes | str, counter: int, at: datetime | str) -> int:
    """Record that ``wallet_id`` showed ``counter`` (it never goes down); the last counter seen afterwards.

    Call it in the same :meth:`~terminal.store.Store.atomic` block as the
    payment's record, so that a crash leaves both or neither.
    """
    moment = at if isinstance(at, str) else at.astimezone(UTC).isoformat(timespec="microseconds")
    return store.note_cbdc_counter(wallet_hex(wallet_id), counter, moment)
