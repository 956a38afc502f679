"""Replay cards: answer C-APDUs from a recorded trace.

Trace format (JSON)::

    {"unpredictable_number": "1A2B3C4D", "date": "251121", "amount": 1234,
     "currency": "0978", "transaction_type": "00",
     "exchanges": [{"command": "00A404000E...00", "response": "6F...9000"}, ...]}

A command is answered by the FIRST UNUSED recorded exchange whose CLA, INS, P1 and
P2 match (for SELECT also the command data, i.e. the name selected); each
recorded exchange answers once.  With no match the card answers 6A82.  A
recorded ``"response": null`` means the card did not answer that command (it
was taken away or went mute); replaying it raises :class:`CardMuteError`.  The
transaction fields are kept as given (they are what the terminal must reuse so
that the recorded cryptograms still verify); only the exchanges are checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator._bounded import read_json_file
from simulator.card import CardMuteError

__all__ = ["MAX_TRACE_BYTES", "RecordedExchange", "ReplayCard", "TraceError", "load_trace"]

MAX_TRACE_BYTES = 1 << 20
"""The largest trace file read: 1 MiB, the terminal's bound (``terminal.limits.MAX_TRACE_BYTES``).

A contactless transaction recorded is under 25 KiB; the card side keeps its
own copy of the number because it imports nothing of the terminal's."""

SW_NOT_FOUND = b"\x6a\x82"
SW_WRONG_LENGTH = b"\x67\x00"
_INS_SELECT = 0xA4


class TraceError(ValueError):
    """A trace file is missing, not JSON, or malformed."""


@dataclass(frozen=True)
class RecordedExchange:
    command: bytes
    response: bytes | None  # None: the card did not answer this command (it went mute)


def _command_data(command: bytes) -> bytes:
    """The data field of a short C-APDU (empty for cases 1 and 2)."""
    if len(command) <= 5:
        return b""
    lc = command[4]
    return command[5 : 5 + lc]


def _hex_field(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise TraceError(f"{where}: expected a hex string, got {type(value).__name__}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise TraceError(f"{where}: not valid hex: {value[:40]!r}") from None


def _exchanges(trace: Mapping[str, Any]) -> list[RecordedExchange]:
    if not isinstance(trace, Mapping):
        raise TraceError("a trace must be a JSON object")
    raw = trace.get("exchanges")
    if not isinstance(raw, list):
        raise TraceError("trace has no list 'exchanges'")
    out: list[RecordedExchange] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or "command" not in item or "response" not in item:
            raise TraceError(f"exchanges[{i}]: needs 'command' and 'response'")
        command = _hex_field(item["command"], f"exchanges[{i}].command")
        if len(command) < 4:
            raise TraceError(f"exchanges[{i}].command: shorter than a 4-byte header")
        if item["response"] is None:
            out.append(RecordedExchange(command, None))
            continue
        response = _hex_field(item["response"], f"exchanges[{i}].response")
        if len(response) < 2:
            raise TraceError(f"exchanges[{i}].response: no status word")
        out.append(RecordedExchange(command, response))
    return out


class ReplayCard:
    """A card that answers from a recorded trace (see the module doc for the rules)."""

    def __init__(self, trace: Mapping[str, Any]) -> None:
        self.exchanges = _exchanges(trace)
        self.trace = dict(trace)
        self.compute_seconds = 0.0
        self._used = [False] * len(self.exchanges)

    @property
    def unused(self) -> list[RecordedExchange]:
        """Recorded exchanges nobody asked for (yet)."""
        return [e for e, used in zip(self.exchanges, self._used, strict=True) if not used]

    def exchange(self, command: bytes) -> bytes:
        command = bytes(command)
        if len(command) < 4:
            return SW_WRONG_LENGTH
        header = command[:4]
        for i, recorded in enumerate(self.exchanges):
            if self._used[i] or recorded.command[:4] != header:
                continue
            if header[1] == _INS_SELECT and _command_data(recorded.command) != _command_data(command):
                continue
            self._used[i] = True
            if recorded.response is None:
                raise CardMuteError("the recorded card did not answer this command")
            return recorded.response
        return SW_NOT_FOUND


def load_trace(path: str | Path) -> dict[str, Any]:
    """Read and check a trace file; errors say which file and what is wrong.

    At most :data:`MAX_TRACE_BYTES` are read, from a regular file only.
    """
    p = Path(path)
    trace = read_json_file(p, MAX_TRACE_BYTES, "trace file", TraceError)
    if not isinstance(trace, dict):
        raise TraceError(f"trace file {p}: a trace must be a JSON object")
    try:
        _exchanges(trace)
    except TraceError as exc:
        raise TraceError(f"trace file {p}: {exc}") from None
    return trace
