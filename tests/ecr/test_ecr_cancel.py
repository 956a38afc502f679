"""Cancel at every stage, and a register that loses its connection mid-payment.

Before the payment began, it never begins; while the card is awaited, the
wait ends and nothing is charged; once the card was read, the payment rules
decide and the answer says the state it ended in.  A register that drops
its connection (during the request, during a long poll, during an event
stream) finds the payment, gone on without it, when it asks again.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from terminal.host import AuthorisationRequest, HostAnswer, HostLink
from terminal.ports import CancelToken, CardReader, CardSession
from tests.ecr.conftest import ONLINE, Ecr, GatedWorker, sale
from ui.ecr import app as ecr_app


class CountingReader:
    """A reader that counts the times it is polled (``wait_for_card``)."""

    def __init__(self, inner: CardReader) -> None:
        self.inner = inner
        self.url = getattr(inner, "url", "counting")
        self.waits = 0

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        self.waits += 1
        return self.inner.wait_for_card(timeout, cancel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class HeldHost:
    """A host link whose authorisations wait until released: a payment stays past its card reading."""

    def __init__(self, inner: HostLink) -> None:
        self.inner = inner
        self.release = threading.Event()
        self.asked = threading.Event()

    def authorise(self, request: AuthorisationRequest) -> HostAnswer:
        self.asked.set()
        self.release.wait(30)
        return self.inner.authorise(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_cancel_before_the_payment_began_it_never_begins(make_ecr: Callable[..., Ecr]) -> None:
    worker = GatedWorker()
    ecr = make_ecr(ONLINE, worker=worker)
    reader = CountingReader(ecr.terminal.reader)  # type: ignore[arg-type]
    ecr.terminal.reader = reader
    try:
        assert ecr.start("before-1", sale()).json()["status"] == "starting"
        answer = ecr.http.post("/v1/payments/before-1/cancel")
        assert answer.status_code == 200
        cancelled = answer.json()
        assert cancelled["status"] == "not_completed" and cancelled["reason"] == "cancelled"
        assert cancelled["cancel"]["outcome"] == "cancelled" and cancelled["txn_id"] is None
        assert "no payment was made" in cancelled["message"]
        worker.release()
        time.sleep(0.2)
        assert reader.waits == 0  # the reader was never polled
        assert ecr.terminal.transactions() == []
        assert ecr.get("before-1")["status"] == "not_completed"
        # The slot is free again; the repeated key is the cancelled payment, not a new one.
        repeat = ecr.start("before-1", sale())
        assert repeat.status_code == 200 and repeat.json()["status"] == "not_completed"
        assert ecr.start("before-2", sale()).status_code == 202
        assert ecr.final("before-2")["status"] == "approved"
    finally:
        worker.stop()


def test_cancel_while_waiting_for_the_card_ends_the_wait(make_ecr: Callable[..., Ecr]) -> None:
    ecr = make_ecr("sim:card=visa-qvsdc-online?present-after=5")
    ecr.start("waiting-1", sale(900))
    ecr.wait_for("waiting-1", lambda p: p["status"] == "waiting_for_card")
    began = time.monotonic()
    answer = ecr.http.post("/v1/payments/waiting-1/cancel")
    assert time.monotonic() - began < 2  # not the card's 5 s
    assert answer.status_code == 200
    cancelled = answer.json()
    assert cancelled["cancel"]["outcome"] == "cancelled"
    assert cancelled["status"] == "not_completed" and cancelled["reason"] == "cancelled"
    assert ecr.terminal.transactions() == [] and ecr.host.records == ()
    again = ecr.http.post("/v1/payments/waiting-1/cancel").json()
    assert again["cancel"]["outcome"] == "already_final"


def test_cancel_after_the_card_was_read_lets_the_payment_rules_decide(
    make_ecr: Callable[..., Ecr], monkeypatch: pytest.MonkeyPatch
) -> None:
    ecr = make_ecr(ONLINE)
    held = HeldHost(ecr.terminal.host)  # type: ignore[arg-type]
    ecr.terminal.host = held
    monkeypatch.setattr(ecr_app, "CANCEL_WAIT_SECONDS", 0.5)
    ecr.start("after-1", sale(1200))
    assert held.asked.wait(10)
    processing = ecr.get("after-1")
    assert processing["status"] == "processing" and processing["state"] == "authorising"
    answer = ecr.http.post("/v1/payments/after-1/cancel")
    assert answer.status_code == 202
    assert answer.json()["cancel"]["outcome"] == "too_late"
    assert "the payment goes on" in answer.json()["cancel"]["message"]
    held.release.set()
    done = ecr.final("after-1")
    assert done["status"] == "approved"  # the cancel changed nothing once the card was read
    finished = ecr.http.post("/v1/payments/after-1/cancel")
    assert finished.status_code == 200 and finished.json()["cancel"]["outcome"] == "already_final"


def test_cancel_just_after_the_start_ends_in_a_state_the_answer_names(ecr: Ecr) -> None:
    """However the race between the cancel and the card falls, the answer and the journal agree."""
    ecr.start("late-cancel", sale(1300))
    answer = ecr.http.post("/v1/payments/late-cancel/cancel")
    assert answer.status_code == 200
    ended = answer.json()
    if ended["cancel"]["outcome"] == "cancelled":  # still waiting for the card: nothing charged
        assert ended["status"] == "not_completed" and ecr.terminal.transactions() == []
    else:  # the card was read already: the payment ended on its own
        assert ended["cancel"]["outcome"] in ("too_late", "already_final")
        assert ended["final"] and ended["status"] == "approved"
        assert [r.txn_id for r in ecr.terminal.transactions()] == [ended["txn_id"]]


def test_cancel_of_an_unknown_payment_is_not_found(ecr: Ecr) -> None:
    answer = ecr.http.post("/v1/payments/nothing-here/cancel")
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"


def _raw_post_and_hang_up(ecr: Ecr, key: str, body: bytes) -> None:
    """Send a start request and close the connection before the answer comes."""
    host, port = "127.0.0.1", ecr.server.port
    request = (
        f"POST /v1/payments HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Idempotency-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, port)) as sock:
        sock.sendall(request)


def test_a_register_that_hangs_up_finds_the_payment_when_it_asks_again(make_ecr: Callable[..., Ecr]) -> None:
    ecr = make_ecr("sim:card=visa-qvsdc-online?present-after=0.5")
    _raw_post_and_hang_up(ecr, "dropped-1", b'{"kind": "sale", "amount": 4200, "currency": "EUR"}')
    # Another connection, later: the payment went on.
    with httpx.Client(base_url=ecr.server.url, timeout=30) as later:
        deadline = time.monotonic() + 20
        while (answer := later.get("/v1/payments/dropped-1")).status_code == 404:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert answer.json()["amount"] == 4200
    done = ecr.final("dropped-1")
    assert done["status"] == "approved"
    # Asking again with the same key does not charge again.
    assert ecr.start("dropped-1", sale(4200)).json()["txn_id"] == done["txn_id"]
    assert len(ecr.terminal.transactions()) == 1


def test_a_long_poll_or_an_event_stream_dropped_mid_payment_loses_nothing(make_ecr: Callable[..., Ecr]) -> None:
    ecr = make_ecr("sim:card=visa-qvsdc-online?present-after=1.5")
    ecr.start("dropped-2", sale(4300))
    with httpx.Client(base_url=ecr.server.url, timeout=0.3) as impatient:
        with pytest.raises(httpx.TimeoutException):
            impatient.get("/v1/payments/dropped-2", params={"wait": 30, "after": 10**6})
        with pytest.raises(httpx.TimeoutException), impatient.stream("GET", "/v1/payments/dropped-2/events") as stream:
            for _ in stream.iter_lines():
                pass
    assert ecr.final("dropped-2")["status"] == "approved"
    assert ecr.http.get("/v1/status").json()["busy"] is False
