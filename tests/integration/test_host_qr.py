"""QR payments end to end: ``host_link.qr`` against the real host over mutual TLS on loopback.

One host process with two workers serves the module, with its books in
SQLite and once in PostgreSQL. Each test enrols terminals of its own. The
wallet apps act through the host's data directory (``HostService.wallet_*``,
what ``posterm sim wallet code|pay`` and ``posterm host wallet ...`` do).
After each test, nobody was charged without an order the host reports paid.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from emv.qr_mpm import AdditionalData, MerchantPresentedCode, Template, encode
from host_link.client import HttpsHostLink, IdempotentRetry
from host_link.qr import QrLink, QrOrder
from host_link.tls import client_context
from simulator.host.admin import AdminRefused
from simulator.host.service import HostService, start_host
from terminal.host import BatchTotals, HostNoAnswer, HostRejected, HostUnreachable, TotalsLine
from tests.integration.host_store import engine_store
from tests.postgres_rig import ENGINES

EUR = 978
MID = "POSTERM0000001"
_ids = itertools.count(1)


@pytest.fixture(scope="module", params=ENGINES)
def host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    with engine_store(request.param, request) as store, start_host(
        tmp_path_factory.mktemp("host"), workers=2, store=store, metrics=True
    ) as service:
        yield service


class Terminals:
    """Terminals enrolled at the host, each with a QR link of short timeouts."""

    def __init__(self, host: HostService, folder: Path) -> None:
        self.host = host
        self.folder = folder
        self.links: list[HttpsHostLink] = []

    def new(self, *, attempts: int = 2, read_timeout: float = 5.0) -> QrLink:
        terminal_id = f"QR{next(_ids):06d}"
        creds = self.host.enrol(terminal_id, MID, self.folder / terminal_id)
        link = HttpsHostLink(
            self.host.url,
            terminal_id=terminal_id,
            merchant_id=MID,
            ssl_context=client_context(
                ca_file=creds.ca_certificate, cert_file=creds.certificate, key_file=creds.key
            ),
            connect_timeout=1.0,
            read_timeout=read_timeout,
            retry=IdempotentRetry(attempts=attempts, backoff_seconds=0.05, total_seconds=3.0),
        )
        self.links.append(link)
        return QrLink(link)

    def close(self) -> None:
        for link in self.links:
            link.close()


@pytest.fixture
def terminals(host: HostService, tmp_path: Path) -> Iterator[Terminals]:
    made = Terminals(host, tmp_path)
    balances = host.wallet_balances()
    try:
        yield made
    finally:
        host.clear_faults()
        host.set_wallet_mode("normal")
        made.close()
    # the money check: every account moved by exactly what its paid orders less their refunds took
    taken: dict[tuple[str, int], int] = {}
    for order in host.qr_orders():
        if order["state"] == "paid" and order["terminal_id"] in {link.terminal_id for link in made.links}:
            key = (order["account"], order["currency"])
            taken[key] = taken.get(key, 0) + order["amount"] - order["refunded"]
    after = host.wallet_balances()
    for key, before in balances.items():
        assert after[key] == before - taken.get(key, 0), (key, before, after[key], taken)


def mpm_payload(order: QrOrder) -> str:
    """The dynamic MPM code a terminal shows for ``order`` (what the wallet app scans)."""
    templates = tuple(Template(ident, fields["00"], tuple((k, v) for k, v in fields.items() if k != "00"))
                      for ident, fields in order.templates.items())  # fmt: skip
    code = MerchantPresentedCode(
        merchant_category_code="5812", currency=f"{order.payment.currency:03d}", country="DE",
        merchant_name="POSTERM TEST SHOP", merchant_city="BERLIN", templates=templates, point_of_initiation="12",
        amount=f"{order.payment.amount // 100}.{order.payment.amount % 100:02d}",
        additional_data=AdditionalData(reference_label=order.reference_label, terminal_label=order.terminal_label),
    )  # fmt: skip
    return encode(code)


# ----------------------------------------------------------------------------- consumer-presented codes


def test_a_wallet_code_pays_and_a_second_use_is_declined(host: HostService, terminals: Terminals) -> None:
    qr = terminals.new()
    code = host.wallet_code("alice")
    paid = qr.pay_by_code("sale-1", 1250, EUR, code)
    assert (paid.status, paid.wallet, paid.scheme, paid.amount) == ("paid", "simpay", "qr-simpay", 1250)
    assert qr.pay_by_code("sale-1", 1250, EUR, code) == paid  # the same request again: the same answer
    again = qr.pay_by_code("sale-2", 1250, EUR, code)
    assert (again.status, again.reason) == ("declined", "code_used")
    unknown = qr.pay_by_code("sale-3", 1250, EUR, "920000000000000000")
    assert (unknown.status, unknown.reason) == ("declined", "unknown_code")
    assert qr.query("sale-1").paid and qr.query("nothing-here").status == "unknown"
    with pytest.raises(ValueError, match="18 digits"):
        qr.pay_by_code("sale-4", 1250, EUR, code[:-1])  # a truncated code never leaves the terminal
    metrics = host.metrics_text()  # counted by message, status and reason (bounded labels, no ids)
    assert 'posterm_host_qr_total{message="qr-payment",reason="code_used",status="declined"}' in metrics
    assert "/v1/qr/payments/{reference}" in metrics and "sale-1" not in metrics


def test_in_app_confirmation_then_query_sees_it(host: HostService, terminals: Terminals) -> None:
    qr = terminals.new(read_timeout=3.0)
    host.set_wallet_mode("confirm")
    waiting = qr.pay_by_code("sale-1", 990, EUR, host.wallet_code("bob"))
    assert waiting.status == "user_paying" and not waiting.final
    assert qr.query("sale-1", wait=0).status == "user_paying"
    assert waiting.order_id is not None
    host.wallet_confirm(waiting.order_id)
    confirmed = qr.query("sale-1", wait=5)
    assert (confirmed.status, confirmed.wallet) == ("paid", "simchat")
    declining = qr.pay_by_code("sale-2", 990, EUR, host.wallet_code("bob"))
    assert declining.order_id is not None
    host.wallet_confirm(declining.order_id, accept=False)
    assert (qr.query("sale-2").status, qr.query("sale-2").reason) == ("declined", "user_declined")


def test_a_long_poll_answers_when_the_customer_confirms(host: HostService, terminals: Terminals) -> None:
    qr = terminals.new()
    host.set_wallet_mode("confirm")
    waiting = qr.pay_by_code("sale-1", 400, EUR, host.wallet_code("dora"))
    assert waiting.order_id is not None
    order_id = waiting.order_id
    confirmer = threading.Timer(0.3, lambda: host.wallet_confirm(order_id))
    confirmer.start()
    try:
        answer = qr.query("sale-1", wait=20)  # returns once confirmed, long before 20 s (no timing asserted)
    finally:
        confirmer.join()
    assert answer.status == "paid"


def test_cancel_reverses_a_paid_order_and_refuses_a_later_payment(host: HostService, terminals: Terminals) -> None:
    qr = terminals.new()
    paid = qr.pay_by_code("sale-1", 700, EUR, host.wallet_code("alice"))
    assert paid.paid
    reversed_ = qr.cancel("sale-1", 700, EUR)
    assert reversed_.status == "reversed"
    assert qr.cancel("sale-1", 700, EUR) == reversed_  # idempotent
    assert qr.cancel("sale-2", 300, EUR).status == "cancelled"  # before its payment
    late = qr.pay_by_code("sale-2", 300, EUR, host.wallet_code("alice"))
    assert (late.status, late.reason) == ("declined", "order_cancelled")
    with pytest.raises(HostRejected, match="409"):  # its key (qr-cancel:sale-1) was used with the right amount
        qr.cancel("sale-1", 701, EUR)


def test_host_down_nothing_sent_nothing_charged(host: HostService, terminals: Terminals) -> None:
    qr = terminals.new()
    code = host.wallet_code("alice")
    host.set_faults(down=True)
    with pytest.raises(HostUnreachable):
        qr.pay_by_code("sale-1", 100, EUR, code)
    host.clear_faults()
    qr.link.echo(force=True)
    assert qr.query("sale-1").status == "unknown"
    assert qr.pay_by_code("sale-1", 100, EUR, code).paid  # the code was not spent


def test_a_dropped_request_is_resolved_by_query_then_cancel(host: HostService, terminals: Terminals) -> None:
    qr = terminals.new()
    code = host.wallet_code("alice")
    host.set_faults(drop_after_request=True, only=["/v1/qr/payments"])
    with pytest.raises(HostNoAnswer):
        qr.pay_by_code("sale-1", 100, EUR, code)
    host.clear_faults()
    assert qr.query("sale-1").status == "unknown"
    assert qr.cancel("sale-1", 100, EUR).status == "cancelled"  # in doubt: cancelled at the host
    assert qr.pay_by_code("sale-1", 100, EUR, code).reason == "order_cancelled"  # the request again: refused


def test_an_answer_lost_to_a_slow_host_never_leaves_a_charge_unrecorded(
    host: HostService, terminals: Terminals
) -> None:
    """The host answers after the terminal gave up: query, then cancel; whatever the order, the charge is undone."""
    qr = terminals.new(attempts=1, read_timeout=0.5)
    code = host.wallet_code("alice")
    host.set_faults(slow_ms=1500, only=["/v1/qr/payments"])
    with pytest.raises(HostNoAnswer):
        qr.pay_by_code("sale-1", 250, EUR, code)
    host.clear_faults()
    status = qr.query("sale-1").status
    assert status in ("unknown", "paid")  # the slow request may be processed by now, or not yet
    assert qr.cancel("sale-1", 250, EUR).status in ("cancelled", "reversed")
    final = qr.pay_by_code("sale-1", 250, EUR, code)  # the same request: processed now, or its stored answer
    assert final.status in ("declined", "paid")
    assert qr.query("sale-1").status in ("cancelled", "reversed")  # never paid in the end (checked: balances)


# ----------------------------------------------------------------------------- merchant-presented orders


def test_an_mpm_order_paid_by_the_app_is_learnt_by_long_poll(host: HostService, terminals: Terminals) -> None:
    qr = terminals.new()
    order = qr.create_order("sale-1", 1234, EUR)
    assert order.payment.status == "pending" and order.templates["26"]["02"] == order.order_id
    payload = mpm_payload(order)
    paying = threading.Timer(0.3, lambda: host.wallet_pay(payload, "bob"))
    paying.start()
    try:
        seen = qr.query_order(order.order_id, wait=20)
    finally:
        paying.join()
    assert (seen.status, seen.wallet, seen.amount) == ("paid", "simchat", 1234)
    assert qr.close_order(order.order_id).status == "paid"  # too late to close: the terminal records the sale


def test_an_order_closed_by_the_terminal_is_refused_to_the_app(host: HostService, terminals: Terminals) -> None:
    qr = terminals.new()
    order = qr.create_order("sale-1", 500, EUR)
    assert qr.query_order(order.order_id, wait=1).status == "pending"  # the customer did not pay in time
    assert qr.close_order(order.order_id).status == "closed"
    with pytest.raises(AdminRefused, match="closed by the terminal"):
        host.wallet_pay(mpm_payload(order), "alice")
    assert qr.query_order(order.order_id).status == "closed"
    with pytest.raises(HostRejected, match="404"):
        terminals.new().query_order(order.order_id)  # another terminal's order is not shown


def test_app_pay_and_close_race_across_workers(host: HostService, terminals: Terminals) -> None:
    qr = terminals.new()
    for n in range(4):
        order = qr.create_order(f"sale-{n}", 100 + n, EUR)
        payload = mpm_payload(order)
        barrier = threading.Barrier(2)

        def app(payload: str = payload, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            try:
                return str(host.wallet_pay(payload, "alice")["status"])
            except AdminRefused:
                return "refused"

        def terminal(order_id: str = order.order_id, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            return qr.close_order(order_id).status

        with ThreadPoolExecutor(2) as pool:
            paid, closed = pool.submit(app), pool.submit(terminal)
            outcome = (paid.result(), closed.result())
        assert outcome in (("paid", "paid"), ("refused", "closed")), outcome
        assert qr.query_order(order.order_id).status == outcome[1]


# ----------------------------------------------------------------------------- several workers, refunds, settlement


def test_one_code_from_two_terminals_at_once_is_paid_once(host: HostService, terminals: Terminals) -> None:
    links = [terminals.new() for _ in range(4)]
    for n in range(3):
        code = host.wallet_code("alice")
        barrier = threading.Barrier(len(links))

        def pay(qr: QrLink, code: str = code, n: int = n, barrier: threading.Barrier = barrier) -> Any:
            barrier.wait()
            return qr.pay_by_code(f"sale-{n}", 150, EUR, code)

        with ThreadPoolExecutor(len(links)) as pool:
            answers = list(pool.map(pay, links))
        assert sorted(a.status for a in answers) == ["declined"] * (len(links) - 1) + ["paid"]


def test_refunds_never_exceed_and_the_batch_reconciles(host: HostService, terminals: Terminals) -> None:
    qr = terminals.new()
    assert qr.pay_by_code("sale-1", 1000, EUR, host.wallet_code("alice")).paid
    order = qr.create_order("sale-2", 600, EUR)
    host.wallet_pay(mpm_payload(order), "dora")
    assert qr.refund("refund-1", "sale-1", 700, EUR).approved
    over = qr.refund("refund-2", "sale-1", 301, EUR)
    assert (over.status, over.reason, over.refunded_total) == ("declined", "refund_exceeds_payment", 700)
    assert qr.refund("refund-1", "sale-1", 700, EUR).refunded_total == 700  # the same refund again: once
    lines = (
        TotalsLine("qr-simpay", EUR, "sale", 1, 1000),
        TotalsLine("qr-simdc", EUR, "sale", 1, 600),
        TotalsLine("qr-simpay", EUR, "refund", 1, 700),
    )
    settled = qr.link.close_batch(BatchTotals(1, qr.link.terminal_id, lines))
    assert settled.in_balance, settled.differences
    assert qr.cancel("sale-1", 1000, EUR).reason == "has_refunds"  # never reversed on top of its refunds


# ----------------------------------------------------------------------------- each host fault at each step

FAULTS: dict[str, dict[str, Any]] = {
    "down": {"down": True},
    "slow": {"slow_ms": 1200},
    "5xx": {"error_status": 503},
    "drop": {"drop_after_request": True},
}
STEPS = ("pay", "query", "cancel", "order", "close", "refund")


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_at_each_step_ends_in_one_outcome(
    host: HostService, terminals: Terminals, fault: str, step: str
) -> None:
    """The call fails as the link says (unreachable / no answer); the same call again ends as without the fault."""
    qr = terminals.new(read_timeout=0.5)
    code = host.wallet_code("alice")
    if step != "pay" and step not in ("order", "close"):
        assert qr.pay_by_code("sale-1", 800, EUR, code).paid
    order_id = qr.create_order("order-1", 300, EUR).order_id if step == "close" else ""
    calls: dict[str, tuple[str, Any]] = {
        "pay": ("/v1/qr/payments", lambda: qr.pay_by_code("sale-1", 800, EUR, code).status),
        "query": ("/v1/qr/payments/sale-1", lambda: qr.query("sale-1").status),
        "cancel": ("/v1/qr/payments/cancel", lambda: qr.cancel("sale-1", 800, EUR).status),
        "order": ("/v1/qr/orders", lambda: qr.create_order("order-1", 300, EUR).payment.status),
        "close": ("/v1/qr/orders/close", lambda: qr.close_order(order_id).status),
        "refund": ("/v1/qr/refunds", lambda: (qr.refund("refund-1", "sale-1", 500, EUR).refunded_total)),
    }
    path, call = calls[step]
    expected = {"pay": "paid", "query": "paid", "cancel": "reversed", "order": "pending", "close": "closed",
                "refund": 500}[step]  # fmt: skip
    host.set_faults(**FAULTS[fault]) if fault == "down" else host.set_faults(**FAULTS[fault], only=[path])
    with pytest.raises(HostUnreachable if fault == "down" else HostNoAnswer):
        call()
    host.clear_faults()
    qr.link.echo(force=True)
    assert call() == expected
    assert call() == expected  # and again: once
