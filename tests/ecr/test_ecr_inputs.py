"""Bad requests get JSON errors with the reason in words, never a traceback; the document is the contract.

Registers are programs written by others: whatever they send ends in a
defined answer.  Every error is ``{"error": ..., "message": ...}`` (the
document's Error schema), the message naming the field and the rule, never
echoing what was sent.  Web pages and foreign Host names are refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ecr.conftest import Ecr, sale
from ui.ecr.app import MAX_BODY_BYTES
from ui.ecr.schema import first_error, openapi_bytes, openapi_document


def _is_error(answer: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    assert first_error("Error", body) is None
    assert "Traceback" not in answer.text and body["message"]
    if error is not None:
        assert body["error"] == error, body
    return body


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "kind is required"),
        ({"kind": "sale", "amount": 100}, "currency is required"),
        ({"kind": "purchase", "amount": 100, "currency": "EUR"}, "kind must be one of"),
        (sale(0), "amount must be >= 1"),
        (sale(-5), "amount must be >= 1"),
        (sale(10**12), "amount must be <= 999999999999"),
        (sale(12.5), "amount must be of type integer"),
        (sale("100"), "amount must be of type integer"),
        (sale(100, "EURO"), "currency matches none of the allowed forms"),
        (sale(100, "XYZ"), "currency: unknown currency 'XYZ'"),
        (sale(100, 1000), "currency matches none"),
        (sale(100, reference=""), "reference must have at least 1 characters"),
        (sale(100, reference="x" * 65), "reference must have at most 64 characters"),
        (sale(100, reference="tab\there"), "reference must match"),
        (sale(100, tip=5), "tip is not a field of this request"),
        (sale(100, offline_behavior="sometimes"), "offline_behavior must be one of"),
        (sale(100, original_txn_id="T1"), "a sale takes no original_txn_id"),
        ({"kind": "refund", "amount": 100, "currency": "EUR"}, "say what is refunded"),
        (
            {"kind": "refund", "amount": 100, "currency": "EUR", "unreferenced": True, "original_txn_id": "T1"},
            "either original_txn_id or unreferenced",
        ),
        (
            {"kind": "refund", "amount": 100, "currency": "EUR", "original_txn_id": "T1", "to_other_card": True},
            "to_other_card goes with present_card",
        ),
        (
            {"kind": "refund", "amount": 100, "currency": "EUR", "original_txn_id": "bad id"},
            "original_txn_id must match",
        ),
        ([sale()], "body must be of type object"),
        ("sale", "body must be of type object"),
        (None, "body must be of type object"),
    ],
)
def test_a_body_against_the_document_is_refused_naming_the_field(ecr: Ecr, body: Any, says: str) -> None:
    answer = ecr.start("bad-body", body)
    assert says in _is_error(answer, 422, "invalid")["message"]
    assert ecr.http.get("/v1/payments/bad-body").status_code == 404  # nothing was started


def test_what_is_not_a_json_object_is_refused_before_the_schema(ecr: Ecr) -> None:
    post = ecr.http.post
    key = {"Idempotency-Key": "k-raw"}
    json_type = {**key, "Content-Type": "application/json"}
    _is_error(post("/v1/payments", content=b"{", headers=json_type), 400, "bad_request")
    _is_error(post("/v1/payments", content=b"\xff\xfe", headers=json_type), 400, "bad_request")
    _is_error(post("/v1/payments", content=b"[" * 100_000 + b"]" * 100_000, headers=json_type), 413, "too_large")
    _is_error(post("/v1/payments", content=b"", headers=json_type), 400, "bad_request")
    _is_error(post("/v1/payments", content=json.dumps(sale()).encode(), headers=key), 415, "unsupported_media_type")
    text_plain = {**key, "Content-Type": "text/plain"}
    _is_error(post("/v1/payments", content=json.dumps(sale()).encode(), headers=text_plain), 415)
    big = b'{"kind": "sale", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    _is_error(post("/v1/payments", content=big, headers=json_type), 413, "too_large")
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    _is_error(post("/v1/payments", content=deep, headers=json_type), 400, "bad_request")


@pytest.mark.parametrize("key", [None, "", "has space", "x" * 65, "slash/in", "é".encode(), "semi;colon"])
def test_a_start_needs_a_usable_idempotency_key(ecr: Ecr, key: str | bytes | None) -> None:
    headers = {} if key is None else {"Idempotency-Key": key}
    body = _is_error(ecr.http.post("/v1/payments", json=sale(), headers=headers), 400, "bad_request")
    assert "Idempotency-Key" in body["message"]


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/v1/payments/unknown-key", 404, "not_found"),
        ("GET", "/v1/payments/bad%20id", 400, "bad_request"),
        ("GET", "/v1/payments/" + "x" * 65, 400, "bad_request"),
        ("GET", "/v1/payments/unknown-key/events", 404, "not_found"),
        ("GET", "/v1/payments/unknown-key/receipt", 404, "not_found"),
        ("POST", "/v1/payments/unknown-key/void", 404, "not_found"),
        ("POST", "/v1/payments/unknown-key/cancel", 404, "not_found"),
        ("POST", "/v1/payments/unknown-key/receipt/print", 404, "not_found"),
        ("GET", "/v1/payments", 400, "bad_request"),
        ("GET", "/v1/payments/k/nothing", 404, "not_found"),
        ("GET", "/v2/payments", 404, "not_found"),
        ("GET", "/", 404, "not_found"),
        ("DELETE", "/v1/payments/k", 405, "method_not_allowed"),
        ("PUT", "/v1/payments", 405, "method_not_allowed"),
        ("GET", "/v1/payments/k/cancel", 405, "method_not_allowed"),
        ("GET", "/v1/payments/k?wait=61", 400, "bad_request"),
        ("GET", "/v1/payments/k?wait=nan", 400, "bad_request"),
        ("GET", "/v1/payments/k?after=-1", 400, "bad_request"),
    ],
)
def test_bad_ids_paths_and_methods_get_json_errors(ecr: Ecr, method: str, path: str, status: int, error: str) -> None:
    _is_error(ecr.http.request(method, path), status, error)


def test_bodies_of_cancel_and_void_must_be_empty_objects(ecr: Ecr) -> None:
    ecr.start("k-empty", sale())
    ecr.final("k-empty")
    _is_error(ecr.http.post("/v1/payments/k-empty/void", json={"reason": "x"}), 422, "invalid")
    _is_error(ecr.http.post("/v1/payments/k-empty/cancel", json=[]), 422, "invalid")
    _is_error(ecr.http.get("/v1/payments/k-empty/events", headers={"Last-Event-ID": "x"}), 400, "bad_request")


def test_web_pages_and_foreign_host_names_are_refused(ecr: Ecr) -> None:
    origin = ecr.http.post("/v1/payments", json=sale(), headers={"Idempotency-Key": "k-web", "Origin": "http://evil"})
    assert "web pages" in _is_error(origin, 403, "forbidden")["message"]
    rebound = ecr.http.get("/v1/status", headers={"Host": "evil.example:8780"})
    assert "loopback" in _is_error(rebound, 403, "forbidden")["message"]
    for host in ("localhost:1", "127.0.0.1", "[::1]:8780"):
        assert ecr.http.get("/v1/status", headers={"Host": host}).status_code == 200
    assert ecr.http.get("/v1/payments/k-web").status_code == 404


def test_the_openapi_document_is_served_and_names_every_route(ecr: Ecr) -> None:
    answer = ecr.http.get("/v1/openapi.json")
    assert answer.status_code == 200 and answer.content == openapi_bytes()
    doc = answer.json()
    assert doc["openapi"] == "3.1.0"
    paths = {
        (path, method.upper()) for path, item in doc["paths"].items() for method in item if method in ("get", "post")
    }
    from ui.ecr.app import EcrApi, create_app

    app = create_app(EcrApi(ecr.server.desk))
    routes = {(r.path, m) for r in app.app.router.routes for m in r.methods if m != "HEAD"}  # type: ignore[attr-defined]
    assert routes == paths
    # Every $ref resolves.
    text = json.dumps(openapi_document())
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/')[1:]}:
        node: Any = openapi_document()
        for name in ref.split("/"):
            node = node[name]


class _Pool:
    keys = st.sampled_from(["f-1", "f-2", "f-3"])


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_BODIES = (
    st.fixed_dictionaries(
        {},
        optional={
            "kind": st.sampled_from(["sale", "refund", "void", ""]),
            "amount": st.integers(-10, 10**13) | st.floats(allow_nan=False) | st.text(max_size=4),
            "currency": st.sampled_from(["EUR", "978", 978, "JPY", "XXX", "", 0, 1.5]),
            "reference": st.text(max_size=70),
            "original_txn_id": st.text(max_size=10),
            "unreferenced": st.booleans() | st.integers(0, 1),
            "present_card": st.booleans(),
            "offline_behavior": st.sampled_from(["prefer_online", "force_offline", "x"]),
            "extra": _JSON,
        },
    )
    | _JSON
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_BODIES, key=_Pool.keys)
def test_any_body_ends_in_a_defined_answer(make_ecr: Callable[..., Ecr], body: Any, key: str) -> None:
    ecr = _FUZZ.get("ecr") or _FUZZ.setdefault("ecr", make_ecr(None))
    answer = ecr.start(key, body)
    assert answer.status_code in (200, 202, 409, 422, 503), answer.text
    assert "Traceback" not in answer.text
    if answer.status_code >= 400:
        _is_error(answer, answer.status_code)
    else:
        assert first_error("Payment", answer.json()) is None
        ecr.final(key)


_FUZZ: dict[str, Ecr] = {}


@pytest.fixture(autouse=True)
def _fresh_fuzz_terminal() -> None:
    _FUZZ.clear()
