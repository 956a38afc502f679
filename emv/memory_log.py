"""A bounded in-memory log of records, oldest first: what the torn logs of kernels C-2 and C-7 keep.

The records hold card data (a PAN, the data a card signed): they stay in
memory and are never written to disk or logged.

>>> log: MemoryLog[str] = MemoryLog()
>>> log.add("a", max_records=2), log.add("b", max_records=2), log.add("c", max_records=2)
(None, None, 'a')
>>> log.records(), len(log)
(['b', 'c'], 2)
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["MemoryLog"]

R = TypeVar("R")


class MemoryLog(Generic[R]):
    """Records in a list, oldest first, at most ``max_records`` of them (the oldest goes)."""

    def __init__(self) -> None:
        self._records: list[R] = []

    def add(self, record: R, *, max_records: int) -> R | None:
        """Keep ``record``; the record that had to go (the oldest, or ``record`` itself with no room at all)."""
        if max_records <= 0:
            return record
        self._records.append(record)
        if len(self._records) > max_records:
            return self._records.pop(0)
        return None

    def remove(self, record: R) -> None:
        self._records = [r for r in self._records if r is not record]

    def records(self) -> list[R]:
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)
