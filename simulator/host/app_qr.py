"""The host's QR endpoints beside :mod:`simulator.host.app`: the messages' paths and the queries (long polls).

The state-changing QR messages (a payment by code, a cancel, an order, its
close, a refund) go through the app's one idempotent path, like an
authorisation (:data:`QR_MESSAGES`: path -> message of
:data:`simulator.host.acquirer.COMPONENTS`). The queries are ``GET``:

- ``/v1/qr/payments/{reference}``: the order of the terminal's reference
  (``status: unknown`` when the host has none);
- ``/v1/qr/orders/{order_id}``: one of the terminal's orders, ``404`` for
  an order that is not the terminal's.

Both take ``?wait=S`` (0 to :data:`MAX_WAIT_SECONDS`): while the order is
``pending`` or ``user_paying`` the answer waits until it changes or ``S``
seconds passed (a long poll; the database is looked at every
:data:`POLL_SECONDS`, so any host worker sees a change another made).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from simulator.host.acquirer import Peer
from simulator.host.wallets import WAITING_STATES, NotFound, WalletDesk, order_answer

__all__ = ["MAX_WAIT_SECONDS", "POLL_SECONDS", "QR_MESSAGES", "QrQueries"]

QR_MESSAGES: Final = (
    ("/v1/qr/payments", "qr-payment"),
    ("/v1/qr/payments/cancel", "qr-cancel"),
    ("/v1/qr/orders", "qr-order"),
    ("/v1/qr/orders/close", "qr-close"),
    ("/v1/qr/refunds", "qr-refund"),
)
MAX_WAIT_SECONDS: Final = 30
POLL_SECONDS: Final = 0.1
_IDENT: Final = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _json(status: int, obj: Any) -> Response:
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return Response(body, status_code=status, media_type="application/json")


def _error(status: int, error: str, message: str) -> Response:
    return _json(status, {"error": error, "message": message})


class QrQueries:
    """The ``GET`` endpoints over the acquirer's wallet desk; ``peer_of`` reads the client certificate's identity."""

    def __init__(self, desk: WalletDesk, peer_of: Callable[[Scope], Peer | None]) -> None:
        self.desk = desk
        self.peer_of = peer_of

    async def payment(self, request: Request) -> Response:
        return await self._poll(request, "reference", self._by_reference)

    async def order(self, request: Request) -> Response:
        return await self._poll(request, "order_id", self._by_id)

    def _by_reference(self, reference: str, peer: Peer) -> dict[str, Any]:
        return self.desk.query(reference, peer.merchant_id, peer.terminal_id)

    def _by_id(self, order_id: str, peer: Peer) -> dict[str, Any]:
        return order_answer(self.desk.own_order(order_id, peer.merchant_id, peer.terminal_id))

    async def _poll(self, request: Request, name: str, look: Callable[[str, Peer], dict[str, Any]]) -> Response:
        peer = self.peer_of(request.scope)
        if peer is None:  # pragma: no cover - the guard answered 401 already
            return _error(401, "no_client_certificate", "a client certificate is required")
        ident = str(request.path_params.get(name, ""))
        if not _IDENT.fullmatch(ident):
            return _error(422, "invalid", f"{name} must be 1 to 64 of [A-Za-z0-9._:-]")
        waits = request.query_params.getlist("wait")
        wait = 0
        if waits:
            text = waits[-1]
            if not (text.isascii() and text.isdigit() and len(text) <= 3 and int(text) <= MAX_WAIT_SECONDS):
                return _error(422, "invalid", f"wait must be a whole number of seconds 0..{MAX_WAIT_SECONDS}")
            wait = int(text)
        deadline = time.monotonic() + wait
        try:
            while True:
                answer = look(ident, peer)
                if answer["status"] not in WAITING_STATES or time.monotonic() >= deadline:
                    return _json(200, answer)
                await asyncio.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))
        except NotFound as exc:
            return _error(exc.status, exc.error, exc.message)
