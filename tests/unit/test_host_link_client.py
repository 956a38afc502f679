"""HttpsHostLink over httpx.MockTransport: the protocol's JSON, headers, and what each failure maps to."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from host_link.client import HttpsHostLink, IdempotentRetry, advices_key, header_key
from host_link.reachability import Reachability
from terminal.host import (
    Advice,
    AnswerStatus,
    AuthorisationRequest,
    BatchTotals,
    HostLink,
    HostNoAnswer,
    HostRejected,
    HostUnreachable,
    Reversal,
    TotalsLine,
)

TID, MID = "TERM0001", "POSTERM0000001"
PAN = "4761739001010010"
EMV = bytes.fromhex("5A08" + PAN + "5713" + PAN + "D25122010000000000000F")


class Mock:
    """A scripted host: each call pops the next responder (a function of the request), or uses ``default``."""

    def __init__(self, default: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.script: list[Callable[[httpx.Request], httpx.Response]] = []
        self.default = default

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        responder = self.script.pop(0) if self.script else self.default
        assert responder is not None, f"unexpected request {request.url}"
        return responder(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


def ok(doc: Any, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=doc)


def raw(body: bytes, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, content=body)


def fail(exc: type[httpx.TransportError], text: str = "boom") -> Callable[[httpx.Request], httpx.Response]:
    def responder(request: httpx.Request) -> httpx.Response:
        raise exc(text, request=request)

    return responder


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make(mock: Mock, **kw: Any) -> HttpsHostLink:
    kw.setdefault("retry", IdempotentRetry(attempts=3, backoff_seconds=0.5, max_backoff_seconds=2, total_seconds=60))
    kw.setdefault("sleep", Sleeps())
    return HttpsHostLink(
        "https://host.test:8443/", terminal_id=TID, merchant_id=MID, transport=httpx.MockTransport(mock), **kw
    )


def auth(**kw: Any) -> AuthorisationRequest:
    fields: dict[str, Any] = dict(
        txn_id="t1",
        idempotency_key="t1",
        kind="sale",
        amount=1234,
        currency=978,
        terminal_id=TID,
        merchant_id=MID,
        emv_data=EMV,
        pan_token="tok",
        original_txn_id=None,
    )
    return AuthorisationRequest(**(fields | kw))


def advice(txn: str = "a1", **kw: Any) -> Advice:
    fields: dict[str, Any] = dict(
        txn_id=txn,
        idempotency_key=f"k-{txn}",
        kind="offline_approval",
        amount=500,
        currency=978,
        terminal_id=TID,
        merchant_id=MID,
        emv_data=EMV,
        pan_token="tok",
        created_at="2025-01-01T10:00:00+00:00",
        retransmission=False,
    )
    return Advice(**(fields | kw))


APPROVED = {
    "status": "approved",
    "response_code": "00",
    "approval_code": "ABC123",
    "host_reference": "H1",
    "arpc": "0011223344556677",
}


def result(a: Advice, outcome: str = "accepted", code: str = "00", message: str | None = None) -> dict[str, Any]:
    return {
        "txn_id": a.txn_id,
        "idempotency_key": a.idempotency_key,
        "outcome": outcome,
        "response_code": code,
        "approval_code": None,
        "host_reference": "H9",
        "message": message,
    }


# ----------------------------------------------------------------------------- the wire


def test_it_is_a_host_link() -> None:
    assert isinstance(make(Mock()), HostLink)


def test_url_must_be_https() -> None:
    with pytest.raises(ValueError, match="https"):
        HttpsHostLink("http://host.test", terminal_id=TID, merchant_id=MID, transport=httpx.MockTransport(Mock()))


def test_authorisation_request_and_answer() -> None:
    mock = Mock(ok(APPROVED))
    answer = make(mock).authorise(auth(kind="refund", original_txn_id="t0"))
    assert answer.status is AnswerStatus.APPROVED
    assert (answer.approval_code, answer.host_reference) == ("ABC123", "H1")
    assert answer.arpc == bytes.fromhex("0011223344556677")
    request = mock.requests[0]
    assert (request.method, str(request.url)) == ("POST", "https://host.test:8443/v1/authorisations")
    assert request.headers["Idempotency-Key"] == "t1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "txn_id": "t1",
        "kind": "refund",
        "amount": 1234,
        "currency": 978,
        "terminal_id": TID,
        "merchant_id": MID,
        "emv_data": EMV.hex().upper(),
        "pan_token": "tok",
        "original_txn_id": "t0",
    }


def test_declined_authorisation() -> None:
    doc = {"status": "declined", "response_code": "51", "approval_code": None, "host_reference": "H2", "arpc": None}
    answer = make(Mock(ok(doc))).authorise(auth())
    assert not answer.approved and answer.response_code == "51" and answer.arpc is None


def test_advices_request_results_in_order_and_a_rejected_one_in_place() -> None:
    batch = [advice("a1"), advice("a2", kind="deferred_authorisation", retransmission=True), advice("a3")]
    doc = {
        "results": [
            result(batch[0]),
            result(batch[1], "declined", "51"),
            result(batch[2], "rejected", "30", "emv_data: not TLV"),
        ]
    }
    mock = Mock(ok(doc))
    out = make(mock).advise_many(batch)
    assert [type(r).__name__ for r in out] == ["HostAnswer", "HostAnswer", "HostRejected"]
    assert out[0].approved and not out[1].approved and out[1].response_code == "51"  # type: ignore[union-attr]
    assert "emv_data: not TLV" in str(out[2])
    body = mock.bodies()[0]
    assert [a["txn_id"] for a in body["advices"]] == ["a1", "a2", "a3"]
    assert body["advices"][1] == {
        "txn_id": "a2",
        "idempotency_key": "k-a2",
        "kind": "deferred_authorisation",
        "amount": 500,
        "currency": 978,
        "terminal_id": TID,
        "merchant_id": MID,
        "emv_data": EMV.hex().upper(),
        "pan_token": "tok",
        "created_at": "2025-01-01T10:00:00+00:00",
        "retransmission": True,
    }
    assert mock.requests[0].headers["Idempotency-Key"] == advices_key(batch)
    assert len(advices_key(batch)) == 64


def test_advices_key_depends_on_order_and_keys_only() -> None:
    a, b = advice("a1"), advice("a2")
    assert advices_key([a, b]) != advices_key([b, a])
    assert advices_key([a]) == advices_key([advice("a1", retransmission=True)])


def test_single_advice_rejected_raises() -> None:
    a = advice()
    with pytest.raises(HostRejected, match="advice a1 rejected by the host: amount: too big"):
        make(Mock(ok({"results": [result(a, "rejected", "30", "amount: too big")]}))).advise(a)


def test_empty_and_oversized_advice_batches() -> None:
    mock = Mock()
    assert make(mock).advise_many([]) == [] and mock.requests == []
    with pytest.raises(ValueError, match="at most 100"):
        make(mock).advise_many([advice(f"a{i}") for i in range(101)])


@pytest.mark.parametrize(
    "results",
    [
        [],  # too few
        [{"txn_id": "other", "idempotency_key": "k-a1", "outcome": "accepted", "response_code": "00"}],
        [{"txn_id": "a1", "idempotency_key": "k-a1", "outcome": "maybe", "response_code": "00"}],
        [{"txn_id": "a1", "idempotency_key": "k-a1", "outcome": "accepted"}],
    ],
)
def test_advice_results_that_do_not_match_are_malformed(results: list[Any]) -> None:
    mock = Mock(ok({"results": results}))
    sleeps = Sleeps()
    with pytest.raises(HostNoAnswer, match="malformed answer"):
        make(mock, sleep=sleeps).advise(advice())
    assert len(mock.requests) == 3 and sleeps.calls == [0.5, 1.0]


def test_reversal_batch_close_sign_on_echo_parameters() -> None:
    mock = Mock()
    mock.script = [
        ok({"status": "approved", "response_code": "00", "host_reference": "R1", "message": "nothing to reverse"}),
        ok(
            {
                "in_balance": False,
                "host_reference": "S1",
                "differences": [
                    {
                        "currency": 978,
                        "kind": "sale",
                        "terminal_count": 2,
                        "terminal_amount": 300,
                        "host_count": 1,
                        "host_amount": 100,
                    }
                ],
            }
        ),
        ok({"host_time": "2025-01-01T00:00:00Z", "parameters_version": 4, "host_reference": "SO1"}),
        ok({"host_time": "2025-01-01T00:00:01Z", "host_reference": "E1"}),
        raw(b"", 304),
    ]
    hl = make(mock)
    assert hl.reverse(Reversal("t1", "rk1", 1234, 978, TID, "no_answer", retransmission=True)).host_reference == "R1"
    settled = hl.close_batch(BatchTotals(12, TID, (TotalsLine("visa", 978, "sale", 2, 300),)))
    assert not settled.in_balance and settled.differences[0]["host_count"] == 1
    sign_on = hl.sign_on()
    assert sign_on.parameters_version == 4
    assert hl.echo_details().host_time == "2025-01-01T00:00:01Z"
    assert hl.fetch_parameters(4) is None
    bodies = mock.requests
    assert json.loads(bodies[0].content) == {
        "txn_id": "t1",
        "amount": 1234,
        "currency": 978,
        "terminal_id": TID,
        "reason": "no_answer",
        "retransmission": True,
    }
    assert bodies[0].headers["Idempotency-Key"] == "rk1"
    assert json.loads(bodies[1].content) == {
        "batch_id": 12,
        "terminal_id": TID,
        "lines": [{"scheme": "visa", "currency": 978, "kind": "sale", "count": 2, "amount": 300}],
    }
    assert bodies[1].headers["Idempotency-Key"] == f"batch-close:{TID}:12"
    assert json.loads(bodies[2].content)["terminal_id"] == TID and len(bodies[2].headers["Idempotency-Key"]) == 32
    assert (bodies[3].method, bodies[3].url.path, "Idempotency-Key" in bodies[3].headers) == ("GET", "/v1/echo", False)
    assert str(bodies[4].url) == "https://host.test:8443/v1/parameters?have=4"


def test_sign_on_keeps_its_key_across_retries_and_a_new_one_per_call() -> None:
    mock = Mock(ok({"host_time": "t", "parameters_version": 1, "host_reference": "x"}))
    mock.script = [raw(b"", 502)]
    hl = make(mock)
    hl.sign_on()
    hl.sign_on()
    keys = [r.headers["Idempotency-Key"] for r in mock.requests]
    assert keys[0] == keys[1] != keys[2]


def test_header_key() -> None:
    assert header_key("batch-close:TERM0001:3") == "batch-close:TERM0001:3"
    assert header_key("has space") == header_key("has space") != "has space"
    assert len(header_key("x" * 65)) == 64


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("exc", [httpx.ConnectError, httpx.ConnectTimeout])
def test_connect_failures_are_unreachable_and_open_the_window(exc: type[httpx.TransportError]) -> None:
    mock = Mock(fail(exc, "[Errno 111] Connection refused"))
    hl = make(mock)
    with pytest.raises(HostUnreachable, match="Connection refused"):
        hl.authorise(auth())
    assert not hl.reachable and "Connection refused" in (hl.last_error or "")
    with pytest.raises(HostUnreachable, match="next attempt in"):
        hl.reverse(Reversal("t1", "r", 1, 978, TID, "void"))
    assert len(mock.requests) == 1


def test_pool_timeout_is_unreachable_but_says_nothing_of_the_host() -> None:
    hl = make(Mock(fail(httpx.PoolTimeout)))
    with pytest.raises(HostUnreachable):
        hl.authorise(auth())
    assert hl.reachable


@pytest.mark.parametrize(
    "responder",
    [
        fail(httpx.ReadTimeout, "The read operation timed out"),
        fail(httpx.ReadError, "connection reset"),
        fail(httpx.RemoteProtocolError, "Server disconnected without sending a response."),
        fail(httpx.WriteError, "broken pipe"),
        ok({"error": "internal", "message": "oops"}, 500),
        ok({"error": "unavailable"}, 503),
        ok({}, 429),
        raw(b"<html>bad gateway</html>", 502),
        raw(b"not json"),
        raw(b'{"status": "approved", "response_code": "00", "host_reference": "H", "status": "declined"}'),
        raw(b'{"status": "approved", "response_code": "00", "host_reference": NaN}'),
        raw(b"", 204),
        raw(b"", 302),
        ok({"status": "approved", "response_code": "00"}),  # no host_reference
        ok({"status": "approved", "response_code": "000", "host_reference": "H"}),
        ok({"status": "approved", "response_code": "00", "host_reference": "H", "arpc": "XYZ"}),
        ok({"status": "approved", "response_code": "00", "host_reference": "H" * 65}),
        raw(b"{" * 100000),
        raw(b"0" * (2 << 20)),
    ],
)
def test_lost_or_unusable_answers_are_no_answer_for_an_authorisation_sent_once(
    responder: Callable[[httpx.Request], httpx.Response],
) -> None:
    mock = Mock(responder)
    hl = make(mock)
    with pytest.raises(HostNoAnswer):
        hl.authorise(auth())
    assert len(mock.requests) == 1
    assert hl.reachable


@pytest.mark.parametrize(
    "responder",
    [fail(httpx.ReadTimeout), fail(httpx.RemoteProtocolError), ok({}, 500), raw(b"garbage")],
)
def test_idempotent_requests_are_retried_with_backoff_then_succeed(
    responder: Callable[[httpx.Request], httpx.Response],
) -> None:
    mock = Mock(ok({"status": "approved", "response_code": "00", "host_reference": "R"}))
    mock.script = [responder, responder]
    sleeps = Sleeps()
    answer = make(mock, sleep=sleeps).reverse(Reversal("t1", "r", 1, 978, TID, "void"))
    assert answer.approved and len(mock.requests) == 3 and sleeps.calls == [0.5, 1.0]
    assert {r.headers["Idempotency-Key"] for r in mock.requests} == {"r"}


def test_retries_stop_at_the_time_budget() -> None:
    now = [0.0]

    def slow_503(request: httpx.Request) -> httpx.Response:
        now[0] += 4.0  # each attempt takes 4 s
        return httpx.Response(503, json={})

    def sleep(seconds: float) -> None:
        now[0] += seconds

    mock = Mock(slow_503)
    retry = IdempotentRetry(attempts=10, backoff_seconds=1, max_backoff_seconds=1, total_seconds=12)
    hl = make(mock, sleep=sleep, clock=lambda: now[0], retry=retry)
    with pytest.raises(HostNoAnswer, match="503"):
        hl.close_batch(BatchTotals(1, TID, ()))
    # starts at 0, 5, 10 (each attempt 4 s + 1 s pause); a fourth would start at 15 > 12
    assert len(mock.requests) == 3


def test_a_retry_that_finds_the_host_gone_is_no_answer_not_unreachable() -> None:
    mock = Mock()
    mock.script = [fail(httpx.ReadTimeout), fail(httpx.ConnectError, "refused")]
    with pytest.raises(HostNoAnswer, match="could not be reached"):
        make(mock).advise(advice())


def test_401_says_not_enrolled() -> None:
    mock = Mock(ok({"error": "no_client_certificate", "message": "client certificate required"}, 401))
    with pytest.raises(HostRejected, match="not enrolled"):
        make(mock).advise(advice())
    assert len(mock.requests) == 1


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_4xx_is_rejected_with_the_message(status: int) -> None:
    mock = Mock(ok({"error": "idempotency_conflict", "message": "key reused with another body"}, status))
    with pytest.raises(HostRejected, match=f"authorisation t1 refused by the host \\({status} idempotency_conflict"):
        make(mock).authorise(auth())
    assert len(mock.requests) == 1


def test_4xx_without_a_json_body() -> None:
    with pytest.raises(HostRejected, match="no error details"):
        make(Mock(raw(b"\xff\xfe", 400))).authorise(auth())


def test_the_pan_never_appears_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    echoes = {"error": "invalid", "message": f"emv_data: bad tag in 5A08{PAN} for card {PAN}"}
    for responder in (ok(echoes, 422), ok(echoes, 500), raw(PAN.encode()), fail(httpx.ReadError, PAN)):
        for call in (lambda hl: hl.authorise(auth()), lambda hl: hl.advise(advice())):
            try:
                call(make(Mock(responder)))
            except (HostRejected, HostNoAnswer, HostUnreachable) as exc:
                errors.append(str(exc))
    assert len(errors) == 8
    assert not any(PAN in e for e in errors), errors
    assert any("476173******0010" in e for e in errors)
    assert PAN not in caplog.text


def test_reachability_window_applies_across_methods() -> None:
    clock = [0.0]
    mock = Mock()
    mock.script = [fail(httpx.ConnectError, "refused")]
    mock.default = ok({"host_time": "t", "host_reference": "x"})
    hl = make(mock, reachability=Reachability(retry_after_seconds=10, clock=lambda: clock[0]))
    with pytest.raises(HostUnreachable):
        hl.echo()
    with pytest.raises(HostUnreachable):
        hl.fetch_parameters(None)
    assert hl.echo(force=True) >= 0  # diagnostics may always try
    assert hl.reachable and len(mock.requests) == 2


def test_an_unexpected_error_during_the_probe_does_not_leave_the_link_refusing_forever() -> None:
    clock = [0.0]
    mock = Mock()

    def bug(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug below the link")

    mock.script = [fail(httpx.ConnectError, "refused"), bug]
    mock.default = ok({"host_time": "t", "host_reference": "x"})
    hl = make(mock, reachability=Reachability(retry_after_seconds=10, clock=lambda: clock[0]))
    with pytest.raises(HostUnreachable):
        hl.echo()
    clock[0] = 11
    with pytest.raises(RuntimeError):
        hl.echo()  # the probe fails in an unexpected way
    assert hl.echo() >= 0  # the next call may probe again
