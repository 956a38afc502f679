"""APDU traces: an observer transport that records every exchange.

The trace format (JSON), also read by the replay card::

    {"unpredictable_number": "ABABABAB", "date": "190819", "amount": 200,
     "currency": "0840", "transaction_type": "00",
     "exchanges": [{"command": "00A4...", "response": "6F...9000"}]}

Amount in minor units.  A trace holds card data as the card sent it (it is a
bug report for a test card); traces of real cards must not leave the terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emv.apdu import ApduTransport

__all__ = ["Exchange", "RecordingTransport", "TraceError", "read_trace_header"]


@dataclass(frozen=True)
class Exchange:
    command: bytes
    response: bytes | None  # None: the card did not answer (the error is in ``error``)
    error: str | None = None


@dataclass
class RecordingTransport:
    """Wraps a transport; keeps every exchange and tells observers about it.

    Observers get each :class:`Exchange` as it completes (pyscard's
    card-connection observer, in small).
    """

    inner: ApduTransport
    exchanges: list[Exchange] = field(default_factory=list)
    observers: list[Callable[[Exchange], None]] = field(default_factory=list)

    def exchange(self, command: bytes) -> bytes:
        try:
            response = self.inner.exchange(command)
        except Exception as exc:
            self._record(Exchange(bytes(command), None, f"{type(exc).__name__}: {exc}"))
            raise
        self._record(Exchange(bytes(command), bytes(response)))
        return response

    def _record(self, item: Exchange) -> None:
        self.exchanges.append(item)
        for observer in self.observers:
            observer(item)

    def to_trace(self, header: dict[str, Any]) -> dict[str, Any]:
        """The trace as a JSON-ready dict.

        A command the card did not answer is kept with ``"response": null``, so
        that a replay ends the same way (the card went silent there).
        """
        out = dict(header)
        out["exchanges"] = [
            {"command": e.command.hex().upper(), "response": e.response.hex().upper() if e.response else None}
            for e in self.exchanges
        ]
        return out


class TraceError(ValueError):
    """A trace file that cannot be used; the message says which part and why."""


def read_trace_header(path: str) -> dict[str, Any]:
    """The optional inputs at the top of a trace file, validated.

    Returns the keys present among ``unpredictable_number`` (bytes), ``date``
    (bytes), ``amount`` (int), ``currency`` (int) and ``transaction_type`` (int).
    """
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except FileNotFoundError:
        raise TraceError(f"trace file {path!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"trace file {path!r} cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise TraceError(f"trace file {path!r} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("exchanges"), list):
        raise TraceError(f"trace file {path!r} has no 'exchanges' list")
    out: dict[str, Any] = {}
    for key, size in (("unpredictable_number", 4), ("date", 3)):
        if key in doc:
            out[key] = _hex_field(doc[key], key, size)
    if "amount" in doc:
        if not isinstance(doc["amount"], int) or isinstance(doc["amount"], bool) or doc["amount"] < 0:
            raise TraceError("trace field 'amount' must be a whole number of minor units")
        out["amount"] = doc["amount"]
    for key in ("currency", "transaction_type"):
        if key in doc:
            text = str(doc[key])
            if not text.isdigit():
                raise TraceError(f"trace field {key!r} must be digits, got {doc[key]!r}")
            out[key] = int(text) if key == "currency" else int(text, 16)
    return out


def _hex_field(value: Any, name: str, size: int) -> bytes:
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raise TraceError(f"trace field {name!r} is not hex: {value!r}") from None
    if len(raw) != size:
        raise TraceError(f"trace field {name!r} must be {size} bytes, got {len(raw)}")
    return raw
