"""The cashier's menu: the verbs besides a sale, one large button each, reached from the amount screen.

Refund, void, the journal, the X report and end of day; and the language,
which a cashier may switch for a customer.  The sale stays one touch away
("Back"), so the menu never stands between a customer and a payment.
"""

from __future__ import annotations

from ui.i18n import LANGUAGES
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["CashierMenu"]


class CashierMenu(ViewModel):
    """Refund, void, journal, X report, end of day, language; back to the sale."""

    screen = "menu"
    title: str = ""
    refund_label: str = ""
    void_label: str = ""
    journal_label: str = ""
    x_report_label: str = ""
    day_end_label: str = ""
    language_label: str = ""
    back_label: str = ""
    technician_label: str = ""  # the technician's menu, behind the technician PIN (ui.screens.technician)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        session.tr.listen(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        tr = self.session.tr
        others = [name for code, name in LANGUAGES.items() if code != tr.language]
        self.update(
            title=tr("Menu"),
            refund_label=tr("Refund"),
            void_label=tr("Void"),
            journal_label=tr("Journal"),
            x_report_label=tr("X report"),
            day_end_label=tr("End of day"),
            language_label=others[0] if others else "",  # the other language, written in itself
            back_label=tr("Back to sale"),
            technician_label=tr("Technician"),
        )

    def shown(self) -> None:
        self.refresh()

    def _journal(self, mode: str) -> None:
        from ui.screens.journal import Journal

        self.session.screen("journal", Journal).open(mode)

    def refund(self) -> None:
        self._journal("refund")

    def void(self) -> None:
        self._journal("void")

    def journal(self) -> None:
        self._journal("all")

    def x_report(self) -> None:
        from ui.screens.reports import XReport

        self.session.screen("x_report", XReport).open()

    def day_end(self) -> None:
        from ui.screens.day_end import DayEnd

        self.session.screen("day_end", DayEnd).open()

    def switch_language(self) -> None:
        """English <-> Chinese, for the whole application at once."""
        codes = list(LANGUAGES)
        here = codes.index(self.session.tr.language)
        self.session.tr.set_language(codes[(here + 1) % len(codes)])
        self.refresh()

    def back(self) -> None:
        self.session.navigator.go("amount")

    def technician(self) -> None:
        """The technician's menu: the technician PIN first."""
        from ui.screens.technician import ask_for_technician

        ask_for_technician(self.session, "menu")

    def sample(self) -> None:
        self.refresh()
