"""The demo's QR payments (``posterm demo``, before its first settlement).

1. merchant-presented: the terminal makes the order at the host and shows
   its dynamic MPM code; the simulated wallet app of account ``alice``
   "scans" it (what ``posterm sim wallet pay PAYLOAD --account alice`` does)
   and pays; the terminal, long-polling, records the sale (``qr-simpay``);
2. consumer-presented: account ``bob``'s app shows a payment code (``posterm
   sim wallet code``), the cashier scans it with a serial scanner (the
   simulator's on a pty, opened as ``serial:/dev/pts/N``) and the host pays it
   (``qr-simchat``).

Both settle in lines of their own with the day's card payments.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from simulator.host.service import HostService
from simulator.pty_scanner import VirtualScanner
from terminal.devices import LazyScanner
from terminal.facade import PaymentResult, Terminal
from terminal.lifecycle import State
from terminal.ports import NoCodeError
from terminal.qr_payment import QrOptions

__all__ = ["qr_day"]


def _describe(result: PaymentResult) -> str:
    return f"{result.state.value}, {result.scheme}: {result.message}"


def _shown_and_paid(host: HostService, terminal: Terminal) -> tuple[bool, str]:
    payloads: list[str] = []
    paid: list[Any] = []

    def app() -> None:  # the customer's app scans the code on the screen, then pays
        deadline = time.monotonic() + 30
        while not payloads and time.monotonic() < deadline:
            time.sleep(0.05)
        if payloads:
            paid.append(host.wallet_pay(payloads[0], "alice"))

    thread = threading.Thread(target=app, daemon=True)
    thread.start()
    result = terminal.qr_sale(1550, 978, show=lambda _txn, payload: payloads.append(payload),
                              options=QrOptions(timeout=30, poll=5))  # fmt: skip
    thread.join(timeout=30)
    ok = result.state is State.QR_PAID and result.scheme == "qr-simpay" and bool(paid)
    return ok, _describe(result)


def _scanned(host: HostService, terminal: Terminal) -> tuple[bool, str]:
    code = host.wallet_code("bob")
    with VirtualScanner() as scanner:
        terminal.scanner = LazyScanner(scanner.url)
        with contextlib.suppress(NoCodeError):  # opened first: a serial port drops what came before
            terminal.scanner.read(timeout=0.05)
        scanner.send(code)
        try:
            result = terminal.qr_sale(640, 978, attempts=1)
        finally:
            terminal.scanner.close()
            terminal.scanner = None
    return result.state is State.QR_PAID and result.scheme == "qr-simchat", _describe(result)


def qr_day(check: Callable[[str, str, Callable[[], tuple[bool, str]]], None], host: HostService,
           terminal: Terminal) -> None:  # fmt: skip
    """The two QR steps, each through the demo's ``check(what, expected, action)``."""
    check("QR: the terminal shows a code, the wallet app pays it", "qr_paid, qr-simpay",
          lambda: _shown_and_paid(host, terminal))  # fmt: skip
    check("QR: a wallet's payment code through the pty scanner", "qr_paid, qr-simchat",
          lambda: _scanned(host, terminal))  # fmt: skip
