"""A QR sale from start to end, behind :meth:`terminal.facade.Terminal.qr_sale`.

First the QR payments left in doubt are asked about (:func:`terminal.qr_check.check_orders`,
quietly: a host still away leaves them for later), then:

- ``show`` given: merchant-presented; the dynamic MPM code of the order is
  made from the terminal's QR merchant data (:mod:`terminal.qr_merchant`) with
  the order's templates, labels and amount, passed to ``show(txn_id, payload)``
  (the CLI draws it and writes a PNG; the printer prints it), and
  :meth:`terminal.qr_payment.QrPayments.show_order` waits for the app;
- else consumer-presented: codes are read from the scanner
  (:func:`terminal.qr_scan.scan_and_pay`); a wallet code is paid by
  :meth:`~terminal.qr_payment.QrPayments.pay_with_code`, an EMV CPM code is
  authorised online like a tapped card (no offline approval: without the host,
  "QR payments need the host: not taken").
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import UTC
from typing import TYPE_CHECKING, Any

from emv.transaction import bcd
from terminal.core import Core
from terminal.lifecycle import State
from terminal.offline import OfflineBehavior, PaymentRefused
from terminal.ports import CancelToken, CodeScanner, DeviceError, NoCodeError, ReceiptPrinter, WaitCancelled
from terminal.qr_check import check_orders
from terminal.qr_payment import NEED_HOST, QrOptions, QrPayments, Show, with_templates
from terminal.qr_scan import Scanned, cpm_card_result, scan_and_pay
from terminal.results import PaymentResult

if TYPE_CHECKING:
    from terminal.payments import Payments
    from terminal.qr_merchant import QrMerchant

__all__ = ["dynamic_payload", "escpos_code", "qr_sale"]


def escpos_code(payload: str, amount_text: str) -> bytes:
    """An ESC/POS job that prints a merchant-presented code for the customer to scan, with its amount."""
    import os
    import tempfile
    from pathlib import Path

    # as terminal.receipts does: python-escpos caches its printer database in one fixed directory
    cache = Path(os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR",
                                       str(Path(tempfile.gettempdir()) / "posterm-escpos")))  # fmt: skip
    cache.mkdir(parents=True, exist_ok=True)
    from escpos.printer import Dummy

    printer = Dummy()
    printer.hw("INIT")
    printer.set(align="center")
    printer.textln("SCAN TO PAY")
    printer.textln(amount_text)
    printer.qr(payload, size=6, native=True)
    printer.ln()
    printer.cut()
    job: bytes = printer.output
    return job


def dynamic_payload(config: Any, settings: Any, amount: int, code: int, reference: str) -> str:
    """A dynamic MPM payload of the terminal's default QR merchant data (no order: a screen's sample)."""
    from emv.qr_mpm import encode
    from terminal.money import currency
    from terminal.qr_merchant import merchant_code, qr_settings

    merchant = qr_settings({}, config, settings)
    return encode(merchant_code(merchant, amount=amount, currency=currency(code), reference=reference))


def _read(scanner: CodeScanner | None, token: CancelToken, timeout: float) -> str:
    if scanner is None:
        raise PaymentRefused("no_scanner", "no code scanner is configured ('posterm devices set scanner URL')")
    try:
        return scanner.read(timeout=timeout, cancel=token).text
    except WaitCancelled:
        raise PaymentRefused("cancelled", "cancelled: no code was scanned, nothing was charged") from None
    except NoCodeError:
        raise PaymentRefused("no_code", "no code was scanned in time: nothing was charged") from None
    except DeviceError as exc:
        raise PaymentRefused("scanner_error", f"the code scanner cannot be used: {exc}") from None


def _cpm(core: Core, payments: Payments, payload: str, amount: int, code: int, **request: Any) -> PaymentResult:
    aids = [c.aid for c in core.config.combinations]
    now = core.clock.now().astimezone(UTC)
    terminal_data = {
        0x9F1A: bcd(core.config.country_code, 2),
        0x9A: bytes.fromhex(f"{now:%y%m%d}"),
    }
    card = cpm_card_result(payload, aids, amount, code, terminal_data)
    result = payments._complete_sale(card, amount, code, OfflineBehavior.REQUIRE_ONLINE, True, **request)
    if result.state is State.DECLINED and result.response_code is None and "cannot be reached" in result.message:
        return replace(result, message=f"declined: {NEED_HOST}")  # online only: nothing stored as approved
    return result


def qr_sale(
    core: Core,
    payments: Payments,
    scanner: CodeScanner | None,
    printer: ReceiptPrinter | None,
    token: CancelToken,
    amount: int,
    code: int,
    *,
    merchant: QrMerchant | None = None,
    show: Show | None = None,
    options: QrOptions | None = None,
    attempts: int = 3,
    request_key: str | None = None,
    reference: str | None = None,
) -> PaymentResult:
    """See the module docstring; PaymentRefused (in words) when nothing could be taken and nothing was journalled.

    ``merchant``: the terminal's QR merchant data (default: from its EMV configuration and settings); the
    code shown is also printed when a receipt printer is configured (a printer fault is told, never fatal).
    """
    from terminal.qr_check import qr_flow
    from terminal.qr_merchant import merchant_code, qr_settings

    if amount <= 0:
        raise PaymentRefused("amount", "the amount must be above zero")
    flow: QrPayments = qr_flow(core, payments._new_txn_id, options=options, token=token)
    with contextlib.suppress(Exception):  # the earlier orders are settled when the host answers; never blocking
        check_orders(flow)
    request = {"request_key": request_key, "reference": reference}
    if show is not None:
        from emv.qr_mpm import encode
        from terminal.money import currency, format_amount

        cur = currency(code)
        mine = merchant or qr_settings({}, core.config, core.settings)
        shown = show

        def payload_of(order: Any) -> str:
            data = with_templates(mine, order)
            return encode(merchant_code(data, amount=amount, currency=cur, reference=order.reference_label))

        def show_and_print(txn_id: str, payload: str) -> None:
            shown(txn_id, payload)
            if printer is not None:
                try:
                    printer.print_job(escpos_code(payload, format_amount(amount, cur)))
                except Exception as exc:  # the code is on the screen: a printer fault stops nothing
                    core.emit("qr_status", txn_id, message=f"the code was not printed ({exc})")

        return flow.show_order(amount, code, payload_of, show_and_print, **request)

    def pay(scanned: Scanned) -> PaymentResult:
        if scanned.kind == "wallet":
            return flow.pay_with_code(amount, code, scanned.text, **request)
        return _cpm(core, payments, scanned.text, amount, code, **request)

    def say(message: str) -> None:
        core.emit("qr_status", None, message=message)

    timeout = core.settings.card_timeout_seconds
    return scan_and_pay(lambda: _read(scanner, token, timeout), pay, say, attempts=attempts)
