"""Payments as the cashier reads them: in words, in the language in force; and what may follow them.

The journal, the receipt screen, the refund and the void all show a payment
the same way (when, what, how much, which card, how it ended), and all ask
the same two questions before they offer a button: may it be refunded, and
for how much at most; may it be voided.  The answers come from the terminal's
own rules (:func:`terminal.lifecycle.follow_up_refusal`, the refunds that
count), read here only to offer or grey out a button and to say why: the
facade decides again, and its refusal (in words) is what the cashier sees
if the two ever disagree.

Everything here reads rows already fetched; nothing calls the terminal, so
it is safe on the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from terminal.lifecycle import COUNTED_REFUND_STATES, FollowUp, State, follow_up_refusal
from terminal.money import currency as currency_of
from terminal.store import TxnRow
from ui.i18n import Translator

__all__ = [
    "KIND_WORDS",
    "PERIODS",
    "STATE_WORDS",
    "FollowUps",
    "PaymentLine",
    "follow_ups",
    "line_of",
    "parse_amount",
    "period_bounds",
    "short_card",
]

#: How each state reads on the cashier's screens (translated when shown).
STATE_WORDS: dict[State, str] = {
    State.STARTED: "Not finished",
    State.AUTHORISING: "Not finished",
    State.APPROVED: "Approved",
    State.DECLINED: "Declined",
    State.CANCELLED: "Not completed",
    State.REVERSAL_PENDING: "Reversal pending",
    State.REVERSED: "Reversed",
    State.OFFLINE_APPROVED: "Approved offline",
    State.DEFERRED_APPROVED: "Approved, not yet sent",
    State.FORWARDED: "Approved",
    State.DECLINED_AFTER_FORWARDING: "Declined after sending",
    State.REJECTED_BY_HOST: "Refused by the host",
    State.EXPIRED: "Expired",
    State.VOID_PENDING: "Voided, not yet sent",
    State.VOIDED: "Voided",
    State.WALLET_PAYING: "Not finished",
    State.WALLET_TORN: "Not finished",
    State.WALLET_APPROVED: "Approved offline",
    State.WALLET_CREDITED: "Approved",
    State.WALLET_REFUSED: "Declined",
    State.WALLET_NOT_PAID: "Not completed",
}

#: The kinds of payment, as the cashier calls them.
KIND_WORDS: dict[str, str] = {"sale": "Sale", "refund": "Refund"}

#: The date filters the journal offers: name -> label (translated when shown).
PERIODS: dict[str, str] = {"today": "Today", "yesterday": "Yesterday", "week": "7 days", "all": "All dates"}

_GOOD = frozenset(
    {
        State.APPROVED,
        State.OFFLINE_APPROVED,
        State.DEFERRED_APPROVED,
        State.FORWARDED,
        State.WALLET_APPROVED,
        State.WALLET_CREDITED,
    }
)
_NEUTRAL = frozenset({State.VOIDED, State.VOID_PENDING, State.REVERSED, State.REVERSAL_PENDING})


def short_card(masked_pan: str | None, scheme: str | None = None) -> str:
    """A card as a line has room for: ``visa ••0010`` (the last four digits only)."""
    tail = (masked_pan or "")[-4:]
    name = (scheme or "").strip()
    if name == "unknown":
        name = ""
    return f"{name} ••{tail}".strip() if tail else name


@dataclass(frozen=True)
class PaymentLine:
    """One payment in a list: each part already in words; ``tone`` is good, bad or neutral."""

    txn_id: str
    when: str
    kind: str
    amount: str
    card: str
    status: str
    tone: str

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def _local(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone()


def line_of(row: TxnRow, tr: Translator, today: date | None = None) -> PaymentLine:
    """``row`` as one line of a list: the time alone when it is today's, else the date and time."""
    at = _local(row.created_at)
    today = today or datetime.now().astimezone().date()
    when = f"{at:%H:%M}" if at.date() == today else tr.when(at)
    tone = "good" if row.state in _GOOD else "neutral" if row.state in _NEUTRAL else "bad"
    return PaymentLine(
        txn_id=row.txn_id,
        when=when,
        kind=tr(KIND_WORDS.get(row.kind, row.kind.capitalize())),
        amount=tr.amount(row.amount, row.currency),
        card=short_card(row.masked_pan, row.scheme),
        status=tr(STATE_WORDS.get(row.state, row.state.value)),
        tone=tone,
    )


def parse_amount(text: str, code: int) -> int | None:
    """An amount typed as the cashier writes it (``12.34``, ``12,34``, ``12``) in minor units; None if not one.

    >>> parse_amount("12.34", 978), parse_amount("12", 978), parse_amount("7,5", 978), parse_amount("1.234", 978)
    (1234, 1200, 750, None)
    >>> parse_amount("500", 392), parse_amount("", 978)
    (500, None)
    """
    exponent: int = currency_of(code).exponent
    cleaned = text.strip().replace(",", ".")
    if not cleaned:
        return None
    whole, dot, frac = cleaned.partition(".")
    if not whole.isdigit() and not (whole == "" and frac):
        return None
    if dot and (not frac.isdigit() or len(frac) > exponent):
        return None
    scale: int = 10**exponent
    return int(whole or "0") * scale + (int(frac.ljust(exponent, "0")) if dot else 0)


def period_bounds(period: str, now: datetime) -> tuple[str | None, str | None]:
    """``since`` and ``until`` (ISO 8601, UTC, as the journal writes them) of a named period in local days."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; expected one of {', '.join(PERIODS)}")
    if period == "all":
        return None, None
    local = now.astimezone()
    midnight = datetime.combine(local.date(), time(), tzinfo=local.tzinfo)

    def iso(moment: datetime) -> str:
        return moment.astimezone(UTC).isoformat(timespec="microseconds")

    if period == "today":
        return iso(midnight), None
    if period == "yesterday":
        return iso(midnight - timedelta(days=1)), iso(midnight)
    return iso(midnight - timedelta(days=6)), None


@dataclass(frozen=True)
class FollowUps:
    """What may follow a payment: a refund (up to ``left``) and a void, or why not, in words."""

    refund_left: int
    refunded: int
    refund_refusal: str | None
    void_refusal: str | None

    @property
    def can_refund(self) -> bool:
        return self.refund_refusal is None

    @property
    def can_void(self) -> bool:
        return self.void_refusal is None


def follow_ups(row: TxnRow, refunds: list[TxnRow], open_batch: int | None) -> FollowUps:
    """Whether ``row`` may be refunded (and how much is left) or voided, from the terminal's own rules.

    ``refunds``: the payments made against it (``terminal.transactions(original_txn_id=...)``);
    ``open_batch``: the open batch's id (a void is for the open batch only).
    """
    refunded = sum(r.amount for r in refunds if r.kind == "refund" and r.state in COUNTED_REFUND_STATES)
    left = max(0, row.amount - refunded) if row.kind == "sale" else 0
    refund_refusal = follow_up_refusal(FollowUp.REFUND, row.kind, row.state)
    if refund_refusal is None and left == 0:
        refund_refusal = "it has been refunded in full"
    void_refusal = follow_up_refusal(FollowUp.VOID, row.kind, row.state)
    if void_refusal is None and open_batch is not None and row.batch_id != open_batch:
        void_refusal = "its batch is settled: refund it instead"
    if void_refusal is None and row.kind == "sale" and refunded:
        void_refusal = "refunds were made against it: void those first, or refund what is left"
    return FollowUps(left, refunded, refund_refusal, void_refusal)
