"""Payments nobody was shown: found at start-up, told in one line each, and marked shown.

A payment is committed before it is shown (write-ahead), so a process killed
in between leaves a payment that stands (and is settled) though the cashier
saw nothing, and may take it again.  Every front end marks a payment shown
once it has shown its outcome (:meth:`terminal.facade.Terminal.mark_shown`:
the command line after printing it, the application's result screen, the ECR
interface once the register fetched it); at the next start, what has an
outcome and no mark is told (:func:`tell_unshown`)::

    last payment 12.34 EUR approved at 10:02 was not shown: receipt reprinted (transaction 20260102100200-ab12cd34ef56)

and marked shown.  :class:`OutcomeRecord` is what the facade lists, and
:func:`describe` the line, shared by the command line, the application's
notice and the ECR interface's status.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from terminal.lifecycle import State
from terminal.money import currency, format_amount
from terminal.results import PaymentResult

if TYPE_CHECKING:
    from terminal.facade import Terminal

__all__ = ["OutcomeRecord", "describe", "outcome_word", "tell_unshown"]

_DECLINED = frozenset({State.DECLINED, State.DECLINED_AFTER_FORWARDING, State.REJECTED_BY_HOST, State.WALLET_REFUSED})
_VOIDED = frozenset({State.VOIDED, State.VOID_PENDING})


@dataclass(frozen=True)
class OutcomeRecord:
    """A payment's outcome: its result as it stands, when it was made, its register's ids, and whether it was shown."""

    result: PaymentResult
    at: str  # when the payment was made (ISO 8601, UTC)
    request_key: str | None = None  # the register's Idempotency-Key (ECR), if a register asked for it
    reference: str | None = None  # the register's reference
    shown_at: str | None = None  # when its outcome was shown; None: nobody was told yet
    shown_by: str | None = None  # cli, ui, ecr, notice (told at a later start), before_upgrade

    def to_json(self) -> dict[str, Any]:
        return self.result.to_json() | {
            "at": self.at,
            "outcome": outcome_word(self.result),
            "request_key": self.request_key,
            "reference": self.reference,
            "shown": self.shown_at is not None,
            "shown_at": self.shown_at,
            "shown_by": self.shown_by,
        }


def outcome_word(result: PaymentResult) -> str:
    """``approved``, ``declined``, ``voided`` or ``not completed``: the outcome in one word or two."""
    if result.approved:
        return "approved"
    if result.state in _VOIDED:
        return "voided"
    if result.state in _DECLINED:
        return "declined"
    return "not completed"


def _when(at: str, now: datetime | None) -> str:
    """``10:02`` today, else ``2026-01-02 10:02``, in local time."""
    try:
        moment = datetime.fromisoformat(at).astimezone()
    except ValueError:
        return at
    today = (now or datetime.now().astimezone()).astimezone().date()
    return f"{moment:%H:%M}" if moment.date() == today else f"{moment:%Y-%m-%d %H:%M}"


def _amount(result: PaymentResult) -> str:
    try:
        return format_amount(result.amount, currency(result.currency))
    except ValueError:
        return f"{result.amount} ({result.currency:03d})"


def describe(item: OutcomeRecord, *, last: bool = False, action: str | None = None, now: datetime | None = None) -> str:
    """One line for a person: what the payment was, its outcome, when, and what was done or is to do.

    >>> from terminal.lifecycle import State
    >>> r = PaymentResult("T1", "sale", State.APPROVED, 1234, 978, True, "approved")
    >>> line = describe(OutcomeRecord(r, "2026-01-02T10:02:00+00:00"), last=True, action="receipt reprinted")
    >>> line.startswith("last payment 12.34 EUR approved at "), line.endswith("receipt reprinted (transaction T1)")
    (True, True)
    """
    result = item.result
    word = outcome_word(result)
    noun = "refund" if result.kind == "refund" else "payment"
    why = ""
    detail = result.message.split(": ", 1)[1] if ": " in result.message else ""
    if word != "approved" and detail:
        why = f" ({detail})"
    if action is None:
        if word == "not completed":
            action = "nothing stays charged: take the payment again if it is still due"
        else:
            action = f"run `posterm receipt {result.txn_id}`"
    where = "" if result.txn_id in action else f" (transaction {result.txn_id})"
    what = f"{'last ' if last else ''}{noun} {_amount(result)} {word} at {_when(item.at, now)}"
    return f"{what} was not shown{why}: {action}{where}"


def tell_unshown(terminal: Terminal, write: Callable[[str], None], *, by: str = "notice", reprint: bool = True) -> int:
    """Tell every payment nobody was shown (one line each, oldest first), then mark them shown; how many.

    With a receipt printer configured, an approved payment's customer receipt
    is printed (a DUPLICATE if one was printed before the process died).
    Nothing is done by a terminal opened to read only: the payment may be
    another process's, about to be shown there.  A failure to print or to
    mark is said, never raised: the command the person asked for comes first.
    """
    if terminal.read_only:
        return 0
    items = terminal.unshown_payments()
    for number, item in enumerate(items):
        action = None
        if reprint and terminal.printer is not None and item.result.approved:
            action = _print(terminal, item.result.txn_id)
        write(describe(item, last=number == len(items) - 1, action=action))
    if items:
        with contextlib.suppress(Exception):  # unmarked, they are told again next time: better than not at all
            terminal.mark_shown([item.result.txn_id for item in items], by)
    return len(items)


def _print(terminal: Terminal, txn_id: str) -> str:
    try:
        before = terminal.receipt(txn_id, "customer", issue=False)
        terminal.print_receipt(txn_id, "customer")
    except Exception as exc:  # the printer's or the storage's fault: the notice still goes out
        return f"the receipt could not be printed ({exc}): run `posterm receipt {txn_id} --print`"
    return "receipt reprinted" if getattr(before, "reprint", False) else "receipt printed"
