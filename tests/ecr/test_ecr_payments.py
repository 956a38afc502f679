"""Start, follow and finish payments through the ECR interface, over HTTP on loopback.

A register starts a payment with its Idempotency-Key and is answered at once;
it follows the payment by long poll or by server-sent events, seeing what the
customer's screen shows (the prompt, the EMV Book A messages, the four
lights), and reads the result.  The key makes the payment once: a repeat is
the same payment (never a second charge, after a restart too), another body
under the same key is a conflict, and a second payment while one runs is
refused as busy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.ecr.conftest import ONLINE, Ecr, sale
from ui.ecr.schema import first_error

LATE = "sim:card=visa-qvsdc-online?present-after=0.4"


def _events(ecr: Ecr, payment_id: str, **headers: str) -> list[dict[str, Any]]:
    """Every event of the payment's stream, until the server ends it."""
    seen: list[dict[str, Any]] = []
    with ecr.http.stream("GET", f"/v1/payments/{payment_id}/events", headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        for line in stream.iter_lines():
            if line == "":
                if "data" in event:
                    payment = json.loads(event["data"])
                    assert event["event"] == "payment" and int(event["id"]) == payment["version"]
                    seen.append(payment)
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                event[name] = value
    return seen


def test_a_sale_is_answered_at_once_then_followed_to_approved(make_ecr: Callable[..., Ecr]) -> None:
    ecr = make_ecr(LATE)
    started = ecr.start("reg1-0001", sale(1234, "EUR", reference="TICKET-1"))
    assert started.status_code == 202
    assert started.headers["location"] == "/v1/payments/reg1-0001"
    first = started.json()
    assert first["id"] == "reg1-0001" and first["status"] in ("starting", "waiting_for_card")
    assert first["final"] is False and first["txn_id"] is None
    assert first["links"]["events"] == "/v1/payments/reg1-0001/events"

    waiting = ecr.wait_for("reg1-0001", lambda p: p["status"] == "waiting_for_card")
    assert waiting["display"]["prompt"] == "present card"
    assert waiting["display"]["amount"] == "12.34 EUR"
    assert (waiting["display"]["reader_status"], waiting["display"]["lights"]) == ("ready_to_read", 1)
    assert waiting["message"].lower() == "present card"

    done = ecr.final("reg1-0001")
    assert done["status"] == "approved" and done["approved"] is True
    assert done["state"] == "approved" and done["txn_id"]
    assert done["result"]["masked_pan"].endswith("0010") and done["result"]["approval_code"]
    assert done["reference"] == "TICKET-1" and done["amount"] == 1234 and done["currency"] == "EUR"
    texts = [m["text"] for m in done["messages"]]
    assert texts[0] == "Present card" and "Card read OK" in texts
    assert max(m["lights"] for m in done["messages"]) == 4
    # What was shown is what the terminal recorded.
    assert ecr.terminal.payment_for_request("reg1-0001").txn_id == done["txn_id"]  # type: ignore[union-attr]
    assert ecr.host.accepted_count(done["txn_id"]) == 1
    for payment in (first, waiting, done):
        assert first_error("Payment", payment) is None


def test_the_event_stream_shows_the_payment_live_and_ends_with_its_result(make_ecr: Callable[..., Ecr]) -> None:
    ecr = make_ecr(LATE)
    assert ecr.start("sse-1", sale(500)).status_code == 202
    events = _events(ecr, "sse-1")
    statuses = [e["status"] for e in events]
    assert "waiting_for_card" in statuses and statuses[-1] == "approved"
    assert statuses.index("waiting_for_card") < len(statuses) - 1
    assert [e["version"] for e in events] == sorted({e["version"] for e in events})
    assert events[-1]["final"] is True
    # A register that reconnects with the last id it saw gets nothing twice; the stream of a final payment ends.
    assert _events(ecr, "sse-1", **{"Last-Event-ID": str(events[-1]["version"])}) == []
    assert [e["status"] for e in _events(ecr, "sse-1")] == ["approved"]


def test_a_long_poll_answers_when_the_payment_changes(make_ecr: Callable[..., Ecr]) -> None:
    ecr = make_ecr("sim:card=visa-qvsdc-online?present-after=1")
    version = ecr.start("poll-1", sale()).json()["version"]
    waiting = ecr.wait_for("poll-1", lambda p: p["status"] == "waiting_for_card")
    began = time.monotonic()
    changed = ecr.get("poll-1", wait=20, after=waiting["version"])
    assert changed["version"] > waiting["version"] > version - 1
    assert time.monotonic() - began < 10  # answered by the change, not by the time-out
    ecr.final("poll-1")
    began = time.monotonic()
    assert ecr.get("poll-1", wait=20)["final"]  # a final payment is answered at once
    assert time.monotonic() - began < 2


def test_the_same_key_and_body_is_the_same_payment_charged_once(ecr: Ecr) -> None:
    body = sale(2000, "EUR", reference="R-7")
    first = ecr.start("same-key", body)
    again = ecr.start("same-key", body)  # while it runs, or just after
    assert again.status_code in (200, 202) and again.headers["idempotent-replay"] == "true"
    assert again.json()["id"] == "same-key"
    done = ecr.final("same-key")
    # The currency named another way, and defaults spelt out, are the same request.
    third = ecr.start("same-key", {**body, "currency": 978, "offline_behavior": "prefer_online"})
    assert third.status_code == 200 and third.headers["idempotent-replay"] == "true"
    assert first.json()["id"] == third.json()["id"] == "same-key"
    assert third.json()["txn_id"] == done["txn_id"]
    assert len(ecr.terminal.transactions()) == 1
    assert ecr.host.accepted_count(done["txn_id"]) == 1
    assert len(ecr.host.records) == 1


def test_the_same_key_with_another_body_is_a_conflict(ecr: Ecr) -> None:
    ecr.start("conflict-1", sale(1000))
    ecr.final("conflict-1")
    for other in (
        sale(1001),
        sale(1000, "USD"),
        sale(1000, reference="X"),
        {**sale(1000), "kind": "refund", "unreferenced": True},
    ):
        answer = ecr.start("conflict-1", other)
        assert answer.status_code == 409, other
        assert answer.json()["error"] == "idempotency_conflict"
        assert "new key" in answer.json()["message"]
    assert len(ecr.terminal.transactions()) == 1


def test_one_payment_at_a_time_a_second_start_is_told_what_runs(make_ecr: Callable[..., Ecr]) -> None:
    ecr = make_ecr("sim:card=visa-qvsdc-online?present-after=30")
    ecr.start("busy-1", sale(700))
    ecr.wait_for("busy-1", lambda p: p["status"] == "waiting_for_card")
    refused = ecr.start("busy-2", sale(800))
    assert refused.status_code == 409
    answer = refused.json()
    assert answer["error"] == "busy" and "busy-1" in answer["message"] and "7.00 EUR" in answer["message"]
    assert answer["running"]["id"] == "busy-1" and answer["running"]["status"] == "waiting_for_card"
    status = ecr.http.get("/v1/status").json()
    assert status["busy"] is True and status["running"]["id"] == "busy-1"
    assert ecr.http.get("/v1/payments/busy-2").status_code == 404  # nothing was made for the refused key
    cancelled = ecr.http.post("/v1/payments/busy-1/cancel").json()
    assert cancelled["status"] == "not_completed"
    assert ecr.http.get("/v1/status").json()["busy"] is False


def test_after_a_restart_the_journal_answers_for_a_key(make_ecr: Callable[..., Ecr]) -> None:
    ecr = make_ecr(ONLINE)
    ecr.start("restart-1", sale(1500, reference="R-9"))
    done = ecr.final("restart-1")
    ecr.close()
    again = make_ecr(ONLINE)  # the same data directory, a new process's worth of memory
    found = again.get("restart-1")
    assert found["status"] == "approved" and found["txn_id"] == done["txn_id"] and found["reference"] == "R-9"
    repeat = again.start("restart-1", sale(1500, reference="R-9"))
    assert repeat.status_code == 200 and repeat.json()["txn_id"] == done["txn_id"]
    assert again.start("restart-1", sale(1501, reference="R-9")).status_code == 409
    assert len(again.terminal.transactions()) == 1 and again.host.accepted_count(done["txn_id"]) == 1
    # Found by the terminal's own id too, and by the register's reference.
    assert again.get(done["txn_id"])["txn_id"] == done["txn_id"]
    listed = again.http.get("/v1/payments", params={"reference": "R-9"}).json()["payments"]
    assert [p["txn_id"] for p in listed] == [done["txn_id"]]


def test_a_declined_sale_says_why_in_words(ecr: Ecr) -> None:
    ecr.start("declined-1", sale(1051))
    done = ecr.final("declined-1")
    assert done["status"] == "declined" and done["approved"] is False
    assert done["message"] == "declined: insufficient funds (51)" and done["reason"] == "51"


def test_a_sale_with_no_reader_configured_is_refused_at_once(make_ecr: Callable[..., Ecr]) -> None:
    ecr = make_ecr(None)
    answer = ecr.start("no-reader", sale())
    assert answer.status_code == 503 and answer.json()["error"] == "no_reader"
    assert ecr.http.get("/v1/payments/no-reader").status_code == 404


def test_a_client_on_its_own_connection_per_request_sees_the_same(ecr: Ecr) -> None:
    """A register that opens a connection per request (no keep-alive) is served the same."""
    with httpx.Client(base_url=ecr.server.url, headers={"Connection": "close"}) as client:
        answer = client.post("/v1/payments", json=sale(300), headers={"Idempotency-Key": "fresh-1"})
        assert answer.status_code == 202
    assert ecr.final("fresh-1")["status"] == "approved"


def test_the_application_holds_the_desk_while_its_screen_takes_a_payment(ecr: Ecr) -> None:
    """In process, the cashier's own payment makes registers wait their turn, told why."""
    with ecr.server.desk.hold("cashier: sale 12.34 EUR"):
        refused = ecr.start("held-1", sale())
        assert refused.status_code == 409 and "cashier: sale 12.34 EUR" in refused.json()["message"]
        assert ecr.http.get("/v1/status").json()["busy_with"] == "cashier: sale 12.34 EUR"
    assert ecr.start("held-1", sale()).status_code == 202
    assert ecr.final("held-1")["status"] == "approved"
