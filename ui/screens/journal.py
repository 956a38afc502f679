"""The journal: the payments, newest first, searched by receipt number, amount, date or the card itself.

The same list serves three verbs of the cashier's menu, which differ only in
what a line leads to: "Journal" opens a payment's receipt (reprint, e-receipt,
refund, void from there); "Refund" lists the sales and opens the refund of the
one chosen; "Void" opens the receipt, where "Void" waits behind the
supervisor's PIN.

The filters add up:

- receipt number: any part of the transaction id printed as ``TXN`` (the
  last few characters are enough), letters in either case;
- amount: as written on the receipt (``12.34``, ``12,34`` or ``12``);
- date: today, yesterday, the last 7 days, or all dates (local days);
- the card: "Tap card" reads the card the customer presents
  (:meth:`terminal.facade.Terminal.read_card_token`: nothing is paid, nothing
  of the card is kept) and keeps only that card's payments.

Each search runs on the worker (the journal is on disk); a newer search makes
the answer of an older one moot, so answers are matched to the search that
asked (a counter), and one typed character never waits for the last.
"""

from __future__ import annotations

import re
from typing import Any

from terminal.store import TxnRow
from ui.screens.describe import PERIODS, line_of, parse_amount, period_bounds
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["MODES", "Journal"]

#: What the list is opened for: mode -> its title.
MODES: dict[str, str] = {"all": "Journal", "refund": "Refund: find the sale", "void": "Void: find the payment"}

# A receipt number as the terminal makes it, and as the receipt's QR code holds it.
_RECEIPT_NUMBER = re.compile(r"[0-9]{14}-[0-9a-f]{12}")
_SHOWN = 50  # lines at most: a search narrows further
_SCANNED = 2000  # rows read to match part of a receipt number


class Journal(ViewModel):
    """The list of payments and its filters; a line chosen opens the receipt or the refund."""

    screen = "journal"
    mode: str = "all"
    title: str = ""
    receipt_query: str = ""
    amount_query: str = ""
    period: str = "today"
    periods: tuple[tuple[str, str], ...] = ()  # (name, label) of the date filters
    card_text: str = ""
    rows: tuple[dict[str, str], ...] = ()
    count_text: str = ""
    busy: bool = False
    reading_card: bool = False
    message: str = ""
    error: bool = False
    receipt_hint: str = ""
    amount_hint: str = ""
    tap_label: str = ""
    can_scan: bool = False  # a code scanner is configured: the receipt's QR code finds its payment
    scanning: bool = False
    scan_label: str = ""
    clear_label: str = ""
    back_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._pan_token: str | None = None
        self._asked = 0  # the search whose answer is awaited
        self._found: dict[str, TxnRow] = {}
        self._fresh = False  # just filled (opened, or a screenshot's sample): shown as is, not searched again
        session.tr.listen(lambda _: self._labels())
        self._labels()

    def _labels(self) -> None:
        tr = self.session.tr
        self.update(
            title=tr(MODES.get(self.mode, "Journal")),
            periods=tuple((name, tr(label)) for name, label in PERIODS.items()),
            receipt_hint=tr("Receipt number"),
            amount_hint=tr("Amount"),
            tap_label=tr("Tap card"),
            can_scan=self.session.terminal.scanner is not None,
            scan_label=tr("Cancel") if self.scanning else tr("Scan receipt"),
            clear_label=tr("Clear"),
            back_label=tr("Back"),
        )

    # -- opening -------------------------------------------------------------------------------

    def open(self, mode: str = "all") -> None:
        """The list for ``mode`` (all, refund, void), today's payments first, the filters cleared."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        self._pan_token = None
        self.update(mode=mode, receipt_query="", amount_query="", period="today", card_text="", message="", error=False)
        self._labels()
        self.search()
        self._fresh = True
        self.session.navigator.go(self.screen, mode=mode)

    def shown(self) -> None:
        self._labels()
        if self._fresh:
            self._fresh = False
            return
        self.search()  # back from a receipt or a refund: the states may have moved

    # -- filters -------------------------------------------------------------------------------

    def set_receipt(self, text: str) -> None:
        if text != self.receipt_query:
            self.update(receipt_query=text)
            self.search()

    def set_amount(self, text: str) -> None:
        if text != self.amount_query:
            self.update(amount_query=text)
            self.search()

    def set_period(self, period: str) -> None:
        if period not in PERIODS:
            raise ValueError(f"unknown period {period!r}")
        self.update(period=period)
        self.search()

    def clear(self) -> None:
        """Every filter off but the date (today)."""
        self._pan_token = None
        self.update(receipt_query="", amount_query="", card_text="", period="today", message="", error=False)
        self.search()

    def tap_card(self) -> None:
        """Read the card the customer presents and keep only its payments (nothing is paid)."""
        if self.reading_card:
            self.session.cancel()  # a second touch: stop waiting for the card
            return
        tr = self.session.tr
        self.update(reading_card=True, message=tr("Present the card"), error=False, tap_label=tr("Cancel"))

        def read(terminal: Any) -> tuple[str, str] | None:
            found: tuple[str, str] | None = terminal.read_card_token()
            return found

        def done(card: tuple[str, str] | None) -> None:
            self.update(reading_card=False, tap_label=tr("Tap card"))
            if card is None:
                self.update(message=tr("The card could not be read"), error=True)
                return
            masked, token = card
            self._pan_token = token
            self.update(card_text=tr("Card {card}", card=masked), message="", period="all")
            self.search()

        def failed(exc: BaseException) -> None:
            self.update(reading_card=False, tap_label=tr("Tap card"), error=True, message=self.session.describe(exc))

        self.session.run(read, done, failed, name="read card")

    def scan_receipt(self) -> None:
        """Read the QR code of a printed receipt (its receipt number) with the scanner, and look it up."""
        if self.scanning:
            self.session.cancel()  # a second touch: stop waiting for the code
            return
        tr = self.session.tr
        self.update(scanning=True, message=tr("Scan the receipt's code"), error=False, scan_label=tr("Cancel"))

        def done(text: str) -> None:
            self.update(scanning=False, scan_label=tr("Scan receipt"))
            number = text.strip()
            if not _RECEIPT_NUMBER.fullmatch(number):  # the scanner reads anything: a receipt's code or not
                self.update(message=tr("That code is not a receipt number of this terminal"), error=True)
                return
            self.update(message="", period="all")
            self.set_receipt(number)

        def failed(exc: BaseException) -> None:
            self.update(scanning=False, scan_label=tr("Scan receipt"), error=True, message=self.session.describe(exc))

        self.session.run(lambda terminal: str(terminal.scan_code()), done, failed, name="scan receipt")

    def clear_card(self) -> None:
        self._pan_token = None
        self.update(card_text="")
        self.search()

    # -- the search ----------------------------------------------------------------------------

    def search(self) -> None:
        """Find the payments the filters describe (on the worker); the list is replaced when they come."""
        tr = self.session.tr
        amount: int | None = None
        if self.amount_query.strip():
            amount = parse_amount(self.amount_query, self.session.currency)
            if amount is None:
                self.update(error=True, message=tr("Amount not understood: {typed}", typed=self.amount_query))
                return
        if self.error and not self.reading_card:
            self.update(error=False, message="")
        since, until = period_bounds(self.period, self.session.terminal.clock.now())
        part = self.receipt_query.strip().lower()
        kind = "sale" if self.mode == "refund" else None
        token = self._pan_token
        self._asked += 1
        asked = self._asked
        self.update(busy=True)

        def find(terminal: Any) -> list[TxnRow]:
            rows: list[TxnRow] = terminal.find_payments(
                kind=kind, amount=amount, since=since, until=until, pan_token=token,
                limit=_SCANNED if part else _SHOWN,
            )  # fmt: skip
            if part:
                rows = [r for r in rows if part in r.txn_id.lower()][:_SHOWN]
            return rows

        self.session.run(find, lambda rows: self._found_rows(asked, rows), self._failed, name="journal search")

    def _found_rows(self, asked: int, rows: list[TxnRow]) -> None:
        if asked != self._asked:
            return  # a newer search is on its way
        tr = self.session.tr
        today = self.session.terminal.clock.now().astimezone().date()
        self._found = {r.txn_id: r for r in rows}
        lines = tuple(line_of(r, tr, today).as_dict() for r in rows)
        if not rows:
            count = tr("No payments found")
        elif len(rows) >= _SHOWN:
            count = tr("The latest {n} payments: search to narrow", n=len(rows))
        else:
            count = tr("{n} payments", n=len(rows)) if len(rows) != 1 else tr("1 payment")
        self.update(busy=False, rows=lines, count_text=count)

    def _failed(self, exc: BaseException) -> None:
        self.update(busy=False, error=True, message=self.session.describe(exc))

    # -- choosing ------------------------------------------------------------------------------

    def select(self, txn_id: str) -> None:
        """A line touched: its refund (in the refund mode), else its receipt."""
        if txn_id not in self._found:
            return
        if self.mode == "refund":
            from ui.screens.refund import RefundAmount

            self.session.screen("refund", RefundAmount).open(txn_id, back=self.screen)
            return
        from ui.screens.receipt import ReceiptView

        self.session.screen("receipt", ReceiptView).open(txn_id, back=self.screen)

    def select_index(self, index: int) -> None:
        """The ``index``-th line of the list (0: the newest)."""
        if 0 <= index < len(self.rows):
            self.select(self.rows[index]["txn_id"])

    def back(self) -> None:
        self.session.navigator.go("menu" if "menu" in self.session.screens else "amount")

    def sample(self) -> None:
        tr = self.session.tr
        code = self.session.currency
        samples = [
            ("12:41", "Sale", 2000, "visa ••0010", "Approved", "good"),
            ("12:30", "Refund", 500, "visa ••0010", "Approved", "good"),
            ("11:58", "Sale", 1051, "visa ••0028", "Declined", "bad"),
            ("11:02", "Sale", 1250, "mastercard ••4111", "Approved, not yet sent", "good"),
            ("10:15", "Sale", 899, "visa ••0010", "Voided", "neutral"),
            ("09:47", "Sale", 4599, "unionpay ••0017", "Approved", "good"),
        ]
        self._labels()
        self.update(
            mode="all",
            period="today",
            rows=tuple(
                {
                    "txn_id": f"20261206{i:06d}-sample",
                    "when": w,
                    "kind": tr(k),
                    "amount": tr.amount(a, code),
                    "card": c,
                    "status": tr(s),
                    "tone": t,
                }
                for i, (w, k, a, c, s, t) in enumerate(samples)
            ),
            count_text=tr("{n} payments", n=len(samples)),
            busy=False,
            message="",
        )
        self._fresh = True
