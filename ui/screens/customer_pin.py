"""The customer's PIN, keyed on the screen: the on-screen PIN pad (``screen:``) of the cashier and the kiosk.

FIT FOR THE SIMULATOR AND FOR ATTENDED TESTS ONLY: a deployment uses a certified PIN pad.

The PIN pad itself is the terminal's (:class:`terminal.screen_pinpad.ScreenPinPad`):
a payment that needs a PIN asks it on the worker, and it hands this screen a
:class:`~terminal.screen_pinpad.Keypad` through the front-end the session
installs (:class:`PinFrontEnd`). The screen shows the amount and the card
(masked, 6/4 at most), a dot per digit keyed, a fixed keypad (1 to 9, 0
below: not randomised), Cancel, Clear, Enter, and Bypass only where the
request allows it. Each digit key goes to the keypad, whose buffer forms the
PIN block: this view model, and the Kivy properties bound to it, only ever
know how many digits there are (:attr:`CustomerPin.count`). When the entry
ends (a key, the terminal's cancel, the time-out) the screen the customer
came from is shown again, where the payment goes on.

An inserted chip card's offline PIN (the card checks it) is keyed on the same
screen: instead of the card number it says "PIN for the chip card", with the
tries the card says are left, and "Last try" in red when a wrong PIN would
block the card's PIN.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from terminal.ports import OfflinePinRequest, PinOutcome, PinRequest
from terminal.screen_pinpad import Keypad, install
from ui.session import Session
from ui.timers import Timer
from ui.viewmodel import ViewModel

__all__ = ["CustomerPin", "PinFrontEnd"]

_SAMPLE_PAN = "4761739001010010"


class PinFrontEnd:
    """The session's front-end of the on-screen PIN pad: the PIN pad's calls (worker) brought to the UI thread."""

    def __init__(self, session: Session, screen: CustomerPin) -> None:
        self.session = session
        self.screen = screen

    @property
    def data_dir(self) -> Path:
        return self.session.data_dir

    def show(self, keypad: Keypad) -> None:
        self.session.dispatch(lambda: self.screen.begin(keypad))

    def hide(self, keypad: Keypad, outcome: PinOutcome) -> None:
        self.session.dispatch(lambda: self.screen.end(keypad, outcome))


class CustomerPin(ViewModel):
    """The PIN entry screen: what is paid, with which card, dots for the digits, and the PIN pad's keys."""

    screen = "customer_pin"
    title: str = ""
    amount_text: str = ""
    card_text: str = ""
    warning: str = ""  # an inserted card's "Last try": shown in red
    dots: str = ""
    count: int = 0  # digits keyed: all this screen knows of the PIN
    can_enter: bool = False
    can_bypass: bool = False
    active: bool = False  # an entry is under way
    message: str = ""
    time_left: str = ""  # "25 s left": the PIN pad's time-out, counted down each second
    enter_label: str = ""
    clear_label: str = ""
    cancel_label: str = ""
    bypass_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._keypad: Keypad | None = None
        self._request: PinRequest | OfflinePinRequest | None = None
        self._back = ""
        self._tick: Timer | None = None
        session.tr.listen(lambda _: self._texts())
        session.on_stop(install(PinFrontEnd(session, self)))
        self._texts()

    # -- the PIN pad's side (UI thread, brought by the front-end) ---------------------------------

    def begin(self, keypad: Keypad) -> None:
        """Show the keypad of an entry the PIN pad started."""
        current = self.session.navigator.current.name
        if current != self.screen:
            self._back = current
        self._keypad, self._request = keypad, keypad.request
        self.update(active=True)
        self._texts()
        self._refresh()
        self._count_down()
        self.session.navigator.go(self.screen)

    def end(self, keypad: Keypad, outcome: PinOutcome) -> None:
        """The entry ended (``outcome``): back to the screen the customer came from."""
        if keypad is not self._keypad:
            return  # an older entry's end, after a newer one began
        self._keypad = None
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        self.update(active=False, count=0, dots="", can_enter=False, can_bypass=False, time_left="")
        if self.session.navigator.current.name == self.screen and self._back:
            self.session.navigator.go(self._back)

    # -- the customer's keys --------------------------------------------------------------------

    def press(self, key: str) -> None:
        """A digit key (anything else is refused: the screen has no other)."""
        if self._keypad is not None:
            self._keypad.press(key)
        self._refresh()

    def clear(self) -> None:
        if self._keypad is not None:
            self._keypad.clear()
        self._refresh()

    def enter(self) -> None:
        if self._keypad is not None:
            self._keypad.enter()
        self._refresh()

    def bypass(self) -> None:
        if self._keypad is not None:
            self._keypad.bypass()
        self._refresh()

    def cancel(self) -> None:
        if self._keypad is not None:
            self._keypad.cancel()
        self._refresh()

    # -- what is shown ----------------------------------------------------------------------------

    def _refresh(self) -> None:
        keypad = self._keypad
        count = keypad.count if keypad is not None else 0
        live = keypad is not None and keypad.outcome is None
        self.update(
            count=count,
            dots="●" * count,
            can_enter=live and keypad is not None and keypad.can_enter,
            can_bypass=live and keypad is not None and keypad.request.allow_bypass,
        )

    def _count_down(self) -> None:
        """Show the seconds left before the PIN pad gives up, again each second while the entry goes on."""
        keypad = self._keypad
        if keypad is None or keypad.outcome is not None or keypad.deadline is None:
            return
        left = max(0, math.ceil(keypad.deadline - time.monotonic()))
        self.update(time_left=self.session.tr("{seconds} s left", seconds=left))
        self._tick = self.session.timers.call_later(1.0, self._count_down)

    def _card_texts(self) -> tuple[str, str]:
        """What is said of the card (its number, or the chip card's tries left) and the warning, if any."""
        tr = self.session.tr
        request = self._request
        if request is None:
            return "", ""
        if isinstance(request, PinRequest):
            return tr("Card {card}", card=request.masked_pan), ""
        card = tr("PIN for the chip card")
        if request.tries_left is not None and not request.last_try:
            card += " · " + tr("{tries} tries left", tries=request.tries_left)
        return card, tr("Last try: a wrong PIN blocks the card's PIN") if request.last_try else ""

    def _texts(self) -> None:
        tr = self.session.tr
        request = self._request
        card_text, warning = self._card_texts()
        refund = isinstance(request, PinRequest) and request.purpose == "refund"
        self.update(
            title=tr("Enter your PIN to be paid back") if refund else tr("Enter your PIN"),
            enter_label=tr("Enter"),
            clear_label=tr("Clear"),
            cancel_label=tr("Cancel"),
            bypass_label=tr("No PIN"),
            amount_text="" if request is None else tr.amount(request.amount, request.currency),
            card_text=card_text,
            warning=warning,
            message=tr("Cover the keypad as you key.")
            + "\n"
            + (
                tr("Press Enter when done, or No PIN.")
                if request is not None and request.allow_bypass
                else tr("Press Enter when done.")
            ),
        )

    def sample(self) -> None:
        """An entry of 80.00 with four digits keyed, bypass allowed (no PIN pad behind it: the keys do nothing)."""
        self._keypad = None
        self._request = PinRequest(8000, self.session.currency, _SAMPLE_PAN, allow_bypass=True)
        self._texts()
        self.update(active=True, count=4, dots="●" * 4, can_enter=True, can_bypass=True)
        self.update(time_left=self.session.tr("{seconds} s left", seconds=42))

    def sample_variants(self) -> tuple[str, ...]:
        """The screen where no bypass is allowed (``sample_plain``), an inserted card's last offline PIN try
        (``sample_chip``) and a refund's PIN (``sample_refund``), each for a screenshot of its own."""
        return ("plain", "chip", "refund")

    def sample_refund(self) -> None:
        """A refund's PIN (pin_on_refund: online): no bypass, four digits keyed, Enter ready."""
        self._keypad = None
        self._request = PinRequest(2500, self.session.currency, _SAMPLE_PAN, allow_bypass=False, purpose="refund")
        self._texts()
        self.update(active=True, count=4, dots="●" * 4, can_enter=True, can_bypass=False)
        self.update(time_left=self.session.tr("{seconds} s left", seconds=47))

    def sample_chip(self) -> None:
        """An inserted card's offline PIN on its last try, three digits keyed, bypass allowed."""
        self._keypad = None
        self._request = OfflinePinRequest(1234, self.session.currency, "plaintext", 1, True, True)
        self._texts()
        self.update(active=True, count=3, dots="●" * 3, can_enter=False, can_bypass=True)
        self.update(time_left=self.session.tr("{seconds} s left", seconds=51))

    def sample_plain(self) -> None:
        """Two digits keyed where the card allows no bypass: no "No PIN" key, Enter not yet."""
        self._keypad = None
        self._request = PinRequest(12500, self.session.currency, _SAMPLE_PAN, allow_bypass=False)
        self._texts()
        self.update(active=True, count=2, dots="●" * 2, can_enter=False, can_bypass=False)
        self.update(time_left=self.session.tr("{seconds} s left", seconds=55))
