"""host_link.qr over the in-process host (``memory``): the same answers and failures as over HTTPS, without TLS."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from host_link.qr import QrLink
from simulator.host.inprocess import InProcessHost
from simulator.host.wallets import app_pay, issue_code
from terminal.host import HostNoAnswer, HostRejected, HostUnreachable

EUR = 978


def code(host: InProcessHost, account: str = "alice") -> str:
    with host._store() as store:
        return issue_code(store, account, dt.datetime.now(dt.UTC))[0]


def balance(host: InProcessHost, account: str) -> int:
    with host._store() as store:
        found = store.wallet_account(account)
        assert found is not None
        return found.balances[EUR]


def test_codes_orders_and_refunds_in_process(tmp_path: Path) -> None:
    host = InProcessHost(tmp_path / "host.db")
    qr = QrLink(host.qr("T1", "M1"))
    paid = qr.pay_by_code("r1", 500, EUR, code(host))
    assert (paid.status, paid.scheme) == ("paid", "qr-simpay")
    assert qr.refund("f1", "r1", 200, EUR).refunded_total == 200
    assert qr.refund("f2", "r1", 301, EUR).reason == "refund_exceeds_payment"
    order = qr.create_order("m1", 700, EUR)

    def pay_later() -> None:
        with host._store() as store:
            app_pay(store, order.order_id, "bob", dt.datetime.now(dt.UTC))

    payer = threading.Timer(0.2, pay_later)
    payer.start()
    try:
        assert qr.query_order(order.order_id, wait=20).status == "paid"
    finally:
        payer.join()
    assert qr.close_order(order.order_id).status == "paid"
    with pytest.raises(HostRejected, match="404"):
        QrLink(host.qr("T2", "M1")).query_order(order.order_id)  # not another terminal's
    assert balance(host, "alice") == 100000 - 300 and balance(host, "bob") == 50000 - 700
    assert [c.outcome for c in host.calls if c.method == "qr"][:2] == ["qr-payment:paid", "qr-refund:approved"]


def test_faults_in_process_as_over_https(tmp_path: Path) -> None:
    host = InProcessHost(tmp_path / "host.db")
    qr = QrLink(host.qr("T1", "M1"))
    spent = code(host)
    host.faults.down = True
    with pytest.raises(HostUnreachable):
        qr.pay_by_code("r1", 500, EUR, spent)
    host.faults.down = False
    host.faults.only = {"qr"}
    host.faults.no_answer = 1  # processed, the answer lost
    with pytest.raises(HostNoAnswer):
        qr.pay_by_code("r1", 500, EUR, spent)
    assert qr.query("r1").paid  # resolved by query
    assert qr.cancel("r1", 500, EUR).status == "reversed"
    assert balance(host, "alice") == 100000
    host.faults.fail_before_processing = 1
    with pytest.raises(HostNoAnswer):
        qr.query("r1")
    host.faults.only = {"authorise"}  # aimed elsewhere: QR messages pass
    host.faults.down = True
    assert qr.query("r1").status == "reversed"
