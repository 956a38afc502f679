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
from ui.screens.day_end import DayEnd
from ui.screens.journal import Journal
from ui.screens.menu import CashierMenu
from ui.screens.pin import SupervisorPin
from ui.screens.receipt import ReceiptView
from ui.screens.refund import RefundAmount
from ui.screens.reports import XReport
from ui.screens.sale import AmountEntry, PaymentOutcome, PresentCard
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

SCREENS: list[ScreenSpec] = [
    ScreenSpec("amount", AmountEntry, _CASHIER),
    ScreenSpec("present_card", PresentCard, _BOTH),
    ScreenSpec("result", PaymentOutcome, _BOTH),
    ScreenSpec("menu", CashierMenu, _CASHIER),
    ScreenSpec("journal", Journal, _CASHIER),
    ScreenSpec("receipt", ReceiptView, _CASHIER),
    ScreenSpec("refund", RefundAmount, _CASHIER),
    ScreenSpec("supervisor_pin", SupervisorPin, _CASHIER),
    ScreenSpec("x_report", XReport, _CASHIER),
    ScreenSpec("day_end", DayEnd, _CASHIER),
]

#: Bars drawn above every screen of their modes (not screens of their own): the kv class
#: ``<Name>Bar`` (ui/views/<name>.kv) draws each, bound to its view model in ``session.bars``.
BARS: list[ScreenSpec] = [
    ScreenSpec("banner", Banner, _CASHIER),
]


def build(session: Session) -> dict[str, ViewModel]:
    """One view model for each screen (and bar) of the session's mode, registered with the session."""
    mode = "kiosk" if session.kiosk else "cashier"
    session.screens = {spec.name: spec.make(session) for spec in SCREENS if mode in spec.modes}
    session.bars = {spec.name: spec.make(session) for spec in BARS if mode in spec.modes}
    return session.screens
