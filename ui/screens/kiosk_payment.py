"""The kiosk's customer screens during and after a payment: present card, the result, the e-receipt.

The kiosk does not start its payments (the kiosk's software does, through
the ECR interface, in this process): it follows whatever payment the
terminal makes, by the terminal's events, which the facade emits on the
thread that runs the payment and the session brings to the UI thread:

``payment_started``  the amount and whether it is a sale or a refund: "present card";
``card_prompt``      "present card" / "present card again";
``ui_message``       the EMV Book A message and the four lights, live;
``state_changed``    the journal's states (authorising ...);
``payment_finished`` the result (or the refusal, when no card was read): the result screen.

A payment takes the screen only from a customer's screen
(:data:`ui.screens.kiosk.CUSTOMER_SCREENS`): a technician at work keeps
theirs.  The result goes back to idle by itself after ``result_seconds``;
the e-receipt (a QR code of the receipt as printed) after ``receipt_seconds``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from terminal.facade import TerminalEvent
from terminal.receipts import render_text
from ui.screens.kiosk import CUSTOMER_SCREENS, KioskIdle, go_idle
from ui.screens.texts import reason_text
from ui.screens.unshown import mark_shown
from ui.session import Session
from ui.timers import Timer
from ui.viewmodel import ViewModel

__all__ = ["Countdown", "KioskCard", "KioskReceipt", "KioskResult"]

_log = logging.getLogger("ui.kiosk")


def _idle(session: Session) -> KioskIdle | None:
    idle = session.screens.get("idle")
    return idle if isinstance(idle, KioskIdle) else None


class Countdown:
    """Seconds left on a screen before the kiosk moves on, ticking once a second on the UI thread."""

    def __init__(self, session: Session, on_tick: Any, on_end: Any) -> None:
        self.session = session
        self._on_tick = on_tick
        self._on_end = on_end
        self._timer: Timer | None = None
        self.left = 0

    def start(self, seconds: float) -> None:
        self.stop()
        self.left = max(1, round(seconds))
        self._on_tick(self.left)
        self._timer = self.session.timers.call_later(1.0, self._tick)

    def _tick(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self._timer = None
            self._on_end()
            return
        self._on_tick(self.left)
        self._timer = self.session.timers.call_later(1.0, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class KioskCard(ViewModel):
    """ "Present card" for the customer: what is being paid, the lights spelled out, and a big Cancel."""

    screen = "kiosk_card"
    title: str = ""
    amount_text: str = ""
    prompt: str = ""
    message: str = ""
    lights: int = 0
    lights_text: str = ""
    can_cancel: bool = True
    cancel_label: str = ""
    language: str = "en"

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._payment: dict[str, Any] = {}
        self._prompt = "Present card"
        self._message = ""
        for kind, handler in (
            ("payment_started", self._started),
            ("card_prompt", self._prompt_changed),
            ("ui_message", self._message_changed),
            ("payment_finished", self._finished),
        ):
            session.on_event(kind, handler)
        session.tr.listen(lambda _: self.refresh())

    @property
    def following(self) -> bool:
        """A payment is running and this screen follows it."""
        return bool(self._payment)

    def refresh(self) -> None:
        tr = self.session.tr
        payment = self._payment or {"payment": "sale", "amount": 0, "currency": self.session.currency}
        self.update(
            title=tr("Refund") if payment["payment"] == "refund" else tr("Amount to pay"),
            amount_text=tr.amount(int(payment["amount"]), int(payment["currency"])),
            prompt=tr(self._prompt),
            message=tr(self._message) if self._message else "",
            lights_text=tr("{lit} of 4 lights", lit=self.lights),
            cancel_label=tr("Cancel"),
            language=tr.language,
        )

    def _started(self, event: TerminalEvent) -> None:
        self._payment = dict(event.data)
        self._prompt, self._message = "Present card", ""
        self.update(lights=1, can_cancel=True)
        self.refresh()
        idle = _idle(self.session)
        if idle is not None:
            idle.payment_running(True)
        for name in ("kiosk_result", "kiosk_receipt"):
            screen = self.session.screens.get(name)
            if isinstance(screen, KioskResult | KioskReceipt):
                screen.leave()
        if self.session.navigator.current.name in CUSTOMER_SCREENS:
            self.session.navigator.go("kiosk_card")

    def _prompt_changed(self, event: TerminalEvent) -> None:
        prompt = str(event.data.get("prompt", "present card"))
        self._prompt = prompt[:1].upper() + prompt[1:]
        self.refresh()

    def _message_changed(self, event: TerminalEvent) -> None:
        self._message = str(event.data.get("text", ""))
        # Once the card is being read there is nothing left to cancel: the payment rules decide.
        self.update(lights=int(event.data.get("lights", 0)), can_cancel=event.data.get("status") == "ready_to_read")
        self.refresh()

    def _finished(self, event: TerminalEvent) -> None:
        self._payment = {}
        idle = _idle(self.session)
        if idle is not None:
            idle.payment_running(False)
        result = self.session.screens.get("kiosk_result")
        if isinstance(result, KioskResult):
            result.show(event.txn_id, event.data)
            if self.session.navigator.current.name in CUSTOMER_SCREENS:
                self.session.navigator.go("kiosk_result")

    def choose_language(self, language: str) -> None:
        self.session.tr.set_language(language)

    def cancel(self) -> None:
        if self.can_cancel:
            self.session.cancel()

    def sample(self) -> None:
        self._payment = {"payment": "sale", "amount": 1250, "currency": self.session.currency}
        self._prompt, self._message = "Present card", "Processing"
        self.update(lights=2, can_cancel=False)
        self.refresh()


class KioskResult(ViewModel):
    """The result for the customer, the receipt's choices, and the way back to idle (by itself, or "Done")."""

    screen = "kiosk_result"
    approved: bool = False
    title: str = ""
    reason: str = ""
    amount_text: str = ""
    card_text: str = ""
    receipt_note: str = ""
    can_e_receipt: bool = False
    can_print: bool = False
    countdown_text: str = ""
    done_label: str = ""
    e_receipt_label: str = ""
    print_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.txn_id: str | None = None
        self._data: dict[str, Any] = {}
        self.countdown = Countdown(session, self._tick, self.done)
        session.tr.listen(lambda _: self.refresh())

    def show(self, txn_id: str | None, data: dict[str, Any]) -> None:
        """Show a payment's end (``payment_finished``'s data), and start the way back to idle."""
        self.txn_id, self._data = txn_id, dict(data)
        self.refresh()
        if txn_id is not None:
            mark_shown(self.session, txn_id)  # the customer has seen it: not told again at the next start
        idle = _idle(self.session)
        self.countdown.start(idle.settings.result_seconds if idle is not None else 10)

    def refresh(self) -> None:
        tr = self.session.tr
        data = self._data
        approved = bool(data.get("approved"))
        state = str(data.get("state", ""))
        if approved:
            title = tr("Approved")
        elif state == "reversal_pending":
            title = tr("Not completed: reversal pending")
        elif state == "declined":
            title = tr("Declined")
        else:
            title = tr("Not completed")
        printer = self.session.terminal.printer is not None
        printed = printer and self.txn_id is not None and not data.get("warnings")
        idle = _idle(self.session)
        printer_out = idle is not None and "printer" in idle.watch.out_of_order()
        note = ""
        if approved and printed:
            note = tr("Please take your receipt")
        elif approved and printer and self.txn_id is not None:
            note = tr("The receipt could not be printed")
        currency = int(data.get("currency", self.session.currency))
        self.update(
            approved=approved,
            title=title,
            reason=reason_text(tr, str(data.get("message", "")), approved=approved),
            amount_text=tr.amount(int(data.get("amount", 0)), currency) if data else "",
            card_text=f"{data.get('scheme') or ''} {data.get('masked_pan') or ''}".strip(),
            receipt_note=note,
            can_e_receipt=approved and self.txn_id is not None,
            can_print=approved and printer and not printed and not printer_out and self.txn_id is not None,
            done_label=tr("Done"),
            e_receipt_label=tr("E-receipt"),
            print_label=tr("Print receipt"),
        )
        if self.countdown.left:
            self._tick(self.countdown.left)

    def _tick(self, left: int) -> None:
        self.update(countdown_text=self.session.tr("Back to the start in {seconds} s", seconds=left))

    def leave(self) -> None:
        """Another payment began: this one's way back to idle is no longer wanted."""
        self.countdown.stop()

    def done(self) -> None:
        """ "Done" (no receipt, thanks), or the time is up: back to idle."""
        self.countdown.stop()
        if self.session.navigator.current.name == "kiosk_result":
            go_idle(self.session)

    def e_receipt(self) -> None:
        """The receipt as a QR code, for the customer's phone."""
        if not self.can_e_receipt or self.txn_id is None:
            return
        self.countdown.stop()
        receipt = self.session.screens.get("kiosk_receipt")
        if isinstance(receipt, KioskReceipt):
            receipt.show(self.txn_id)
            self.session.navigator.go("kiosk_receipt")

    def print_receipt(self) -> None:
        """Print the receipt again (the printer had failed); the countdown starts again."""
        if not self.can_print or self.txn_id is None:
            return
        txn_id = self.txn_id
        self.update(can_print=False, receipt_note=self.session.tr("Printing..."))

        def printed(_: None) -> None:
            self._data["warnings"] = []
            self.refresh()

        def failed(exc: BaseException) -> None:
            self.update(receipt_note=self.session.tr("The receipt could not be printed"))

        self.session.run(lambda terminal: terminal.print_receipt(txn_id), printed, failed, name="kiosk print")
        idle = _idle(self.session)
        self.countdown.start(idle.settings.result_seconds if idle is not None else 10)

    def sample(self) -> None:
        self.txn_id = "20261206120000-0123456789ab"
        self._data = {
            "payment": "sale",
            "amount": 1250,
            "currency": self.session.currency,
            "approved": True,
            "state": "approved",
            "message": "approved",
            "masked_pan": "476173******0010",
            "scheme": "visa",
            "warnings": [],
        }
        self.refresh()
        self.countdown.stop()
        self._tick(8)


class KioskReceipt(ViewModel):
    """The e-receipt: the receipt as printed, in a QR code the customer's phone reads."""

    screen = "kiosk_receipt"
    title: str = ""
    qr_png: str = ""  # a PNG file of the QR code ("" while it is made)
    amount_text: str = ""
    message: str = ""
    countdown_text: str = ""
    done_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._dir: Path | None = None
        self._made = 0
        self.countdown = Countdown(session, self._tick, self.done)
        session.tr.listen(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        tr = self.session.tr
        self.update(title=tr("Scan the code to keep your receipt"), done_label=tr("Done"))
        if self.countdown.left:
            self._tick(self.countdown.left)

    def _folder(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="posterm-kiosk-"))
            folder = self._dir
            self.session.on_stop(lambda: shutil.rmtree(folder, ignore_errors=True))
        return self._dir

    def show(self, txn_id: str) -> None:
        """Make the QR code of ``txn_id``'s receipt on the worker; shown when it is made."""
        self._made += 1
        path = self._folder() / f"receipt-{self._made}.png"  # a new name each time: Kivy caches images by name
        self.update(qr_png="", amount_text="", message=self.session.tr("Processing"))

        def make(terminal: Any) -> tuple[str, int, int]:
            data = terminal.receipt(txn_id, "customer", issue=True)
            _qr_png(render_text(data, "customer"), path)
            return str(path), int(data.amount), int(data.currency)

        def made(out: tuple[str, int, int]) -> None:
            png, amount, currency = out
            self.update(qr_png=png, amount_text=self.session.tr.amount(amount, currency), message="")

        def failed(exc: BaseException) -> None:
            _log.warning("e-receipt of %s: %s", txn_id, exc)
            self.update(message=self.session.tr("The receipt cannot be shown"))

        self.session.run(make, made, failed, name="e-receipt")
        idle = _idle(self.session)
        self.countdown.start(idle.settings.receipt_seconds if idle is not None else 30)

    def _tick(self, left: int) -> None:
        self.update(countdown_text=self.session.tr("Back to the start in {seconds} s", seconds=left))

    def leave(self) -> None:
        self.countdown.stop()

    def done(self) -> None:
        self.countdown.stop()
        if self.session.navigator.current.name == "kiosk_receipt":
            go_idle(self.session)

    def sample(self) -> None:
        path = self._folder() / "sample.png"
        _qr_png("posterm sample receipt\nVISA 476173******0010\nTOTAL 12.50 EUR\nAPPROVED", path)
        self.update(qr_png=str(path), amount_text=self.session.tr.amount(1250, self.session.currency), message="")
        self.countdown.stop()
        self._tick(25)


def _qr_png(text: str, path: Path) -> None:
    """``text`` as a QR code in a PNG file, black on white, with its quiet zone."""
    import qrcode  # a dependency of the receipts' QR codes already; imported when a code is made

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_L, box_size=8, border=4)
    code.add_data(text.encode("utf-8"))
    code.make(fit=True)
    code.make_image(fill_color="black", back_color="white").save(str(path))
