"""Every screen of the application: its name, its view model's class, and who sees it.

The application builds one view model per screen at start-up
(:func:`build`) and one Kivy view for each (:mod:`ui.views`).  A screen is
for the cashier, the kiosk's customer, or the technician; the kiosk never
shows a cashier's screen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ui.screens.banner import Banner
from ui.screens.customer_pin import CustomerPin
from ui.screens.day_end import DayEnd
from ui.screens.journal import Journal
from ui.screens.kiosk import KioskIdle, OutOfOrder
from ui.screens.kiosk_payment import KioskCard, KioskReceipt, KioskResult
from ui.screens.menu import CashierMenu
from ui.screens.pin import SupervisorPin
from ui.screens.qr_show import ShowQr
from ui.screens.receipt import ReceiptView
from ui.screens.refund import RefundAmount
from ui.screens.reports import XReport
from ui.screens.sale import AmountEntry, PaymentOutcome, PresentCard
from ui.screens.technician import TechDiagnostics, TechnicianMenu, TechnicianPin
from ui.screens.technician_tools import TechBundle, TechDevices, TechHost, TechLog, TechParams
from ui.screens.unshown import UnshownNotice
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["BARS", "SCREENS", "ScreenSpec", "build"]


@dataclass(frozen=True)
class ScreenSpec:
    name: str
    make: Callable[[Session], ViewModel]
    modes: frozenset[str]  # "cashier", "kiosk": where the screen is offered


_BOTH = frozenset({"cashier", "kiosk"})
_CASHIER = frozenset({"cashier"})
_KIOSK = frozenset({"kiosk"})

SCREENS: list[ScreenSpec] = [
    ScreenSpec("amount", AmountEntry, _CASHIER),
    ScreenSpec("present_card", PresentCard, _CASHIER),  # the kiosk's customer has its own (kiosk_card)
    ScreenSpec("show_qr", ShowQr, _CASHIER),  # the QR tender: the code the customer's app scans
    ScreenSpec("result", PaymentOutcome, _CASHIER),  # (kiosk_result)
    ScreenSpec("menu", CashierMenu, _CASHIER),
    ScreenSpec("journal", Journal, _CASHIER),
    ScreenSpec("receipt", ReceiptView, _CASHIER),
    ScreenSpec("refund", RefundAmount, _CASHIER),
    ScreenSpec("supervisor_pin", SupervisorPin, _CASHIER),
    ScreenSpec("x_report", XReport, _CASHIER),
    ScreenSpec("day_end", DayEnd, _CASHIER),
    # The kiosk: its customer's screens (ui.screens.kiosk, ui.screens.kiosk_payment) ...
    ScreenSpec("idle", KioskIdle, _KIOSK),
    ScreenSpec("out_of_order", OutOfOrder, _KIOSK),
    ScreenSpec("kiosk_card", KioskCard, _KIOSK),
    ScreenSpec("kiosk_result", KioskResult, _KIOSK),
    ScreenSpec("kiosk_receipt", KioskReceipt, _KIOSK),
    # The customer's PIN on the on-screen PIN pad (screen:, simulator and attended tests), in both modes.
    ScreenSpec("customer_pin", CustomerPin, _BOTH),
    # ... and the technician's, behind the technician PIN (ui.screens.technician, ui.screens.technician_tools).
    ScreenSpec("technician_pin", TechnicianPin, _BOTH),
    ScreenSpec("technician", TechnicianMenu, _BOTH),
    ScreenSpec("tech_diagnostics", TechDiagnostics, _BOTH),
    ScreenSpec("tech_devices", TechDevices, _BOTH),
    ScreenSpec("tech_host", TechHost, _BOTH),
    ScreenSpec("tech_params", TechParams, _BOTH),
    ScreenSpec("tech_log", TechLog, _BOTH),
    ScreenSpec("tech_bundle", TechBundle, _BOTH),
]

#: Bars drawn above every screen of their modes (not screens of their own): the kv class
#: ``<Name>Bar`` (ui/views/<name>.kv) draws each, bound to its view model in ``session.bars``.
BARS: list[ScreenSpec] = [
    ScreenSpec("unshown", UnshownNotice, _BOTH),  # payments made and never shown before the last stop
    ScreenSpec("banner", Banner, _CASHIER),
]


def build(session: Session) -> dict[str, ViewModel]:
    """One view model for each screen (and bar) of the session's mode, registered with the session."""
    mode = "kiosk" if session.kiosk else "cashier"
    session.screens = {spec.name: spec.make(session) for spec in SCREENS if mode in spec.modes}
    session.bars = {spec.name: spec.make(session) for spec in BARS if mode in spec.modes}
    return session.screens
