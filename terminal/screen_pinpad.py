"""The on-screen PIN pad (``screen:``): the customer keys the PIN on the application's screen.

FIT FOR THE SIMULATOR AND FOR ATTENDED TESTS ONLY.

A deployment uses a certified PIN pad; this one is for the simulator and for
attended tests, as the issue says. It is a :class:`~terminal.ports.PinPad`
like any other, named by URL: ``screen:`` (format 4 under AES DUKPT, or the
format the request asks), ``screen:?format=0`` (format 0 under TDES DUKPT
whatever the request asks; ``format=4`` likewise).

Who draws it. The screen belongs to ``posterm ui``: the application installs
its front-end (:func:`install`, a :class:`PinScreen`) when it starts. Opened
anywhere else (``posterm sale --pin-pad screen:``), it is a
:class:`~terminal.ports.DeviceError` of one line, :data:`OUTSIDE_UI`.

The threads. :meth:`ScreenPinPad.enter_pin` runs where the terminal's verbs
run (the application's worker). It makes a :class:`Keypad` (the entry in
progress), hands it to the front-end (:meth:`PinScreen.show`, which brings it
to the UI thread) and waits until the keypad ends (Enter, Cancel, Bypass),
the terminal cancels (``cancel``) or the time is up (``timeout``, else
:data:`DEFAULT_TIMEOUT_SECONDS`). The UI thread only presses keys.

The digits. Each digit key goes straight into a ``bytearray`` inside the
:class:`Keypad`; the screen is told only how many there are
(:attr:`Keypad.count`). Once Enter ends the entry, the worker forms the PIN
block from that buffer (:class:`terminal.soft_pinpad.SoftwarePinPad`, which
wipes it); a cancelled or timed-out entry wipes it too. The keypad is fixed
(1-9, 0 below), not randomised: the customer's own screen, as a PIN pad's.

An inserted card's offline PIN (:meth:`ScreenPinPad.enter_offline_pin`): the
same screen, its keypad's request an :class:`~terminal.ports.OfflinePinRequest`
(the amount, the tries the card says are left, "last try"); Enter hands the
keypad's buffer to the contact kernel as an :class:`~terminal.ports.OfflinePin`
(which wipes it once the kernel takes the digits), as the simulated pad does.
The on-screen pad is inside the terminal's process, so it gives the card a
plaintext PIN and lets the kernel encipher one (it forms no enciphered PIN
itself: it has no secure element).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol

from terminal.pinblock import MAX_PIN_DIGITS, MIN_PIN_DIGITS, PinFormat, wipe
from terminal.ports import (
    CancelToken,
    DeviceError,
    DeviceUrlError,
    OfflinePin,
    OfflinePinRequest,
    PinEntry,
    PinOutcome,
    PinRequest,
)
from terminal.soft_pinpad import SoftwarePinPad

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "OUTSIDE_UI",
    "Keypad",
    "PinScreen",
    "ScreenPinPad",
    "drawn",
    "install",
]

OUTSIDE_UI: Final = "the on-screen PIN pad exists only inside posterm ui"
DEFAULT_TIMEOUT_SECONDS: Final = 60.0
_POLL_SECONDS: Final = 0.05


class Keypad:
    """One PIN entry in progress: the digits keyed (a buffer nobody reads but the block), and how it ended.

    Its keys are pressed on the UI thread; :meth:`wait` and :meth:`take` are
    the PIN pad's, on the worker. The first ending wins: a key pressed after
    the entry ended does nothing.
    """

    def __init__(self, request: PinRequest | OfflinePinRequest) -> None:
        #: what is asked: a PIN block for the host (:class:`PinRequest`) or an inserted card's offline PIN
        self.request = request
        self._digits = bytearray()
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._outcome: PinOutcome | None = None
        #: when the entry times out (``time.monotonic()``), for a screen that shows the time left
        self.deadline: float | None = None

    @property
    def count(self) -> int:
        """How many digits are keyed (all the screen ever knows of them)."""
        return len(self._digits)

    @property
    def outcome(self) -> PinOutcome | None:
        """How the entry ended; None while it goes on."""
        return self._outcome

    @property
    def can_enter(self) -> bool:
        """Whether Enter ends the entry now: enough digits, or none where bypass is allowed."""
        n = self.count
        return MIN_PIN_DIGITS <= n <= MAX_PIN_DIGITS or (n == 0 and self.request.allow_bypass)

    def press(self, digit: str) -> bool:
        """A digit key; False (ignored) past the last digit a PIN has, or once the entry ended."""
        if len(digit) != 1 or digit not in "0123456789":
            raise ValueError("a PIN pad key is one digit")
        with self._lock:
            if self._outcome is not None or len(self._digits) >= MAX_PIN_DIGITS:
                return False
            self._digits.append(ord(digit))
            return True

    def clear(self) -> None:
        """Clear: every digit keyed so far is forgotten (wiped)."""
        with self._lock:
            if self._outcome is None:
                wipe(self._digits)
                self._digits.clear()

    def enter(self) -> bool:
        """Enter: the PIN keyed (or, with none and bypass allowed, bypass); False when it cannot end yet."""
        with self._lock:
            if self._outcome is not None or not self.can_enter:
                return False
        return self._end(PinOutcome.ENTERED if self.count else PinOutcome.BYPASSED)

    def bypass(self) -> bool:
        """Bypass (where the request allows it): no PIN; False where it does not."""
        if not self.request.allow_bypass:
            return False
        return self._end(PinOutcome.BYPASSED)

    def cancel(self) -> bool:
        """Cancel: the customer does not give a PIN."""
        return self._end(PinOutcome.CANCELLED)

    def expire(self) -> bool:
        """The time is up (the PIN pad's, not a key)."""
        return self._end(PinOutcome.TIMEOUT)

    def _end(self, outcome: PinOutcome) -> bool:
        with self._lock:
            if self._outcome is not None:
                return False
            self._outcome = outcome
            if outcome is not PinOutcome.ENTERED:
                wipe(self._digits)
                self._digits.clear()
        self._ended.set()
        return True

    def wait(self, timeout: float) -> bool:
        """Whether the entry ended within ``timeout`` seconds."""
        return self._ended.wait(timeout)

    def take(self) -> bytearray:
        """The digits of an entered PIN, moved out (the caller wipes them); the keypad holds none after."""
        with self._lock:
            if self._outcome is not PinOutcome.ENTERED:
                raise RuntimeError("no PIN was entered")
            digits, self._digits = self._digits, bytearray()
            return digits

    def __repr__(self) -> str:
        return f"Keypad({self.request!r}, count={self.count}, outcome={self._outcome})"


class PinScreen(Protocol):
    """What the application installs: shows a keypad to the customer and takes it down.

    Both are called on the PIN pad's thread (the worker): they bring the
    change to the UI thread and return at once. ``data_dir``: the terminal's
    data directory, where the PIN pad's keys are (:mod:`terminal.soft_pinpad`).
    """

    @property
    def data_dir(self) -> Path: ...

    def show(self, keypad: Keypad) -> None: ...

    def hide(self, keypad: Keypad, outcome: PinOutcome) -> None: ...


_installed: list[PinScreen] = []
_installed_lock = threading.Lock()


def install(screen: PinScreen) -> Callable[[], None]:
    """Make ``screen`` the on-screen PIN pad's front-end (the application's); returns what uninstalls it."""
    with _installed_lock:
        _installed.append(screen)

    def uninstall() -> None:
        with _installed_lock:
            if screen in _installed:
                _installed.remove(screen)

    return uninstall


def _front_end() -> PinScreen | None:
    with _installed_lock:
        return _installed[-1] if _installed else None


def drawn() -> bool:
    """Whether an application draws the on-screen PIN pad in this process (``screen:`` can be used here)."""
    return _front_end() is not None


def _parse(url: str) -> PinFormat | None:
    scheme, _, rest = url.partition(":")
    path, _, query = rest.partition("?")
    if scheme != "screen" or path.strip("/"):
        raise DeviceUrlError(f"{url!r}: the on-screen PIN pad is 'screen:' (options: ?format=4 or ?format=0)")
    fmt: PinFormat | None = None
    for item in filter(None, query.split("&")):
        name, has, text = item.partition("=")
        if name.strip() == "format" and has and text.strip() in ("0", "4") and fmt is None:
            fmt = PinFormat(int(text.strip()))
        else:
            raise DeviceUrlError(f"{url!r}: bad or repeated option {name.strip()!r} (options: format=4|0)")
    return fmt


def _screen() -> PinScreen:
    """The screen installed now: a terminal keeps its pad open, the application that drew it may be another."""
    screen = _front_end()
    if screen is None:
        raise DeviceError(OUTSIDE_UI)
    return screen


def _keyed(screen: PinScreen, keypad: Keypad, timeout: float | None, cancel: CancelToken | None) -> PinOutcome:
    """Show ``keypad`` and wait until it ends: a key, the terminal's ``cancel`` or the time-out."""
    deadline = time.monotonic() + (DEFAULT_TIMEOUT_SECONDS if timeout is None else max(0.0, timeout))
    keypad.deadline = deadline
    screen.show(keypad)
    while not keypad.wait(max(0.0, min(_POLL_SECONDS, deadline - time.monotonic()))):
        if cancel is not None and cancel.cancelled:
            keypad.cancel()
        elif time.monotonic() >= deadline:
            keypad.expire()
    return keypad.outcome or PinOutcome.CANCELLED  # ended: the loop above left only once it was


class ScreenPinPad:
    """The PIN pad drawn by ``posterm ui`` (see the module docstring)."""

    kind = "pin-pad"

    def __init__(self, url: str, fmt: PinFormat | None) -> None:
        self.url = url
        self._format = fmt

    @classmethod
    def open(cls, url: str) -> ScreenPinPad:
        fmt = _parse(url)
        if _front_end() is None:
            raise DeviceError(OUTSIDE_UI)
        return cls(url, fmt)

    @staticmethod
    def check(url: str) -> None:
        _parse(url)

    @staticmethod
    def probe(url: str) -> tuple[str, str] | None:
        """What ``posterm devices`` says of it outside posterm ui (where it cannot be opened); None inside."""
        _parse(url)
        return None if _front_end() is not None else ("ok", "drawn by posterm ui only (not opened here)")

    def enter_pin(
        self, request: PinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> PinEntry:
        if cancel is not None and cancel.cancelled:
            return PinEntry(PinOutcome.CANCELLED)
        fmt = self._format if self._format is not None else PinFormat(request.format)
        screen = _screen()
        keys = SoftwarePinPad(screen.data_dir)
        keys.check()  # no keys: said now, before the customer keys a PIN for nothing
        keypad = Keypad(request)
        digits: bytearray | None = None
        try:
            outcome = _keyed(screen, keypad, timeout, cancel)
            if outcome is not PinOutcome.ENTERED:
                return PinEntry(outcome)
            digits = keypad.take()
            return PinEntry(PinOutcome.ENTERED, keys.form(digits, request.pan, fmt))  # form() wipes digits
        finally:
            if digits is not None:
                wipe(digits)
            screen.hide(keypad, keypad.outcome or PinOutcome.CANCELLED)

    def enter_offline_pin(
        self, request: OfflinePinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> OfflinePin:
        """An inserted card's offline PIN keyed on the screen, for the card's VERIFY (see the module docstring)."""
        if cancel is not None and cancel.cancelled:
            return OfflinePin(PinOutcome.CANCELLED)
        screen = _screen()
        keypad = Keypad(request)
        try:
            outcome = _keyed(screen, keypad, timeout, cancel)
            if outcome is not PinOutcome.ENTERED:
                return OfflinePin(outcome)
            return OfflinePin(PinOutcome.ENTERED, keypad.take())  # the kernel takes it, and it is wiped
        finally:
            screen.hide(keypad, keypad.outcome or PinOutcome.CANCELLED)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"ScreenPinPad({self.url!r})"
