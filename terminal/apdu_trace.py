"""APDU traces of any reader, for diagnostics and bug reports, with card numbers masked.

In the spirit of pyscard's card-connection observers: :func:`observe` wraps a
reader so that every exchange of every session it opens is reported to its
observers, whatever the adapter; each session records through the one APDU
recorder, :class:`emv.recorder.ApduRecorder`.  :class:`ApduTrace` is an
observer that keeps the last exchanges in memory and shows them only masked,
by :func:`emv.pan.mask_command` and :func:`emv.pan.mask_response`: the PAN,
track 2 and track 1 equivalent data and the cardholder name are masked inside
any TLV they can parse (and any value holding 12 or more digits as text), a
PIN block is hidden, and any run of 12 or more decimal digits is masked in the
hex of what they cannot parse.

>>> trace = ApduTrace()
>>> trace.on_exchange(Exchange(bytes.fromhex("00B2010C00"),
...     bytes.fromhex("70105A0847617300000000105F2403301231") + b"\\x90\\x00", seconds=0.001, source="sim:"))
>>> trace.lines()[0].split("  ")[:3]
['sim:', '> 00B2010C 00', '< 7010 5A08476173******0010 5F2403301231 9000']
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

from emv.pan import mask_command, mask_response
from emv.recorder import ApduRecorder, Exchange
from terminal.ports import CancelToken, CardReader, CardSession

__all__ = ["ApduObserver", "ApduTrace", "ObservedReader", "observe"]


class ApduObserver(Protocol):
    def on_exchange(self, exchange: Exchange) -> None: ...


class ApduTrace:
    """An observer keeping the last ``maxlen`` exchanges; shown only masked."""

    def __init__(self, maxlen: int = 1000) -> None:
        self._entries: collections.deque[tuple[float, Exchange]] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def on_exchange(self, exchange: Exchange) -> None:
        at = time.time()
        with self._lock:
            self._entries.append((at, exchange))

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
                "at": round(at, 3),
                "reader": e.source,
                "command": mask_command(e.command),
                "response": None if e.response is None else mask_response(e.response),
                "ms": None if e.seconds is None else round(e.seconds * 1000, 3),
                "error": e.error,
            }
            for at, e in entries
        ]

    def lines(self) -> list[str]:
        out = []
        for e in self.to_json():
            answer = e["response"] if e["response"] is not None else f"(no answer: {e['error']})"
            took = "-" if e["ms"] is None else f"{e['ms']:.1f}"
            out.append(f"{e['reader']}  > {e['command']}  < {answer}  {took} ms")
        return out


class _ObservedSession:
    """A card session whose exchanges go through an :class:`~emv.recorder.ApduRecorder` that reports them."""

    def __init__(self, session: CardSession, reader: str, observers: Iterable[ApduObserver]) -> None:
        self._session = session
        self._recorder = ApduRecorder(
            session,
            observers=[observer.on_exchange for observer in observers],
            source=reader,
            clock=time.perf_counter,
            keep=False,  # the observers keep what they want
        )

    @property
    def atr(self) -> bytes:
        return self._session.atr

    def exchange(self, command: bytes) -> bytes:
        return self._recorder.exchange(command)

    def close(self) -> None:
        self._session.close()


class ObservedReader:
    """A reader whose sessions report every exchange to the observers (see :func:`observe`)."""

    def __init__(self, reader: CardReader, observers: Iterable[ApduObserver]) -> None:
        self.reader = reader
        self.url = reader.url
        self.observers = list(observers)

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        return _ObservedSession(self.reader.wait_for_card(timeout, cancel), self.url, self.observers)

    def wait_for_insert(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        """A chip card inserted after "try another interface" (readers that have ``wait_for_insert``), observed."""
        inner = self.reader.wait_for_insert(timeout, cancel)  # type: ignore[attr-defined]
        return _ObservedSession(inner, self.url, self.observers)

    def close(self) -> None:
        self.reader.close()

    def __getattr__(self, name: str) -> Any:  # the adapter's own extras (e.g. the simulator's card)
        return getattr(self.reader, name)


def observe(reader: CardReader, *observers: ApduObserver) -> ObservedReader:
    """Wrap ``reader`` so that its exchanges reach ``observers``.

    More can be appended later (to :attr:`ObservedReader.observers`, or by
    observing the observed reader again); they hear the sessions opened after.
    An observer that raises is passed over (see :mod:`emv.recorder`).
    """
    if isinstance(reader, ObservedReader):
        reader.observers.extend(observers)
        return reader
    return ObservedReader(reader, observers)
