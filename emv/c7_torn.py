"""Kernel C-7's torn electronic-cash log: posterm's own handling of a card removed too early ("闪卡").

An electronic cash (EC) card debits its balance *at* GET PROCESSING OPTIONS.
When it leaves the field after that GPO was sent (no answer, or an answer and
then no records), Entry Point ends with Try Again ("present card again"), and a
new GPO on the re-tap would be a new debit: the customer charged twice for one
sale.  What UnionPay terminals do about it is not public; this is posterm's
mechanism, a guess in the spirit of Book C-2's torn transaction log
(:mod:`emv.c2_torn`), listed in ``docs/internals.md`` "Kernel C-7":

- the kernel keeps an :class:`EcTornRecord` of an interrupted GPO to which it
  offered EC: the exact PDOL values it sent (unpredictable number, amount,
  date, TTQ, 9F7A ...) and what came back, if anything (ATC, cryptogram, 9F5D);
  at most :data:`MAX_RECORDS`, for at most :data:`LIFETIME_SECONDS`;
- on a later tap offering EC to the same application (AID and PDOL) for the
  same transaction (PDOL values that differ only in the unpredictable number,
  date and time: same amount, currency, TTQ ...), the kernel sends GPO again
  with the *recorded* values.  A card that recognises its own last EC debit
  answers as it did, without debiting again, and the reader completes that
  transaction (records, fDDA over the same data): one debit, one approval.
  Any other card answers a new GPO: a new transaction, completed as usual;
- each record is sent again once: it leaves the log when its GPO is re-sent,
  whatever the card answers (if that GPO is torn too, a new record keeps the
  first one's values and moment, so the lifetime counts from the first tap).
  Re-sending an unpredictable number lets whoever saw it prepare an answer for
  it (a pre-play); once, within the lifetime, for the same amount, bounds that.
  A card that did not recognise the record has made a new transaction of its
  own; keeping the record would repeat the number again to the next card.

The log is a port (:class:`EcTornLog`): ``emv`` keeps no state between
transactions; :class:`MemoryEcTornLog` is the terminal's.  Its records hold no
PAN, but they hold the unpredictable number the terminal will send again: they
are never written to disk or logged.

>>> log = MemoryEcTornLog()
>>> rec = EcTornRecord(bytes.fromhex("A000000333010106"), b"", b"", 100, 156, bytes.fromhex("261121"), bytes(3))
>>> log.add(rec, max_records=MAX_RECORDS) is None, log.records() == [rec]
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from emv import dol
from emv.kernel_common import KernelContext
from emv.memory_log import MemoryLog
from emv.transaction import bcd_moment

__all__ = [
    "LIFETIME_SECONDS",
    "MAX_RECORDS",
    "CardAnswer",
    "EcTornLog",
    "EcTornRecord",
    "MemoryEcTornLog",
    "age_seconds_of",
    "keep",
    "take_pending",
]

#: How long a torn EC record may be completed (seconds): a re-tap within the same sale, or soon after.
LIFETIME_SECONDS = 120
#: How many torn EC records the terminal keeps; the oldest goes first.
MAX_RECORDS = 2
#: The PDOL data objects that may differ between the torn tap and the re-tap: they are the tap's, not the sale's.
PER_TAP = frozenset({0x9F37, 0x9A, 0x9F21})


@dataclass(frozen=True)
class CardAnswer:
    """What the card answered to the torn GPO (its ATC 9F36, cryptogram 9F26, 9F5D when given)."""

    atc: bytes
    cryptogram: bytes
    aosa: bytes | None = None


@dataclass(frozen=True)
class EcTornRecord:
    """A GPO that offered electronic cash and was torn: the application, the PDOL and the exact
    values sent, the sale (amount, currency), the moment of the first tap (BCD date, time), and
    the card's answer when one came back."""

    aid: bytes
    pdol: bytes
    pdol_values: bytes
    amount: int
    currency: int
    date: bytes
    time: bytes
    answer: CardAnswer | None = None


class EcTornLog(Protocol):
    """The torn EC log: a terminal keeps one across its transactions."""

    def add(self, record: EcTornRecord, *, max_records: int) -> EcTornRecord | None:
        """Keep ``record``; when the log already holds ``max_records``, the oldest goes (returned)."""

    def remove(self, record: EcTornRecord) -> None:
        """Forget ``record`` (sent again, or expired)."""

    def records(self) -> list[EcTornRecord]:
        """Every record, oldest first."""


class MemoryEcTornLog(MemoryLog[EcTornRecord]):
    """A torn EC log in memory (a list, oldest first)."""


def _same_sale(pdol: Sequence[dol.DolEntry], recorded: bytes, now: bytes) -> bool:
    """Whether two PDOL value strings differ only in the tap's own data objects (:data:`PER_TAP`)."""
    try:
        old, new = dict(dol.split(pdol, recorded)), dict(dol.split(pdol, now))
    except dol.DolError:
        return False
    return all(old.get(e.tag) == new.get(e.tag) for e in pdol if e.tag not in PER_TAP)


def take_pending(
    ctx: KernelContext,
    pdol_raw: bytes,
    pdol: Sequence[dol.DolEntry],
    values: bytes,
    *,
    lifetime: int = LIFETIME_SECONDS,
) -> EcTornRecord | None:
    """The torn record whose GPO to send again for this tap, taken out of the log; None: a new GPO.

    Records older than ``lifetime`` seconds (or dated after now) are dropped.  A
    record matches when it is for this application (AID, PDOL), amount and
    currency and its PDOL values differ from ``values`` (this tap's) only in the
    unpredictable number, date and time; the newest match is taken.
    """
    log, txn = ctx.txn.ec_torn_log, ctx.txn
    if log is None:
        return None
    found: EcTornRecord | None = None
    for record in log.records():
        if not 0 <= age_seconds_of(record, txn.date, txn.time) <= lifetime:
            log.remove(record)
            continue
        sale = (record.aid, record.pdol, record.amount, record.currency)
        same = sale == (ctx.aid, pdol_raw, txn.amount, txn.currency)
        if same and _same_sale(pdol, record.pdol_values, values):
            found = record
    if found is not None:
        log.remove(found)
    return found


def age_seconds_of(record: EcTornRecord, date: bytes, time: bytes) -> float:
    """How old ``record`` is at the date and time given (BCD YYMMDD, HHMMSS); a bad date: infinitely."""
    try:
        return (bcd_moment(date, time) - bcd_moment(record.date, record.time)).total_seconds()
    except ValueError:
        return float("inf")


def keep(
    ctx: KernelContext,
    pdol_raw: bytes,
    values: bytes,
    *,
    resent: EcTornRecord | None,
    answer: CardAnswer | None,
    max_records: int = MAX_RECORDS,
) -> EcTornRecord | None:
    """Keep the GPO just torn in the transaction's torn EC log, when there is one; the record, or None.

    ``resent``: the record whose values this GPO sent again (the new record keeps its moment).
    """
    log, txn = ctx.txn.ec_torn_log, ctx.txn
    if log is None:
        return None
    date, time = (resent.date, resent.time) if resent is not None else (txn.date, txn.time)
    record = EcTornRecord(ctx.aid, pdol_raw, values, txn.amount, txn.currency, date, time, answer)
    log.add(record, max_records=max_records)
    return record
