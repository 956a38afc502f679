"""The terminal's port to its host's QR messages (what :class:`host_link.qr.QrLink` implements).

terminal/ does not import host_link: the QR flows (:mod:`terminal.qr_payment`,
:mod:`terminal.qr_check`) speak to this protocol, and a host link that can
carry QR messages offers one through ``qr_link(terminal_id, merchant_id)``
(the HTTPS link and the simulator's in-process host both do).  A link
without it (``--host none``, a test double) has no QR: a QR payment is
refused before anything is journalled.

Failures are the host link's: :class:`~terminal.host.HostUnreachable`
(nothing was sent), :class:`~terminal.host.HostNoAnswer` (it may have been
received), :class:`~terminal.host.HostRejected` (refused as malformed).
"""

from __future__ import annotations

from typing import Protocol

from terminal.host import HostLink

__all__ = ["QrAnswer", "QrHost", "QrOrderAnswer", "QrRefundAnswer", "qr_host_of"]


class QrAnswer(Protocol):
    """An order as the host reports it (``status``: pending, user_paying, paid, declined, closed,
    cancelled, reversed, unknown)."""

    @property
    def order_id(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def wallet(self) -> str | None: ...
    @property
    def amount(self) -> int | None: ...
    @property
    def host_reference(self) -> str | None: ...
    @property
    def final(self) -> bool: ...
    @property
    def scheme(self) -> str | None: ...


class QrOrderAnswer(Protocol):
    """A merchant-presented order just made, with what the dynamic MPM code carries."""

    @property
    def payment(self) -> QrAnswer: ...
    @property
    def order_id(self) -> str: ...
    @property
    def templates(self) -> dict[str, dict[str, str]]: ...
    @property
    def reference_label(self) -> str: ...
    @property
    def terminal_label(self) -> str: ...


class QrRefundAnswer(Protocol):
    @property
    def approved(self) -> bool: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def host_reference(self) -> str: ...
    @property
    def refunded_total(self) -> int: ...


class QrHost(Protocol):
    """The QR calls (docs/host-protocol.md, "QR payments"); every one idempotent through the terminal's reference."""

    def pay_by_code(self, reference: str, amount: int, currency: int, code: str) -> QrAnswer: ...

    def query(self, reference: str, *, wait: int | None = None) -> QrAnswer: ...

    def cancel(self, reference: str, amount: int, currency: int) -> QrAnswer: ...

    def create_order(self, reference: str, amount: int, currency: int) -> QrOrderAnswer: ...

    def query_order(self, order_id: str, *, wait: int | None = None) -> QrAnswer: ...

    def close_order(self, order_id: str) -> QrAnswer: ...

    def refund(self, refund_reference: str, original_reference: str, amount: int, currency: int) -> QrRefundAnswer: ...


def qr_host_of(host: HostLink | None, terminal_id: str, merchant_id: str) -> QrHost | None:
    """The QR calls over ``host`` (None: this link carries no QR messages, or there is no host link)."""
    factory = getattr(host, "qr_link", None)
    if factory is None:
        return None
    link: QrHost = factory(terminal_id, merchant_id)
    return link
