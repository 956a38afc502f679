"""The QR messages through the in-process host (``memory``): what :class:`host_link.qr.QrLink` sends, without TLS.

:class:`InProcessQr` is a :class:`host_link.qr.QrTransport` for one terminal
(the in-process host has no certificate to take the sender from): a ``POST``
goes through :class:`~simulator.host.inprocess.InProcessHost`'s one path
(faults, the schema, the acquirer, the answer read back), a ``GET`` to the
wallet desk's queries, waiting (``?wait=``) while the order is pending or
``user_paying``, as the HTTPS host does. The same failures as over HTTPS:
the host's faults (``down``, ``fail_before_processing``, ``reject_next``,
``no_answer``, aimed with ``faults.only`` at ``"qr"``: every QR message) and
a refused message (``HostRejected``). ``host.qr(terminal_id, merchant_id)``
makes one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

from terminal.host import HostRejected

if TYPE_CHECKING:
    from simulator.host.acquirer import Reply
    from simulator.host.inprocess import InProcessHost

__all__ = ["FAULT_METHOD", "InProcessQr"]

#: The method name the in-process host's faults know the QR messages by (``faults.only = {"qr"}``).
FAULT_METHOD: Final = "qr"
_POLL_SECONDS: Final = 0.05
_T = TypeVar("_T")


class InProcessQr:
    """One terminal's QR transport to an in-process host (see the module docstring)."""

    def __init__(self, host: InProcessHost, terminal_id: str, merchant_id: str) -> None:
        self.host = host
        self.terminal_id = terminal_id
        self.merchant_id = merchant_id

    def exchange_json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        idempotent: bool,
        parse: Callable[[Any], _T],
        body: Mapping[str, Any] | None = None,
        key: str | None = None,
        params: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> _T:
        """As :meth:`host_link.client.HttpsHostLink.exchange_json`; ``parse`` reads the answer."""
        from host_link.client import header_key
        from simulator.host.app_qr import QR_MESSAGES

        if method == "POST":
            message = dict(QR_MESSAGES).get(path)
            if message is None or body is None or key is None:
                raise HostRejected(f"{what}: no such QR message ({method} {path})")
            ident = str(body.get("reference") or body.get("order_id") or body.get("refund_reference") or "")

            def read(reply: Reply) -> tuple[_T, list[str]]:
                doc = reply.json()
                return parse(doc), ["replay" if reply.replayed else f"{message}:{doc.get('status')}"]

            sender = (self.terminal_id, self.merchant_id)
            return self.host._call(FAULT_METHOD, [ident], message, dict(body), sender, header_key(key), read)
        return parse(self._query(path, what, params or {}))

    def _query(self, path: str, what: str, params: Mapping[str, str]) -> dict[str, Any]:
        from simulator.host.app_qr import MAX_WAIT_SECONDS
        from simulator.host.wallets import WAITING_STATES, NotFound, WalletDesk, order_answer

        kind, _, ident = path.removeprefix("/v1/qr/").partition("/")
        if kind not in ("payments", "orders") or not ident:
            raise HostRejected(f"{what}: no such QR query ({path})")
        wait = params.get("wait", "0")
        if not wait.isdigit() or int(wait) > MAX_WAIT_SECONDS:
            raise HostRejected(f"{what}: wait must be 0..{MAX_WAIT_SECONDS} seconds")
        deadline = time.monotonic() + int(wait)
        with self.host._lock:
            self.host._faults_before(FAULT_METHOD, [ident])
        while True:
            with self.host._lock, self.host._store() as store:
                desk = WalletDesk(store)
                try:
                    if kind == "payments":
                        answer = desk.query(ident, self.merchant_id, self.terminal_id)
                    else:
                        answer = order_answer(desk.own_order(ident, self.merchant_id, self.terminal_id))
                except NotFound as exc:
                    raise HostRejected(f"{what} refused by the host (404 not_found: {exc.message})") from None
            if answer["status"] not in WAITING_STATES or time.monotonic() >= deadline:
                return answer
            time.sleep(_POLL_SECONDS)
