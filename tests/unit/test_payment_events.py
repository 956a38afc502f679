"""payment_started and payment_finished bracket every sale and refund, however it ends and whoever started it.

The kiosk's screen follows payments that a register starts through the ECR
interface by these events; a payment refused before its card was read writes
no journal row, so without them nothing would say that it is over.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.facade import TerminalEvent
from terminal.offline import PaymentRefused


def _kinds(events: list[TerminalEvent]) -> list[str]:
    return [e.kind for e in events if e.kind in ("payment_started", "payment_finished")]


def test_a_sale_approved_is_bracketed(tmp_path: Path) -> None:
    terminal = open_terminal(tmp_path, reader_url="sim:card=visa-qvsdc-online", host="memory")
    events: list[TerminalEvent] = []
    terminal.subscribe(events.append)
    try:
        result = terminal.sale(2000, 978)
    finally:
        terminal.close()
    assert _kinds(events) == ["payment_started", "payment_finished"]
    started = next(e for e in events if e.kind == "payment_started")
    assert started.data == {"payment": "sale", "amount": 2000, "currency": 978}
    assert events[0] is started  # before the card prompt
    finished = events[-1]
    assert finished.kind == "payment_finished" and finished.txn_id == result.txn_id
    assert finished.data["approved"] is True and finished.data["state"] == "approved"
    assert finished.data["masked_pan"] == result.masked_pan


def test_a_refusal_before_the_card_is_read_is_told_too(tmp_path: Path) -> None:
    terminal = open_terminal(tmp_path, reader_url="sim:card=visa-qvsdc-online?present-after=20", host="memory")
    events: list[TerminalEvent] = []
    terminal.subscribe(events.append)
    timer = threading.Timer(0.3, terminal.cancel)
    timer.start()
    try:
        with pytest.raises(PaymentRefused):
            terminal.sale(500, 978)
        assert terminal.transactions() == []  # nothing journalled: no state_changed to go by
    finally:
        timer.cancel()
        terminal.close()
    assert _kinds(events) == ["payment_started", "payment_finished"]
    finished = events[-1]
    assert finished.txn_id is None and finished.data["refused"] == "cancelled"
    assert finished.data["approved"] is False and "cancelled" in finished.data["message"]


def test_a_refund_is_bracketed_and_a_repeated_request_is_not(tmp_path: Path) -> None:
    terminal = open_terminal(tmp_path, reader_url="sim:card=visa-qvsdc-online", host="memory")
    events: list[TerminalEvent] = []
    try:
        sale = terminal.sale(1500, 978, request_key="k1")
        terminal.subscribe(events.append)
        terminal.sale(1500, 978, request_key="k1")  # answered from the journal: no payment runs
        assert _kinds(events) == []
        terminal.refund(500, 978, original_txn_id=sale.txn_id)
    finally:
        terminal.close()
    assert _kinds(events) == ["payment_started", "payment_finished"]
    assert events[0].data["payment"] == "refund" and events[-1].data["payment"] == "refund"


def test_no_listener_no_cost(tmp_path: Path) -> None:
    terminal = open_terminal(tmp_path, reader_url="sim:card=visa-qvsdc-online", host="memory")
    terminal.reader = registry.open_reader("sim:card=visa-qvsdc-online")
    try:
        assert terminal.sale(100, 978).approved
    finally:
        terminal.close()
