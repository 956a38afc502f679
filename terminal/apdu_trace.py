"""APDU traces of any reader, for diagnostics and bug reports, with card numbers masked.

In the spirit of pyscard's card-connection observers: :func:`observe` wraps a
reader so that every exchange of every session it opens is reported to its
observers, whatever the adapter.  :class:`ApduTrace` is an observer that
keeps the last exchanges in memory and shows them masked: the PAN, track 2
and track 1 equivalent data and the cardholder name are masked inside any
TLV it can parse (and any value holding 13 to 19 digits as text), and any
run of 13 to 19 decimal digits in the hex of what it cannot parse.

>>> trace = ApduTrace()
>>> trace.on_exchange(Exchange("sim:", bytes.fromhex("00B2010C00"),
...     bytes.fromhex("70105A0847617300000000105F2403301231") + b"\\x90\\x00", 0.001))
>>> trace.lines()[0].split("  ")[1:3]
['> 00B2010C00', '< 7010 5A08476173******0010 5F2403301231 9000']
>>> mask_hex(bytes.fromhex("6F1B840E325041592E5359532E4444463031A5094F07A0000000031010"))
'6F1B 840E325041592E5359532E4444463031 A509 4F07A0000000031010'
"""

from __future__ import annotations

import collections
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from emv import tlv
from emv.outcome import mask_pan
from terminal.ports import CancelToken, CardReader, CardSession

__all__ = ["ApduObserver", "ApduTrace", "Exchange", "ObservedReader", "mask_hex", "observe"]

# Tags whose values are card numbers or the cardholder's name.
_PAN_TAGS = {0x5A, 0x9F6B}  # PAN; track 2 data (Mastercard)
_TRACK2_TAGS = {0x57}
_NAME_TAGS = {0x5F20, 0x56, 0x9F1F, 0x9F0B}  # cardholder name, track 1 equivalent, track 1 discretionary
_DIGITS = re.compile(r"\d{13,19}")


@dataclass(frozen=True)
class Exchange:
    """One command and its answer (``None`` when the card did not answer: ``error`` says why)."""

    reader: str
    command: bytes
    response: bytes | None
    seconds: float
    error: str | None = None
    at: float = field(default_factory=time.time)


class ApduObserver(Protocol):
    def on_exchange(self, exchange: Exchange) -> None: ...


def _mask_value(tag: int, value: bytes) -> str:
    if tag in _PAN_TAGS or tag in _TRACK2_TAGS:
        digits = value.hex().upper().rstrip("F")
        pan, sep, rest = digits.partition("D")
        return mask_pan(pan) + ("D" + "*" * len(rest) if sep else "")
    if tag in _NAME_TAGS:
        return "*" * (2 * len(value))
    # Another tag's value shows as it is (AIDs, cryptograms and labels are no secret), unless it
    # carries a card number as text (track 1 style data under a proprietary tag, say).
    if _DIGITS.search(value.decode("latin-1")):
        return "*" * (2 * len(value))
    return value.hex().upper()


def _mask_tlv(objects: Iterable[tlv.Tlv]) -> list[str]:
    out: list[str] = []
    for obj in objects:
        head = tlv.encode_tag(obj.tag).hex().upper() + tlv.encode_length(len(obj.value)).hex().upper()
        if obj.children is not None:
            out.append(" ".join([head, *_mask_tlv(obj.children)]))
        else:
            out.append(head + _mask_value(obj.tag, obj.value))
    return out


def mask_hex(data: bytes) -> str:
    """Hex of ``data`` with card numbers and names masked (TLV where it parses, digit runs anyway)."""
    try:
        objects = tlv.decode(data)
    except tlv.TlvError:
        objects = []
    if objects:
        return " ".join(_mask_tlv(objects))
    return _DIGITS.sub(lambda m: mask_pan(m.group(0)), data.hex().upper())


def _mask_response(response: bytes) -> str:
    if len(response) < 2:
        return response.hex().upper()
    body, sw = response[:-2], response[-2:].hex().upper()
    return (mask_hex(body) + " " + sw) if body else sw


class ApduTrace:
    """An observer keeping the last ``maxlen`` exchanges; shown only masked."""

    def __init__(self, maxlen: int = 1000) -> None:
        self._entries: collections.deque[Exchange] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def on_exchange(self, exchange: Exchange) -> None:
        with self._lock:
            self._entries.append(exchange)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def to_json(self) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(self._entries)
        return [
            {
                "at": round(e.at, 3),
                "reader": e.reader,
                "command": mask_hex(e.command),
                "response": None if e.response is None else _mask_response(e.response),
                "ms": round(e.seconds * 1000, 3),
                "error": e.error,
            }
            for e in entries
        ]

    def lines(self) -> list[str]:
        out = []
        for e in self.to_json():
            answer = e["response"] if e["response"] is not None else f"(no answer: {e['error']})"
            out.append(f"{e['reader']}  > {e['command']}  < {answer}  {e['ms']:.1f} ms")
        return out


class _ObservedSession:
    def __init__(self, session: CardSession, reader: str, notify: Callable[[Exchange], None]) -> None:
        self._session = session
        self._reader = reader
        self._notify = notify

    @property
    def atr(self) -> bytes:
        return self._session.atr

    def exchange(self, command: bytes) -> bytes:
        started = time.perf_counter()
        try:
            response = self._session.exchange(command)
        except Exception as exc:
            self._notify(Exchange(self._reader, bytes(command), None, time.perf_counter() - started, str(exc)))
            raise
        self._notify(Exchange(self._reader, bytes(command), bytes(response), time.perf_counter() - started))
        return response

    def close(self) -> None:
        self._session.close()


class ObservedReader:
    """A reader whose sessions report every exchange to the observers (see :func:`observe`)."""

    def __init__(self, reader: CardReader, observers: Iterable[ApduObserver]) -> None:
        self.reader = reader
        self.url = reader.url
        self.observers = list(observers)

    def _notify(self, exchange: Exchange) -> None:
        for observer in list(self.observers):
            try:
                observer.on_exchange(exchange)
            except Exception:  # a broken observer must not break a payment
                continue

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        return _ObservedSession(self.reader.wait_for_card(timeout, cancel), self.url, self._notify)

    def close(self) -> None:
        self.reader.close()

    def __getattr__(self, name: str) -> Any:  # the adapter's own extras (e.g. the simulator's card)
        return getattr(self.reader, name)


def observe(reader: CardReader, *observers: ApduObserver) -> ObservedReader:
    """Wrap ``reader`` so that its exchanges reach ``observers`` (more can be appended later)."""
    if isinstance(reader, ObservedReader):
        reader.observers.extend(observers)
        return reader
    return ObservedReader(reader, observers)
