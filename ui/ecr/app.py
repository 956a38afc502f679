"""The ECR interface over HTTP (Starlette): docs/ecr-protocol.md, validated against ui/ecr/openapi.json.

Thin on purpose: every endpoint is a :class:`~ui.ecr.desk.PaymentDesk` call,
its answer as JSON, its errors as JSON with the reason in words (never a
traceback).  What blocks (a journal read) runs on one thread of its own, so
the event loop only ever waits; what writes runs on the desk's worker.

Order of the checks on a request (the first that fails answers):

1. an ``Origin`` header: 403 (a web page in a browser on the same machine
   must not be able to start a payment; registers do not send one);
2. the ``Host`` header names the loopback (unless the server was told to
   serve other hosts): 403, against DNS rebinding;
3. routing: 404 / 405;
4. the path's id (400), the ``Idempotency-Key`` (400), the query (400);
5. the body: its type (415), size (413), JSON (400), schema (422), and
   whether its parts fit together (422);
6. the desk: busy or a reused key (409), unknown ids (404), no reader or
   shutting down (503), refused by the payment rules (409).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from terminal.metrics import DeviceState, TerminalMetrics, UsageTracker, snapshot
from terminal.offline import PaymentRefused
from terminal.ports import DeviceError
from terminal.store import StorageError
from ui.ecr.desk import Busy, Conflict, DeskClosed, NoPayment, PaymentDesk
from ui.ecr.metrics import CONTENT_TYPE, exposition
from ui.ecr.records import EcrPayment, PaymentRequest, RequestError
from ui.ecr.schema import KEY_PATTERN, first_error, openapi_bytes

__all__ = ["MAX_BODY_BYTES", "EcrApi", "create_app"]

_log = logging.getLogger("ui.ecr")
_T = TypeVar("_T")

#: A payment request is under 1 KiB; anything over this is refused unread.
MAX_BODY_BYTES = 64 * 1024
#: How long a cancel waits for the payment to end before answering (202 if it still runs).
CANCEL_WAIT_SECONDS = 10.0
#: Longest long poll, and the interval of keep-alive comments on an event stream.
MAX_WAIT_SECONDS = 60.0
KEEPALIVE_SECONDS = 15.0
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_RUNNING_PAYMENT_KEY = "running"


class _Fail(Exception):
    """An error answer: status, ``error`` code, message, and maybe the payment that runs."""

    def __init__(self, status: int, error: str, message: str, running: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.running = status, error, message, running


def _json(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, error: str, message: str, running: dict[str, Any] | None = None) -> Response:
    obj: dict[str, Any] = {"error": error, "message": message[:1000]}
    if running is not None:
        obj[_RUNNING_PAYMENT_KEY] = running
    return _json(status, obj)


class _Guard:
    """Outermost layer: web pages and foreign Host names refused, and a JSON 500 instead of a traceback."""

    def __init__(self, app: ASGIApp, *, allow_remote: bool) -> None:
        self.app = app
        self.allow_remote = allow_remote

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal: str | None = None
        if "origin" in headers:
            refusal = "requests from web pages (with an Origin header) are refused: the ECR interface is for registers"
        elif not self.allow_remote and "host" in headers and _host_name(headers["host"]) not in _LOOPBACK_NAMES:
            refusal = "the Host header must name the loopback (127.0.0.1, localhost or [::1])"
        if refusal is not None:
            await _error(403, "forbidden", refusal)(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            _log.exception("ECR interface: unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _error(500, "server_error", "internal error (details in the terminal's log)")(
                    scope, receive, send
                )


def _host_name(host: str) -> str:
    """The name of a Host header without its port (``[::1]:8780`` -> ``[::1]``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _answers(
    fn: Callable[[EcrApi, Request], Awaitable[Response]],
) -> Callable[[EcrApi, Request], Awaitable[Response]]:
    """Turn what the desk and the terminal raise into JSON errors with the reason in words."""

    @functools.wraps(fn)
    async def wrapped(self: EcrApi, request: Request) -> Response:
        try:
            return await fn(self, request)
        except _Fail as fail:
            return _error(fail.status, fail.error, fail.message, fail.running)
        except Busy as exc:
            running = self.desk.snapshot(exc.payment) if exc.payment is not None else None
            return _error(409, "busy", f"{exc}: one payment at a time (the terminal has one reader)", running)
        except Conflict as exc:
            return _error(409, "idempotency_conflict", str(exc))
        except NoPayment as exc:
            return _error(404, "not_found", str(exc))
        except DeskClosed as exc:
            return _error(503, exc.reason, str(exc))
        except PaymentRefused as exc:
            if exc.reason == "not_found":
                return _error(404, "not_found", str(exc))
            if exc.reason in ("no_printer", "no_reader"):
                return _error(503, exc.reason, str(exc))
            if exc.reason in ("reader_gone", "reader_error", "storage"):
                return _error(503, "unavailable", str(exc))
            return _error(409, "refused", str(exc))
        except (StorageError, DeviceError) as exc:
            return _error(503, "unavailable", str(exc))

    return wrapped


class EcrApi:
    """The endpoints, over one desk; ``close()`` stops the thread that reads the journal.

    ``devices``: the devices' states as something else watches them (the
    kiosk's device watch), for ``/metrics``; else as their last use left them.
    """

    def __init__(self, desk: PaymentDesk, devices: Callable[[], Mapping[str, DeviceState]] | None = None) -> None:
        self.desk = desk
        self._reads = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ecr-reads")
        self._usage = UsageTracker()
        self._stop_tracking = self._usage.attach(desk.terminal)
        self._devices = devices

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self._stop_tracking()
        self._reads.shutdown(wait=True)

    # -- plumbing --------------------------------------------------------------------------------

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` on the reading thread (it blocks on the journal), awaited."""
        return await asyncio.get_running_loop().run_in_executor(self._reads, functools.partial(fn, *args))

    @staticmethod
    def _id(request: Request) -> str:
        payment_id = str(request.path_params["id"])
        if not KEY_PATTERN.fullmatch(payment_id):
            raise _Fail(400, "bad_request", "a payment id is 1 to 64 of A-Z a-z 0-9 . _ : ~ - (its Idempotency-Key)")
        return payment_id

    @staticmethod
    async def _body(request: Request, component: str, *, optional: bool = False) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise _Fail(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _Fail(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            if optional:
                return {}
            raise _Fail(400, "bad_request", "the body is empty: a JSON object is expected")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise _Fail(415, "unsupported_media_type", "the body must be JSON, sent as Content-Type: application/json")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise _Fail(400, "bad_request", "the body is not a JSON document") from None
        error = first_error(component, body)
        if error is not None:
            raise _Fail(422, "invalid", error)
        if not isinstance(body, dict):  # pragma: no cover - every request schema is an object
            raise _Fail(422, "invalid", "body must be of type object")
        return body

    def _payment(self, payment: EcrPayment, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return self._delivering(_json(status, self.desk.snapshot(payment), headers), [payment])

    def _delivering(self, response: Response, payments: list[EcrPayment]) -> Response:
        """Once ``response`` is sent, the final payments in it count as shown (:meth:`PaymentDesk.delivered`)."""
        if any(p.final for p in payments):
            response.background = BackgroundTask(self.desk.delivered, payments)
        return response

    async def _found(self, request: Request) -> EcrPayment:
        payment_id = self._id(request)
        payment = await self._read(self.desk.find, payment_id)
        if payment is None:
            raise _Fail(404, "not_found", f"no payment {payment_id}: none was made under this key or txn_id")
        return payment

    @staticmethod
    def _number(request: Request, name: str, low: float, high: float) -> float | None:
        text = request.query_params.get(name)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise _Fail(400, "bad_request", f"{name} must be a number from {low:g} to {high:g}")
        return value

    # -- endpoints -----------------------------------------------------------------------------

    async def openapi(self, request: Request) -> Response:
        return Response(openapi_bytes(), media_type="application/json")

    @_answers
    async def start(self, request: Request) -> Response:
        key = request.headers.get("idempotency-key")
        if key is None:
            raise _Fail(
                400, "bad_request", "the Idempotency-Key header is missing: each payment needs the register's key"
            )
        if not KEY_PATTERN.fullmatch(key):
            raise _Fail(
                400, "bad_request", "the Idempotency-Key must be 1 to 64 of A-Z a-z 0-9 . _ : ~ - (a UUID does)"
            )
        body = await self._body(request, "PaymentRequest")
        try:
            payment_request = PaymentRequest.from_body(body)
        except RequestError as exc:
            raise _Fail(422, "invalid", str(exc)) from None
        payment, created = await self._read(self.desk.start, key, payment_request)
        headers = {"Location": f"/v1/payments/{payment.id}"}
        if not created:
            headers["Idempotent-Replay"] = "true"
        return self._payment(payment, 200 if payment.final and not created else 202, headers)

    async def payments(self, request: Request) -> Response:
        """``/v1/payments``: POST starts a payment, GET finds them by reference (one route: one Allow header)."""
        if request.method == "POST":
            return await self.start(request)
        return await self.find_by_reference(request)

    @_answers
    async def find_by_reference(self, request: Request) -> Response:
        reference = request.query_params.get("reference")
        if not reference or len(reference) > 64:
            raise _Fail(400, "bad_request", "give ?reference= (the register's reference, 1 to 64 characters)")
        payments = await self._read(self.desk.by_reference, reference)
        return self._delivering(_json(200, {"payments": [self.desk.snapshot(p) for p in payments]}), payments)

    @_answers
    async def get(self, request: Request) -> Response:
        wait = self._number(request, "wait", 0, MAX_WAIT_SECONDS) or 0.0
        after = self._number(request, "after", 0, 2**53)
        payment = await self._found(request)
        if wait > 0 and not payment.final:
            await self.desk.wait_for_change(payment, int(after) if after is not None else payment.version, wait)
        return self._payment(payment)

    @_answers
    async def events(self, request: Request) -> Response:
        last = request.headers.get("last-event-id")
        if last is not None and not (last.isascii() and last.isdigit() and len(last) < 16):
            raise _Fail(400, "bad_request", "Last-Event-ID must be a version number, as sent in the event's id")
        payment = await self._found(request)
        seen = int(last) if last is not None else 0
        return StreamingResponse(
            self._stream(payment, seen),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _stream(self, payment: EcrPayment, seen: int) -> AsyncIterator[str]:
        desk = self.desk
        while True:
            snap = desk.snapshot(payment)
            if snap["version"] > seen:
                seen = snap["version"]
                yield f"event: payment\nid: {seen}\ndata: {json.dumps(snap, ensure_ascii=False)}\n\n"
                if snap["final"]:  # (resumed once the event was sent)
                    desk.delivered([payment])
                    return
            elif snap["final"] or desk.closing:
                return
            else:
                yield ": waiting\n\n"
            await desk.wait_for_change(payment, seen, KEEPALIVE_SECONDS)

    @_answers
    async def cancel(self, request: Request) -> Response:
        payment_id = self._id(request)
        await self._body(request, "EmptyRequest", optional=True)
        payment, was_final = await self._read(self.desk.cancel, payment_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CANCEL_WAIT_SECONDS
        while not payment.final and not self.desk.closing and loop.time() < deadline:
            await self.desk.wait_for_change(payment, payment.version, deadline - loop.time())
        snap = self.desk.snapshot(payment)
        if was_final:
            outcome, text = "already_final", f"nothing to cancel: the payment had ended ({snap['status']})"
        elif snap["final"] and snap["reason"] == "cancelled":
            outcome, text = "cancelled", "cancelled: no payment was made"
        elif snap["final"]:
            undo = ": void it to undo it" if snap["status"] == "approved" else ""
            outcome, text = (
                "too_late",
                f"too late to cancel: the card was read; the payment ended {snap['status']}{undo}",
            )
        else:
            outcome, text = "too_late", "too late to cancel: the card was read; the payment goes on (follow it)"
        snap["cancel"] = {"outcome": outcome, "message": text}
        return self._delivering(_json(200 if snap["final"] else 202, snap), [payment])

    @_answers
    async def void(self, request: Request) -> Response:
        payment_id = self._id(request)
        await self._body(request, "EmptyRequest", optional=True)
        future, replay = await self._read(self.desk.void, payment_id)
        payment = await asyncio.wrap_future(future)
        return self._payment(payment, 200, {"Idempotent-Replay": "true"} if replay else None)

    @_answers
    async def receipt(self, request: Request) -> Response:
        payment_id = self._id(request)
        copy = request.query_params.get("copy", "customer")
        if copy not in ("customer", "merchant"):
            raise _Fail(400, "bad_request", "copy must be customer or merchant")
        future = await self._read(self.desk.receipt, payment_id, copy)
        text, duplicate = await asyncio.wrap_future(future)
        return PlainTextResponse(text, headers={"Receipt-Duplicate": "true" if duplicate else "false"})

    @_answers
    async def print_receipt(self, request: Request) -> Response:
        payment_id = self._id(request)
        body = await self._body(request, "PrintRequest", optional=True)
        copy = str(body.get("copy", "customer"))
        future = await self._read(self.desk.print_receipt, payment_id, copy)
        txn_id = await asyncio.wrap_future(future)
        return _json(200, {"id": payment_id, "txn_id": txn_id, "copy": copy, "printed": True})

    @_answers
    async def totals(self, request: Request) -> Response:
        return _json(200, await asyncio.wrap_future(self.desk.totals()))

    def _reading(self) -> TerminalMetrics:
        terminal = self.desk.terminal
        devices = self._usage.devices(terminal)
        if self._devices is not None:
            devices |= dict(self._devices())
        return snapshot(terminal, devices=devices, payments=self._usage.payments)

    @_answers
    async def metrics(self, request: Request) -> Response:
        """``GET /metrics``: the terminal's figures in Prometheus' text format (:mod:`ui.ecr.metrics`)."""
        reading = await self._read(self._reading)
        return Response(exposition(reading), media_type=CONTENT_TYPE)

    @_answers
    async def status(self, request: Request) -> Response:
        check = request.query_params.get("check_host", "false")
        if check not in ("true", "false"):
            raise _Fail(400, "bad_request", "check_host must be true or false")
        status = await self._read(self.desk.status)
        if check == "true":
            try:
                status["host"]["echo"] = await asyncio.wrap_future(self.desk.echo())
            except Busy as exc:
                status["host"]["echo"] = {"passed": None, "reason": f"not checked: {exc}"}
        return _json(200, status)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "bad_request" if status < 500 else "server_error")
    message = {404: "no such path (see /v1/openapi.json)", 405: "method not allowed on this path"}.get(
        status, "request refused"
    )
    answer = _error(status, code, message)
    if isinstance(exc, HTTPException) and exc.headers:
        answer.headers.update(exc.headers)  # 405: Allow, which methods the path has (RFC 9110)
    return answer


def create_app(api: EcrApi, *, allow_remote: bool = False) -> ASGIApp:
    """The ECR interface's ASGI application over ``api``'s desk."""
    routes = [
        Route("/metrics", api.metrics, methods=["GET"]),
        Route("/v1/openapi.json", api.openapi, methods=["GET"]),
        Route("/v1/status", api.status, methods=["GET"]),
        Route("/v1/totals", api.totals, methods=["GET"]),
        Route("/v1/payments", api.payments, methods=["GET", "POST"]),
        Route("/v1/payments/{id}", api.get, methods=["GET"]),
        Route("/v1/payments/{id}/events", api.events, methods=["GET"]),
        Route("/v1/payments/{id}/cancel", api.cancel, methods=["POST"]),
        Route("/v1/payments/{id}/void", api.void, methods=["POST"]),
        Route("/v1/payments/{id}/receipt", api.receipt, methods=["GET"]),
        Route("/v1/payments/{id}/receipt/print", api.print_receipt, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.router.redirect_slashes = False
    return _Guard(app, allow_remote=allow_remote)
