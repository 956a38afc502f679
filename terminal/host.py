"""The HostLink port: what the terminal asks of its acquiring host.

The real client (HTTPS with mutual TLS) comes with host_link/; tests and the
headless command line use the simulator's in-process host (the host link named
``memory``, registered like any other in the ``posterm.hostlinks`` entry
points), which shares its rules and records with the simulated HTTPS host.

Errors say what the terminal may conclude:

- :class:`HostUnreachable`: nothing was sent (connection refused, DNS, TLS
  handshake): the payment may fall back to a deferred authorisation.
- :class:`HostNoAnswer`: the request may have reached the host and the answer
  was lost (read timeout, connection dropped after sending): the result is
  unknown, so the terminal must reverse, never retry as new.
- :class:`HostRejected`: the host answered that the message is malformed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from terminal.pinblock import EncryptedPin

__all__ = [
    "Advice",
    "AnswerStatus",
    "AuthorisationRequest",
    "BatchAdvising",
    "BatchTotals",
    "HostAnswer",
    "HostCertificateRejected",
    "HostError",
    "HostLink",
    "HostNoAnswer",
    "HostRejected",
    "HostUnreachable",
    "Reversal",
    "SettlementAnswer",
    "TotalsLine",
    "reconcile",
]


class HostError(Exception):
    """Base of the host link's errors."""


class HostUnreachable(HostError):
    """Nothing was sent: the host could not be reached."""


class HostCertificateRejected(HostUnreachable):
    """Nothing was sent: the host's certificate is wrong, expired or not issued by its CA.

    A security event, not an ordinary outage: someone may stand between the
    terminal and its host.  Payments are stored offline all the same.
    """


class HostNoAnswer(HostError):
    """The request may have been received; no answer came (the result is unknown)."""


class HostRejected(HostError):
    """The host refused the message as malformed (it will never accept it)."""


class AnswerStatus(enum.Enum):
    APPROVED = "approved"
    DECLINED = "declined"


@dataclass(frozen=True)
class HostAnswer:
    status: AnswerStatus
    response_code: str  # ISO 8583 style: "00" approved, "51" insufficient funds, ...
    approval_code: str | None = None
    host_reference: str | None = None
    arpc: bytes | None = None
    scripts: bytes = b""  # issuer script templates 71 / 72 for a chip card (its second half runs them)
    #: 91 for a chip card as the host sent it (ARPC method 1 or 2, 8 to 16 bytes); wins over ``arpc``
    issuer_authentication_data: bytes | None = None

    @property
    def approved(self) -> bool:
        return self.status is AnswerStatus.APPROVED


@dataclass(frozen=True)
class AuthorisationRequest:
    """An online authorisation (or an online refund, ``kind == "refund"``)."""

    txn_id: str
    idempotency_key: str
    kind: str  # "sale" | "refund"
    amount: int
    currency: int
    terminal_id: str
    merchant_id: str
    emv_data: bytes  # TLV of the card and terminal data objects the issuer needs (may hold the PAN)
    pan_token: str  # keyed hash of the PAN: the host's handle on the card without the PAN
    original_txn_id: str | None = None
    pin: EncryptedPin | None = None  # an online PIN from the PIN pad (block, KSN, format), never a clear PIN


@dataclass(frozen=True)
class Advice:
    """A stored payment forwarded from the SAF queue (offline approval, deferred authorisation, offline refund).

    ``original_txn_id``: for an offline refund, the sale it refunds, so that
    the host can hold each sale's refunds against what it charged.
    """

    txn_id: str
    idempotency_key: str
    kind: str  # "offline_approval" | "deferred_authorisation" | "offline_refund"
    amount: int
    currency: int
    terminal_id: str
    merchant_id: str
    emv_data: bytes
    pan_token: str
    created_at: str  # ISO 8601 UTC
    retransmission: bool = False
    original_txn_id: str | None = None


@dataclass(frozen=True)
class Reversal:
    txn_id: str
    idempotency_key: str
    amount: int
    currency: int
    terminal_id: str
    reason: str  # "no_answer" | "void" | "recovery" | "expired" | "card_declined"
    retransmission: bool = False


@dataclass(frozen=True)
class TotalsLine:
    scheme: str
    currency: int
    kind: str  # "sale" | "refund"
    count: int
    amount: int


@dataclass(frozen=True)
class BatchTotals:
    batch_id: int
    terminal_id: str
    lines: tuple[TotalsLine, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "terminal_id": self.terminal_id,
            "lines": [line.__dict__ for line in self.lines],
        }


def reconcile(
    terminal_lines: Iterable[tuple[int, str, int, int]], host_totals: Mapping[tuple[int, str], tuple[int, int]]
) -> list[dict[str, Any]]:
    """The differences between a terminal's batch totals and a host's, per (currency, kind).

    ``terminal_lines`` are (currency, kind, count, amount), summed here over
    schemes; ``host_totals`` maps (currency, kind) to (count, amount). Empty
    when in balance; what every host answers (the simulated acquirer, in-process or over HTTPS).

    >>> reconcile([(978, "sale", 2, 500), (978, "sale", 1, 100)], {(978, "sale"): (3, 600)})
    []
    >>> reconcile([(978, "sale", 1, 100)], {(978, "refund"): (1, 50)})[0]["kind"]
    'refund'
    """
    terminal: dict[tuple[int, str], list[int]] = {}
    for currency, kind, count, amount in terminal_lines:
        entry = terminal.setdefault((currency, kind), [0, 0])
        entry[0] += count
        entry[1] += amount
    differences: list[dict[str, Any]] = []
    for currency, kind in sorted(set(terminal) | set(host_totals)):
        t_count, t_amount = terminal.get((currency, kind), [0, 0])
        h_count, h_amount = host_totals.get((currency, kind), (0, 0))
        if (t_count, t_amount) != (h_count, h_amount):
            differences.append(
                {
                    "currency": currency,
                    "kind": kind,
                    "terminal_count": t_count,
                    "terminal_amount": t_amount,
                    "host_count": h_count,
                    "host_amount": h_amount,
                }
            )
    return differences


@dataclass(frozen=True)
class SettlementAnswer:
    in_balance: bool
    host_reference: str | None = None
    differences: tuple[dict[str, Any], ...] = field(default_factory=tuple)


@runtime_checkable
class HostLink(Protocol):
    """The terminal's view of its acquiring host."""

    def authorise(self, request: AuthorisationRequest) -> HostAnswer: ...

    def advise(self, advice: Advice) -> HostAnswer: ...

    def reverse(self, reversal: Reversal) -> HostAnswer: ...

    def close_batch(self, totals: BatchTotals) -> SettlementAnswer: ...


@runtime_checkable
class BatchAdvising(Protocol):
    """What a host link may offer besides :class:`HostLink`: several advices in one request.

    The answers come in the order of the advices; an advice the host refused
    as malformed is a :class:`HostRejected` in its place (the others stand). A
    raised :class:`HostError` means no advice got an answer. The terminal sends
    its SAF queue this way when the link has it, one advice at a time otherwise.
    """

    def advise_many(self, advices: Sequence[Advice]) -> list[HostAnswer | HostRejected]: ...
