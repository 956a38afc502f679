"""APDU traces: what ``posterm emv tap --record`` writes, from an :class:`emv.recorder.ApduRecorder`.

The trace format (JSON), also read by the replay card::

    {"unpredictable_number": "ABABABAB", "date": "190819", "amount": 200,
     "currency": "0840", "transaction_type": "00",
     "exchanges": [{"command": "00A4...", "response": "6F...9000"}]}

Amount in minor units.  A trace holds card data as the card sent it (it is a
bug report for a test card); traces of real cards must not leave the terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from emv.recorder import Exchange

__all__ = ["TraceError", "read_trace_header", "to_trace"]


def to_trace(header: Mapping[str, Any], exchanges: Iterable[Exchange]) -> dict[str, Any]:
    """The trace of ``exchanges`` (an :class:`emv.recorder.ApduRecorder`'s) as a JSON-ready dict.

    A command the card did not answer is kept with ``"response": null``, so
    that a replay ends the same way (the card went silent there).

    >>> trace = to_trace({"amount": 200}, [Exchange(bytes.fromhex("00A4040000"), bytes.fromhex("6A82")),
    ...                                    Exchange(bytes.fromhex("80A8000000"), None, "CardRemovedError: gone")])
    >>> trace["amount"], trace["exchanges"][0], trace["exchanges"][1]
    (200, {'command': '00A4040000', 'response': '6A82'}, {'command': '80A8000000', 'response': None})
    """
    out = dict(header)
    out["exchanges"] = [
        {"command": e.command.hex().upper(), "response": None if e.response is None else e.response.hex().upper()}
        for e in exchanges
    ]
    return out


class TraceError(ValueError):
    """A trace file that cannot be used; the message says which part and why."""


def read_trace_header(path: str) -> dict[str, Any]:
    """The optional inputs at the top of a trace file, validated.

    Returns the keys present among ``unpredictable_number`` (bytes), ``date``
    (bytes), ``amount`` (int), ``currency`` (int) and ``transaction_type`` (int),
    and ``relay_entropies`` (list of bytes) when the trace has EXCHANGE RELAY
    RESISTANCE DATA commands.
    The file is read with :func:`terminal.limits.read_json_input`: at most
    :data:`~terminal.limits.MAX_TRACE_BYTES`, a regular file only.
    """
    from terminal.limits import MAX_TRACE_BYTES, InputFileError, read_json_input

    try:
        doc = read_json_input(path, MAX_TRACE_BYTES, "trace file")
    except InputFileError as exc:
        raise TraceError(str(exc)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("exchanges"), list):
        raise TraceError(f"trace file {path} has no 'exchanges' list")
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
    entropies = _relay_entropies(doc["exchanges"])
    if entropies:
        out["relay_entropies"] = entropies
    return out


def _relay_entropies(exchanges: list[Any]) -> list[bytes]:
    """The Terminal Relay Resistance Entropy of each EXCHANGE RELAY RESISTANCE DATA recorded
    (80 EA 00 00 04 <entropy> 00), in order: a replay sends the same (Book C-2 kernels may
    draw it apart from the unpredictable number of GET PROCESSING OPTIONS).

    >>> _relay_entropies([{"command": "80EA0000040102030400"}, {"command": "00B2010C00"}, "x"])
    [b'\\x01\\x02\\x03\\x04']
    """
    out: list[bytes] = []
    for ex in exchanges:
        text = ex.get("command") if isinstance(ex, dict) else None
        if not isinstance(text, str):
            continue
        try:
            command = bytes.fromhex(text)
        except ValueError:
            continue
        if len(command) >= 9 and command[:5] == bytes.fromhex("80EA000004"):
            out.append(command[5:9])
    return out


def _hex_field(value: Any, name: str, size: int) -> bytes:
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raise TraceError(f"trace field {name!r} is not hex: {value!r}") from None
    if len(raw) != size:
        raise TraceError(f"trace field {name!r} must be {size} bytes, got {len(raw)}")
    return raw
