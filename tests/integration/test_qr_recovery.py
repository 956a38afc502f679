"""QR payments across a crash: the journal on disk, the simulator's in-process host (``memory``) and its wallets.

A process killed while its QR payment waits leaves ``qr_pending``; the next
start-up moves it to ``qr_in_doubt`` and ``qr_check`` settles it with the
host: an order the app paid meanwhile is recorded as the sale, one still open
is closed (and refused to the app afterwards), a code payment is cancelled
and the wallet paid back.  Also the scanned text's classification.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from simulator.host.admin import AdminRefused
from simulator.host.inprocess import MEMORY_HOST_DIR
from simulator.host.wallet_admin import accounts, make_code, pay_payload
from terminal.bootstrap import open_terminal
from terminal.facade import Terminal
from terminal.lifecycle import State
from terminal.offline import PaymentRefused
from terminal.qr_payment import QrOptions, mask_code
from terminal.qr_scan import classify

EUR = 978


class Killed(BaseException):
    """The process dies here (nothing after it runs: no close, no cancel)."""


def _balance(data: Path, account: str) -> int:
    for acc in accounts(data / MEMORY_HOST_DIR):
        if acc["account"] == account:
            return next(int(b["balance"]) for b in acc["balances"] if b["currency"] == EUR)
    raise AssertionError(account)


def _killed_while_showing(data: Path, payloads: list[str]) -> str:
    terminal = open_terminal(data, host="memory", reader_url="none")
    try:

        def show(_txn: str, payload: str) -> None:
            payloads.append(payload)
            raise Killed

        with pytest.raises(Killed):
            terminal.qr_sale(700, EUR, show=show, options=QrOptions(timeout=5, poll=1))
        txn_id = terminal.payment_in_progress
        assert txn_id is not None and terminal.transaction(txn_id).state is State.QR_PENDING  # type: ignore[union-attr]
        return txn_id
    finally:
        terminal.close()


def _reopened(data: Path) -> Terminal:
    return open_terminal(data, host="memory", reader_url="none")  # start-up recovery runs


def test_an_order_paid_while_the_terminal_was_down_is_recorded_at_the_check(tmp_path: Path) -> None:
    data = tmp_path / "terminal"
    payloads: list[str] = []
    txn_id = _killed_while_showing(data, payloads)
    before = _balance(data, "alice")
    pay_payload(data / MEMORY_HOST_DIR, payloads[0], "alice")  # the customer paid the code on the screen
    terminal = _reopened(data)
    try:
        assert terminal.transaction(txn_id).state is State.QR_IN_DOUBT  # type: ignore[union-attr]
        checked = terminal.qr_check()
        assert [(c.txn_id, c.state) for c in checked] == [(txn_id, State.QR_PAID)]
        assert terminal.result(txn_id).approved and terminal.qr_check() == []  # once
    finally:
        terminal.close()
    assert _balance(data, "alice") == before - 700


def test_an_order_still_open_after_a_crash_is_closed_and_never_charged(tmp_path: Path) -> None:
    data = tmp_path / "terminal"
    payloads: list[str] = []
    txn_id = _killed_while_showing(data, payloads)
    terminal = _reopened(data)
    try:
        assert [(c.txn_id, c.state) for c in terminal.qr_check()] == [(txn_id, State.CANCELLED)]
    finally:
        terminal.close()
    with pytest.raises(AdminRefused):
        pay_payload(data / MEMORY_HOST_DIR, payloads[0], "alice")


def test_a_code_payment_cut_off_after_sending_is_cancelled_and_paid_back(tmp_path: Path) -> None:
    data = tmp_path / "terminal"
    terminal = open_terminal(data, host="memory", reader_url="none")
    link: Any = terminal.host
    code = make_code(data / MEMORY_HOST_DIR, "bob")["code"]
    before = _balance(data, "bob")

    class DiesAfterSending:
        def qr_link(self, tid: str, mid: str) -> Any:
            real = link.qr_link(tid, mid)

            class Link:
                def __getattr__(self, name: str) -> Any:
                    return getattr(real, name)

                def pay_by_code(self, *args: Any) -> Any:
                    real.pay_by_code(*args)  # the host pays...
                    raise Killed  # ...and the terminal dies before it records the answer

            return Link()

    terminal.host = DiesAfterSending()  # type: ignore[assignment]
    from terminal.ports import NoCodeError

    class OneCode:
        url = "test:one-code"

        def read(self, timeout: float | None = None, cancel: Any = None) -> Any:
            from terminal.ports import ScannedCode

            if getattr(self, "done", False):
                raise NoCodeError("no more")
            self.done = True
            return ScannedCode(code)

        def close(self) -> None:
            return None

    terminal.scanner = OneCode()
    with pytest.raises(Killed):
        terminal.qr_sale(480, EUR, attempts=1)
    txn_id = terminal.payment_in_progress
    terminal.close()
    assert _balance(data, "bob") == before - 480  # charged, not recorded: the check must undo it
    terminal = _reopened(data)
    try:
        row = terminal.transaction(txn_id or "")
        assert row is not None and row.state is State.QR_IN_DOUBT and row.details["code"] == mask_code(code)
        assert code not in str(row.details)  # a code is a bearer token: kept masked
        assert [(c.txn_id, c.state) for c in terminal.qr_check()] == [(txn_id, State.REVERSED)]
    finally:
        terminal.close()
    assert _balance(data, "bob") == before


@pytest.mark.parametrize(
    ("text", "kind", "words"),
    [
        ("912345678901234567", "wallet", None),
        (" 932345678901234567\r", "wallet", None),
        ("9123456789", None, "truncated (10 of 18 digits)"),
        ("9123456789012345678901", None, "22 digits"),
        ("hello", None, "not a payment code"),
        ("", None, "not a payment code"),
        ("00020101021226", None, "a shop's code"),
        ("hQVDUFYwMWF", None, "cannot be read"),
        ("hQVDUFYwMWEaTwegAAAAVVVVVw8SNFZ4kBI0WNGRIgESNF8=", "cpm", None),
    ],
)
def test_what_a_scanned_text_is(text: str, kind: str | None, words: str | None) -> None:
    if kind is not None:
        assert classify(text).kind == kind
        assert text.strip() not in repr(classify(text))  # never shown whole
        return
    with pytest.raises(PaymentRefused, match=re.escape(words or "")) as refused:
        classify(text)
    assert refused.value.reason == "qr_code"


def test_options_out_of_range_are_refused() -> None:
    for bad in ({"timeout": 0}, {"confirm_limit": 601}, {"poll": 31}, {"confirm_poll": 0}):
        with pytest.raises(ValueError, match=r"QR time-out|long poll"):
            QrOptions(**bad)  # type: ignore[arg-type]


class Recorder:
    """A receipt printer that keeps its jobs (``fail``: out of paper)."""

    url = "test:recorder"

    def __init__(self, fail: bool = False) -> None:
        self.jobs: list[bytes] = []
        self.fail = fail

    def print_job(self, data: bytes) -> None:
        from terminal.ports import DeviceError

        if self.fail:
            raise DeviceError("out of paper")
        self.jobs.append(data)

    def status(self) -> Any:
        return None

    def close(self) -> None:
        return None


@pytest.mark.parametrize("fail", [False, True])
def test_the_code_shown_is_printed_and_a_printer_fault_stops_nothing(tmp_path: Path, fail: bool) -> None:
    data = tmp_path / "terminal"
    terminal = open_terminal(data, host="memory", reader_url="none")
    printer = Recorder(fail)
    terminal.printer = printer
    terminal.settings = replace(terminal.settings, receipt_copies=())  # only the code is printed here
    messages: list[str] = []
    terminal.subscribe(lambda e: messages.append(str(e.data.get("message"))) if e.kind == "qr_status" else None)

    def app_pays(_txn: str, payload: str) -> None:
        pay_payload(data / MEMORY_HOST_DIR, payload, "alice")  # the customer scans the screen at once
        shown.append(payload)

    shown: list[str] = []
    try:
        result = terminal.qr_sale(990, EUR, show=app_pays, options=QrOptions(timeout=20, poll=2))
    finally:
        terminal.close()
    assert result.approved
    if fail:
        assert printer.jobs == [] and "the code was not printed (out of paper)" in messages
    else:
        (job,) = printer.jobs
        assert shown[0].encode() in job and b"SCAN TO PAY" in job and b"9.90 EUR" in job
