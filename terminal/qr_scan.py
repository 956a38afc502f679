"""What the scanner read at a QR sale: a wallet's payment code, an EMV CPM code, or something to refuse.

:func:`classify` reads the scanner's text (untrusted) and says what it is:

- 18 digits: a wallet payment code (its first digits name the wallet; any
  such code goes to the host, which knows its wallets' ranges);
- base64 starting ``hQVDUFY``: an EMV consumer-presented code, processed as
  the POI does (:func:`emv.qr_cpm.process`, with the AIDs the terminal
  accepts): its POI data becomes an online authorisation like a tapped
  card's (:func:`cpm_card_result`);
- anything else is refused in words: digits of another length ("truncated"),
  a merchant-presented code (a shop's, not a customer's), garbage.

:func:`scan_and_pay` is the sale's loop: a code refused before anything was
sent, or declined by the host for the code itself (unknown, expired, used),
lets the cashier scan again (up to ``attempts`` reads); the same code read
twice in one sale is refused without asking the host ("refresh it in the
app").  Nothing is charged for a refused code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from emv.outcome import Outcome, TransactionResult
from emv.transaction import bcd
from terminal.offline import PaymentRefused
from terminal.results import PaymentResult

__all__ = ["CODE_REASONS", "Scanned", "classify", "cpm_card_result", "scan_and_pay"]

#: A wallet's answers about the code itself: the customer can show a fresh one and the cashier scan again.
CODE_REASONS: Final = frozenset({"unknown_code", "expired_code", "code_used"})
_CPM_START = "hQVDUFY"
_MPM_START = "000201"


@dataclass(frozen=True)
class Scanned:
    """A scanned code: ``kind`` ``wallet`` (``text`` the 18 digits) or ``cpm`` (``text`` the payload)."""

    kind: str
    text: str

    def __repr__(self) -> str:  # a code is a bearer token and a CPM code holds card data: never shown whole
        return f"Scanned({self.kind}, {len(self.text)} characters)"


def classify(text: str) -> Scanned:
    """What a scanned text is; PaymentRefused ``qr_code`` (in words) for anything that cannot pay.

    >>> classify(" 912345678901234567 ").kind
    'wallet'
    >>> classify("91234567890123")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    terminal.offline.PaymentRefused: the code is truncated ...
    """
    code = text.strip()
    if code.startswith(_MPM_START) and len(code) != 18:  # (an MPM code may be all digits: checked first)
        raise PaymentRefused(
            "qr_code", "this is a shop's code (merchant-presented), not a customer's: ask for the app's payment code"
        )
    if code.isascii() and code.isdigit():
        if len(code) == 18:
            return Scanned("wallet", code)
        if len(code) < 18:
            raise PaymentRefused("qr_code", f"the code is truncated ({len(code)} of 18 digits): scan it again")
        raise PaymentRefused("qr_code", f"not a wallet payment code ({len(code)} digits, a payment code has 18)")
    if code.startswith(_CPM_START):
        from emv.qr_cpm import CpmError, decode

        try:
            decode(code)
        except CpmError as exc:
            raise PaymentRefused("qr_code", f"the payment code cannot be read ({exc}): scan it again") from None
        return Scanned("cpm", code)
    raise PaymentRefused("qr_code", "not a payment code: ask the customer to show the payment code in the app")


def cpm_card_result(payload: str, aids: Sequence[bytes], amount: int, currency: int,
                    terminal_data: dict[int, bytes]) -> TransactionResult:  # fmt: skip
    """An EMV CPM code as a card's reading that asks to go online: its POI data, the terminal's data objects.

    PaymentRefused ``qr_code`` when no application of the code is one the terminal accepts, or it is not
    an online request (no ARQC).
    """
    from emv.qr_cpm import CpmError, process

    try:
        poi = process(payload, aids)
    except CpmError as exc:
        raise PaymentRefused("qr_code", f"the payment code cannot be used here ({exc})") from None
    objects = dict(poi.objects)
    cid = objects.get(0x9F27, b"\x80")
    kind = {0x80: "ARQC", 0x40: "TC", 0x00: "AAC"}.get(cid[0] & 0xC0, "ARQC") if cid else "ARQC"
    # the code's own objects win: what the issuer's cryptogram covers is what the code carries
    data = terminal_data | {0x9F02: bcd(amount, 6), 0x5F2A: bcd(currency, 2), 0x9C: b"\x00"} | objects
    label = objects.get(0x50)
    return TransactionResult(
        outcome=Outcome.ONLINE_REQUEST, kernel="qr-cpm", aid=poi.aid,
        application_label=label.decode("ascii", "replace") if label else None, cryptogram_type=kind,
        cryptogram=objects.get(0x9F26), card_data=data,
    )  # fmt: skip


def scan_and_pay(
    read: Callable[[], str],
    pay: Callable[[Scanned], PaymentResult],
    say: Callable[[str], None],
    *,
    attempts: int = 3,
) -> PaymentResult:
    """Read codes until one pays, is declined for good, or ``attempts`` reads were unusable (see the module)."""
    seen: set[str] = set()
    last: PaymentRefused | None = None
    result: PaymentResult | None = None
    for _ in range(attempts):
        text = read()
        try:
            scanned = classify(text)
            if scanned.text in seen:
                raise PaymentRefused(
                    "qr_code", "this code was read already for this sale: ask the customer to refresh it in the app"
                )
        except PaymentRefused as exc:
            last = exc
            say(str(exc))
            continue
        seen.add(scanned.text)
        result = pay(scanned)
        if result.approved or result.refusal not in CODE_REASONS:
            return result
        say(result.message)
    if result is not None:
        return result
    assert last is not None
    raise last
