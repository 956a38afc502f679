"""What makes a request to the host safe to send again: its ``Idempotency-Key`` and the retry policy.

Apart from :mod:`host_link.client` because these are the rules of repeating,
not of sending: the host answers a repeated key with its first answer, so a
request whose answer was lost may be sent again under the same key
(:func:`header_key`, :func:`advices_key`), as often and as late as
:class:`IdempotentRetry` allows.  :mod:`host_link.client` re-exports all three.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from terminal.host import Advice

__all__ = ["IdempotentRetry", "advices_key", "header_key"]

_KEY = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True)
class IdempotentRetry:
    """How requests that are safe to repeat (thanks to their keys) are retried when the answer is lost.

    ``attempts`` counts the first one; a retry is made only if it can start
    within ``total_seconds`` of the first attempt.
    """

    attempts: int = 3
    backoff_seconds: float = 0.25
    max_backoff_seconds: float = 2.0
    total_seconds: float = 20.0

    def delay(self, failed_attempts: int) -> float:
        """The pause after ``failed_attempts`` lost answers (1 = after the first)."""
        return min(self.max_backoff_seconds, self.backoff_seconds * 2.0 ** max(failed_attempts - 1, 0))


def header_key(raw: str) -> str:
    """A valid ``Idempotency-Key`` (1-64 of ``[A-Za-z0-9._:-]``): ``raw`` itself, or its SHA-256 hex."""
    if _KEY.fullmatch(raw):
        return raw
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def advices_key(advices: Sequence[Advice]) -> str:
    """The request key of a batch of advices: SHA-256 over their own keys, in the order sent.

    Order matters because the host compares the request body: the same keys in
    another order are another body, and must not reuse the key (that is a 409).
    """
    return hashlib.sha256("\n".join(a.idempotency_key for a in advices).encode("utf-8")).hexdigest()
