"""Refund and void at the counter: the sale found, the amount chosen, a supervisor's PIN, the card, the result.

A refund is made against the sale it pays back (found by receipt number,
date and amount, or the card: :mod:`ui.screens.journal`), in full or in
part: the screen offers what is left (the sale less the refunds already
counted against it) and refuses more before anything is asked.  Then a
supervisor authorises exactly what is shown (:class:`ui.screens.pin.SupervisorPin`),
and the refund goes:

- "Tap the card": the customer presents the card; it must be the sale's
  card, unless "To another card" was chosen (the "present card" screen, as
  for a sale, with its lights and messages);
- "Without the card": to the sale's card as the journal knows it, no card read.

The terminal decides last.  Its refusals (the money rule: never more back
than was paid; a sale not yet confirmed by the host; another card presented)
come back in words and are shown on the refund screen, where the cashier can
change the amount; nothing was refunded then.

A void cancels an approved payment of the open batch, also behind the
supervisor's PIN (:func:`start_void`), and shows its result like a payment's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from terminal.money import currency as currency_of
from terminal.offline import PaymentRefused
from terminal.results import PaymentResult
from terminal.store import TxnRow
from ui.screens.describe import KIND_WORDS, FollowUps, follow_ups
from ui.screens.pin import SupervisorPin
from ui.screens.sale import MAX_DIGITS, PaymentOutcome, PresentCard
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["RefundAmount", "start_void"]


def _describe(session: Session, row: TxnRow) -> str:
    """``Sale 20.00 EUR · visa ••0010 · 12:03``: the payment a supervisor is asked to act on."""
    tr = session.tr
    from ui.screens.describe import line_of

    line = line_of(row, tr)
    parts = [f"{tr(KIND_WORDS.get(row.kind, row.kind))} {line.amount}", line.card, line.when]
    return " · ".join(p for p in parts if p)


def start_void(session: Session, row: TxnRow, *, back: str) -> None:
    """Void ``row`` once a supervisor keys the PIN; the result screen tells how it went."""
    tr = session.tr
    purpose = tr("Void: {payment}", payment=_describe(session, row)) + "\n" + tr("Receipt {txn}", txn=row.txn_id)

    def granted() -> None:
        outcome = session.screen("result", PaymentOutcome)

        def done(result: PaymentResult) -> None:
            outcome.show_result(result)
            session.navigator.go("result", txn_id=result.txn_id)

        def failed(exc: BaseException) -> None:
            outcome.show_refusal(row.amount, session.describe(exc), kind="void")
            session.navigator.go("result")

        pin = session.screen("supervisor_pin", SupervisorPin)
        pin.update(busy=True, message=tr("Voiding"))
        session.run(lambda t: t.void(row.txn_id), done, failed, name="void")

    session.screen("supervisor_pin", SupervisorPin).ask(purpose, granted, back)


@dataclass(frozen=True)
class _Sale:
    row: TxnRow
    follow: FollowUps


class RefundAmount(ViewModel):
    """How much of a sale to pay back (what is left at most), and how: tapping the card or without it."""

    screen = "refund"
    txn_id: str = ""
    title: str = ""
    sale_text: str = ""
    refunded_text: str = ""
    left: int = 0
    left_text: str = ""
    digits: str = ""
    amount: int = 0
    amount_text: str = ""
    can_refund: bool = False
    over_text: str = ""  # the amount keyed is more than is left
    other_card: bool = False
    busy: bool = False
    message: str = ""
    error: bool = False
    full_label: str = ""
    tap_label: str = ""
    no_card_label: str = ""
    other_label: str = ""
    back_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._sale: _Sale | None = None
        self._back = "journal"

    # -- the sale ------------------------------------------------------------------------------

    def open(self, txn_id: str, *, back: str | None = None) -> None:
        """Refund the sale ``txn_id``: read it (and its refunds), offer what is left."""
        self._back = back or self.session.navigator.current.name or "journal"
        self._sale = None
        self.update(
            txn_id=txn_id, sale_text="", refunded_text="", left=0, left_text="", digits="", other_card=False,
            busy=True, message=self.session.tr("Loading"), error=False,
        )  # fmt: skip
        self._refresh()
        self.session.navigator.go(self.screen, txn_id=txn_id)

        def load(terminal: Any) -> _Sale:
            row = terminal.transaction(txn_id)
            if row is None:
                raise KeyError(txn_id)
            batch = terminal.batch()
            refunds = terminal.transactions(original_txn_id=txn_id)
            return _Sale(row, follow_ups(row, refunds, batch["batch_id"] if batch else None))

        self.session.run(load, self._loaded, self._load_failed, name="refund sale")

    def _loaded(self, sale: _Sale) -> None:
        if sale.row.txn_id != self.txn_id:
            return
        tr = self.session.tr
        self._sale = sale
        row, follow = sale.row, sale.follow
        refusal = follow.refund_refusal
        self.update(
            sale_text=_describe(self.session, row),
            refunded_text=tr("Already refunded: {amount}", amount=tr.amount(follow.refunded, row.currency))
            if follow.refunded
            else "",
            left=follow.refund_left if refusal is None else 0,
            digits=str(follow.refund_left) if refusal is None else "",
            busy=False,
            error=refusal is not None,
            message=tr("No refund: {why}", why=tr(refusal)) if refusal else "",
        )
        self._refresh()

    def _load_failed(self, exc: BaseException) -> None:
        why = self.session.tr("No such payment") if isinstance(exc, KeyError) else self.session.describe(exc)
        self.update(busy=False, error=True, message=why)
        self._refresh()

    def _code(self) -> int:
        return self._sale.row.currency if self._sale is not None else self.session.currency

    def _refresh(self) -> None:
        tr = self.session.tr
        code = self._code()
        amount = int(self.digits or "0")
        too_much = amount > self.left
        self.update(
            title=tr("Refund"),
            amount=amount,
            amount_text=tr.amount(amount, code),
            left_text=tr("Left to refund: {amount}", amount=tr.amount(self.left, code)) if self._sale else "",
            can_refund=self._sale is not None and 0 < amount <= self.left and not self.busy,
            full_label=tr("Full: {amount}", amount=tr.amount(self.left, code)),
            tap_label=tr("Tap the card"),
            no_card_label=tr("Without the card"),
            other_label=tr("To another card"),
            back_label=tr("Back"),
        )
        over = tr("At most {amount} is left to refund", amount=tr.amount(self.left, code)) if too_much else ""
        self.update(over_text=over)

    # -- keys ----------------------------------------------------------------------------------

    def press(self, key: str) -> None:
        """A digit, "back" or "clear": the amount in minor units, as on the sale's keypad."""
        if key == "back":
            digits = self.digits[:-1]
        elif key == "clear":
            digits = ""
        elif key.isdigit():
            digits = (self.digits + key).lstrip("0")[:MAX_DIGITS]
        else:
            raise ValueError(f"unknown key {key!r}")
        self.update(digits=digits)
        self._refresh()

    def full(self) -> None:
        """Everything that is left."""
        self.update(digits=str(self.left) if self.left else "")
        self._refresh()

    def toggle_other_card(self) -> None:
        """The refund goes to a card other than the sale's (it must then be presented)."""
        self.update(other_card=not self.other_card)

    def back(self) -> None:
        self.session.navigator.go(self._back)

    # -- the refund ----------------------------------------------------------------------------

    def refund(self, present_card: bool = True) -> None:
        """Ask for the supervisor's PIN for the amount shown, then make the refund."""
        if not self.can_refund or self._sale is None:
            return
        if self.other_card and not present_card:
            present_card = True  # another card can only be the one presented
        tr = self.session.tr
        row, amount = self._sale.row, self.amount
        how = tr("to another card, presented") if self.other_card else tr("card presented") if present_card else tr(
            "to the sale's card, without the card"
        )  # fmt: skip
        purpose = (
            tr("Refund {amount} ({how})", amount=tr.amount(amount, row.currency), how=how)
            + "\n"
            + tr("Of: {payment}", payment=_describe(self.session, row))
        )
        other = self.other_card
        self.session.screen("supervisor_pin", SupervisorPin).ask(
            purpose, lambda: self._run(row, amount, present_card, other), self.screen
        )

    def _run(self, row: TxnRow, amount: int, present_card: bool, other_card: bool) -> None:
        session, tr = self.session, self.session.tr
        if present_card:
            session.screen("present_card", PresentCard).begin(amount, kind="refund", code=row.currency)
            session.navigator.go("present_card", amount=amount)
        else:
            self.update(busy=True, error=False, message=tr("Refunding"))
            self._refresh()
            session.navigator.go(self.screen, txn_id=row.txn_id)
        exponent = currency_of(row.currency).exponent

        def done(result: PaymentResult) -> None:
            self.update(busy=False)
            session.screen("result", PaymentOutcome).show_result(result)
            session.navigator.go("result", txn_id=result.txn_id)

        def failed(exc: BaseException) -> None:
            self.update(busy=False)
            if isinstance(exc, PaymentRefused):
                # The terminal's rules said no (in words); nothing was refunded: the cashier may change the amount.
                self.update(error=True, message=tr("Not refunded: {why}", why=session.describe(exc)))
                self._refresh()
                self.open_again()
                return
            session.screen("result", PaymentOutcome).show_refusal(amount, session.describe(exc), kind="refund")
            session.navigator.go("result")

        def call(terminal: Any) -> PaymentResult:
            result: PaymentResult = terminal.refund(
                amount, row.currency, exponent=exponent, original_txn_id=row.txn_id, present_card=present_card,
                to_other_card=other_card,
            )  # fmt: skip
            return result

        session.run(call, done, failed, name="refund")

    def open_again(self) -> None:
        """Back on the refund screen after a refusal, its message kept, the sale read again."""
        message = self.message
        txn_id = self.txn_id
        self.session.navigator.go(self.screen, txn_id=txn_id)

        def reread(terminal: Any) -> _Sale:
            row = terminal.transaction(txn_id)
            batch = terminal.batch()
            refunds = terminal.transactions(original_txn_id=txn_id)
            return _Sale(row, follow_ups(row, refunds, batch["batch_id"] if batch else None))

        def again(sale: _Sale) -> None:
            digits = self.digits
            self._loaded(sale)
            self.update(digits=digits if sale.follow.can_refund else "", error=True, message=message)
            self._refresh()

        self.session.run(reread, again, self._load_failed, name="refund sale")

    def sample(self) -> None:
        tr = self.session.tr
        code = self.session.currency
        self._sale = None
        self.update(
            txn_id="20261206120000-0123456789ab",
            sale_text=f"{tr('Sale')} {tr.amount(2000, code)} · visa ••0010 · 12:03",
            refunded_text=tr("Already refunded: {amount}", amount=tr.amount(500, code)),
            left=1500,
            digits="1000",
            busy=False,
            error=False,
            message="",
        )
        self._refresh()
        self.update(
            left_text=tr("Left to refund: {amount}", amount=tr.amount(1500, code)),
            can_refund=True,
        )

    def shown(self) -> None:
        self._refresh()
