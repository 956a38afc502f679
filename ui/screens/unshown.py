"""The notice above the first screen: payments the terminal made and never showed, before it stopped.

A payment is durable before it is shown, so an application that died between
the two leaves a payment that stands (and is settled) though nobody saw it:
a cashier, or the kiosk's customer, would take it again.  At start-up this
bar lists them ("Sale 12.34 EUR approved at 10:02, receipt reprinted"), with
the receipt printed again when a printer is configured (a DUPLICATE if one
came out before), and stays until someone presses "OK": only then do they
count as shown (:meth:`terminal.facade.Terminal.mark_shown`).  The cashier's
"Receipt" opens the last one's receipt.

The result screens mark what they show (:func:`mark_shown`), so that a
payment seen on the screen is not told again at the next start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from terminal.facade import Terminal
from terminal.notices import OutcomeRecord, outcome_word
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["UnshownNotice", "mark_shown"]

_OUTCOME_TEXTS = {"approved": "approved", "declined": "declined", "voided": "voided", "not completed": "not completed"}


def mark_shown(session: Session, txn_id: str) -> None:
    """The outcome of ``txn_id`` is on the screen: marked shown, on the worker (a failure only logs)."""
    if txn_id:
        session.run(lambda t: t.mark_shown([txn_id], "ui"), lambda _ids: None, lambda _e: None, name="mark shown")


def _reprint(terminal: Terminal, records: list[OutcomeRecord]) -> tuple[list[OutcomeRecord], dict[str, str]]:
    """On the worker: the customer receipt of each approved payment printed again; what became of each."""
    printed: dict[str, str] = {}
    if terminal.printer is None:
        return records, printed
    for record in records:
        if not record.result.approved:
            continue
        txn_id = record.result.txn_id
        try:
            before = terminal.receipt(txn_id, "customer", issue=False)
            terminal.print_receipt(txn_id, "customer")
        except Exception:  # the printer's fault: the notice still goes out, the receipt from the journal later
            printed[txn_id] = "failed"
            continue
        printed[txn_id] = "reprinted" if getattr(before, "reprint", False) else "printed"
    return records, printed


class UnshownNotice(ViewModel):
    """Whether the notice shows, its title, a line per payment, and "OK" / "Receipt"."""

    screen = "unshown"
    visible: bool = False
    title: str = ""
    detail: str = ""
    lines: tuple[str, ...] = ()
    ok_label: str = ""
    receipt_label: str = ""
    can_receipt: bool = False

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.records: list[OutcomeRecord] = []
        self._printed: dict[str, str] = {}
        session.tr.listen(lambda _: self._show())
        self._show()

    def start(self) -> None:
        """Find the payments nobody was shown (at start-up), reprint their receipts, and show them."""
        self.session.run(
            lambda t: _reprint(t, t.unshown_payments()), self._found, lambda _e: None, name="unshown payments"
        )

    def _found(self, found: tuple[list[OutcomeRecord], dict[str, str]]) -> None:
        self.records, self._printed = list(found[0]), dict(found[1])
        self._show()

    def _line(self, record: OutcomeRecord) -> str:
        tr = self.session.tr
        result = record.result
        try:
            moment = datetime.fromisoformat(record.at).astimezone()
        except ValueError:
            moment = None
        today = self.session.terminal.clock.now().astimezone().date()
        when = "" if moment is None else f"{moment:%H:%M}" if moment.date() == today else tr.when(moment)
        line = tr(
            "{kind} {amount} {outcome} at {when}",
            kind=tr("Refund") if result.kind == "refund" else tr("Sale"),
            amount=tr.amount(result.amount, result.currency),
            outcome=tr(_OUTCOME_TEXTS[outcome_word(result)]),
            when=when,
        )
        printed = self._printed.get(result.txn_id)
        if printed == "reprinted":
            line += tr(", receipt reprinted")
        elif printed == "printed":
            line += tr(", receipt printed")
        elif printed == "failed":
            line += tr(", the receipt could not be printed")
        return line

    def _show(self) -> None:
        tr = self.session.tr
        n = len(self.records)
        lines = tuple(self._line(r) for r in self.records)
        self.update(
            visible=n > 0,
            title=(
                tr("Not shown: the terminal stopped before it showed this payment")
                if n == 1
                else tr("Not shown: the terminal stopped before it showed {n} payments", n=n)
            ),
            lines=lines,
            detail="; ".join(lines[-3:]),
            ok_label=tr("OK"),
            receipt_label=tr("Receipt"),
            can_receipt=n > 0 and "receipt" in self.session.screens,
        )

    def ok(self) -> None:
        """Someone has read it: the payments count as shown, and the notice goes."""
        ids = [r.result.txn_id for r in self.records]
        self.records, self._printed = [], {}
        self._show()
        if ids:
            self.session.run(lambda t: t.mark_shown(ids, "ui"), lambda _ids: None, lambda _e: None, name="shown")

    def receipt(self) -> None:
        """The last payment's receipt on the cashier's receipt screen."""
        if self.records and self.can_receipt:
            from ui.screens.receipt import ReceiptView

            self.session.screen("receipt", ReceiptView).open(self.records[-1].result.txn_id)

    def sample(self) -> None:
        from terminal.lifecycle import State
        from terminal.results import PaymentResult

        now = self.session.terminal.clock.now().replace(hour=10, minute=2, second=0, microsecond=0)
        result = PaymentResult(
            txn_id="20261206100200-0123456789ab", kind="sale", state=State.APPROVED, amount=1234,
            currency=self.session.currency, approved=True, message="approved", masked_pan="476173******0010",
            scheme="visa",
        )  # fmt: skip
        self.records = [OutcomeRecord(result, now.isoformat())]
        self._printed = {result.txn_id: "reprinted"}
        self._show()

    def state(self) -> dict[str, Any]:
        return super().state() | {"count": len(self.records)}
