"""The terminal's QR calls to its host: wallet payments by code, merchant-presented orders, refunds.

:class:`QrLink` wraps an :class:`~host_link.client.HttpsHostLink` (its TLS,
its reachability window, its retries), or the in-process host's adapter
(``InProcessHost.qr(terminal_id, merchant_id)``, the ``memory`` host), and speaks the QR part of the protocol
(docs/host-protocol.md, "QR payments"):

========================================  ================================  ==================================
call                                      request                           idempotency key (header)
========================================  ================================  ==================================
``pay_by_code(reference, amount, ...)``   ``POST /v1/qr/payments``          ``qr-pay:<reference>``
``query(reference, wait=)``               ``GET /v1/qr/payments/<ref>``     (a read)
``cancel(reference, amount, currency)``   ``POST /v1/qr/payments/cancel``   ``qr-cancel:<reference>``
``create_order(reference, amount, ...)``  ``POST /v1/qr/orders``            ``qr-order:<reference>``
``query_order(order_id, wait=)``          ``GET /v1/qr/orders/<id>``        (a read)
``close_order(order_id)``                 ``POST /v1/qr/orders/close``      ``qr-close:<order id>``
``refund(refund_reference, original...)``  ``POST /v1/qr/refunds``          ``qr-refund:<refund reference>``
========================================  ================================  ==================================

The terminal's own order reference makes every request idempotent: each key
is derived from it, so the same call again (after a crash, after a lost
answer) gets the host's first answer and never a second effect. Every call
is retried by the link with its key when the answer is lost; what is left
raises as the link's calls do: :class:`~terminal.host.HostUnreachable`
(nothing was sent: the host could not be reached), :class:`~terminal.host.HostNoAnswer`
(it may have been received: query, and cancel when still in doubt),
:class:`~terminal.host.HostRejected` (refused as malformed: never retry).

How the terminal uses it (issue 13, section 3): ``pay_by_code``; on
``user_paying`` ``query(reference, wait=...)`` every few seconds up to its
limit; on a lost answer ``query``; still unknown or still waiting at the
limit, ``cancel`` (a paid order is then reversed and the account refunded,
and a payment arriving after the cancel is refused). For a merchant-presented
code: ``create_order`` gives the order id and :attr:`QrOrder.templates` etc.
for the MPM code; ``query_order(order_id, wait=...)`` long-polls; on time-out
``close_order``, whose answer may be ``paid`` (the app won the race: record
the sale).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from host_link.client import DEFAULT_READ_TIMEOUT
from host_link.wire import MalformedAnswer

__all__ = [
    "FINAL_STATUSES",
    "MAX_WAIT_SECONDS",
    "MPM_REFERENCE_MAX",
    "QrLink",
    "QrOrder",
    "QrPayment",
    "QrRefund",
    "QrTransport",
]

#: The longest reference of a merchant-presented order (it is the code's reference label, 62/05).
MPM_REFERENCE_MAX: Final = 25
#: The longest long poll the host accepts (``?wait=``).
MAX_WAIT_SECONDS: Final = 30
#: The statuses after which an order no longer changes by itself (the others: ``pending``, ``user_paying``).
FINAL_STATUSES: Final = frozenset({"paid", "declined", "closed", "cancelled", "reversed", "unknown"})
_STATUSES: Final = FINAL_STATUSES | {"pending", "user_paying"}
_IDENT: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_CODE: Final = re.compile(r"[0-9]{18}")
_MAX_AMOUNT: Final = 999_999_999_999
_T = TypeVar("_T")


def _text(doc: dict[str, Any], name: str, *, optional: bool = False) -> Any:
    value = doc.get(name)
    if value is None and optional and name in doc:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 500:
        raise MalformedAnswer(f"answer: {name} must be a string")
    return value


def _number(doc: dict[str, Any], name: str, *, optional: bool = False) -> Any:
    value = doc.get(name)
    if value is None and optional and name in doc:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_AMOUNT:
        raise MalformedAnswer(f"answer: {name} must be a whole number")
    return value


def _object(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise MalformedAnswer("answer: expected a JSON object")
    return doc


@dataclass(frozen=True)
class QrPayment:
    """A QR order as the host reports it (a code payment, or a merchant-presented order).

    ``status``: ``pending`` (an order waiting for an app), ``user_paying``
    (the customer is confirming in the app), ``paid``, ``declined`` (see
    ``reason``: ``unknown_code``, ``expired_code``, ``code_used``,
    ``insufficient_balance``, ``wallet_declined``, ``user_declined``,
    ``order_cancelled``), ``closed`` (by the terminal: never charged),
    ``cancelled`` (before payment), ``reversed`` (cancelled after payment:
    the account was refunded), ``unknown`` (the host has no order of this
    reference). ``wallet``: the simulator's wallet (``simpay``, ``simchat``,
    ``simdc``), whose batch line scheme is ``qr-<wallet>``.
    """

    order_id: str | None
    reference: str | None
    mode: str | None
    status: str
    reason: str | None
    wallet: str | None
    amount: int | None
    currency: int | None
    refunded: int
    host_reference: str | None
    paid_at: str | None

    @property
    def paid(self) -> bool:
        return self.status == "paid"

    @property
    def final(self) -> bool:
        """Whether the order can no longer change by itself (only the terminal's cancel or a refund moves it)."""
        return self.status in FINAL_STATUSES

    @property
    def scheme(self) -> str | None:
        """The scheme of its batch line, ``qr-<wallet>`` (None while no wallet is known)."""
        return None if self.wallet is None else f"qr-{self.wallet}"

    @classmethod
    def from_json(cls, raw: Any) -> QrPayment:
        doc = _object(raw)
        status = doc.get("status")
        if status not in _STATUSES:
            raise MalformedAnswer("answer: status is not one of the protocol's")
        mode = doc.get("mode")
        if mode not in ("code", "mpm", None):
            raise MalformedAnswer("answer: mode must be code or mpm")
        payment = cls(
            order_id=_text(doc, "order_id", optional=True),
            reference=_text(doc, "reference", optional=True),
            mode=mode,
            status=status,
            reason=_text(doc, "reason", optional=True),
            wallet=_text(doc, "wallet", optional=True),
            amount=_number(doc, "amount", optional=True),
            currency=_number(doc, "currency", optional=True),
            refunded=_number(doc, "refunded"),
            host_reference=_text(doc, "host_reference", optional=True),
            paid_at=_text(doc, "paid_at", optional=True),
        )
        if status != "unknown" and (payment.order_id is None or payment.amount is None):
            raise MalformedAnswer("answer: an order without its id or amount")
        return payment


@dataclass(frozen=True)
class QrOrder:
    """A merchant-presented order just created, with what the terminal's dynamic MPM code carries.

    ``templates``: merchant account templates by ID (``{"26": {"00": GUI, "01":
    merchant id, "02": order id}}``), ``reference_label`` (62/05) and
    ``terminal_label`` (62/07).
    """

    payment: QrPayment
    expires_at: str
    templates: dict[str, dict[str, str]]
    reference_label: str
    terminal_label: str

    @property
    def order_id(self) -> str:
        assert self.payment.order_id is not None  # checked when parsed
        return self.payment.order_id

    @classmethod
    def from_json(cls, raw: Any) -> QrOrder:
        doc = _object(raw)
        payment = QrPayment.from_json({k: v for k, v in doc.items() if k not in ("expires_at", "mpm")})
        mpm = _object(doc.get("mpm"))
        templates = _object(mpm.get("templates"))
        parsed: dict[str, dict[str, str]] = {}
        for ident, raw_fields in templates.items():
            fields = _object(raw_fields)
            if not (ident.isdigit() and len(ident) == 2) or not all(
                isinstance(k, str) and isinstance(v, str) and len(k) == 2 and 0 < len(v) <= 99
                for k, v in fields.items()
            ):
                raise MalformedAnswer("answer: mpm.templates must map two-digit IDs to sub-ID strings")
            parsed[ident] = dict(fields)
        if payment.order_id is None:
            raise MalformedAnswer("answer: an order without its id")
        return cls(payment, _text(doc, "expires_at"), parsed, _text(mpm, "reference_label"),
                   _text(mpm, "terminal_label"))  # fmt: skip


@dataclass(frozen=True)
class QrRefund:
    """The host's answer to a refund: ``approved`` or ``declined`` (``reason``: ``original_not_found``,
    ``original_not_paid``, ``currency_differs``, ``refund_exceeds_payment``); ``refunded_total``: all
    refunded against the order now."""

    refund_reference: str
    original_reference: str
    status: str
    reason: str | None
    amount: int
    currency: int
    refunded_total: int
    host_reference: str

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @classmethod
    def from_json(cls, raw: Any) -> QrRefund:
        doc = _object(raw)
        status = doc.get("status")
        if status not in ("approved", "declined"):
            raise MalformedAnswer("answer: status must be approved or declined")
        return cls(
            _text(doc, "refund_reference"), _text(doc, "original_reference"), status,
            _text(doc, "reason", optional=True), _number(doc, "amount"), _number(doc, "currency"),
            _number(doc, "refunded_total"), _text(doc, "host_reference"),
        )  # fmt: skip


def _ident(what: str, value: str) -> str:
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise ValueError(f"{what} must be 1 to 64 of [A-Za-z0-9._:-]")
    return value


def _money(amount: int, currency: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= _MAX_AMOUNT:
        raise ValueError("amount: a whole number of minor units, 1 or more")
    if isinstance(currency, bool) or not isinstance(currency, int) or not 1 <= currency <= 999:
        raise ValueError("currency: an ISO 4217 numeric code")


def _wait(wait: int | None) -> dict[str, str] | None:
    if wait is None:
        return None
    if isinstance(wait, bool) or not isinstance(wait, int) or not 0 <= wait <= MAX_WAIT_SECONDS:
        raise ValueError(f"wait: 0 to {MAX_WAIT_SECONDS} seconds")
    return {"wait": str(wait)}


class QrTransport(Protocol):
    """What :class:`QrLink` sends through: an :class:`~host_link.client.HttpsHostLink`, or the in-process
    host's adapter (:class:`simulator.host.inprocess_qr.InProcessQr`), with the same failures."""

    terminal_id: str
    merchant_id: str

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
    ) -> _T: ...


class QrLink:
    """The QR calls over a terminal's host link (see the module docstring); thread-safe as the link is."""

    def __init__(self, link: QrTransport) -> None:
        self.link = link

    def _ids(self) -> dict[str, str]:
        return {"terminal_id": self.link.terminal_id, "merchant_id": self.link.merchant_id}

    def _read_timeout(self, wait: int | None) -> float | None:
        if not wait:
            return None
        return wait + DEFAULT_READ_TIMEOUT

    # ------------------------------------------------------------------ consumer-presented codes

    def pay_by_code(self, reference: str, amount: int, currency: int, code: str) -> QrPayment:
        """Pay ``amount`` with the wallet payment code the customer's app shows (18 digits)."""
        _ident("reference", reference)
        _money(amount, currency)
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            raise ValueError("a wallet payment code is 18 digits")
        body = {**self._ids(), "reference": reference, "amount": amount, "currency": currency, "code": code}
        return self.link.exchange_json(
            "POST", "/v1/qr/payments", what=f"QR payment {reference}", idempotent=True, body=body,
            key=f"qr-pay:{reference}", parse=QrPayment.from_json,
        )  # fmt: skip

    def query(self, reference: str, *, wait: int | None = None) -> QrPayment:
        """The order of ``reference`` now (``unknown`` when the host has none); ``wait``: long poll while it waits."""
        _ident("reference", reference)
        return self.link.exchange_json(
            "GET", f"/v1/qr/payments/{reference}", what=f"QR query {reference}", idempotent=True,
            params=_wait(wait), read_timeout=self._read_timeout(wait), parse=QrPayment.from_json,
        )  # fmt: skip

    def cancel(self, reference: str, amount: int, currency: int) -> QrPayment:
        """Cancel the order of ``reference`` (reverse it when paid); ``amount`` and ``currency`` must be its own."""
        _ident("reference", reference)
        _money(amount, currency)
        body = {**self._ids(), "reference": reference, "amount": amount, "currency": currency}
        return self.link.exchange_json(
            "POST", "/v1/qr/payments/cancel", what=f"QR cancel {reference}", idempotent=True, body=body,
            key=f"qr-cancel:{reference}", parse=QrPayment.from_json,
        )  # fmt: skip

    # ------------------------------------------------------------------ merchant-presented orders

    def create_order(self, reference: str, amount: int, currency: int) -> QrOrder:
        """A merchant-presented order: its id and the data of the terminal's dynamic MPM code.

        ``reference`` is at most 25 characters: it is the code's reference label (62/05).
        """
        _ident("reference", reference)
        if len(reference) > MPM_REFERENCE_MAX:
            raise ValueError(f"an order's reference is at most {MPM_REFERENCE_MAX} characters (the MPM code's 62/05)")
        _money(amount, currency)
        body = {**self._ids(), "reference": reference, "amount": amount, "currency": currency}
        return self.link.exchange_json(
            "POST", "/v1/qr/orders", what=f"QR order {reference}", idempotent=True, body=body,
            key=f"qr-order:{reference}", parse=QrOrder.from_json,
        )  # fmt: skip

    def query_order(self, order_id: str, *, wait: int | None = None) -> QrPayment:
        """The order now; ``wait`` (0-30 s): answered when it stops being ``pending`` or after that long."""
        _ident("order id", order_id)
        return self.link.exchange_json(
            "GET", f"/v1/qr/orders/{order_id}", what=f"QR order query {order_id}", idempotent=True,
            params=_wait(wait), read_timeout=self._read_timeout(wait), parse=QrPayment.from_json,
        )  # fmt: skip

    def close_order(self, order_id: str) -> QrPayment:
        """Close the order: never charged afterwards. The answer may be ``paid``: the app paid first."""
        _ident("order id", order_id)
        return self.link.exchange_json(
            "POST", "/v1/qr/orders/close", what=f"QR order close {order_id}", idempotent=True,
            body={**self._ids(), "order_id": order_id}, key=f"qr-close:{order_id}", parse=QrPayment.from_json,
        )  # fmt: skip

    # ------------------------------------------------------------------ refunds

    def refund(self, refund_reference: str, original_reference: str, amount: int, currency: int) -> QrRefund:
        """Refund ``amount`` of the paid order ``original_reference`` to the wallet account that paid it."""
        _ident("refund reference", refund_reference)
        _ident("original reference", original_reference)
        _money(amount, currency)
        body = {
            **self._ids(), "refund_reference": refund_reference, "original_reference": original_reference,
            "amount": amount, "currency": currency,
        }  # fmt: skip
        return self.link.exchange_json(
            "POST", "/v1/qr/refunds", what=f"QR refund {refund_reference}", idempotent=True, body=body,
            key=f"qr-refund:{refund_reference}", parse=QrRefund.from_json,
        )  # fmt: skip
