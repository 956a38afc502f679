"""The one APDU recorder: every command and answer through a transport, kept and told to observers.

pyscard's card-connection observer, for any :class:`~emv.apdu.ApduTransport`:
an :class:`ApduRecorder` wraps a transport, keeps each :class:`Exchange` (the
command, and the answer or why there was none) and hands it to its observers
as it completes.  Its users:

- Entry Point and the kernels keep the commands of a transaction with it
  (:attr:`emv.outcome.TransactionResult.commands`);
- ``posterm emv tap --record`` writes its exchanges as a trace file
  (:func:`terminal.trace.to_trace`);
- the diagnostics' APDU trace hears every exchange of every reader session
  through it (:func:`terminal.apdu_trace.observe`).

An observer that raises is passed over: watching must never break a payment.
``emv`` reads no clock; a recorder given a ``clock`` times each exchange with it.

>>> class Card:
...     def exchange(self, command: bytes) -> bytes:
...         if command[1] == 0xB2:
...             raise OSError("card removed")
...         return bytes.fromhex("9000")
>>> heard: list[Exchange] = []
>>> rec = ApduRecorder(Card(), observers=[heard.append], source="sim:")
>>> rec.exchange(bytes.fromhex("00A404000E")).hex()
'9000'
>>> rec.exchange(bytes.fromhex("00B2010C00"))
Traceback (most recent call last):
...
OSError: card removed
>>> [(e.command.hex(), e.response, e.error) for e in heard]
[('00a404000e', b'\\x90\\x00', None), ('00b2010c00', None, 'OSError: card removed')]
>>> heard == rec.exchanges and rec.commands == [e.command for e in heard]
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from emv.apdu import ApduTransport

__all__ = ["ApduRecorder", "Exchange", "ExchangeObserver", "redact_command"]


@dataclass(frozen=True)
class Exchange:
    """One command and its answer.

    ``response`` includes SW1 SW2; it is ``None`` when the card did not
    answer, and ``error`` then says why.  ``seconds`` is the time the card
    took (``None`` when the recorder has no clock); ``source`` names the
    reader, when the recorder was told it.
    """

    command: bytes
    response: bytes | None
    error: str | None = None
    seconds: float | None = None
    source: str = ""


ExchangeObserver = Callable[[Exchange], None]

# Commands whose data is a PIN block, in clear or enciphered: VERIFY (20), and
# CHANGE REFERENCE DATA / PIN CHANGE/UNBLOCK (24) of an issuer script.
_PIN_INS = frozenset({0x20, 0x24})


def redact_command(command: bytes) -> bytes:
    """The command as a recorder keeps it: the data of a PIN command zeroed, its length kept.

    The card gets the real command; what is recorded, observed, traced and
    returned in a result never holds a PIN block (in clear or enciphered).

    >>> redact_command(bytes.fromhex("0020008008241234FFFFFFFFFF")).hex().upper()
    '00200080080000000000000000'
    >>> redact_command(bytes.fromhex("00B2010C00")).hex().upper()
    '00B2010C00'
    """
    command = bytes(command)
    if len(command) <= 5 or command[1] not in _PIN_INS:
        return command
    lc = command[4]
    end = min(len(command), 5 + lc)
    return command[:5] + bytes(end - 5) + command[end:]


class ApduRecorder:
    """Wraps a transport; keeps every exchange (unless ``keep=False``) and tells the observers.

    ``observers`` may be appended to later.  ``keep=False`` is for a recorder
    that lives as long as a reader session and only reports: its
    :attr:`exchanges` stays empty.
    """

    def __init__(
        self,
        inner: ApduTransport,
        *,
        observers: Iterable[ExchangeObserver] = (),
        source: str = "",
        clock: Callable[[], float] | None = None,
        keep: bool = True,
    ) -> None:
        self.inner = inner
        self.observers: list[ExchangeObserver] = list(observers)
        self.source = source
        self.exchanges: list[Exchange] = []
        self._clock = clock
        self._keep = keep

    @property
    def commands(self) -> list[bytes]:
        """The commands sent, in order (answered or not)."""
        return [e.command for e in self.exchanges]

    def exchange(self, command: bytes) -> bytes:
        command = bytes(command)
        shown = redact_command(command)
        started = self._clock() if self._clock is not None else None
        try:
            response = self.inner.exchange(command)
        except Exception as exc:
            self._record(Exchange(shown, None, f"{type(exc).__name__}: {exc}", self._since(started), self.source))
            raise
        self._record(Exchange(shown, bytes(response), None, self._since(started), self.source))
        return response

    def _since(self, started: float | None) -> float | None:
        if started is None or self._clock is None:
            return None
        return self._clock() - started

    def _record(self, item: Exchange) -> None:
        if self._keep:
            self.exchanges.append(item)
        for observer in list(self.observers):
            try:
                observer(item)
            except Exception:  # an observer must not break the exchange it watches
                continue
