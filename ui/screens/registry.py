"""Every screen of the application: its name, its view model's class, and who sees it.

The application builds one view model per screen at start-up
(:func:`build`) and one Kivy view for each (:mod:`ui.views`).  A screen is
for the cashier, the kiosk's customer, or the technician; the kiosk never
shows a cashier's screen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ui.screens.sale import AmountEntry, PaymentOutcome, PresentCard
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["SCREENS", "ScreenSpec", "build"]


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
]


def build(session: Session) -> dict[str, ViewModel]:
    """One view model for each screen of the session's mode, registered with the session."""
    mode = "kiosk" if session.kiosk else "cashier"
    session.screens = {spec.name: spec.make(session) for spec in SCREENS if mode in spec.modes}
    return session.screens
