"""A payment's receipt on screen, as the customer gets it; reprint; the e-receipt as a QR code.

The text is the terminal's own rendering (:func:`terminal.receipts.render_text`,
the customer copy, 42 columns, drawn in a monospaced face), so the screen and
the paper never differ.  Looking at it is not giving it: the screen reads
the receipt without counting it as issued; "Print" prints through the
facade, which counts it, so a second print says ``*** DUPLICATE ***`` (the
button says "Reprint" then, and the screen shows the duplicate it would print).

The e-receipt.  The QR code holds a short text receipt (:func:`e_receipt_text`):
the shop, what was paid, how much, when, the card as masked on paper, the
approval and the receipt number, in a few plain lines.  A phone's camera
shows it as text, and the customer can keep it; nothing has to be online,
no server of posterm's or anyone's has to keep it, and no address is given
to a phone that a third party could change.  The receipt number (the
transaction id) is the reference a refund is found by later.  It carries no
more than the paper does (never the cryptogram, the TVR or a full card
number), and about 250 characters, so the code stays coarse enough to read
from a screen at arm's length.  Showing it issues the customer copy, as
handing over paper would (a later one is a duplicate).

From here a sale can be refunded and a payment voided (:mod:`ui.screens.refund`),
when the terminal's rules allow it; when they do not, the screen says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from terminal.receipts import ReceiptData, render_text
from terminal.store import TxnRow
from ui.screens.describe import KIND_WORDS, STATE_WORDS, FollowUps, follow_ups, short_card
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["ReceiptView", "e_receipt_text", "qr_rows"]

_WIDTH = 42


def e_receipt_text(data: ReceiptData) -> str:
    """The e-receipt's text (what the QR code holds): a few plain lines, the facts of the paper receipt."""
    from terminal.money import currency, format_amount

    kind = {"sale": "SALE", "refund": "REFUND", "void": "VOID"}.get(data.kind, data.kind.upper())
    lines = [data.merchant_name.strip() or "posterm"]
    if data.reprint:
        lines.append("DUPLICATE")
    lines.append(f"{kind} {format_amount(data.amount, currency(data.currency))} {data.status}")
    marks = " ".join(m for m, on in (("OFFLINE", data.offline), ("DEFERRED", data.deferred)) if on)
    if marks:
        lines.append(marks)
    lines.append(data.at.strftime("%Y-%m-%d %H:%M:%S %Z").strip())
    if data.masked_pan:
        lines.append(f"{data.application_label or 'CARD'} {data.masked_pan}".strip())
    if data.approval_code:
        lines.append(f"APPROVAL {data.approval_code}")
    lines.append(f"RECEIPT {data.txn_id}")
    lines.append(f"TID {data.terminal_id} MID {data.merchant_id}")
    return "\n".join(lines)


def qr_rows(text: str) -> tuple[str, ...]:
    """The QR code of ``text`` as rows of ``0``/``1`` (dark) modules, the quiet zone included.

    Error correction M (15 %): a screen's glare or a crease of a phone's
    screenshot costs nothing, and the code stays coarse.
    """
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=2)
    code.add_data(text.encode("utf-8"))
    code.make(fit=True)
    return tuple("".join("1" if dark else "0" for dark in row) for row in code.get_matrix())


@dataclass(frozen=True)
class _Loaded:
    data: ReceiptData
    row: TxnRow
    follow: FollowUps
    printer: bool


class ReceiptView(ViewModel):
    """The receipt, its QR code, and what may be done with the payment (print, refund, void)."""

    screen = "receipt"
    txn_id: str = ""
    heading: str = ""
    status: str = ""
    tone: str = "neutral"  # good | bad | neutral
    receipt_text: str = ""
    showing: str = "text"  # text | qr
    qr_rows: tuple[str, ...] = ()
    qr_caption: str = ""
    busy: bool = False
    message: str = ""
    error: bool = False
    can_print: bool = False
    print_label: str = ""
    can_refund: bool = False
    can_void: bool = False
    refund_note: str = ""
    void_note: str = ""
    e_receipt_label: str = ""
    text_label: str = ""
    refund_label: str = ""
    void_label: str = ""
    back_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._back = "amount"
        self._loaded: _Loaded | None = None
        self._note = ""  # what the last action did ("Printed"), shown once the receipt is read again

    def open(self, txn_id: str, *, qr: bool = False, back: str | None = None) -> None:
        """Show the receipt of ``txn_id`` (``qr``: as the e-receipt, which issues it); "Back" returns to ``back``."""
        tr = self.session.tr
        self._back = back or self.session.navigator.current.name or "amount"
        if self._back == self.screen:
            self._back = "amount"
        self._loaded, self._note = None, ""
        self.update(
            txn_id=txn_id, heading="", status="", receipt_text="", qr_rows=(), showing="qr" if qr else "text",
            message=tr("Loading"), error=False, busy=True, can_print=False, can_refund=False, can_void=False,
            refund_note="", void_note="",
        )  # fmt: skip
        self._labels()
        self.session.navigator.go(self.screen, txn_id=txn_id)
        self._load(issue=qr)

    def _labels(self) -> None:
        tr = self.session.tr
        self.update(
            e_receipt_label=tr("E-receipt"),
            text_label=tr("Receipt"),
            refund_label=tr("Refund"),
            void_label=tr("Void"),
            back_label=tr("Back"),
            qr_caption=tr("Scan with your phone's camera to keep this receipt"),
        )

    def _load(self, *, issue: bool) -> None:
        txn_id = self.txn_id

        def load(terminal: Any) -> _Loaded:
            data = terminal.receipt(txn_id, "customer", issue=issue)
            row = terminal.transaction(txn_id)
            refunds = terminal.transactions(original_txn_id=txn_id)
            batch = terminal.batch()
            follow = follow_ups(row, refunds, batch["batch_id"] if batch else None)
            return _Loaded(data, row, follow, terminal.printer is not None)

        self.session.run(load, self._show, self._failed, name="receipt")

    def _show(self, loaded: _Loaded) -> None:
        if loaded.row.txn_id != self.txn_id:
            return  # another receipt was asked for meanwhile
        tr = self.session.tr
        self._loaded = loaded
        data, row, follow = loaded.data, loaded.row, loaded.follow
        text = e_receipt_text(data)
        state = STATE_WORDS.get(row.state, row.state.value)
        self.update(
            heading=f"{tr(KIND_WORDS.get(row.kind, row.kind))} · {tr.amount(row.amount, row.currency)}"
            + (f" · {short_card(row.masked_pan, row.scheme)}" if row.masked_pan else ""),
            status=tr(state),
            tone="good" if data.status == "APPROVED" else "neutral" if "VOID" in data.status else "bad",
            receipt_text=render_text(data, "customer", _WIDTH),
            qr_rows=qr_rows(text),
            busy=False,
            message=self._note or ("" if loaded.printer else tr("No receipt printer is configured")),
            error=False,
            can_print=loaded.printer,
            print_label=tr("Reprint") if data.reprint else tr("Print"),
            can_refund=follow.can_refund and "refund" in self.session.screens,
            can_void=follow.can_void and "refund" in self.session.screens,
            refund_note="" if follow.can_refund else tr("No refund: {why}", why=tr(follow.refund_refusal or "")),
            void_note="" if follow.can_void else tr("No void: {why}", why=tr(follow.void_refusal or "")),
        )

    def _failed(self, exc: BaseException) -> None:
        tr = self.session.tr
        why = tr("No such payment") if isinstance(exc, KeyError) else self.session.describe(exc)
        self.update(busy=False, error=True, message=why)

    # -- actions ---------------------------------------------------------------------------------

    def show_qr(self) -> None:
        """The e-receipt: the QR code takes the receipt's place (and the customer copy counts as given)."""
        if self.busy or not self.txn_id:
            return
        self.update(showing="qr")
        self._load(issue=True)

    def show_text(self) -> None:
        self.update(showing="text")

    def print_copy(self) -> None:
        """Print the customer copy (a duplicate when one was given before)."""
        if not self.can_print or self.busy:
            return
        tr = self.session.tr
        self.update(busy=True, message=tr("Printing"), error=False)

        def printed(_: object) -> None:
            self._note = tr("Printed")
            self._load(issue=False)  # it now reads as the duplicate a next print would be

        def failed(exc: BaseException) -> None:
            self.update(busy=False, error=True, message=tr("Not printed: {why}", why=self.session.describe(exc)))

        txn_id = self.txn_id
        self.session.run(lambda t: t.print_receipt(txn_id, "customer"), printed, failed, name="print receipt")

    def refund(self) -> None:
        """Refund this sale: choose how much (what is left at most), then the supervisor's PIN."""
        if self.can_refund and self._loaded is not None:
            from ui.screens.refund import RefundAmount

            self.session.screen("refund", RefundAmount).open(self.txn_id, back=self.screen)

    def void(self) -> None:
        """Void this payment, once a supervisor authorises it."""
        if self.can_void and self._loaded is not None:
            from ui.screens.refund import start_void

            start_void(self.session, self._loaded.row, back=self.screen)

    def back(self) -> None:
        self.session.navigator.go(self._back)

    def shown(self) -> None:
        self._labels()

    def sample(self) -> None:
        from datetime import UTC, datetime

        tr = self.session.tr
        data = ReceiptData(
            merchant_name="posterm test shop", merchant_address="Berlin", terminal_id="TERM0001",
            merchant_id="POSTERM0000001", txn_id="20261206120000-0123456789ab", kind="sale",
            at=datetime(2026, 12, 6, 12, 0, tzinfo=UTC), masked_pan="476173******0010",
            application_label="VISA CREDIT", aid="A0000000031010", amount=2000, currency=self.session.currency,
            cryptogram_type="ARQC", cryptogram="AB82EB451AE62332", tvr="8000000000", tsi="0000", cvm="no_cvm",
            status="APPROVED", approval_code="PUAXGM", host_reference="V0000000001",
        )  # fmt: skip
        self._labels()
        self.update(
            txn_id=data.txn_id,
            heading=f"{tr('Sale')} · {tr.amount(2000, self.session.currency)} · visa ••0010",
            status=tr("Approved"),
            tone="good",
            receipt_text=render_text(data, "customer", _WIDTH),
            qr_rows=qr_rows(e_receipt_text(data)),
            showing="text",
            busy=False,
            message="",
            can_print=True,
            print_label=tr("Print"),
            can_refund=True,
            can_void=True,
        )

    def sample_variants(self) -> tuple[str, ...]:
        """The receipt's other typical look, for a screenshot of its own: the e-receipt (``sample_qr``)."""
        return ("qr",)

    def sample_qr(self) -> None:
        """The e-receipt as the customer sees it (a second screenshot)."""
        self.sample()
        self.update(showing="qr")
