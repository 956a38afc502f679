"""The host's HTTP API (Starlette): docs/host-protocol.md, validated against host_link/openapi.json.

Order of the checks on a request (the first that fails answers):

1. injected faults (``slow``, ``error``, ``drop``; see :mod:`simulator.host.faults`);
2. a verified client certificate on every path but ``POST /v1/enrol`` and
   ``GET /v1/openapi.json``, else ``401``;
3. routing: ``404`` / ``405``;
4. for a state-changing ``POST``: the ``Idempotency-Key`` header (``400``);
5. the JSON body (``400``) and its schema (``422``, the message names the
   field and the rule, never the value sent);
6. ``terminal_id`` / ``merchant_id`` against the certificate (``403``);
7. the idempotency cache: a known key with the same canonical body (SHA-256
   HMAC, ``retransmission`` left out) gets the stored bytes again with
   ``Idempotent-Replay: true``; with another body, ``409``;
8. processing, in one database transaction together with storing the answer.

The TLS layer (:mod:`simulator.host.server`) puts the client certificate's
identity in the ASGI scope's ``state`` under :data:`PEER_STATE_KEY` (a
:class:`Peer`) and the connection's transport under
:data:`TRANSPORT_STATE_KEY` (used to drop a connection). Any ASGI server, or
a test, can provide them the same way.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import re
import secrets
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator.host.ca import CertificateAuthority, CsrError
from simulator.host.faults import FaultSwitch
from simulator.host.issuer import FORMAT_ERROR_CODE, Decision, EmvDataError, Issuer, parse_emv_data
from simulator.host.params import ensure_initial
from simulator.host.schema import first_error, openapi_bytes
from simulator.host.store import HostStore, Record
from terminal.host import reconcile

__all__ = ["PEER_STATE_KEY", "PUBLIC_PATHS", "TRANSPORT_STATE_KEY", "Peer", "create_app"]

PEER_STATE_KEY = "posterm_peer"
TRANSPORT_STATE_KEY = "posterm_transport"
PUBLIC_PATHS = frozenset({"/v1/enrol", "/v1/openapi.json"})
MAX_BODY_BYTES = 2 * 1024 * 1024
REJECTED_CODE = FORMAT_ERROR_CODE  # a malformed advice

_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_SETTLEMENT_KIND = {
    "sale": "sale",
    "refund": "refund",
    "offline_approval": "sale",
    "deferred_authorisation": "sale",
    "offline_refund": "refund",
}
_log = logging.getLogger("posterm.host")


@dataclass(frozen=True)
class Peer:
    """Who the verified client certificate names."""

    terminal_id: str
    merchant_id: str


class _Fail(Exception):
    """An error answer: status, ``error`` code and message."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _error_body(error: str, message: str) -> bytes:
    return _json_bytes({"error": error, "message": message[:500]})


def _json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json_response(status, _error_body(error, message), headers)


def _host_time(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(now: dt.datetime) -> str:
    """Stored times: ISO 8601 UTC with microseconds (they sort as text)."""
    return now.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _integral(value: Any) -> Any:
    """JSON numbers like ``100.0`` that passed an ``integer`` schema become ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def _without_retransmission(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    out = {k: v for k, v in body.items() if k != "retransmission"}
    if isinstance(out.get("advices"), list):
        out["advices"] = [_without_retransmission(a) for a in out["advices"]]
    return out


def _canonical(what: str, body: Any) -> str:
    return json.dumps({"what": what, "body": _without_retransmission(body)}, sort_keys=True, separators=(",", ":"))


def _peer(scope: Scope) -> Peer | None:
    state = scope.get("state")
    peer = state.get(PEER_STATE_KEY) if isinstance(state, dict) else None
    return peer if isinstance(peer, Peer) else None


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class _Guard:
    """Outermost ASGI layer: faults, the client certificate, and a 500 instead of a crash."""

    def __init__(self, app: ASGIApp, faults: FaultSwitch) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        faults = self.faults.current
        if faults.applies_to(path):
            if faults.slow_ms:
                await asyncio.sleep(faults.slow_ms / 1000)
            if faults.drop_after_request and await self._drop(scope, receive):
                return
            if faults.error_status is not None:
                await _drain(receive)
                await _error(faults.error_status, "server_error", f"injected fault: status {faults.error_status}")(
                    scope, receive, send
                )
                return
        if path not in PUBLIC_PATHS and _peer(scope) is None:
            await _error(401, "no_client_certificate", "a client certificate issued by the host CA is required")(
                scope, receive, send
            )
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            # The type and the frames only: an exception's text could quote request data.
            frames = "".join(traceback.format_tb(exc.__traceback__))
            _log.error("unhandled %s on %s %s\n%s", type(exc).__name__, scope.get("method"), path, frames)
            if not started:
                await _error(500, "server_error", "internal error")(scope, receive, send)

    @staticmethod
    async def _drop(scope: Scope, receive: Receive) -> bool:
        """Read the request, then close the connection without answering (False: no transport here)."""
        state = scope.get("state")
        transport = state.get(TRANSPORT_STATE_KEY) if isinstance(state, dict) else None
        if transport is None:
            return False
        await _drain(receive)
        transport.abort()
        while (await receive())["type"] != "http.disconnect":
            pass
        return True


Handler = Callable[[dict[str, Any], Peer, str, dt.datetime], tuple[int, bytes]]
_Endpoint = Callable[[Request], Awaitable[Response]]


class HostApi:
    """The endpoints, over a store, a CA and an issuer (one instance per server process)."""

    def __init__(
        self,
        store: HostStore,
        ca: CertificateAuthority,
        *,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.store = store
        self.ca = ca
        self.issuer = Issuer(store)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._echo_prefix = secrets.token_hex(2).upper()
        self._echo_count = 0

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    async def _body(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise _Fail(400, "bad_request", f"body larger than {MAX_BODY_BYTES} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _Fail(400, "bad_request", f"body larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks))
        except (ValueError, RecursionError):
            raise _Fail(400, "bad_request", "the body is not a JSON document") from None

    async def _validated(self, request: Request, component: str) -> dict[str, Any]:
        body = await self._body(request)
        error = first_error(component, body)
        if error is not None:
            raise _Fail(422, "invalid", error)
        validated: dict[str, Any] = _integral(body)
        return validated

    @staticmethod
    def _check_ids(body: dict[str, Any], peer: Peer) -> None:
        if body.get("terminal_id", peer.terminal_id) != peer.terminal_id:
            raise _Fail(403, "forbidden", "terminal_id differs from the client certificate's")
        if body.get("merchant_id", peer.merchant_id) != peer.merchant_id:
            raise _Fail(403, "forbidden", "merchant_id differs from the client certificate's")

    def _reference(self, what: str) -> str:
        return self.store.next_reference(what)

    def _approval_code(self, reference: str) -> str:
        """Six characters of [A-Z2-7], derived from the reference under the host's secret."""
        return base64.b32encode(bytes.fromhex(self.store.digest(f"approval:{reference}"))).decode("ascii")[:6]

    async def _idempotent(self, request: Request, component: str, what: str, handler: Handler) -> Response:
        try:
            peer = _peer(request.scope)
            if peer is None:  # pragma: no cover - the guard answered 401 already
                raise _Fail(401, "no_client_certificate", "a client certificate is required")
            key = request.headers.get("idempotency-key")
            if key is None:
                raise _Fail(400, "bad_request", "the Idempotency-Key header is missing")
            if not _KEY.fullmatch(key):
                raise _Fail(400, "bad_request", "the Idempotency-Key header must be 1 to 64 of [A-Za-z0-9._:-]")
            body = await self._validated(request, component)
            self._check_ids(body, peer)
            digest = self.store.digest(_canonical(what, body))
            cached = self.store.cached_response(peer.terminal_id, key)
            if cached is not None:
                if cached.digest != digest:
                    raise _Fail(409, "idempotency_conflict", "the Idempotency-Key was used before with another body")
                return _json_response(cached.status, cached.body, {"Idempotent-Replay": "true"})
            now = self.clock()
            with self.store.transaction():
                status, payload = handler(body, peer, key, now)
                self.store.save_response(peer.terminal_id, key, digest, status, payload, _stamp(now))
            return _json_response(status, payload)
        except _Fail as fail:
            return _error(fail.status, fail.error, fail.message)

    # ------------------------------------------------------------------ endpoints

    async def openapi(self, request: Request) -> Response:
        return _json_response(200, openapi_bytes())

    async def echo(self, request: Request) -> Response:
        self._echo_count += 1
        reference = f"E{self._echo_prefix}{self._echo_count:08d}"
        return _json_response(200, _json_bytes({"host_time": _host_time(self.clock()), "host_reference": reference}))

    async def parameters(self, request: Request) -> Response:
        have_values = request.query_params.getlist("have")
        current = self.store.parameters_version() or ensure_initial(self.store)
        if have_values:
            text = have_values[-1]
            if not (text.isascii() and text.isdigit() and len(text) <= 10 and int(text) <= 2147483647):
                return _error(422, "invalid", "have must be an integer 0..2147483647")
            if int(text) == current:
                return Response(status_code=304)
        document = self.store.parameters(current)
        assert document is not None
        return _json_response(200, document)

    async def enrol(self, request: Request) -> Response:
        try:
            body = await self._validated(request, "EnrolRequest")
            now = self.clock()
            code = self.store.enrolment_code(body["enrolment_code"])
            if code is None or code.expires_at < _stamp(now):
                raise _Fail(403, "forbidden", "unknown or expired enrolment code")
            csr_digest = self.store.digest(body["csr_pem"].strip())
            if code.used_at is not None:
                if code.csr_digest == csr_digest and code.response is not None:
                    return _json_response(201, code.response, {"Idempotent-Replay": "true"})
                raise _Fail(403, "forbidden", "this enrolment code was used already")
            try:
                certificate = self.ca.sign_csr(body["csr_pem"], code.terminal_id, code.merchant_id)
            except CsrError as exc:
                raise _Fail(422, "invalid", str(exc)) from None
            payload = _json_bytes(
                {
                    "terminal_id": code.terminal_id,
                    "merchant_id": code.merchant_id,
                    "certificate_pem": certificate.decode("ascii"),
                    "ca_certificate_pem": self.ca.certificate_pem.decode("ascii"),
                }
            )
            from cryptography import x509

            serial = format(x509.load_pem_x509_certificate(certificate).serial_number, "X")
            if not self.store.use_enrolment_code(body["enrolment_code"], _stamp(now), csr_digest, payload, serial):
                raise _Fail(403, "forbidden", "this enrolment code was used already")
            return _json_response(201, payload)
        except _Fail as fail:
            return _error(fail.status, fail.error, fail.message)

    async def sign_on(self, request: Request) -> Response:
        return await self._idempotent(request, "SignOnRequest", "sign-on", self._sign_on)

    async def authorise(self, request: Request) -> Response:
        return await self._idempotent(request, "AuthorisationRequest", "authorisation", self._authorise)

    async def advise(self, request: Request) -> Response:
        return await self._idempotent(request, "AdvicesRequest", "advices", self._advise)

    async def reverse(self, request: Request) -> Response:
        return await self._idempotent(request, "ReversalRequest", "reversal", self._reverse)

    async def close_batch(self, request: Request) -> Response:
        return await self._idempotent(request, "BatchCloseRequest", "batch-close", self._close_batch)

    # ------------------------------------------------------------------ processing (inside a transaction)

    def _sign_on(self, body: dict[str, Any], peer: Peer, key: str, now: dt.datetime) -> tuple[int, bytes]:
        self.store.record_sign_on(peer.terminal_id, peer.merchant_id, body["software_version"], _stamp(now))
        version = self.store.parameters_version() or ensure_initial(self.store)
        reference = self._reference("sign_on")
        return 200, _json_bytes(
            {"host_time": _host_time(now), "parameters_version": version, "host_reference": reference}
        )

    @staticmethod
    def _tags(emv_data: str) -> dict[int, bytes]:
        return parse_emv_data(bytes.fromhex(emv_data))

    def _authorise(self, body: dict[str, Any], peer: Peer, key: str, now: dt.datetime) -> tuple[int, bytes]:
        try:
            tags = self._tags(body["emv_data"])
        except EmvDataError:
            decision = Decision(FORMAT_ERROR_CODE, "format_error")  # schema-valid hex, but not TLV: ISO "30"
        else:
            decision = self.issuer.decide(amount=body["amount"], pan_token=body["pan_token"], tags=tags, now=now)
        reference = self._reference("authorise")
        approval = self._approval_code(reference) if decision.approved else None
        self.store.add_record(
            method="authorise",
            txn_id=body["txn_id"],
            idempotency_key=key,
            kind=body["kind"],
            terminal_id=peer.terminal_id,
            merchant_id=peer.merchant_id,
            amount=body["amount"],
            currency=body["currency"],
            pan_token=body["pan_token"],
            response_code=decision.response_code,
            approved=decision.approved,
            host_reference=reference,
            approval_code=approval,
            original_txn_id=body.get("original_txn_id"),
            note=decision.reason,
            created_at=_stamp(now),
        )
        return 200, _json_bytes(
            {
                "status": "approved" if decision.approved else "declined",
                "response_code": decision.response_code,
                "approval_code": approval,
                "host_reference": reference,
                "arpc": decision.arpc.hex().upper() if decision.arpc is not None else None,
            }
        )

    def _advise(self, body: dict[str, Any], peer: Peer, key: str, now: dt.datetime) -> tuple[int, bytes]:
        results = [self._one_advice(i, item, peer, now) for i, item in enumerate(body["advices"])]
        return 200, _json_bytes({"results": results})

    @staticmethod
    def _rejected(item: Any, message: str) -> dict[str, Any]:
        def ident(name: str) -> str | None:
            value = item.get(name) if isinstance(item, dict) else None
            return value if isinstance(value, str) and _KEY.fullmatch(value) else None

        return {
            "txn_id": ident("txn_id"),
            "idempotency_key": ident("idempotency_key"),
            "outcome": "rejected",
            "response_code": REJECTED_CODE,
            "approval_code": None,
            "host_reference": None,
            "message": message,
        }

    def _one_advice(self, index: int, item: Any, peer: Peer, now: dt.datetime) -> dict[str, Any]:
        error = first_error("Advice", item)
        if error is not None:
            return self._rejected(item, error)
        advice: dict[str, Any] = _integral(item)
        if advice["terminal_id"] != peer.terminal_id:
            return self._rejected(advice, "terminal_id differs from the client certificate's")
        if advice["merchant_id"] != peer.merchant_id:
            return self._rejected(advice, "merchant_id differs from the client certificate's")
        try:
            tags = self._tags(advice["emv_data"])
        except EmvDataError as exc:
            return self._rejected(advice, str(exc))
        digest = self.store.digest(_canonical("advice", advice))
        prior = self.store.advice_result(peer.terminal_id, advice["idempotency_key"])
        if prior is not None:
            if prior[0] == digest:
                return prior[1]
            return self._rejected(advice, "idempotency_key was used before with another advice")
        if advice["kind"] == "deferred_authorisation":
            decision = self.issuer.decide(amount=advice["amount"], pan_token=advice["pan_token"], tags=tags, now=now)
            code, approved, note = decision.response_code, decision.approved, decision.reason
        else:  # approved offline by the card: the host takes note
            code, approved, note = "00", True, "offline"
        reference = self._reference("advise")
        approval = self._approval_code(reference) if approved and advice["kind"] == "deferred_authorisation" else None
        self.store.add_record(
            method="advise",
            txn_id=advice["txn_id"],
            idempotency_key=advice["idempotency_key"],
            kind=advice["kind"],
            terminal_id=peer.terminal_id,
            merchant_id=peer.merchant_id,
            amount=advice["amount"],
            currency=advice["currency"],
            pan_token=advice["pan_token"],
            response_code=code,
            approved=approved,
            host_reference=reference,
            approval_code=approval,
            note=note,
            created_at=_stamp(now),
        )
        result = {
            "txn_id": advice["txn_id"],
            "idempotency_key": advice["idempotency_key"],
            "outcome": "accepted" if approved else "declined",
            "response_code": code,
            "approval_code": approval,
            "host_reference": reference,
            "message": None if approved else "declined by the issuer after forwarding",
        }
        self.store.save_advice_result(peer.terminal_id, advice["idempotency_key"], digest, result)
        return result

    def _reverse(self, body: dict[str, Any], peer: Peer, key: str, now: dt.datetime) -> tuple[int, bytes]:
        undone = self.store.reverse(peer.terminal_id, body["txn_id"])
        reference = self._reference("reverse")
        self.store.add_record(
            method="reverse",
            txn_id=body["txn_id"],
            idempotency_key=key,
            kind=body["reason"],
            terminal_id=peer.terminal_id,
            merchant_id=peer.merchant_id,
            amount=body["amount"],
            currency=body["currency"],
            pan_token="",
            response_code="00",
            approved=True,
            host_reference=reference,
            note=f"reversed {undone}" if undone else "nothing to reverse",
            created_at=_stamp(now),
        )
        return 200, _json_bytes(
            {
                "status": "approved",
                "response_code": "00",
                "host_reference": reference,
                "message": None if undone else "nothing to reverse",
            }
        )

    def _close_batch(self, body: dict[str, Any], peer: Peer, key: str, now: dt.datetime) -> tuple[int, bytes]:
        lines_digest = self.store.digest(_canonical("batch-lines", body["lines"]))
        prior = self.store.batch_close(peer.terminal_id, body["batch_id"])
        if prior is not None:
            if prior[0] != lines_digest:
                message = f"batch {body['batch_id']} was closed before with other totals"
                raise _Fail(409, "idempotency_conflict", message)
            return 200, prior[1]
        lines = ((line["currency"], line["kind"], line["count"], line["amount"]) for line in body["lines"])
        differences = reconcile(lines, _totals(self.store.open_records(peer.terminal_id)))
        reference = self._reference("close")
        self.store.open_new_batch(peer.terminal_id)
        payload = _json_bytes({"in_balance": not differences, "host_reference": reference, "differences": differences})
        self.store.save_batch_close(peer.terminal_id, body["batch_id"], lines_digest, payload)
        return 200, payload


def _totals(records: list[Record]) -> dict[tuple[int, str], tuple[int, int]]:
    out: dict[tuple[int, str], tuple[int, int]] = {}
    for record in records:
        kind = _SETTLEMENT_KIND.get(record.kind)
        if kind is None:
            continue
        count, amount = out.get((record.currency, kind), (0, 0))
        out[(record.currency, kind)] = (count + 1, amount + record.amount)
    return out


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else None
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "bad_request" if status < 500 else "server_error")
    message = {404: "no such path", 405: "method not allowed on this path"}.get(status, "request refused")
    return _error(status, code, message, headers)


def create_app(
    store: HostStore,
    ca: CertificateAuthority,
    faults: FaultSwitch | None = None,
    *,
    clock: Callable[[], dt.datetime] | None = None,
) -> ASGIApp:
    """The host's ASGI application over ``store`` and ``ca``; ``faults`` is read per request."""
    api = HostApi(store, ca, clock=clock)
    routes: list[tuple[str, _Endpoint, str]] = [
        ("/v1/openapi.json", api.openapi, "GET"),
        ("/v1/enrol", api.enrol, "POST"),
        ("/v1/sign-on", api.sign_on, "POST"),
        ("/v1/echo", api.echo, "GET"),
        ("/v1/authorisations", api.authorise, "POST"),
        ("/v1/advices", api.advise, "POST"),
        ("/v1/reversals", api.reverse, "POST"),
        ("/v1/batches/close", api.close_batch, "POST"),
        ("/v1/parameters", api.parameters, "GET"),
    ]
    app = Starlette(
        routes=[Route(path, fn, methods=[method]) for path, fn, method in routes],
        exception_handlers={HTTPException: _http_error},
    )
    app.router.redirect_slashes = False
    return _Guard(app, faults or FaultSwitch())
