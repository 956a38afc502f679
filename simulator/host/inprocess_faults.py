"""What the in-process host can be made to do wrong, and what it saw: :class:`HostFaults` and :class:`Call`.

Apart from :mod:`simulator.host.inprocess` because these are the test's side
of the in-process host: a test sets the faults and reads the call log, while
the host (and its QR part, :mod:`simulator.host.inprocess_qr`) only consumes
the counters and appends entries.  The order in which faults strike, and
what each does, is told in :mod:`simulator.host.inprocess`, which re-exports
both names.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

__all__ = ["Call", "HostFaults"]


class Call(NamedTuple):
    """One entry of the call log.

    ``outcome`` is one of ``"approved"``, ``"declined:<code>"``, ``"reversed"``,
    ``"nothing_to_reverse"``, ``"in_balance"``, ``"out_of_balance"`` for a
    processed message, the same followed by ``"+no_answer"`` when the answer
    was lost, ``"replay"`` for a repeated key, or ``"unreachable"``,
    ``"no_answer_before_processing"``, ``"rejected"``, ``"conflict"``; an
    echo answered is ``("echo", "", "answered")``.
    """

    method: str
    txn_id: str
    outcome: str


class HostFaults:
    """Faults to inject, switchable at run time from any thread.

    Set the attributes directly (``host.faults.no_answer = 2``); the counters
    are consumed one per call, under a lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down: bool = False
        self.no_answer: int = 0
        self.fail_before_processing: int = 0
        self.reject_next: int = 0
        self.only: frozenset[str] | set[str] | None = None

    def clear(self) -> None:
        """Switch every fault off."""
        with self._lock:
            self.down = False
            self.no_answer = 0
            self.fail_before_processing = 0
            self.reject_next = 0
            self.only = None

    def applies(self, method: str) -> bool:
        """Whether faults are aimed at ``method`` (``only`` unset, or naming it)."""
        only = self.only
        return only is None or method in only

    def is_down(self, method: str) -> bool:
        with self._lock:
            return self.down and self.applies(method)

    def take(self, name: str, method: str) -> bool:
        """Consume one unit of the counter ``name`` if it is set and applies to ``method``."""
        with self._lock:
            if not self.applies(method):
                return False
            left: int = getattr(self, name)
            if left <= 0:
                return False
            setattr(self, name, left - 1)
            return True
