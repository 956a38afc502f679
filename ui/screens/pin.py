"""The supervisor's PIN: asked before a refund or a void is made, on a keypad, checked off the UI thread.

A refund pays money out and a void takes a payment back: a supervisor
authorises each one, once it is fully described (which payment, how much,
to which card), so that the PIN is given for what the supervisor sees on
the screen.  :meth:`SupervisorPin.ask` shows what is to be authorised and,
when the right PIN is keyed, runs the continuation it was given; "Cancel"
goes back where the cashier was, and nothing is done.

The PINs are the terminal's (:class:`terminal.pins.PinStore`, in its data
directory): hashed with scrypt, which takes a noticeable fraction of a second,
so every check runs on the worker; a wrong PIN says how many tries are left,
a locked one for how long.  A fresh terminal has no supervisor PIN: the
first protected action asks for one to be chosen (keyed twice; the rules of
:func:`terminal.pins.pin_problem` apply), as an attended counter does on its
first day.  The PIN is never shown (dots only), never logged, and forgotten
as soon as it was checked.
"""

from __future__ import annotations

from collections.abc import Callable

from terminal.pins import MAX_TRIES, PinError, PinLocked, PinNotSet, PinStore, WeakPin
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["MAX_PIN_DIGITS", "ROLE", "SupervisorPin", "pin_store"]

ROLE = "supervisor"
MAX_PIN_DIGITS = 12
_MIN_PIN_DIGITS = 4
_CHOOSE = "No supervisor PIN is set yet: choose one (4 to 12 digits)"


def pin_store(session: Session) -> PinStore:
    """The PINs of the session's terminal (kept in its data directory, beside the journal)."""
    return PinStore(session.data_dir)


def _minutes(seconds: int) -> int:
    return max(1, (seconds + 59) // 60)


class SupervisorPin(ViewModel):
    """The PIN keypad: what is to be authorised, dots for the digits keyed, and why a PIN was refused."""

    screen = "supervisor_pin"
    title: str = ""
    purpose: str = ""
    dots: str = ""
    message: str = ""
    error: bool = False
    busy: bool = False
    can_ok: bool = False
    stage: str = "check"  # check | choose | confirm (a first PIN is keyed twice)
    ok_label: str = ""
    cancel_label: str = ""

    def __init__(self, session: Session, pins: Callable[[Session], PinStore] = pin_store) -> None:
        super().__init__()
        self.session = session
        self._pins = pins
        self._digits = ""
        self._chosen = ""
        self._granted: Callable[[], None] | None = None
        self._back = "amount"

    # -- what the screen is asked for ------------------------------------------------------------

    def ask(self, purpose: str, on_granted: Callable[[], None], back: str) -> None:
        """Show the keypad for ``purpose``; ``on_granted()`` runs once the right PIN is keyed.

        ``back``: the screen "Cancel" returns to.
        """
        tr = self.session.tr
        self._granted, self._back, self._digits, self._chosen = on_granted, back, "", ""
        self.update(
            purpose=purpose,
            title=tr("Supervisor PIN"),
            message="",
            error=False,
            busy=True,
            stage="check",
            ok_label=tr("OK"),
            cancel_label=tr("Cancel"),
        )
        self._show_digits()
        self.session.navigator.go(self.screen)
        # Whether a PIN was ever set is read from the file: on the worker, as everything else is.
        self.session.run(lambda _t: self._pins(self.session).status(ROLE), self._status, self._failed, name="pin")

    def _status(self, status: object) -> None:
        tr = self.session.tr
        is_set = bool(getattr(status, "is_set", False))
        locked_for = int(getattr(status, "locked_for", 0))
        if not is_set:
            self.update(stage="choose", busy=False, message=tr(_CHOOSE))
        elif locked_for:
            self.update(busy=False, error=True, message=self._locked_text(locked_for))
        else:
            self.update(busy=False, message=tr("Enter the supervisor PIN"))
        self._show_digits()

    def _locked_text(self, seconds: int) -> str:
        return self.session.tr("Too many wrong tries: locked for {minutes} min", minutes=_minutes(seconds))

    # -- keys ----------------------------------------------------------------------------------

    def _show_digits(self) -> None:
        self.update(dots="●" * len(self._digits), can_ok=len(self._digits) >= _MIN_PIN_DIGITS and not self.busy)

    def press(self, key: str) -> None:
        """A digit, "back" or "clear"."""
        if self.busy:
            return
        if key == "back":
            self._digits = self._digits[:-1]
        elif key == "clear":
            self._digits = ""
        elif key.isdigit() and len(key) == 1:
            if len(self._digits) < MAX_PIN_DIGITS:
                self._digits += key
        else:
            raise ValueError(f"unknown key {key!r}")
        self._show_digits()

    def cancel(self) -> None:
        """Nothing is authorised: back where the cashier was."""
        self._digits, self._chosen, self._granted = "", "", None
        self.update(busy=False)
        self._show_digits()
        self.session.navigator.go(self._back)

    def ok(self) -> None:
        """Check the PIN keyed (or, on a fresh terminal, take the one chosen)."""
        if not self.can_ok or self.busy:
            return
        pin, self._digits = self._digits, ""
        tr = self.session.tr
        if self.stage == "choose":
            self._chosen = pin
            self.update(stage="confirm", message=tr("Key the new PIN again"), error=False)
            self._show_digits()
            return
        self.update(busy=True)
        self._show_digits()
        if self.stage == "confirm":
            chosen, self._chosen = self._chosen, ""
            if chosen != pin:
                self.update(stage="choose", busy=False, error=True, message=tr("The two PINs differ: choose again"))
                self._show_digits()
                return

            def choose(_t: object) -> bool:
                self._pins(self.session).set(ROLE, pin)
                return True

            self.session.run(choose, self._checked, self._failed, name="pin set")
            return
        self.session.run(lambda _t: self._pins(self.session).check(ROLE, pin), self._checked, self._failed, name="pin")

    def _checked(self, right: bool) -> None:
        tr = self.session.tr
        self.update(busy=False)
        if right:
            granted, self._granted = self._granted, None
            self.update(message="", error=False, stage="check")
            self._show_digits()
            if granted is not None:
                granted()
            return
        self.update(error=True, message=tr("Wrong PIN"))
        self._show_digits()
        self.session.run(lambda _t: self._pins(self.session).status(ROLE), self._tries_left, name="pin")

    def _tries_left(self, status: object) -> None:
        left = int(getattr(status, "tries_left", MAX_TRIES))
        self.update(message=self.session.tr("Wrong PIN: {left} tries left", left=left))

    def _failed(self, exc: BaseException) -> None:
        tr = self.session.tr
        self.update(busy=False, error=True)
        if isinstance(exc, PinLocked):
            self.update(message=self._locked_text(exc.seconds_left))
        elif isinstance(exc, WeakPin):
            self.update(stage="choose", message=tr("PIN refused: {reason}", reason=tr(exc.reason)))
        elif isinstance(exc, PinNotSet):
            self.update(stage="choose", error=False, message=tr(_CHOOSE))
        elif isinstance(exc, PinError):
            self.update(message=tr("The PINs cannot be used: {why}", why=self.session.describe(exc)))
        else:
            self.update(message=self.session.describe(exc))
        self._show_digits()

    def sample(self) -> None:
        tr = self.session.tr
        self._digits = "482"
        self.update(
            title=tr("Supervisor PIN"),
            purpose=tr("Refund {amount} to {card}", amount=tr.amount(500, self.session.currency), card="visa ••0010"),
            message=tr("Enter the supervisor PIN"),
            error=False,
            busy=False,
            stage="check",
            ok_label=tr("OK"),
            cancel_label=tr("Cancel"),
        )
        self._show_digits()
