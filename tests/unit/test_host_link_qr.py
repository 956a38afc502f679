"""host_link.qr over httpx.MockTransport: the requests it sends (paths, keys, bodies) and what answers become."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from host_link.client import HttpsHostLink, IdempotentRetry
from host_link.qr import QrLink
from simulator.host.schema import first_error
from terminal.host import HostNoAnswer, HostRejected

TID, MID = "T1", "M1"
PAID = {
    "order_id": "Q0000000001ABCDEF", "reference": "r1", "mode": "code", "status": "paid", "reason": None,
    "wallet": "simpay", "amount": 100, "currency": 978, "refunded": 0, "host_reference": "W0000000002",
    "paid_at": "2026-12-06T09:00:00.000000+00:00",
}  # fmt: skip


class Host:
    """Answers every request with the next of ``answers`` (status, body), recording the requests."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers={"Content-Type": "application/json"})


def qr_link(host: Host) -> QrLink:
    link = HttpsHostLink(
        "https://host.test", terminal_id=TID, merchant_id=MID, transport=httpx.MockTransport(host),
        retry=IdempotentRetry(attempts=2, backoff_seconds=0.0), sleep=lambda _: None,
    )  # fmt: skip
    return QrLink(link)


def test_each_call_sends_its_path_key_and_a_body_the_host_accepts() -> None:
    order = {**PAID, "mode": "mpm", "status": "pending", "paid_at": None, "expires_at": "2026-12-06T09:10:00Z",
             "mpm": {"templates": {"26": {"00": "org.posterm.wallet", "01": MID, "02": PAID["order_id"]}},
                     "reference_label": "r1", "terminal_label": TID}}  # fmt: skip
    refund = {"refund_reference": "f1", "original_reference": "r1", "status": "approved", "reason": None,
              "amount": 50, "currency": 978, "refunded_total": 50, "host_reference": "W0000000003"}  # fmt: skip
    host = Host((200, PAID), (200, PAID), (200, PAID), (200, order), (200, PAID), (200, PAID), (200, refund))
    qr = qr_link(host)
    assert qr.pay_by_code("r1", 100, 978, "910000000000000001").paid
    assert qr.query("r1", wait=5).scheme == "qr-simpay"
    qr.cancel("r1", 100, 978)
    created = qr.create_order("r1", 100, 978)
    assert created.order_id == PAID["order_id"] and created.templates["26"]["02"] == PAID["order_id"]
    qr.query_order(created.order_id, wait=0)
    qr.close_order(created.order_id)
    assert qr.refund("f1", "r1", 50, 978).approved
    sent = [(r.method, r.url.path, r.url.query.decode(), r.headers.get("idempotency-key")) for r in host.requests]
    assert sent == [
        ("POST", "/v1/qr/payments", "", "qr-pay:r1"),
        ("GET", "/v1/qr/payments/r1", "wait=5", None),
        ("POST", "/v1/qr/payments/cancel", "", "qr-cancel:r1"),
        ("POST", "/v1/qr/orders", "", "qr-order:r1"),
        ("GET", f"/v1/qr/orders/{PAID['order_id']}", "wait=0", None),
        ("POST", "/v1/qr/orders/close", "", f"qr-close:{PAID['order_id']}"),
        ("POST", "/v1/qr/refunds", "", "qr-refund:f1"),
    ]
    components = ["QrPaymentRequest", "QrCancelRequest", "QrOrderRequest", "QrCloseRequest", "QrRefundRequest"]
    bodies = [json.loads(r.content) for r in host.requests if r.method == "POST"]
    assert [first_error(c, b) for c, b in zip(components, bodies, strict=True)] == [None] * 5


def test_a_malformed_answer_is_a_lost_one_and_a_refusal_is_final() -> None:
    host = Host((200, {**PAID, "status": "maybe"}))
    with pytest.raises(HostNoAnswer, match="malformed"):
        qr_link(host).pay_by_code("r1", 100, 978, "910000000000000001")
    assert len(host.requests) == 2  # retried once with the same key
    assert {r.headers["idempotency-key"] for r in host.requests} == {"qr-pay:r1"}
    for bad in ({**PAID, "amount": None}, {**PAID, "refunded": -1}, [PAID], b"not json"):
        with pytest.raises(HostNoAnswer):
            qr_link(Host((200, bad))).query("r1")
    with pytest.raises(HostRejected, match="404"):
        qr_link(Host((404, {"error": "not_found", "message": "no QR order"}))).query_order("Q1")


def test_bad_input_never_leaves_the_terminal() -> None:
    host = Host((200, PAID))
    qr = qr_link(host)
    for call in (
        lambda: qr.pay_by_code("r1", 100, 978, "91000"),
        lambda: qr.pay_by_code("r 1", 100, 978, "910000000000000001"),
        lambda: qr.pay_by_code("r1", 0, 978, "910000000000000001"),
        lambda: qr.query("r1", wait=31),
        lambda: qr.refund("f1", "r1", 1, 1000),
        lambda: qr.query_order("../etc"),
    ):
        with pytest.raises(ValueError):
            call()
    assert host.requests == []
