"""The port's dataclasses as the JSON of docs/host-protocol.md, and the host's JSON back as the port's answers.

The host is untrusted input: every answer is checked field by field (types,
ranges, lengths, hex) and anything unexpected raises :class:`MalformedAnswer`
with a message that names the field.  The client treats a malformed answer like
a lost one: the result of the request is unknown.

Messages built here never contain card data: the host's own text is cleaned
(control characters dropped, digit runs that could be a PAN masked, length
capped) before it goes into an exception.

>>> from terminal.host import AnswerStatus
>>> authorisation_answer({"status": "approved", "response_code": "00", "approval_code": "A1B2C3",
...                       "host_reference": "H1", "arpc": None}).status is AnswerStatus.APPROVED
True
>>> authorisation_answer({"status": "maybe", "response_code": "00", "host_reference": "H1"})
Traceback (most recent call last):
...
host_link.wire.MalformedAnswer: status: expected one of approved, declined
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emv.pan import mask_text
from terminal.host import (
    Advice,
    AnswerStatus,
    AuthorisationRequest,
    BatchTotals,
    HostAnswer,
    HostRejected,
    Reversal,
    SettlementAnswer,
)

__all__ = [
    "MAX_ADVICES_PER_REQUEST",
    "EchoAnswer",
    "MalformedAnswer",
    "SignOnAnswer",
    "advice_json",
    "advice_results",
    "advices_json",
    "authorisation_answer",
    "authorisation_json",
    "batch_close_json",
    "clean_text",
    "echo_answer",
    "error_code",
    "error_text",
    "parameters_answer",
    "parse_json",
    "reversal_answer",
    "reversal_json",
    "settlement_answer",
    "sign_on_answer",
    "sign_on_json",
    "unrecognised_text",
]

#: The protocol accepts 1 to 100 advices per ``POST /v1/advices``.
MAX_ADVICES_PER_REQUEST = 100

_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")
_RESPONSE_CODE = re.compile(r"[0-9A-Za-z]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class MalformedAnswer(ValueError):
    """The host's answer does not follow the protocol; the message names the field."""


@dataclass(frozen=True)
class SignOnAnswer:
    host_time: str
    parameters_version: int
    host_reference: str


@dataclass(frozen=True)
class EchoAnswer:
    round_trip_seconds: float
    host_time: str
    host_reference: str


# ----------------------------------------------------------------------------- requests


def authorisation_json(request: AuthorisationRequest) -> dict[str, Any]:
    """An authorisation; ``pin`` (the online PIN block, its KSN and format) only when it has one."""
    body: dict[str, Any] = {
        "txn_id": request.txn_id,
        "kind": request.kind,
        "amount": request.amount,
        "currency": request.currency,
        "terminal_id": request.terminal_id,
        "merchant_id": request.merchant_id,
        "emv_data": request.emv_data.hex().upper(),
        "pan_token": request.pan_token,
        "original_txn_id": request.original_txn_id,
    }
    if request.pin is not None:
        body["pin"] = {
            "format": int(request.pin.format),
            "block": request.pin.block.hex().upper(),
            "ksn": request.pin.ksn.hex().upper(),
        }
    return body


def advice_json(advice: Advice) -> dict[str, Any]:
    """An advice; ``original_txn_id`` only when it has one (a body without it is the same as before it existed).

    The host digests each advice's body for its idempotency key, so an advice
    queued and first sent without the field keeps the same body when resent.
    """
    body = {
        "txn_id": advice.txn_id,
        "idempotency_key": advice.idempotency_key,
        "kind": advice.kind,
        "amount": advice.amount,
        "currency": advice.currency,
        "terminal_id": advice.terminal_id,
        "merchant_id": advice.merchant_id,
        "emv_data": advice.emv_data.hex().upper(),
        "pan_token": advice.pan_token,
        "created_at": advice.created_at,
        "retransmission": advice.retransmission,
    }
    if advice.original_txn_id is not None:
        body["original_txn_id"] = advice.original_txn_id
    return body


def advices_json(advices: Sequence[Advice]) -> dict[str, Any]:
    return {"advices": [advice_json(a) for a in advices]}


def reversal_json(reversal: Reversal) -> dict[str, Any]:
    return {
        "txn_id": reversal.txn_id,
        "amount": reversal.amount,
        "currency": reversal.currency,
        "terminal_id": reversal.terminal_id,
        "reason": reversal.reason,
        "retransmission": reversal.retransmission,
    }


def batch_close_json(totals: BatchTotals) -> dict[str, Any]:
    return {
        "batch_id": totals.batch_id,
        "terminal_id": totals.terminal_id,
        "lines": [
            {
                "scheme": line.scheme,
                "currency": line.currency,
                "kind": line.kind,
                "count": line.count,
                "amount": line.amount,
            }
            for line in totals.lines
        ],
    }


def sign_on_json(terminal_id: str, merchant_id: str, software_version: str) -> dict[str, Any]:
    return {"terminal_id": terminal_id, "merchant_id": merchant_id, "software_version": software_version}


# ----------------------------------------------------------------------------- parsing helpers


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ValueError(f"duplicate key {clean_text(key, 40)!r}")
            out[key] = value
        return out

    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=pairs, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedAnswer(f"the body is not JSON ({clean_text(str(exc), 120)})") from None


def clean_text(text: str, limit: int = 200) -> str:
    """Host text fit for an exception message or a log: printable, no PAN-like digit runs, capped."""
    text = _CONTROL.sub(" ", text)
    text = mask_text(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _object(doc: Any, where: str = "answer") -> Mapping[str, Any]:
    if not isinstance(doc, dict):
        raise MalformedAnswer(f"{where}: expected a JSON object")
    return doc


def _field(doc: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in doc:
        raise MalformedAnswer(f"{where}{name}: missing")
    return doc[name]


def _str(doc: Mapping[str, Any], name: str, *, where: str = "", limit: int = 64, optional: bool = False) -> Any:
    value = doc.get(name) if optional else _field(doc, name, where)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or _CONTROL.search(value):
        raise MalformedAnswer(f"{where}{name}: expected text of 1 to {limit} printable characters")
    return value


def _int(doc: Mapping[str, Any], name: str, *, where: str = "", low: int = 0, high: int = 999_999_999_999) -> int:
    value = _field(doc, name, where)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MalformedAnswer(f"{where}{name}: expected a whole number from {low} to {high}")
    return value


def _bool(doc: Mapping[str, Any], name: str, where: str = "") -> bool:
    value = _field(doc, name, where)
    if not isinstance(value, bool):
        raise MalformedAnswer(f"{where}{name}: expected true or false")
    return value


def _choice(doc: Mapping[str, Any], name: str, choices: Sequence[str], where: str = "") -> str:
    value = _field(doc, name, where)
    if value not in choices:
        raise MalformedAnswer(f"{where}{name}: expected one of {', '.join(choices)}")
    return str(value)


def _response_code(doc: Mapping[str, Any], where: str = "") -> str:
    value = _field(doc, "response_code", where)
    if not isinstance(value, str) or not _RESPONSE_CODE.fullmatch(value):
        raise MalformedAnswer(f"{where}response_code: expected two letters or digits")
    return value


def _hex_bytes(doc: Mapping[str, Any], name: str, where: str = "", max_bytes: int = 32) -> bytes | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _HEX.fullmatch(value) or not 0 < len(value) <= 2 * max_bytes:
        raise MalformedAnswer(f"{where}{name}: expected hex of 1 to {max_bytes} bytes")
    return bytes.fromhex(value)


# ----------------------------------------------------------------------------- answers


def authorisation_answer(doc: Any) -> HostAnswer:
    """``POST /v1/authorisations`` → 200."""
    d = _object(doc)
    status = AnswerStatus(_choice(d, "status", ("approved", "declined")))
    return HostAnswer(
        status=status,
        response_code=_response_code(d),
        approval_code=_str(d, "approval_code", limit=12, optional=True),
        host_reference=_str(d, "host_reference"),
        arpc=_hex_bytes(d, "arpc"),
        scripts=_hex_bytes(d, "issuer_scripts", max_bytes=512) or b"",
        issuer_authentication_data=_issuer_authentication_data(d),
    )


def _issuer_authentication_data(doc: Mapping[str, Any]) -> bytes | None:
    """91 for a chip card: 8 to 16 bytes (ARPC method 1: ARPC and ARC; method 2: ARPC, CSU, proprietary data)."""
    value = _hex_bytes(doc, "issuer_authentication_data", max_bytes=16)
    if value is not None and len(value) < 8:
        raise MalformedAnswer("issuer_authentication_data: expected hex of 8 to 16 bytes")
    return value


def reversal_answer(doc: Any) -> HostAnswer:
    """``POST /v1/reversals`` → 200: always an acknowledgement (status ``approved``)."""
    d = _object(doc)
    _choice(d, "status", ("approved",))
    if "message" in d:
        _str(d, "message", limit=500, optional=True)
    return HostAnswer(AnswerStatus.APPROVED, _response_code(d), host_reference=_str(d, "host_reference"))


def advice_results(doc: Any, advices: Sequence[Advice]) -> list[HostAnswer | HostRejected]:
    """``POST /v1/advices`` → 200: one result per advice, in order, checked against what was sent."""
    d = _object(doc)
    results = _field(d, "results", "")
    if not isinstance(results, list):
        raise MalformedAnswer("results: expected a list")
    if len(results) != len(advices):
        raise MalformedAnswer(f"results: {len(results)} results for {len(advices)} advices")
    out: list[HostAnswer | HostRejected] = []
    for i, (raw, advice) in enumerate(zip(results, advices, strict=True)):
        where = f"results[{i}]."
        r = _object(raw, f"results[{i}]")
        outcome = _choice(r, "outcome", ("accepted", "declined", "rejected"), where)
        ids = (_field(r, "txn_id", where), _field(r, "idempotency_key", where))
        # A rejected item the host could not read may come back without its ids (null).
        if ids != (advice.txn_id, advice.idempotency_key) and not (outcome == "rejected" and None in ids):
            raise MalformedAnswer(f"{where}txn_id/idempotency_key: not those of the advice sent in that place")
        message = _str(r, "message", where=where, limit=500, optional=True)
        if outcome == "rejected":
            text = clean_text(message) if message else "no reason given"
            out.append(HostRejected(f"advice {advice.txn_id} rejected by the host: {text}"))
            continue
        out.append(
            HostAnswer(
                status=AnswerStatus.APPROVED if outcome == "accepted" else AnswerStatus.DECLINED,
                response_code=_response_code(r, where),
                approval_code=_str(r, "approval_code", where=where, limit=12, optional=True),
                host_reference=_str(r, "host_reference", where=where, optional=True),
            )
        )
    return out


_DIFFERENCE_INTS = ("currency", "terminal_count", "terminal_amount", "host_count", "host_amount")


def settlement_answer(doc: Any) -> SettlementAnswer:
    """``POST /v1/batches/close`` → 200."""
    d = _object(doc)
    raw = _field(d, "differences", "")
    if not isinstance(raw, list):
        raise MalformedAnswer("differences: expected a list")
    differences: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        where = f"differences[{i}]."
        diff = _object(item, f"differences[{i}]")
        entry: dict[str, Any] = {"currency": _int(diff, "currency", where=where, low=1, high=999)}
        entry["kind"] = _choice(diff, "kind", ("sale", "refund"), where)
        for name in _DIFFERENCE_INTS[1:]:
            entry[name] = _int(diff, name, where=where, high=10**15)
        differences.append(entry)
    in_balance = _bool(d, "in_balance")
    if in_balance and differences:
        raise MalformedAnswer("in_balance: true with differences")
    return SettlementAnswer(in_balance, _str(d, "host_reference"), tuple(differences))


def sign_on_answer(doc: Any) -> SignOnAnswer:
    """``POST /v1/sign-on`` → 200."""
    d = _object(doc)
    return SignOnAnswer(
        host_time=_str(d, "host_time"),
        parameters_version=_int(d, "parameters_version", high=2**31),
        host_reference=_str(d, "host_reference"),
    )


def echo_answer(doc: Any, round_trip_seconds: float) -> EchoAnswer:
    """``GET /v1/echo`` → 200."""
    d = _object(doc)
    return EchoAnswer(round_trip_seconds, _str(d, "host_time"), _str(d, "host_reference"))


def parameters_answer(doc: Any) -> dict[str, Any]:
    """``GET /v1/parameters`` → 200: the shape only (:mod:`host_link.parameters` verifies the content)."""
    d = _object(doc)
    _int(d, "version", low=1, high=999_999)
    _str(d, "issued_at")
    if not isinstance(_field(d, "config", ""), dict):
        raise MalformedAnswer("config: expected an object")
    capks = _field(d, "capks", "")
    if not isinstance(capks, list) or not all(isinstance(k, dict) for k in capks):
        raise MalformedAnswer("capks: expected a list of objects")
    return dict(d)


def unrecognised_text(what: str, body: bytes) -> str:
    """One line for a ``401``: the host does not take this terminal's certificate, and what to do.

    >>> unrecognised_text("echo", b'{"error": "certificate_revoked", "message": "revoked on ..."}')
    "echo: the host revoked this terminal's certificate: enrol again with a new code (posterm enrol BUNDLE --force)"
    """
    again = "enrol again with a new code (posterm enrol BUNDLE --force)"
    code = error_code(body)
    if code == "certificate_revoked":
        return f"{what}: the host revoked this terminal's certificate: {again}"
    if code == "certificate_unknown":
        return f"{what}: the host does not know this terminal's certificate: {again}"
    return (
        f"{what}: the host does not recognise this terminal (401 {error_text(body)}): not enrolled, or its "
        "certificate was revoked or replaced; run 'posterm enrol BUNDLE'"
    )


def error_code(body: bytes) -> str | None:
    """The ``error`` word of the host's error body, if it has one."""
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    code = doc.get("error") if isinstance(doc, dict) else None
    return code if isinstance(code, str) else None


def error_text(body: bytes) -> str:
    """The host's ``{"error", "message"}`` as one cleaned line (whatever the body holds)."""
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "no error details"
    if not isinstance(doc, dict):
        return "no error details"
    code, message = doc.get("error"), doc.get("message")
    parts = [clean_text(str(x), 200) for x in (code, message) if isinstance(x, str | int) and not isinstance(x, bool)]
    return ": ".join(parts) if parts else "no error details"
