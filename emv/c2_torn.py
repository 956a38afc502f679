"""Kernel C-2's torn transaction log and RECOVER AC (Book C-2 section 3.? "Torn Transaction Log").

A transaction is *torn* when the card leaves the field after GENERATE AC was
sent and before its answer came back: the card may have computed (and counted)
a cryptogram that the terminal never saw.  Kernel C-2 then keeps a *torn
record* (the data of that GENERATE AC and the card's DRDOL values) in the torn
transaction log, at most Max Number of Torn Transaction Log Records (DF811D),
for at most Max Lifetime of Torn Transaction Log Record (DF811C) seconds.

When the same card (PAN and PAN sequence number) comes back, the kernel sends
RECOVER AC (``80 D0 00 00 Lc <DRDOL related data> 00``) instead of a new
GENERATE AC; a card that recognises the transaction answers as it would have
answered the GENERATE AC, and the terminal completes the torn transaction with
that first cryptogram: the customer is not charged twice.  A card that does
not (an error status) gets GENERATE AC as usual; the record goes either way.

posterm's conditions (Book C-2 ties recovery to IDS; posterm has no IDS): the
card gives a DRDOL (9F51), DF811D is above 0, and the new transaction is for
the same amount and currency (otherwise the record stays and the new
transaction proceeds).  The log is a port (:class:`TornLog`): ``emv`` keeps no
state between transactions; :class:`MemoryTornLog` is the terminal's in-memory
one.  Its records hold the PAN in clear: they are never written to disk or
logged.

>>> log = MemoryTornLog()
>>> rec = TornRecord("5413330089010020", b"\\x00", 1234, 978, bytes.fromhex("261121"), bytes(3),
...                  b"", b"", bytes.fromhex("1122"), 0x40, False, {}, bytes(5))
>>> log.add(rec, max_records=1) is None, log.find("5413330089010020", b"\\x00") is rec
(True, True)
>>> recover_ac(bytes.fromhex("1122")).hex().upper()
'80D0000002112200'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from emv import dol
from emv.kernel_common import KernelContext
from emv.memory_log import MemoryLog
from emv.pan import pan_of
from emv.transaction import bcd_moment

__all__ = ["MemoryTornLog", "TornLog", "TornRecord", "age_seconds", "log_torn", "pending", "pending_for", "recover_ac"]


def recover_ac(drdol_values: bytes) -> bytes:
    """RECOVER AC with the DRDOL related data of the torn record."""
    if not 0 < len(drdol_values) <= 255:
        raise ValueError("DRDOL related data of 1 to 255 bytes")
    return bytes([0x80, 0xD0, 0x00, 0x00, len(drdol_values)]) + drdol_values + b"\x00"


@dataclass(frozen=True)
class TornRecord:
    """What the kernel needs to complete a torn transaction: the card, the GENERATE AC sent
    (its P1, CDA asked or not, the PDOL and CDOL1 values the card's signature covers), the
    terminal data objects as the card received them, the TVR then, and the DRDOL values."""

    pan: str
    psn: bytes
    amount: int
    currency: int
    date: bytes  # 9A
    time: bytes  # 9F21
    pdol_values: bytes
    cdol1_values: bytes
    drdol_values: bytes
    reference: int  # GENERATE AC P1 cryptogram type: 00 AAC, 40 TC, 80 ARQC
    cda_requested: bool
    cryptogram_inputs: Mapping[int, bytes] = field(default_factory=dict)
    tvr: bytes = bytes(5)
    terminal_data: Mapping[int, bytes] = field(default_factory=dict)

    def matches(self, pan: str, psn: bytes) -> bool:
        return self.pan == pan and self.psn == psn


def age_seconds(record: TornRecord, date: bytes, time: bytes) -> float:
    """How old ``record`` is at the transaction date and time given (BCD YYMMDD, HHMMSS)."""
    return (bcd_moment(date, time) - bcd_moment(record.date, record.time)).total_seconds()


class TornLog(Protocol):
    """The torn transaction log: a terminal keeps one across its transactions."""

    def find(self, pan: str, psn: bytes) -> TornRecord | None:
        """The record of this card, if any."""

    def add(self, record: TornRecord, *, max_records: int) -> TornRecord | None:
        """Keep ``record``; when the log already holds ``max_records``, the oldest goes (returned)."""

    def remove(self, record: TornRecord) -> None:
        """Forget ``record`` (recovered, refused by the card, or expired)."""

    def records(self) -> list[TornRecord]:
        """Every record, oldest first."""


class MemoryTornLog(MemoryLog[TornRecord]):
    """A torn transaction log in memory (a list, oldest first); a card has one record at most."""

    def find(self, pan: str, psn: bytes) -> TornRecord | None:
        return next((r for r in reversed(self._records) if r.matches(pan, psn)), None)

    def add(self, record: TornRecord, *, max_records: int) -> TornRecord | None:
        if max_records > 0:
            self._records = [r for r in self._records if not r.matches(record.pan, record.psn)]
        return super().add(record, max_records=max_records)


def pending(
    log: TornLog, pan: str, psn: bytes, *, amount: int, currency: int, date: bytes, time: bytes, lifetime: int
) -> TornRecord | None:
    """The record to recover for this card now, if any.

    A record older than ``lifetime`` seconds (DF811C), or dated after now, is
    removed and not recovered; one for another amount or currency stays in the
    log and is not recovered by this transaction.
    """
    record = log.find(pan, psn)
    if record is None:
        return None
    if not 0 <= age_seconds(record, date, time) <= lifetime:
        log.remove(record)
        return None
    if (record.amount, record.currency) != (amount, currency):
        return None
    return record


def pending_for(ctx: KernelContext, card: Mapping[int, bytes], *, lifetime: int) -> TornRecord | None:
    """:func:`pending` for the card of this transaction: none without a torn log, a PAN or a DRDOL."""
    log, txn, pan = ctx.txn.torn_log, ctx.txn, pan_of(card)
    if log is None or pan is None or not card.get(0x9F51):
        return None
    psn = card.get(0x5F34, b"")
    return pending(
        log, pan, psn, amount=txn.amount, currency=txn.currency, date=txn.date, time=txn.time, lifetime=lifetime
    )


def log_torn(
    ctx: KernelContext,
    card: Mapping[int, bytes],
    values: Mapping[int, bytes],
    *,
    max_records: int,
    pdol_values: bytes,
    cdol1_values: bytes,
    reference: int,
    cda_requested: bool,
) -> TornRecord | None:
    """Keep the GENERATE AC just torn in the transaction's torn log, when there is one, DF811D
    (``max_records``) is above 0 and the card gave a DRDOL (9F51) to recover it with; the
    DRDOL values are built from ``values`` (what a DOL may ask for now).  The record kept, or None."""
    log, drdol, pan = ctx.txn.torn_log, card.get(0x9F51), pan_of(card)
    if log is None or not drdol or pan is None or max_records == 0:
        return None
    try:
        drdol_values = dol.build(dol.parse(drdol), values)
    except dol.DolError:
        return None
    txn = ctx.txn
    record = TornRecord(
        pan,
        card.get(0x5F34, b""),
        txn.amount,
        txn.currency,
        txn.date,
        txn.time,
        pdol_values,
        cdol1_values,
        drdol_values,
        reference,
        cda_requested,
        dict(ctx.cryptogram_inputs),
        ctx.tvr.value,
        {0x9F37: values[0x9F37]} if 0x9F37 in values else {},
    )
    log.add(record, max_records=max_records)
    return record
