"""The technician: the PIN that opens the menu (and the way out of the kiosk), the menu, and the diagnostics.

The technician PIN (:mod:`terminal.pins`: a salted slow hash, five wrong tries
lock it for a while) is checked on the worker (a check takes a tenth of a
second on purpose).  A lock is shown with the time left, counting down.  A
terminal with no technician PIN cannot be opened from the screen: it is set
on the machine with ``posterm pin set technician``; a kiosk without one
cannot be left either.

The way in: from the cashier's menu (:func:`ask_for_technician`), and on the
kiosk by three taps in the top right corner of the idle screen.  The way
out of the kiosk (the window closed, Escape) asks for the same PIN
(:meth:`TechnicianPin.refuse_close`, which the application calls).

The diagnostics run every test of :func:`terminal.diagnostics.run_diagnostics`
one after the other on the worker, so the screen shows each verdict as it
comes (pass, fail or skip, with the reason) and what the technician must do
now ("present a card ..."); Cancel stops the card or code wait and the tests
not yet begun.  The other tools are in :mod:`ui.screens.technician_tools`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol

from terminal.devices import LazyReader
from terminal.diagnostics import TEST_NAMES, DiagResult, run_diagnostics
from terminal.ports import CancelToken
from ui.session import Session
from ui.timers import Timer
from ui.viewmodel import ViewModel

__all__ = [
    "MAX_PIN_DIGITS",
    "TEST_LABELS",
    "PinChecker",
    "TechDiagnostics",
    "TechnicianMenu",
    "TechnicianPin",
    "ask_for_technician",
    "touched",
]

_log = logging.getLogger("ui.technician")

ROLE: Final = "technician"
MAX_PIN_DIGITS: Final = 12
#: Each diagnostic test as the menu names it.
TEST_LABELS: Final = {
    "reader": "Card reader",
    "scanner": "Code scanner",
    "printer": "Receipt printer",
    "host_link": "Host link",
    "saf_queue": "Offline queue",
    "journal": "Journal",
    "configuration": "Configuration",
    "keys": "Keys",
}


class PinChecker(Protocol):
    """What the PIN screen needs of :class:`terminal.pins.PinStore` (a test may give another)."""

    def check(self, role: str, pin: str) -> bool: ...

    def is_set(self, role: str) -> bool: ...


def _pin_store(data_dir: Path) -> PinChecker:
    from terminal.pins import PinStore

    return PinStore(data_dir)


def ask_for_technician(session: Session, purpose: str = "menu") -> None:
    """Ask for the technician PIN: then the technician menu (``menu``) or leaving the kiosk (``exit``)."""
    pin = session.screens.get("technician_pin")
    if isinstance(pin, TechnicianPin):
        pin.ask(purpose)


def _duration(seconds: int, tr: Callable[..., str]) -> str:
    if seconds >= 3600:
        return tr("{hours} h {minutes} min", hours=seconds // 3600, minutes=seconds % 3600 // 60)
    if seconds >= 60:
        return tr("{minutes} min {seconds} s", minutes=seconds // 60, seconds=seconds % 60)
    return tr("{seconds} s", seconds=seconds)


class TechnicianPin(ViewModel):
    """The technician PIN pad: digits shown as dots, the tries left, a lock's time left; and the kiosk's exit guard."""

    screen = "technician_pin"
    purpose: str = "menu"  # "menu" | "exit"
    title: str = ""
    purpose_text: str = ""
    dots: str = ""
    message: str = ""
    error: bool = False  # the message says something went wrong (drawn in red)
    locked: bool = False
    checking: bool = False
    can_submit: bool = False
    ok_label: str = ""
    cancel_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.pins: PinChecker = _pin_store(session.data_dir)
        self.on_exit: Callable[[], None] | None = None  # set by the application: how it stops
        self._digits = ""
        self._back = "idle" if session.kiosk else "amount"
        self._lock_left = 0
        self._lock_timer: Timer | None = None
        self._idle_timer: Timer | None = None
        session.tr.listen(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        tr = self.session.tr
        self.update(
            title=tr("Technician PIN"),
            purpose_text=tr("Enter the technician PIN to leave the kiosk")
            if self.purpose == "exit"
            else tr("Enter the technician PIN to open the technician menu"),
            dots="●" * len(self._digits),
            can_submit=len(self._digits) >= 4 and not self.locked and not self.checking,
            ok_label=tr("OK"),
            cancel_label=tr("Cancel"),
        )
        if self.locked:
            self.update(
                message=tr("Locked after 5 wrong tries: try again in {left}", left=_duration(self._lock_left, tr))
            )

    # -- asking ---------------------------------------------------------------------------------

    def ask(self, purpose: str) -> None:
        """Show the PIN pad for ``purpose``; Cancel goes back to the screen it was asked from."""
        if purpose not in ("menu", "exit"):
            raise ValueError(f"unknown purpose {purpose!r}")
        current = self.session.navigator.current.name
        if current != self.screen:
            self._back = current or self._back
        self._digits = ""
        self.update(purpose=purpose, message="", error=False, checking=False)
        self.refresh()
        self.session.navigator.go(self.screen, purpose=purpose)
        self._touched()

    def refuse_close(self) -> bool:
        """The window is asked to close (or Escape): True to refuse it. The kiosk refuses, and asks for the PIN."""
        if not self.session.kiosk:
            return False
        if self.session.navigator.current.name != self.screen or self.purpose != "exit":
            self.ask("exit")
        return True

    def _touched(self) -> None:
        """A key pressed: a PIN pad left untouched on a kiosk goes back after ``pin_seconds``."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self.session.kiosk:
            seconds = getattr(getattr(self.session.screens.get("idle"), "settings", None), "pin_seconds", 30.0)
            self._idle_timer = self.session.timers.call_later(seconds, self._untouched)

    def _untouched(self) -> None:
        self._idle_timer = None
        if self.session.navigator.current.name == self.screen and not self.checking:
            self.cancel()

    # -- keys -----------------------------------------------------------------------------------

    def press(self, key: str) -> None:
        """A digit, "back" or "clear"."""
        if key == "back":
            self._digits = self._digits[:-1]
        elif key == "clear":
            self._digits = ""
        elif key.isdigit() and len(key) == 1:
            if len(self._digits) < MAX_PIN_DIGITS:
                self._digits += key
        else:
            raise ValueError(f"unknown key {key!r}")
        if not self.locked:
            self.update(message="", error=False)
        self.refresh()
        self._touched()

    def cancel(self) -> None:
        self._digits = ""
        self.update(message="", error=False)
        self.refresh()
        self._stop_timers()
        self.session.navigator.go(
            self._back if self._back != self.screen else ("idle" if self.session.kiosk else "amount")
        )

    def _stop_timers(self) -> None:
        for timer in (self._idle_timer, self._lock_timer):
            if timer is not None:
                timer.cancel()
        self._idle_timer = self._lock_timer = None

    def submit(self) -> None:
        """Check the PIN on the worker; right: the menu or the way out; wrong: the tries left; locked: the time left."""
        if not self.can_submit:
            return
        pin, self._digits = self._digits, ""
        self.update(checking=True, error=False, message=self.session.tr("Checking..."))
        self.refresh()

        def check(_terminal: Any) -> tuple[bool, int | None]:
            right = self.pins.check(ROLE, pin)
            status = getattr(self.pins, "status", None)
            tries = status(ROLE).tries_left if callable(status) and not right else None
            return right, tries

        self.session.run(check, self._checked, self._refused, name="technician PIN")

    def _checked(self, outcome: tuple[bool, int | None]) -> None:
        right, tries = outcome
        self.update(checking=False)
        tr = self.session.tr
        if not right:
            text = tr("Wrong PIN") if tries is None else tr("Wrong PIN: {tries} tries left", tries=tries)
            self.update(message=text, error=True)
            self.refresh()
            self._touched()
            return
        self.update(message="")
        self.refresh()
        self._stop_timers()
        _log.info("technician PIN accepted (%s)", self.purpose)
        if self.purpose == "exit":
            if self.on_exit is not None:
                self.on_exit()
            return
        self.session.navigator.go("technician")

    def _refused(self, exc: BaseException) -> None:
        self.update(checking=False, error=True)
        seconds = getattr(exc, "seconds_left", None)
        if isinstance(seconds, int):
            self._locked_for(seconds)
            return
        tr = self.session.tr
        if type(exc).__name__ == "PinNotSet":
            self.update(
                message=tr("No technician PIN is set: set it on the terminal with 'posterm pin set technician'")
            )
        else:
            self.update(message=tr("The PIN cannot be checked: {reason}", reason=self.session.describe(exc)))
        self.refresh()

    def _locked_for(self, seconds: int) -> None:
        self._lock_left = max(1, seconds)
        self.update(locked=True)
        self.refresh()
        if self._lock_timer is not None:
            self._lock_timer.cancel()
        self._lock_timer = self.session.timers.call_later(1.0, self._lock_tick)

    def _lock_tick(self) -> None:
        self._lock_left -= 1
        if self._lock_left <= 0:
            self._lock_timer = None
            self.update(locked=False, message="", error=False)
            self.refresh()
            return
        self.refresh()
        self._lock_timer = self.session.timers.call_later(1.0, self._lock_tick)

    def sample(self) -> None:
        self._digits = "482"
        self.update(purpose="exit", error=True, message=self.session.tr("Wrong PIN: {tries} tries left", tries=3))
        self.refresh()


class TechnicianMenu(ViewModel):
    """The technician's menu: one button per tool; on the kiosk also "Leave the kiosk"."""

    screen = "technician"
    title: str = ""
    items: tuple[tuple[str, str], ...] = ()  # (screen, label)
    can_leave: bool = False
    leave_label: str = ""
    close_label: str = ""
    terminal_text: str = ""

    _TOOLS: Final = (
        ("tech_diagnostics", "Diagnostics"),
        ("tech_devices", "Devices"),
        ("tech_host", "Host and offline queue"),
        ("tech_params", "Parameters"),
        ("tech_log", "Log"),
        ("tech_bundle", "Support bundle"),
    )

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._untouched: Timer | None = None
        session.tr.listen(lambda _: self.refresh())
        session.navigator.listen(lambda screen: self.touched() if _technicians(screen.name) else None)
        self.refresh()

    def touched(self) -> None:
        """The technician did something: on a kiosk, the menu left untouched for ``technician_seconds`` closes."""
        if not self.session.kiosk:
            return
        if self._untouched is not None:
            self._untouched.cancel()
        seconds = getattr(getattr(self.session.screens.get("idle"), "settings", None), "technician_seconds", 300.0)
        self._untouched = self.session.timers.call_later(seconds, self._left_alone)

    def _left_alone(self) -> None:
        self._untouched = None
        if not _technicians(self.session.navigator.current.name):
            return
        diagnostics = self.session.screens.get("tech_diagnostics")
        if self.session.worker.busy or getattr(diagnostics, "running", False):
            self.touched()  # at work (a test, a download): not left alone
            return
        _log.info("the technician's menu was left untouched: back to idle")
        self.session.navigator.go("idle")

    def refresh(self) -> None:
        tr = self.session.tr
        config = self.session.terminal.config
        self.update(
            title=tr("Technician menu"),
            items=tuple((name, tr(label)) for name, label in self._TOOLS),
            can_leave=self.session.kiosk,
            leave_label=tr("Leave the kiosk"),
            close_label=tr("Close"),
            terminal_text=tr("Terminal {tid}, merchant {mid}", tid=config.terminal_id, mid=config.merchant_id),
        )

    def shown(self) -> None:
        self.refresh()

    def open(self, name: str) -> None:
        """Open one tool."""
        if name not in dict(self._TOOLS):
            raise ValueError(f"unknown tool {name!r}")
        self.session.navigator.go(name)  # its view tells it it is shown: it reads what it shows then

    def leave(self) -> None:
        """Leave the kiosk (the technician is in: no second PIN)."""
        pin = self.session.screens.get("technician_pin")
        if self.session.kiosk and isinstance(pin, TechnicianPin) and pin.on_exit is not None:
            _log.info("the technician leaves the kiosk")
            pin.on_exit()

    def close(self) -> None:
        """Back to the customer's screens (the kiosk), or the cashier's menu."""
        if self.session.kiosk:
            self.session.navigator.go("idle")
        else:
            self.session.navigator.go("menu" if "menu" in self.session.screens else "amount")


class TechDiagnostics(ViewModel):
    """Every self-test, one after the other on the worker, each verdict shown as it comes."""

    screen = "tech_diagnostics"
    title: str = ""
    rows: tuple[dict[str, str], ...] = ()  # name, label, status (pass/fail/skip/wait/run), status_text, reason
    running: bool = False
    progress: float = 0.0
    progress_text: str = ""
    prompt: str = ""
    summary: str = ""
    run_label: str = ""
    cancel_label: str = ""
    back_label: str = ""

    #: How long the reader and scanner tests wait for the technician's card or code.
    _WAIT_SECONDS: Final = 15.0

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.results: dict[str, DiagResult] = {}
        self._token: CancelToken | None = None
        self._current: str | None = None
        session.tr.listen(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        tr = self.session.tr
        words = {"pass": tr("PASS"), "fail": tr("FAIL"), "skip": tr("SKIP"), "wait": "", "run": tr("testing...")}
        rows = []
        for name in TEST_NAMES:
            result = self.results.get(name)
            status = result.status if result is not None else ("run" if name == self._current else "wait")
            rows.append(
                {
                    "name": name,
                    "label": tr(TEST_LABELS[name]),
                    "status": status,
                    "status_text": words[status],
                    "reason": result.reason if result is not None else "",
                }
            )
        done = len(self.results)
        failed = sum(1 for r in self.results.values() if r.status == "fail")
        summary = ""
        if done == len(TEST_NAMES):
            summary = (
                tr("All tests passed")
                if not failed
                else tr("{failed} of {total} tests failed", failed=failed, total=len(TEST_NAMES))
            )
        self.update(
            title=tr("Diagnostics"),
            rows=tuple(rows),
            progress=done / len(TEST_NAMES),
            progress_text=tr(
                "Testing {n} of {total}: {test}", n=done + 1, total=len(TEST_NAMES), test=tr(TEST_LABELS[self._current])
            )
            if self.running and self._current
            else "",
            summary=summary,
            run_label=tr("Run all tests"),
            cancel_label=tr("Cancel"),
            back_label=tr("Back"),
        )

    def start(self) -> None:
        """Run every test, in order; each result is shown as it comes."""
        if self.running:
            return
        touched(self.session)
        self.results = {}
        self._token = CancelToken()
        self.update(running=True, prompt="", summary="")
        self._next()

    def _next(self) -> None:
        remaining = [name for name in TEST_NAMES if name not in self.results]
        token = self._token
        if not remaining or token is None or token.cancelled:
            self._current = None
            self.update(running=False, prompt="")
            self.refresh()
            return
        name = remaining[0]
        self._current = name
        self.refresh()
        session = self.session

        def prompt(text: str) -> None:  # on the worker: the text goes to the UI thread
            session.dispatch(lambda: self.update(prompt=text))

        def run(terminal: Any) -> DiagResult:
            reader = terminal.reader
            if name == "reader" and isinstance(reader, LazyReader):
                reader.close()  # the test opens the reader itself: the terminal's own lets go of it first
            results = run_diagnostics(
                session.data_dir,
                reader_url=_url(reader),
                printer_url=_url(terminal.printer),
                host=terminal.host,
                tests=[name],
                cancel=token,
                prompt=prompt,
                card_timeout=self._WAIT_SECONDS,
                scan_timeout=self._WAIT_SECONDS,
            )
            return next(r for r in results if r.name == name)

        def done(result: DiagResult) -> None:
            self.results[name] = result
            self.update(prompt="")
            self._next()

        def failed(exc: BaseException) -> None:  # run_diagnostics lets nothing out; this is the worker's own
            from terminal.diag_result import make_result

            done(make_result(name, False, f"the test could not run: {session.describe(exc)}"))

        session.run(run, done, failed, name=f"diagnostics {name}")

    def cancel(self) -> None:
        """Stop waiting for a card or code, and run no further test."""
        if self._token is not None:
            self._token.cancel()

    def back(self) -> None:
        self.cancel()
        self.session.navigator.go("technician")

    def sample(self) -> None:
        from terminal.diag_result import make_result

        self.results = {
            "reader": make_result(
                "reader", True, "Virtual PCD 00 00: card answered, 2 applications (Visa, Mastercard)"
            ),
            "scanner": make_result("scanner", None, "no scanner configured"),
            "printer": make_result("printer", False, "escpos:net:192.0.2.10:9100 cannot be opened: connection refused"),
            "host_link": make_result("host_link", True, "memory: echo answered in 3 ms"),
        }
        self._current = "saf_queue"
        self.update(running=True)
        self.refresh()


def _technicians(screen: str) -> bool:
    """Whether ``screen`` is one of the technician's (the menu and its tools), not the PIN pad."""
    return screen == "technician" or screen.startswith("tech_")


def touched(session: Session) -> None:
    """The technician did something on a tool's screen (see :meth:`TechnicianMenu.touched`)."""
    menu = session.screens.get("technician")
    if isinstance(menu, TechnicianMenu):
        menu.touched()


def _url(device: Any) -> str | None:
    """The URL the diagnostics should test: the terminal's own device's; "none" for none; None: the configured one."""
    if device is None:
        return "none"
    url = getattr(device, "url", None)
    return url if isinstance(url, str) and ":" in url else None
