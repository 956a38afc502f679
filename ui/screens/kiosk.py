"""The unattended kiosk: the idle (attract) screen, "out of order", and the kiosk's rules.

The rules, as a customer meets them:

- The kiosk waits on the idle screen, which speaks both languages at once
  and lets the customer choose theirs (English or 简体中文); the choice holds
  for that customer only: every return to idle puts the kiosk's own language
  back (``language`` in ``kiosk.json``).
- A payment is started by the kiosk's own software (a vending machine's, a
  self-checkout's) through the ECR interface, in this process; the kiosk's
  screens follow any payment the terminal makes, whoever started it, by the
  terminal's events (:mod:`ui.screens.kiosk_payment`).  For a demonstration
  without such software, ``demo_amount`` in ``kiosk.json`` puts a "Pay"
  button on the idle screen that charges that fixed amount; without it there
  is no button, and nothing on the screen starts a payment.
- After a result the kiosk returns to idle by itself (``result_seconds``).
- A card reader that goes away puts the whole kiosk "out of order" (no
  payment can be taken) until it returns; a printer or scanner that goes away
  is said on the idle screen, and payments go on (e-receipts only, cards only).
  See :mod:`ui.screens.kiosk_devices`.
- The way out (closing the window, Escape) and the technician menu (three
  taps in the top right corner of the idle or "out of order" screen, within
  three seconds) ask for the technician PIN (:mod:`ui.screens.technician`).
  A PIN pad left untouched goes back to idle after ``pin_seconds``, the
  technician's menu after ``technician_seconds``: a technician who walks
  away does not leave the menu open to the next customer.

``<data_dir>/kiosk.json`` (all optional)::

    {"language": "en", "demo_amount": 250, "result_seconds": 10, "receipt_seconds": 30,
     "pin_seconds": 30, "technician_seconds": 300, "device_poll_seconds": 2}

A value that cannot be used is logged and its default taken: a kiosk starts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

from terminal.limits import MAX_STATE_FILE_BYTES, read_json_input
from ui.i18n import LANGUAGES, Translator
from ui.screens.kiosk_devices import DEVICE_NAMES, DeviceState, DeviceWatch
from ui.session import Session
from ui.viewmodel import Screen, ViewModel

__all__ = [
    "CORNER_SECONDS",
    "CORNER_TAPS",
    "CUSTOMER_SCREENS",
    "KIOSK_FILE",
    "KioskIdle",
    "KioskSettings",
    "OutOfOrder",
    "go_idle",
    "load_kiosk_settings",
    "out_of_order_line",
]

_log = logging.getLogger("ui.kiosk")

KIOSK_FILE: Final = "kiosk.json"
#: Taps in the corner, within :data:`CORNER_SECONDS`, that ask for the technician PIN.
CORNER_TAPS: Final = 3
CORNER_SECONDS: Final = 3.0
#: The screens a customer may be on: a payment started by the kiosk's software takes the screen from these only.
CUSTOMER_SCREENS: Final = frozenset(
    {"idle", "out_of_order", "kiosk_card", "customer_pin", "kiosk_result", "kiosk_receipt", "technician_pin"}
)


@dataclass(frozen=True)
class KioskSettings:
    """The kiosk's own settings (``<data_dir>/kiosk.json``); see the module's documentation."""

    language: str = "en"
    demo_amount: int | None = None  # minor units of the terminal's currency; None: no "Pay" button
    result_seconds: float = 10.0
    receipt_seconds: float = 30.0
    pin_seconds: float = 30.0
    technician_seconds: float = 300.0  # the technician's menu left untouched goes back to idle
    device_poll_seconds: float = 2.0


def load_kiosk_settings(data_dir: Path) -> KioskSettings:
    """The settings in ``data_dir/kiosk.json``; the defaults for what is missing or unusable (logged)."""
    path = Path(data_dir) / KIOSK_FILE
    if not path.exists():
        return KioskSettings()
    try:
        doc = read_json_input(path, MAX_STATE_FILE_BYTES, "kiosk settings")
    except (OSError, ValueError) as exc:
        _log.warning("%s cannot be read (%s): the kiosk's defaults are used", path, exc)
        return KioskSettings()
    if not isinstance(doc, dict):
        _log.warning("%s is not a JSON object: the kiosk's defaults are used", path)
        return KioskSettings()
    settings = KioskSettings()
    known = {f.name for f in fields(KioskSettings)}
    for name, value in doc.items():
        if name not in known:
            _log.warning("%s: unknown setting %r ignored", path, name)
            continue
        problem = _problem(name, value)
        if problem:
            _log.warning("%s: %s %r: %s; the default is used", path, name, value, problem)
            continue
        settings = replace(settings, **{name: value})
    return settings


def _problem(name: str, value: Any) -> str | None:
    if name == "language":
        return None if value in LANGUAGES else f"expected one of {', '.join(LANGUAGES)}"
    if name == "demo_amount":
        ok = value is None or (type(value) is int and 0 < value <= 999_999_999)
        return None if ok else "expected an amount in minor units above zero, or null"
    ok = type(value) in (int, float) and 1 <= value <= 3600
    return None if ok else "expected a number of seconds from 1 to 3600"


def go_idle(session: Session) -> None:
    """Back to the start: the idle screen (or "out of order"), in the kiosk's own language."""
    session.navigator.go("idle")


def _both(text: str, **values: object) -> tuple[str, ...]:
    """``text`` in every language, the kiosk's languages in order (the attract screen speaks them all)."""
    return tuple(Translator(language)(text, **values) for language in LANGUAGES)


def out_of_order_line(kind: str) -> str:
    """ "Out of order: card reader / 暂停服务：读卡器": one device, in every language."""
    lines = []
    for language in LANGUAGES:
        tr = Translator(language)
        lines.append(tr("Out of order: {device}", device=tr(DEVICE_NAMES[kind])))
    return " / ".join(lines)


class KioskIdle(ViewModel):
    """The attract screen, and the kiosk's state: its settings, its devices, and each return to idle.

    Every arrival on the idle screen (after a result, a cancelled PIN, at
    start) puts the kiosk's language back and starts the device watch; when
    the card reader is out of order the kiosk shows "out of order" instead.
    """

    screen = "idle"
    welcome: tuple[str, ...] = ()  # "Welcome", in each language
    hint: tuple[str, ...] = ()  # what to do, in each language
    languages: tuple[tuple[str, str], ...] = ()  # (code, its own name)
    language: str = "en"
    can_pay: bool = False
    pay_label: str = ""
    notices: tuple[str, ...] = ()  # devices out of order that do not stop payments

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.settings = load_kiosk_settings(session.data_dir)
        self.watch = DeviceWatch(session, self._devices_changed, self.settings.device_poll_seconds)
        self._taps: list[float] = []
        self.paying = False  # a payment runs (the kiosk's or a register's): the screens follow it
        self.languages = tuple(LANGUAGES.items())
        session.navigator.listen(self._moved)
        session.tr.listen(lambda _: self.refresh())
        self.refresh()

    # -- what it shows ----------------------------------------------------------------------------

    def refresh(self) -> None:
        tr = self.session.tr
        amount = self.settings.demo_amount
        reader_out = "reader" in self.watch.out_of_order()
        self.update(
            welcome=_both("Welcome"),
            hint=_both("Pay here by card: contactless or phone"),
            language=tr.language,
            can_pay=amount is not None and not reader_out and not self.paying,
            pay_label=tr("Pay {amount}", amount=tr.amount(amount, self.session.currency)) if amount else "",
            notices=tuple(out_of_order_line(kind) for kind in self.watch.out_of_order() if kind != "reader"),
        )

    def _moved(self, screen: Screen) -> None:
        if screen.name != "idle":
            return
        if self.session.tr.language != self.settings.language:
            self.session.tr.set_language(self.settings.language)  # the next customer starts in the kiosk's own
        self.watch.start()
        self.refresh()
        if "reader" in self.watch.out_of_order():
            self.session.navigator.go("out_of_order")

    # -- the customer's actions -------------------------------------------------------------------

    def choose_language(self, language: str) -> None:
        """This customer's language (until the kiosk is back on idle)."""
        self.session.tr.set_language(language)

    def pay(self) -> None:
        """The demonstration's payment: the fixed ``demo_amount``, as the kiosk's software would start it."""
        amount = self.settings.demo_amount
        if not self.can_pay or amount is None:
            return
        self.update(can_pay=False)  # one touch, one payment

        def done(result: Any) -> None:
            _log.info("kiosk demonstration payment %s: %s", result.txn_id, result.state.value)

        self.session.run(lambda terminal: terminal.sale(amount, self.session.currency), done, name="kiosk sale")

    def corner(self) -> None:
        """A tap in the hidden corner; the third within three seconds asks for the technician PIN."""
        now = time.monotonic()
        self._taps = [t for t in self._taps if now - t <= CORNER_SECONDS] + [now]
        if len(self._taps) >= CORNER_TAPS:
            self._taps.clear()
            from ui.screens.technician import ask_for_technician

            ask_for_technician(self.session, "menu")

    # -- payments and devices ---------------------------------------------------------------------

    def payment_running(self, running: bool) -> None:
        """A payment began or ended (told by the payment screens): the watch keeps off the devices meanwhile."""
        self.paying = running
        self.watch.pause(running)
        self.refresh()

    def _devices_changed(self, states: dict[str, DeviceState]) -> None:
        for state in states.values():
            if not state.present:
                _log.warning("out of order: %s (%s): %s", DEVICE_NAMES[state.kind], state.url, state.reason)
        self.refresh()
        out = self.session.screens.get("out_of_order")
        if isinstance(out, OutOfOrder):
            out.refresh()
        current = self.session.navigator.current.name
        reader_out = "reader" in self.watch.out_of_order()
        if reader_out and current == "idle":
            self.session.navigator.go("out_of_order")
        elif not reader_out and current == "out_of_order":
            go_idle(self.session)

    def sample(self) -> None:
        # the language the picture is taken in stays (arriving on idle puts the kiosk's own back)
        self.settings = replace(
            self.settings, demo_amount=self.settings.demo_amount or 250, language=self.session.tr.language
        )
        self.watch.freeze()  # the picture shows what it is given, not what the devices say
        self.watch.states = {
            "reader": DeviceState("reader", "pcsc:", True),
            "printer": DeviceState("printer", "escpos:net:192.0.2.10:9100", False, "offline"),
        }
        self.refresh()


class OutOfOrder(ViewModel):
    """ "Out of order", in every language, naming each device that is out, while the card reader is."""

    screen = "out_of_order"
    title: tuple[str, ...] = ()
    apology: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()  # one line per device out of order, every language on it

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.refresh()

    def _idle(self) -> KioskIdle | None:
        idle = self.session.screens.get("idle")
        return idle if isinstance(idle, KioskIdle) else None

    def refresh(self) -> None:
        idle = self._idle()
        out = idle.watch.out_of_order() if idle is not None else []
        self.update(
            title=_both("Out of order"),
            apology=_both("Sorry, no payments can be taken here now."),
            devices=tuple(out_of_order_line(kind) for kind in out),
        )

    def shown(self) -> None:
        self.refresh()

    def corner(self) -> None:
        """The technician's way in, as on the idle screen."""
        idle = self._idle()
        if idle is not None:
            idle.corner()

    def sample(self) -> None:
        idle = self._idle()
        if idle is not None:
            idle.watch.freeze()
            idle.watch.states = {
                "reader": DeviceState("reader", "pcsc:", False, "pcscd is not running"),
                "printer": DeviceState("printer", "escpos:net:192.0.2.10:9100", False, "offline"),
            }
        self.refresh()
