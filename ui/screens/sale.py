"""A sale at the counter: the amount keyed, a tender chosen, the card presented, the result.

Three touches after the amount: "Charge", the card's tap, and nothing more
(the receipt prints by itself when a printer is configured).  The amount is
keyed in the currency's minor units, as a till does: 1, 2, 3, 4 shows 12.34.
Tenders are a list (:data:`TENDERS`), so that digital currency and QR codes
join the card as equals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from terminal.facade import PaymentResult, TerminalEvent
from terminal.money import currency as currency_of
from ui.screens.texts import reason_text
from ui.screens.unshown import mark_shown
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["MAX_DIGITS", "TENDERS", "AmountEntry", "PaymentOutcome", "PresentCard", "Tender"]

MAX_DIGITS = 9  # 9,999,999.99 in a two-decimal currency: a till's keypad, not the protocol's 12 digits


@dataclass(frozen=True)
class Tender:
    """A way to pay: its name, its label (translated when shown), and how a payment with it starts."""

    name: str
    label: str
    start: Callable[[Session, int], None]


def start_card_sale(session: Session, amount: int) -> None:
    """A card sale: the "present card" screen, the sale on the worker, then the result screen."""
    session.screen("present_card", PresentCard).begin(amount)
    session.navigator.go("present_card", amount=amount)

    def done(result: PaymentResult) -> None:
        session.screen("result", PaymentOutcome).show_result(result)
        session.navigator.go("result", txn_id=result.txn_id)

    def failed(exc: BaseException) -> None:
        session.screen("result", PaymentOutcome).show_refusal(amount, session.describe(exc))
        session.navigator.go("result")

    session.run(lambda terminal: terminal.sale(amount, session.currency), done, failed, name="sale")


def start_qr_sale(session: Session, amount: int) -> None:
    """A QR sale: the terminal shows a code for the customer's app (:mod:`ui.screens.qr_show`)."""
    from ui.screens.qr_show import start_qr_sale as start

    start(session, amount)


TENDERS: list[Tender] = [Tender("card", "Card", start_card_sale), Tender("qr", "QR", start_qr_sale)]


class AmountEntry(ViewModel):
    """The keypad: digits keyed from the right, as minor units; the tenders to charge with."""

    screen = "amount"
    digits: str = ""
    amount: int = 0
    amount_text: str = ""
    currency_code: str = ""
    can_charge: bool = False
    tenders: tuple[str, ...] = ()
    title: str = ""
    charge_label: str = ""
    qr_label: str = ""
    menu_label: str = ""
    has_menu: bool = False  # the cashier's other verbs (refund, void, journal, reports, end of day)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.tenders = tuple(t.name for t in TENDERS)
        session.tr.listen(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        tr = self.session.tr
        cur = currency_of(self.session.currency)
        self.update(
            amount=int(self.digits or "0"),
            amount_text=tr.amount(int(self.digits or "0"), cur.numeric),
            currency_code=cur.code,
            can_charge=int(self.digits or "0") > 0,
            title=tr("Amount"),
            charge_label=tr("Charge"),
            qr_label=tr("QR"),
            menu_label=tr("Menu"),
            has_menu="menu" in self.session.screens,
        )

    def shown(self) -> None:
        self.refresh()  # the screens are all built by now: whether there is a menu is known

    def menu(self) -> None:
        """The cashier's menu (refund, void, journal, X report, end of day)."""
        if "menu" in self.session.screens:
            self.session.navigator.go("menu")

    def press(self, key: str) -> None:
        """A digit, "00", "back" or "clear"."""
        if key == "back":
            digits = self.digits[:-1]
        elif key == "clear":
            digits = ""
        elif key.isdigit():
            digits = (self.digits + key).lstrip("0")[:MAX_DIGITS]
        else:
            raise ValueError(f"unknown key {key!r}")
        self.update(digits=digits)
        self.refresh()

    def tender_label(self, name: str) -> str:
        tender = next(t for t in TENDERS if t.name == name)
        return self.session.tr(tender.label)

    def sample(self) -> None:
        self.update(digits="1234")
        self.refresh()

    def charge(self, tender: str = "card") -> None:
        """Charge the amount keyed with ``tender``; the keypad is cleared for the next customer."""
        if not self.can_charge:
            return
        amount = self.amount
        self.press("clear")
        next(t for t in TENDERS if t.name == tender).start(self.session, amount)


class PresentCard(ViewModel):
    """ "Present card": the amount, the prompt, the four contactless lights and the Book A message, live."""

    screen = "present_card"
    kind_text: str = ""  # "Refund" for a refund (a sale says nothing more than its amount)
    amount_text: str = ""
    prompt: str = ""
    message: str = ""
    lights: int = 0
    lights_text: str = ""
    can_cancel: bool = True
    cancel_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._amount = 0
        session.on_event("card_prompt", self._on_prompt)
        session.on_event("ui_message", self._on_message)

    def begin(self, amount: int, *, kind: str = "sale", code: int | None = None) -> None:
        """A payment of ``amount`` (currency ``code``, the terminal's by default) waits for the card.

        ``kind`` "refund" says so above the amount: the customer taps to be paid, not to pay.
        """
        tr = self.session.tr
        self._amount = amount
        self.update(
            kind_text=tr("Refund") if kind == "refund" else "",
            amount_text=tr.amount(amount, self.session.currency if code is None else code),
            prompt=tr("Present card"),
            message="",
            lights=1,
            lights_text=self._lights_text(1),
            can_cancel=True,
            cancel_label=tr("Cancel"),
        )

    def _lights_text(self, lights: int) -> str:
        # The lights spelled out too, for colour-blind customers.
        return self.session.tr("{lit} of 4 lights", lit=lights)

    def _on_prompt(self, event: TerminalEvent) -> None:
        prompt = str(event.data.get("prompt", ""))
        self.update(prompt=self.session.tr(prompt[:1].upper() + prompt[1:]))

    def _on_message(self, event: TerminalEvent) -> None:
        lights = int(event.data.get("lights", 0))
        text = str(event.data.get("text", ""))
        status = str(event.data.get("status", ""))
        # Once the card is being read there is nothing left to cancel: the payment rules decide.
        self.update(
            message=self.session.tr(text),
            lights=lights,
            lights_text=self._lights_text(lights),
            can_cancel=status == "ready_to_read",
        )

    def cancel(self) -> None:
        if self.can_cancel:
            self.session.cancel()

    def sample(self) -> None:
        self.begin(1234)
        self.update(lights=2, lights_text=self._lights_text(2), message=self.session.tr("Processing"))


class PaymentOutcome(ViewModel):
    """The result: approved or not, why in words, and what to do with the receipt."""

    screen = "result"
    approved: bool = False
    title: str = ""
    reason: str = ""
    amount_text: str = ""
    card_text: str = ""
    txn_id: str = ""
    warnings: tuple[str, ...] = ()
    printed: bool = False
    next_label: str = ""
    kind_text: str = ""  # "Sale", "Refund", "Void": what the title is about
    voided: bool = False  # a void done: the title is good news, not a refusal
    can_receipt: bool = False  # the receipt can be shown, given as a QR code (the cashier's screens)
    printed_text: str = ""
    e_receipt_label: str = ""
    receipt_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def _receipt_options(self, txn_id: str, printed: bool) -> dict[str, Any]:
        """ "No receipt" / "E-receipt" / the receipt on screen: offered where the cashier's screens are."""
        tr = self.session.tr
        can = bool(txn_id) and "receipt" in self.session.screens
        return {
            "can_receipt": can,
            "printed_text": tr("Receipt printed") if printed else "",
            "e_receipt_label": tr("E-receipt"),
            "receipt_label": tr("Receipt"),
            # Without a printed receipt, moving on is the cashier saying "no receipt".
            "next_label": tr("No receipt") if can and not printed else tr("Next customer"),
        }

    def show_result(self, result: PaymentResult) -> None:
        tr = self.session.tr
        voided = result.state.value in ("voided", "void_pending")
        reason = reason_text(tr, result.message, approved=result.approved)
        if voided:
            title = tr("Voided")
            pending = result.state.value == "void_pending"
            reason = tr("The reversal is sent when the host can be reached") if pending else ""
        elif result.approved:
            title = tr("Approved")
        elif result.state.value == "reversal_pending":
            title = tr("Not completed: reversal pending")
        elif result.state.value in ("cancelled", "reversed", "wallet_not_paid"):
            title = tr("Not completed")
        else:
            title = tr("Declined")
        printed = self.session.terminal.printer is not None and not result.warnings
        self.update(
            approved=result.approved,
            voided=voided,
            title=title,
            kind_text=tr("Void") if voided else tr("Refund") if result.kind == "refund" else tr("Sale"),
            reason=reason,
            amount_text=tr.amount(result.amount, result.currency),
            card_text=f"{result.scheme or ''} {result.masked_pan or ''}".strip(),
            txn_id=result.txn_id,
            warnings=tuple(tr(w) for w in result.warnings),
            printed=printed,
            **self._receipt_options(result.txn_id, printed),
        )
        mark_shown(self.session, result.txn_id)  # seen on the screen: not told again at the next start

    def show_refusal(self, amount: int, reason: str, kind: str = "sale") -> None:
        tr = self.session.tr
        self.update(
            approved=False,
            voided=False,
            kind_text=tr("Refund") if kind == "refund" else tr("Void") if kind == "void" else tr("Sale"),
            title=tr("Not completed"),
            reason=tr(reason),
            amount_text=tr.amount(amount, self.session.currency),
            card_text="",
            txn_id="",
            warnings=(),
            printed=False,
            **self._receipt_options("", False),
        )

    def sample(self) -> None:
        from terminal.lifecycle import State

        self.show_result(
            PaymentResult(
                txn_id="20261206120000-0123456789ab", kind="sale", state=State.DECLINED, amount=1251,
                currency=self.session.currency, approved=False, message="declined: insufficient funds (51)",
                masked_pan="476173******0010", scheme="visa", response_code="51",
            )
        )  # fmt: skip

    def next_customer(self) -> None:
        self.session.navigator.go("amount")

    def receipt(self) -> None:
        """Show the receipt (and reprint or e-receipt from there)."""
        if self.txn_id and self.can_receipt:
            from ui.screens.receipt import ReceiptView  # the cashier's module, which needs this one

            self.session.screen("receipt", ReceiptView).open(self.txn_id)

    def e_receipt(self) -> None:
        """The receipt as a QR code for the customer's phone."""
        if self.txn_id and self.can_receipt:
            from ui.screens.receipt import ReceiptView

            self.session.screen("receipt", ReceiptView).open(self.txn_id, qr=True)

    def state(self) -> dict[str, Any]:
        return super().state()
