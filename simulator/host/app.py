"""The host's HTTP API (Starlette): docs/host-protocol.md, validated against host_link/openapi.json.

Order of the checks on a request (the first that fails answers):

0. ``GET /healthz`` and ``GET /readyz`` are answered first, without a
   certificate and without faults (:mod:`simulator.host.health`); while the
   ``down`` fault is on, nothing is answered: the connection is closed;
1. injected faults (``slow``, ``error``, ``drop``; see :mod:`simulator.host.faults`);
2. a verified client certificate on every path but ``POST /v1/enrol`` and
   ``GET /v1/openapi.json``, else ``401``;
2b. that certificate's serial: one the host issued to exactly the terminal
   and merchant of its subject and has not revoked, else ``401``
   (``certificate_unknown`` / ``certificate_revoked``); checked on every
   request, so a revocation stops a terminal at its next request, kept-alive
   connection or not (the only exception: a certificate just replaced by a
   rotation may repeat that rotation, ``POST /v1/certificate``, to get its
   answer again);
3. routing: ``404`` / ``405``;
4. for a state-changing ``POST``: the ``Idempotency-Key`` header (``400``);
5. the body's ``Content-Type``: ``application/json``, with no ``charset`` or
   ``charset=utf-8``, else ``415``; a body that starts with a byte-order mark
   (UTF-8, UTF-16 or UTF-32) is ``415`` too (:func:`media_type_error`);
   then the JSON body (``400``) and its schema (``422``, the message names the
   field and the rule, never the value sent);
6. ``terminal_id`` / ``merchant_id`` against the certificate (``403``);
7. the idempotency cache: a known key with the same canonical body (SHA-256
   HMAC, ``retransmission`` left out) gets the stored bytes again with
   ``Idempotent-Replay: true``; with another body, ``409``;
8. processing, in one database transaction together with storing the answer.

Steps 7 and 8 are :class:`simulator.host.acquirer.Acquirer`'s, the host's
business apart from HTTP, which the in-process host
(:mod:`simulator.host.inprocess`) shares; this module is only the HTTP side.
The QR messages (wallet payments by code, orders, refunds) take the same
path; their ``GET`` queries and long polls are :mod:`simulator.host.app_qr`'s.

The TLS layer (:mod:`simulator.host.server`) puts the client certificate's
identity in the ASGI scope's ``state`` under :data:`PEER_STATE_KEY` (a
:class:`Peer`) and the connection's transport under
:data:`TRANSPORT_STATE_KEY` (used to drop a connection). Any ASGI server, or
a test, can provide them the same way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator.host.acquirer import (
    COMPONENTS,
    KEY_PATTERN,
    Acquirer,
    IdempotencyConflict,
    Peer,
    Refused,
    host_time,
    stamp,
)
from simulator.host.app_qr import QR_MESSAGES, QrQueries
from simulator.host.ca import CertificateAuthority, CsrError, public_key_digest
from simulator.host.faults import FaultSwitch
from simulator.host.health import HealthEndpoints, Readiness
from simulator.host.metrics import HostMetrics, RequestMetrics
from simulator.host.params import for_terminal
from simulator.host.ratelimit import ENROL_LIMITS_KEY, EnrolmentLimiter, EnrolmentLimits
from simulator.host.schema import first_error, openapi_bytes
from simulator.host.store import Certificate, HostStore, StoreError

__all__ = ["PEER_STATE_KEY", "PUBLIC_PATHS", "TRANSPORT_STATE_KEY", "Peer", "create_app", "media_type_error"]

PEER_STATE_KEY = "posterm_peer"
TRANSPORT_STATE_KEY = "posterm_transport"
PUBLIC_PATHS = frozenset({"/v1/enrol", "/v1/openapi.json"})
ROTATION_PATH = "/v1/certificate"
#: The one answer to an enrolment code that is unknown, used (by another CSR) or expired: no oracle.
ENROL_REFUSED = "enrolment code refused: unknown, used or expired (ask the host's operator for a new one)"
#: The largest request body the host reads (2 MiB), checked on Content-Length and again as it streams in:
#: a request is under 2 KiB, a batch of advices (at most 100) under 200 KiB.  Bigger is a 400, never read whole.
MAX_BODY_BYTES = 2 * 1024 * 1024
_log = logging.getLogger("posterm.host")


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


_BYTE_ORDER_MARKS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")  # UTF-8, UTF-16 LE / BE (UTF-32 LE starts FF FE too)


def media_type_error(content_type: str | None, body_start: bytes = b"") -> str | None:
    """Why a request body of this ``Content-Type`` (and these first bytes) is refused with 415, or None.

    Accepted: ``application/json`` (any case, optional spaces) with no
    parameter or ``charset=utf-8`` (quoted or not). Refused: no header, any
    other type (XML, forms, text), another charset, any other parameter, and a
    body that starts with a byte-order mark or has a NUL byte in its first four
    (UTF-16 or UTF-32; JSON is UTF-8 without a mark, RFC 8259).
    """
    if content_type is None:
        return "Content-Type application/json is required"
    media, _, rest = content_type.partition(";")
    if media.strip().lower() != "application/json":
        return "the body must be application/json"
    for parameter in rest.split(";") if rest.strip() else ():
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return "application/json is accepted with charset=utf-8 only"
    if body_start.startswith(_BYTE_ORDER_MARKS) or body_start.startswith(b"\x00\x00\xfe\xff"):
        return "the body must be UTF-8 without a byte-order mark"
    if b"\x00" in body_start:  # UTF-16 or UTF-32 without a mark (JSON in UTF-8 has no NUL byte, RFC 8259 8.1)
        return "the body must be UTF-8"
    return None


def _integral(value: Any) -> Any:
    """JSON numbers like ``100.0`` that passed an ``integer`` schema become ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


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
        if faults.down:  # the server closes every connection when down goes on; one that slipped through too
            state = scope.get("state")
            transport = state.get(TRANSPORT_STATE_KEY) if isinstance(state, dict) else None
            if transport is not None:
                transport.abort()
                while (await receive())["type"] != "http.disconnect":
                    pass
                return
            await _error(503, "server_error", "the host is down")(scope, receive, send)
            return
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
        except ClientDisconnect:
            _log.info("%s %s: the client went away before its request was read", scope.get("method"), path)
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


class _CertificateCheck:
    """Step 2b: the client certificate's serial is one the host issued to that terminal and has not revoked."""

    def __init__(self, app: ASGIApp, store: HostStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        peer = _peer(scope)
        if scope["type"] == "http" and path not in PUBLIC_PATHS and peer is not None:
            try:
                refusal = self.refusal(peer, path)
            except StoreError as exc:  # outside Starlette: its handler (_store_unavailable) cannot answer
                _log.error("host database unavailable on %s: %s", path, str(exc).split(" DETAIL:", 1)[0])
                await _drain(receive)
                await _error(503, "server_error", _STORE_UNAVAILABLE)(scope, receive, send)
                return
            if refusal is not None:
                await _drain(receive)
                await _error(401, *refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, peer: Peer, path: str) -> tuple[str, str] | None:
        """(error, message) of a certificate refused on ``path``, None for one in force."""
        certificate = None if peer.serial is None else self.store.certificate(peer.serial)
        if certificate is None or (certificate.merchant_id, certificate.terminal_id) != (
            peer.merchant_id,
            peer.terminal_id,
        ):
            return "certificate_unknown", "this certificate is not one the host issued to this terminal: enrol again"
        if certificate.valid or (path == ROTATION_PATH and _rotated(certificate)):
            return None
        return "certificate_revoked", (
            f"this certificate was revoked ({certificate.revoked_reason}) on {certificate.revoked_at}: "
            "use the terminal's current certificate, or enrol again with a new code"
        )


def _rotated(certificate: Certificate) -> bool:
    """Replaced by a rotation whose answer it may fetch again."""
    return certificate.revoked_reason == "superseded" and certificate.rotation_response is not None


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


_Endpoint = Callable[[Request], Awaitable[Response]]


class HostApi:
    """The endpoints, over a store, a CA and an issuer (one instance per server process)."""

    def __init__(
        self,
        store: HostStore,
        ca: CertificateAuthority,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        enrol_limits: EnrolmentLimits | None = None,
        metrics: HostMetrics | None = None,
    ) -> None:
        self.store = store
        self.ca = ca
        self.metrics = metrics
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.acquirer = Acquirer(store, clock=self.clock)
        self.limiter = EnrolmentLimiter(enrol_limits or EnrolmentLimits.from_json(store.meta(ENROL_LIMITS_KEY)))
        self._echo_prefix = secrets.token_hex(2).upper()
        self._echo_count = 0

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    async def _body(request: Request) -> Any:
        refused = media_type_error(request.headers.get("content-type"))
        if refused is not None:
            raise _Fail(415, "unsupported_media_type", refused)
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
        raw = b"".join(chunks)
        refused = media_type_error(request.headers.get("content-type"), raw[:4])
        if refused is not None:
            raise _Fail(415, "unsupported_media_type", refused)
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
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

    async def _idempotent(self, request: Request, what: str) -> Response:
        """Steps 4 to 8 of the module docstring; 7 and 8 are the acquirer's (shared with the in-process host)."""
        try:
            peer = _peer(request.scope)
            if peer is None:  # pragma: no cover - the guard answered 401 already
                raise _Fail(401, "no_client_certificate", "a client certificate is required")
            key = request.headers.get("idempotency-key")
            if key is None:
                raise _Fail(400, "bad_request", "the Idempotency-Key header is missing")
            if not KEY_PATTERN.fullmatch(key):
                raise _Fail(400, "bad_request", "the Idempotency-Key header must be 1 to 64 of [A-Za-z0-9._:-]")
            body = await self._validated(request, COMPONENTS[what])
            self._check_ids(body, peer)
            try:
                reply = self.acquirer.handle(what, body, peer, key)
            except Refused as exc:  # an idempotency conflict (409), a reversal of another amount (422)
                if self.metrics is not None and isinstance(exc, IdempotencyConflict):
                    self.metrics.idempotency_conflict(what)
                raise _Fail(exc.status, exc.error, exc.message) from None
            if self.metrics is not None:
                self.metrics.observe_reply(
                    what, body, reply.body, replayed=reply.replayed, replayed_advices=reply.replayed_advices
                )
            headers = {"Idempotent-Replay": "true"} if reply.replayed else None
            return _json_response(reply.status, reply.body, headers)
        except _Fail as fail:
            return _error(fail.status, fail.error, fail.message)

    # ------------------------------------------------------------------ endpoints

    async def openapi(self, request: Request) -> Response:
        return _json_response(200, openapi_bytes())

    async def echo(self, request: Request) -> Response:
        self._echo_count += 1
        reference = f"E{self._echo_prefix}{self._echo_count:08d}"
        return _json_response(200, _json_bytes({"host_time": host_time(self.clock()), "host_reference": reference}))

    async def parameters(self, request: Request) -> Response:
        """The requesting terminal's own parameters (:func:`simulator.host.params.for_terminal`)."""
        peer = _peer(request.scope)
        if peer is None:  # pragma: no cover - the guard answered 401 already
            return _error(401, "no_client_certificate", "a client certificate is required")
        have_values = request.query_params.getlist("have")
        if have_values:
            text = have_values[-1]
            if not (text.isascii() and text.isdigit() and len(text) <= 10 and int(text) <= 2147483647):
                return _error(422, "invalid", "have must be an integer 0..2147483647")
        served = for_terminal(self.store, peer.merchant_id, peer.terminal_id, operator=self.acquirer.operator)
        if have_values and int(have_values[-1]) == served.version:
            return Response(status_code=304)
        return _json_response(200, served.document)

    async def enrol(self, request: Request) -> Response:
        """``POST /v1/enrol``: rate-limited; one answer for every refused code, given slowly (no oracle)."""
        wait = self.limiter.admit(_client_address(request))
        if wait:
            message = f"too many enrolment attempts: retry after {wait} s"
            return _error(429, "too_many_requests", message, {"Retry-After": str(wait)})
        try:
            body = await self._validated(request, "EnrolRequest")
            now = self.clock()
            code = self.store.enrolment_code(body["enrolment_code"])
            csr_digest = self.store.digest(body["csr_pem"].strip())
            if code is not None and code.used_at is not None and code.csr_digest == csr_digest and code.response:
                # the same request again (its answer was lost): the same answer
                return _json_response(201, code.response, {"Idempotent-Replay": "true"})
            if code is None or code.used_at is not None or code.expires_at < stamp(now):
                await self._refused()
                raise _Fail(403, "forbidden", ENROL_REFUSED)
            try:
                issued = self.ca.issue_terminal_certificate(body["csr_pem"], code.terminal_id, code.merchant_id)
            except CsrError as exc:
                raise _Fail(422, "invalid", str(exc)) from None
            payload = self._certificate_payload(code.terminal_id, code.merchant_id, issued.pem)
            outcome = self.store.use_enrolment_code(
                body["enrolment_code"], stamp(now), csr_digest, payload, issued.serial, stamp(issued.not_after)
            )
            if outcome == "held":
                raise _Fail(
                    403,
                    "forbidden",
                    f"terminal id {code.terminal_id} is enrolled under another merchant: the host's operator must "
                    "make a transfer code (posterm host enrol-code --transfer)",
                )
            if outcome != "enrolled":  # another request used the code first
                await self._refused()
                raise _Fail(403, "forbidden", ENROL_REFUSED)
            _log.info("terminal %s of merchant %s enrolled (certificate %s)", code.terminal_id, code.merchant_id,
                      issued.serial)
            return _json_response(201, payload)
        except _Fail as fail:
            return _error(fail.status, fail.error, fail.message)

    async def _refused(self) -> None:
        """A refused code is answered after the same pause, whatever the reason (slow to guess, no timing)."""
        await asyncio.sleep(self.limiter.limits.failure_delay_seconds)

    def _certificate_payload(self, terminal_id: str, merchant_id: str, certificate_pem: bytes) -> bytes:
        return _json_bytes(
            {
                "terminal_id": terminal_id,
                "merchant_id": merchant_id,
                "certificate_pem": certificate_pem.decode("ascii"),
                "ca_certificate_pem": self.ca.certificate_pem.decode("ascii"),
            }
        )

    async def rotate(self, request: Request) -> Response:
        """``POST /v1/certificate``: a new certificate for the terminal of the current one, which is then revoked.

        Idempotent: the replaced certificate may send the same request again
        (same ``Idempotency-Key``, a CSR of the same key) and gets the same
        answer; the same key with another public key is ``409``; anything else
        from it is ``401 certificate_revoked`` (already refused by the
        certificate layer unless it was replaced by a rotation).
        """
        try:
            peer = _peer(request.scope)
            if peer is None or peer.serial is None:  # pragma: no cover - the guard answered 401 already
                raise _Fail(401, "no_client_certificate", "a client certificate is required")
            key = request.headers.get("idempotency-key")
            if key is None:
                raise _Fail(400, "bad_request", "the Idempotency-Key header is missing")
            if not KEY_PATTERN.fullmatch(key):
                raise _Fail(400, "bad_request", "the Idempotency-Key header must be 1 to 64 of [A-Za-z0-9._:-]")
            body = await self._validated(request, "CertificateRequest")
            try:
                new_key = public_key_digest(self.ca.csr_public_key(body["csr_pem"]))
            except CsrError as exc:
                raise _Fail(422, "invalid", str(exc)) from None
            current = self.store.certificate(peer.serial)
            if current is not None and current.valid:
                issued = self.ca.issue_terminal_certificate(body["csr_pem"], peer.terminal_id, peer.merchant_id)
                payload = self._certificate_payload(peer.terminal_id, peer.merchant_id, issued.pem)
                at = stamp(self.clock())
                if self.store.rotate_certificate(
                    peer.serial, issued.serial, stamp(issued.not_after), key, new_key, payload, at
                ):
                    _log.info("terminal %s of merchant %s: certificate %s replaced by %s", peer.terminal_id,
                              peer.merchant_id, peer.serial, issued.serial)
                    return _json_response(201, payload)
                current = self.store.certificate(peer.serial)  # replaced meanwhile, by this request's twin?
            if current is not None and _rotated(current) and current.rotation_key == key:
                if current.rotation_public_key != new_key:
                    raise _Fail(409, "idempotency_conflict", "the Idempotency-Key was used before with another key")
                assert current.rotation_response is not None
                return _json_response(201, current.rotation_response, {"Idempotent-Replay": "true"})
            raise _Fail(401, "certificate_revoked", "this certificate was replaced: use the terminal's current one")
        except _Fail as fail:
            return _error(fail.status, fail.error, fail.message)

    async def sign_on(self, request: Request) -> Response:
        return await self._idempotent(request, "sign-on")

    async def authorise(self, request: Request) -> Response:
        return await self._idempotent(request, "authorisation")

    async def advise(self, request: Request) -> Response:
        return await self._idempotent(request, "advices")

    async def reverse(self, request: Request) -> Response:
        return await self._idempotent(request, "reversal")

    async def close_batch(self, request: Request) -> Response:
        return await self._idempotent(request, "batch-close")

    def message(self, what: str) -> _Endpoint:
        """The endpoint of the state-changing message ``what`` (the QR messages, simulator.host.app_qr)."""

        async def endpoint(request: Request) -> Response:
            return await self._idempotent(request, what)

        return endpoint

async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else None
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "bad_request" if status < 500 else "server_error")
    message = {404: "no such path", 405: "method not allowed on this path"}.get(status, "request refused")
    return _error(status, code, message, headers)


_STORE_UNAVAILABLE = "the host's database is unavailable: try again"


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    """The database went away (a PostgreSQL restart): 503; the client tries again with the same key."""
    reason = str(exc).split(" DETAIL:", 1)[0]  # no password in it (storage.base.scrub); a DETAIL could quote a key
    _log.error("host database unavailable on %s %s: %s", request.method, request.url.path, reason)
    return _error(503, "server_error", _STORE_UNAVAILABLE)


def create_app(
    store: HostStore,
    ca: CertificateAuthority,
    faults: FaultSwitch | None = None,
    *,
    clock: Callable[[], dt.datetime] | None = None,
    enrol_limits: EnrolmentLimits | None = None,
    metrics: HostMetrics | None = None,
    readiness: Readiness | None = None,
) -> ASGIApp:
    """The host's ASGI application over ``store`` and ``ca``; ``faults`` is read per request.

    ``enrol_limits``: how fast enrolment may be tried (default: the host's
    setting, ``posterm host enrol-rate``, else :class:`EnrolmentLimits`);
    ``metrics``: count requests and what the replies did; ``readiness``: what
    ``/readyz`` checks (default: the store and the faults).
    """
    faults = faults or FaultSwitch()
    api = HostApi(store, ca, clock=clock, enrol_limits=enrol_limits, metrics=metrics)
    routes: list[tuple[str, _Endpoint, str]] = [
        ("/v1/openapi.json", api.openapi, "GET"),
        ("/v1/enrol", api.enrol, "POST"),
        (ROTATION_PATH, api.rotate, "POST"),
        ("/v1/sign-on", api.sign_on, "POST"),
        ("/v1/echo", api.echo, "GET"),
        ("/v1/authorisations", api.authorise, "POST"),
        ("/v1/advices", api.advise, "POST"),
        ("/v1/reversals", api.reverse, "POST"),
        ("/v1/batches/close", api.close_batch, "POST"),
        ("/v1/parameters", api.parameters, "GET"),
    ]
    queries = QrQueries(api.acquirer.wallets, _peer)
    routes += [(path, api.message(what), "POST") for path, what in QR_MESSAGES]
    routes += [
        ("/v1/qr/payments/{reference}", queries.payment, "GET"),
        ("/v1/qr/orders/{order_id}", queries.order, "GET"),
    ]
    app = Starlette(
        routes=[Route(path, fn, methods=[method]) for path, fn, method in routes],
        exception_handlers={HTTPException: _http_error, StoreError: _store_unavailable},
    )
    app.router.redirect_slashes = False
    guarded = _Guard(_CertificateCheck(app, store), faults)
    served: ASGIApp = HealthEndpoints(guarded, readiness or Readiness(store, faults))
    return RequestMetrics(served, metrics) if metrics is not None else served
