"""Payment receipts: plain text and ESC/POS bytes from one layout.

A receipt is built once as a list of styled lines (:class:`ReceiptLine`);
:func:`render_text` joins them into a fixed-width string and
:func:`render_escpos` sends them through python-escpos's ``Dummy`` printer,
which only collects the bytes (nothing is opened or sent).  Both renderings
therefore always carry the same content.

A receipt says only what is true: the status names what happened (see
:data:`Status`: a cancelled sale is NOT COMPLETED, never DECLINED), the CVM line
the CVM performed (a PIN only when one was entered on a PIN pad), and
"*** DUPLICATE ***" marks a reprint and nothing else.

The PAN never appears in clear: :class:`ReceiptData` refuses a ``masked_pan``
that shows more than the first 6 and last 4 digits (or any run of 12 digits).
Text that comes from a card or a configuration is stripped of control
characters, so that a card's application label cannot smuggle printer
commands onto the paper.

>>> from datetime import UTC, datetime
>>> data = ReceiptData(
...     merchant_name="Corner Shop", merchant_address="", terminal_id="T0000001",
...     merchant_id="M000000000001", txn_id="tx-1", kind="sale",
...     at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC), masked_pan="476173******0028",
...     application_label="VISA CREDIT", aid="A0000000031010", amount=1234, currency=978,
...     cryptogram_type="TC", cryptogram="1A2B3C4D5E6F7081", tvr="0000000000", tsi="E800",
...     cvm="no_cvm", status="APPROVED")
>>> "12.34 EUR" in render_text(data, "customer")
True
>>> "TVR" in render_text(data, "customer"), "TVR" in render_text(data, "merchant")
(False, True)
"""

from __future__ import annotations

import os
import re
import tempfile
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Literal, get_args

from terminal.money import currency, format_amount

__all__ = [
    "Copy",
    "Cvm",
    "Kind",
    "ReceiptData",
    "ReceiptLine",
    "Status",
    "check_masked_pan",
    "receipt_lines",
    "render_escpos",
    "render_text",
]

Kind = Literal["sale", "refund", "void"]
#: What the receipt says happened, in the words printed.  Each says only what is true:
#:
#: - ``APPROVED``: approved by the host, by the card offline, or deferred (with the OFFLINE /
#:   DEFERRED marks);
#: - ``DECLINED``: declined by the card or the host (``response_code`` / ``reason`` say why);
#: - ``NOT COMPLETED``: no payment took place and nothing was charged: cancelled, card taken
#:   away and not presented again, timed out, "insert or use another payment" (over the
#:   contactless limit, another interface), refused before authorisation, or interrupted
#:   before anything was sent;
#: - ``REVERSAL PENDING``: the host's answer was lost; a reversal is queued, not yet delivered;
#: - ``REVERSED``: that reversal was delivered;
#: - ``VOID PENDING``: voided at the terminal, its reversal not yet delivered to the host;
#: - ``VOIDED``: voided, and the host has the reversal (or never had the payment).
Status = Literal["APPROVED", "DECLINED", "NOT COMPLETED", "REVERSAL PENDING", "REVERSED", "VOID PENDING", "VOIDED"]
#: The CVM the kernel reports as performed.  A PIN CVM prints only with ``pin_entered``.
Cvm = Literal["signature", "online_pin", "offline_pin", "consumer_device", "no_cvm"]
Copy = Literal["merchant", "customer"]
Align = Literal["left", "center"]

_KINDS: frozenset[str] = frozenset(get_args(Kind))
_STATUSES: frozenset[str] = frozenset(get_args(Status))
_CVMS: frozenset[str] = frozenset(get_args(Cvm))
_COPIES: frozenset[str] = frozenset(get_args(Copy))

_CRYPTOGRAM_TYPES = frozenset({"TC", "ARQC", "AAC"})
_PIN_CVMS = frozenset({"online_pin", "offline_pin"})
_KIND_TEXT = {"sale": "SALE", "refund": "REFUND", "void": "VOID"}
_HEX = re.compile(r"[0-9A-Fa-f]*")
_LONG_DIGIT_RUN = re.compile(r"\d{12,}")
_MAX_VISIBLE_PAN_DIGITS = 10  # first 6 + last 4 at most (DESIGN §5)
MIN_WIDTH = 24


def check_masked_pan(masked_pan: str) -> str:
    """Return ``masked_pan`` if it is masked; ValueError if it may show a full PAN.

    Refused: any run of 12 or more digits, or more than 10 digits in all
    (first 6 and last 4 at most), whatever separates them.

    >>> check_masked_pan("476173******0028")
    '476173******0028'
    >>> check_masked_pan("4761739001010028")
    Traceback (most recent call last):
    ...
    ValueError: masked_pan looks like a full PAN (12 or more digits in a row); refusing to print it
    """
    if _LONG_DIGIT_RUN.search(masked_pan):
        raise ValueError("masked_pan looks like a full PAN (12 or more digits in a row); refusing to print it")
    if sum(ch.isdigit() for ch in masked_pan) > _MAX_VISIBLE_PAN_DIGITS:
        raise ValueError("masked_pan shows more than the first 6 and last 4 digits; refusing to print it")
    return masked_pan


def _check_hex(name: str, value: str | None) -> None:
    if value is not None and not _HEX.fullmatch(value):
        raise ValueError(f"{name} must be hexadecimal, got {value!r}")


@dataclass(frozen=True)
class ReceiptData:
    """Everything a payment receipt shows; validated on construction."""

    merchant_name: str
    merchant_address: str  # may be "" (several lines separated by "\n" are kept apart)
    terminal_id: str
    merchant_id: str
    txn_id: str
    kind: Kind
    at: datetime  # aware (UTC); shown in the ``tz`` given to the renderer, or as is
    masked_pan: str  # already masked, e.g. "476173******0028"
    application_label: str
    aid: str  # hex
    amount: int  # minor units
    currency: int  # ISO 4217 numeric
    cryptogram_type: str | None  # "TC" | "ARQC" | "AAC" | None
    cryptogram: str | None  # hex
    tvr: str  # hex
    tsi: str  # hex
    cvm: Cvm
    status: Status
    offline: bool = False
    deferred: bool = False
    approval_code: str | None = None
    host_reference: str | None = None
    response_code: str | None = None
    reprint: bool = False
    # True only when a PIN was really typed on a PIN pad for this transaction; without it a
    # PIN CVM prints nothing (a journal row from before issue 9 may say "online_pin" for a PIN
    # nobody entered, and its reprint must not claim one).
    pin_entered: bool = False
    # Why, in words, printed under the status ("CANCELLED", "INSUFFICIENT FUNDS", ...); optional.
    reason: str | None = None
    # A digital-currency wallet's payment: its record's counter and the first hex digits of its hash
    # (masked_pan then holds the wallet id masked, application_label "DIGITAL CNY").
    wallet_counter: int | None = None
    record_hash: str | None = None

    def __post_init__(self) -> None:
        check_masked_pan(self.masked_pan)
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {self.kind!r}")
        if self.status not in _STATUSES:
            raise ValueError(f"status must be one of {sorted(_STATUSES)}, got {self.status!r}")
        if self.cvm not in _CVMS:
            raise ValueError(f"cvm must be one of {sorted(_CVMS)}, got {self.cvm!r}")
        if self.pin_entered and self.cvm not in _PIN_CVMS:
            raise ValueError(f"pin_entered goes with a PIN cvm (online_pin, offline_pin), not {self.cvm!r}")
        if self.cryptogram_type is not None and self.cryptogram_type not in _CRYPTOGRAM_TYPES:
            raise ValueError(f"cryptogram_type must be TC, ARQC, AAC or None, got {self.cryptogram_type!r}")
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("at must be an aware datetime (UTC)")
        if self.amount < 0:
            raise ValueError("amount must not be negative (minor units)")
        currency(self.currency)  # MoneyError (a ValueError) for an unknown code
        for name in ("aid", "cryptogram", "tvr", "tsi", "record_hash"):
            _check_hex(name, getattr(self, name))


@dataclass(frozen=True)
class ReceiptLine:
    """One printed line: ``text`` is already laid out for ``width`` columns (without padding
    for centred lines); ``big`` lines are printed double width and height on ESC/POS."""

    text: str
    align: Align = "left"
    bold: bool = False
    big: bool = False


def _clean(text: str) -> str:
    """Drop control characters (ESC, GS, newlines...) so that no data can inject printer commands."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text).strip()


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(_clean(text), width, break_long_words=True, break_on_hyphens=False) or []


def _centre(text: str, width: int, *, bold: bool = False, big: bool = False) -> list[ReceiptLine]:
    return [ReceiptLine(part, "center", bold, big) for part in _wrap(text, width)]


def _pair(left: str, right: str, width: int, *, bold: bool = False) -> list[ReceiptLine]:
    """``left`` and ``right`` on one line, or on two when they do not fit."""
    left, right = _clean(left), _clean(right)
    if len(left) + 1 + len(right) <= width:
        return [ReceiptLine(left + right.rjust(width - len(left)), bold=bold)]
    lines = [ReceiptLine(part, bold=bold) for part in _wrap(left, width)]
    lines += [ReceiptLine(part.rjust(width), bold=bold) for part in _wrap(right, width)]
    return lines


def _rule(width: int, char: str = "-") -> ReceiptLine:
    return ReceiptLine(char * width)


def _blank() -> ReceiptLine:
    return ReceiptLine("")


def _check_render_args(data: ReceiptData, copy: str, width: int) -> None:
    if copy not in _COPIES:
        raise ValueError(f"copy must be 'merchant' or 'customer', got {copy!r}")
    if width < MIN_WIDTH:
        raise ValueError(f"width must be at least {MIN_WIDTH} columns")
    check_masked_pan(data.masked_pan)  # again: a frozen dataclass can still be forced


def receipt_lines(data: ReceiptData, copy: Copy, width: int = 42, tz: tzinfo | None = None) -> list[ReceiptLine]:
    """The receipt's content and layout, shared by the text and ESC/POS renderers."""
    _check_render_args(data, copy, width)
    merchant_copy = copy == "merchant"
    cur = currency(data.currency)
    at = data.at.astimezone(tz) if tz is not None else data.at
    out: list[ReceiptLine] = []

    # Header
    out += _centre(data.merchant_name, width, bold=True)
    for address_line in data.merchant_address.splitlines():
        out += _centre(address_line, width)
    out += _pair(f"MID {data.merchant_id}", f"TID {data.terminal_id}", width)
    out.append(_rule(width))
    if data.reprint:
        out += _centre("*** DUPLICATE ***", width, bold=True)
    out += _pair(at.strftime("%Y-%m-%d"), at.strftime("%H:%M:%S"), width)
    out += _centre(_KIND_TEXT[data.kind], width, bold=True)
    out.append(_blank())

    # Card (or digital-currency wallet)
    out += _pair(data.application_label or "CARD", data.masked_pan, width)
    if data.aid:  # (a QR wallet payment has none: its label names the wallet)
        out += _pair("AID", data.aid.upper(), width)
    if data.wallet_counter is not None:
        out += _pair("COUNTER", str(data.wallet_counter), width)
    if data.record_hash:
        out += _pair("RECORD", data.record_hash.upper(), width)
    out.append(_rule(width))
    out += _pair("AMOUNT", format_amount(data.amount, cur), width, bold=True)
    out.append(_rule(width))

    # Result
    out += _centre(data.status, width // 2, bold=True, big=True)
    if data.reason:
        out += _centre(data.reason, width)
    if data.offline:
        out += _centre("OFFLINE", width, bold=True)
    if data.deferred:
        out += _centre("DEFERRED", width, bold=True)
    if data.approval_code:
        out += _pair("APPROVAL CODE", data.approval_code, width)
    if data.host_reference:
        out += _pair("HOST REF", data.host_reference, width)
    if data.response_code:
        out += _pair("RESPONSE CODE", data.response_code, width)
    if data.cryptogram_type is not None:
        out += _pair(data.cryptogram_type, (data.cryptogram or "").upper(), width)
    if merchant_copy and data.wallet_counter is None and data.aid:  # (a wallet has no EMV risk results to show)
        out += _pair("TVR", data.tvr.upper(), width)
        out += _pair("TSI", data.tsi.upper(), width)
    cvm_text = _cvm_text(data)
    if cvm_text:
        out += _centre(cvm_text, width)
    if merchant_copy and data.cvm == "signature" and data.status == "APPROVED":
        out += [_blank(), _blank(), _blank()]
        out.append(ReceiptLine("X" + "_" * (width - 1)))
        out += _centre("CARDHOLDER SIGNATURE", width)

    # Footer
    out.append(_rule(width))
    out += _centre("MERCHANT COPY" if merchant_copy else "CUSTOMER COPY", width, bold=True)
    out += _pair("TXN", data.txn_id, width)
    return out


def _cvm_text(data: ReceiptData) -> str | None:
    """The CVM line: only the CVM performed, and a PIN only when one was entered.

    An online PIN is verified by the issuer, so it is "PIN VERIFIED" only on an
    approval; otherwise it was only entered.  An offline PIN is reported by the
    kernel only once the card has verified it.
    """
    if data.cvm == "consumer_device":
        return "VERIFIED ON DEVICE"
    if data.cvm not in _PIN_CVMS or not data.pin_entered:
        return None
    if data.cvm == "online_pin" and data.status != "APPROVED":
        return "PIN ENTERED"
    return "PIN VERIFIED"


def _as_text(lines: Sequence[ReceiptLine], width: int) -> str:
    rows = [line.text.center(width).rstrip() if line.align == "center" else line.text.rstrip() for line in lines]
    return "\n".join(rows) + "\n"


def render_text(data: ReceiptData, copy: Copy, width: int = 42, tz: tzinfo | None = None) -> str:
    """A fixed-width receipt (no line longer than ``width``), ending with a newline."""
    return _as_text(receipt_lines(data, copy, width, tz), width)


def render_escpos(data: ReceiptData, copy: Copy, width: int = 42, qr: bool = True, tz: tzinfo | None = None) -> bytes:
    """The receipt as ESC/POS bytes: init, styled lines, a native QR code of the txn id, a cut.

    The bytes are the same for the same input (the QR code is rendered by the
    printer, not rasterised here).
    """
    lines = receipt_lines(data, copy, width, tz)
    # python-escpos does work when first imported (it loads and pickles its printer
    # database into a temporary directory and calls logging.basicConfig()), so it is
    # imported here, when a receipt is printed, never when this module is imported;
    # its cache goes to one fixed directory instead of a new temporary one per process.
    cache = Path(
        os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(Path(tempfile.gettempdir()) / "posterm-escpos"))
    )
    cache.mkdir(parents=True, exist_ok=True)
    from escpos.printer import Dummy

    printer = Dummy()
    printer.hw("INIT")
    align: Align | None = None
    for line in lines:
        if line.align != align:
            printer.set(align=line.align)
            align = line.align
        if line.big:
            printer.set(bold=True, double_width=True, double_height=True)
        elif line.bold:
            printer.set(bold=True)
        printer.textln(line.text)
        if line.big:
            printer.set(bold=False, normal_textsize=True)
        elif line.bold:
            printer.set(bold=False)
    if qr and data.txn_id:
        printer.ln()
        printer.set(align="center")  # native QR cannot be centred by qr(center=True)
        printer.qr(data.txn_id, size=4, native=True)
        printer.set(align="left")
    printer.cut()
    output: bytes = printer.output
    return output
