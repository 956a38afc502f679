"""The QR tender: the terminal shows the order's code on its screen and waits for the customer's app.

"QR" on the amount screen starts :meth:`terminal.facade.Terminal.qr_sale`
with a code shown (merchant-presented) on the worker; the terminal tells its
``qr_status`` events (the payload of the code, "waiting for the customer"),
which this screen draws: the amount, the code (its modules as rows, drawn by
:func:`ui.views.widgets.qr_texture`), the message, and "Cancel", which stops
the wait: the terminal then closes the order at the host (a payment the app
made first is recorded, and shown as approved).  The result is the card's
result screen.
"""

from __future__ import annotations

from terminal.facade import PaymentResult, TerminalEvent
from ui.screens.receipt import qr_rows
from ui.screens.sale import PaymentOutcome
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["ShowQr", "start_qr_sale"]


def start_qr_sale(session: Session, amount: int) -> None:
    """A QR sale: the code on the screen while the terminal waits for the app, then the result."""
    session.screen("show_qr", ShowQr).begin(amount)
    session.navigator.go("show_qr", amount=amount)

    def done(result: PaymentResult) -> None:
        session.screen("result", PaymentOutcome).show_result(result)
        session.navigator.go("result", txn_id=result.txn_id)

    def failed(exc: BaseException) -> None:
        session.screen("result", PaymentOutcome).show_refusal(amount, session.describe(exc))
        session.navigator.go("result")

    def sale(terminal: object) -> PaymentResult:
        result: PaymentResult = terminal.qr_sale(  # type: ignore[attr-defined]
            amount, session.currency, show=lambda _txn, _payload: None  # drawn from the qr_status event
        )
        return result

    session.run(sale, done, failed, name="sale")


class ShowQr(ViewModel):
    """The code for the customer's app to scan, the amount, "waiting for the customer", and Cancel."""

    screen = "show_qr"
    amount_text: str = ""
    prompt: str = ""
    message: str = ""
    qr_rows: tuple[str, ...] = ()
    can_cancel: bool = True
    cancel_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        session.on_event("qr_status", self._on_status)

    def begin(self, amount: int) -> None:
        tr = self.session.tr
        self.update(
            amount_text=tr.amount(amount, self.session.currency), prompt=tr("Scan to pay"),
            message=tr("Making the order"), qr_rows=(), can_cancel=True, cancel_label=tr("Cancel"),
        )  # fmt: skip

    def _on_status(self, event: TerminalEvent) -> None:
        payload = event.data.get("payload")
        message = str(event.data.get("message", ""))
        changes: dict[str, object] = {"message": self.session.tr(message[:1].upper() + message[1:])}
        if isinstance(payload, str) and payload:
            changes["qr_rows"] = qr_rows(payload)
        self.update(**changes)

    def cancel(self) -> None:
        """Stop waiting: the order is closed at the host."""
        if self.can_cancel:
            self.update(can_cancel=False, message=self.session.tr("Closing the order"))
            self.session.cancel()

    def sample(self) -> None:
        from terminal.qr_sale import dynamic_payload

        terminal = self.session.terminal
        payload = dynamic_payload(terminal.config, terminal.settings, 1234, self.session.currency,
                                  "20261206120000ABCDEF")  # fmt: skip
        self.begin(1234)
        self.update(qr_rows=qr_rows(payload), message=self.session.tr("Waiting for the customer"))
