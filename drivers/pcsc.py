"""PC/SC card readers through pyscard: contact and contactless readers that pcscd serves (``pcsc:`` URLs).

URLs::

    pcsc:                         the first reader pcscd reports
    pcsc:Virtual PCD 00 00        a reader by name (percent-decoded; a unique prefix is enough)
    pcsc:ACS ACR122U?answer-timeout=2

``answer-timeout=SECONDS`` (default 5) is how long an exchange waits for the
card before the card counts as gone ("stopped answering"); ``0`` waits for
ever.  A reader name holding ``%`` or ``?`` is written percent-encoded.

The adapter talks to pcscd with pyscard's thin wrapper of the PC/SC API
(:mod:`smartcard.scard`), not its object layer, so that every PC/SC return
code is seen and turned into one of the port's named errors through
:data:`PCSC_ERRORS`: a card taken away is :class:`~terminal.ports.CardRemovedError`,
a reader unplugged or pcscd gone is :class:`~terminal.ports.DeviceGone`.

Why a thread per card session: pcscd's drivers wait for the card inside
``SCardTransmit``.  A real reader's driver gives up after the card's waiting
time, but vsmartcard's vpcd driver waits for ever for a virtual card that
went mute, and a C call that never returns cannot be interrupted.  The
session therefore makes its PC/SC calls in its own daemon thread and gives up
after the answer timeout; the thread finishes the call whenever pcscd returns
(the card removed, the reader unplugged) and then releases the card.  The
reader does not connect to a new card while such a call is still pending.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from emv.apdu import CardCommunicationError
from emv.pan import mask_hex
from terminal.ports import CancelToken, CardRemovedError, DeviceError, DeviceGone, NoCardError, WaitCancelled

__all__ = [
    "DEFAULT_ANSWER_TIMEOUT",
    "PCSC_ERRORS",
    "PcscCode",
    "PcscReader",
    "PcscSession",
    "error_for",
    "reader_url",
]

DEFAULT_ANSWER_TIMEOUT = 5.0  # seconds; longer than any real card's slowest command (RSA in GENERATE AC)
POLL_SLICE = 0.1  # seconds a SCardGetStatusChange call blocks, so that a cancel is seen quickly

PCSCD_HINT = (
    "start it as root: 'pcscd' (or 'pcscd --foreground' where there is no systemd; "
    "'systemctl start pcscd.socket' where there is); "
    "'posterm sim card PROFILE --via vpcd' starts one with the virtual reader"
)

# PC/SC return codes and reader states (pcsc-lite's values, also Windows').
SCARD_S_SUCCESS = 0x00000000
SCARD_E_CANCELLED = 0x80100002
SCARD_E_INVALID_HANDLE = 0x80100003
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_STATE_CHANGED = 0x0002
SCARD_STATE_UNKNOWN = 0x0004
SCARD_STATE_PRESENT = 0x0020
SCARD_STATE_EXCLUSIVE = 0x0080
SCARD_STATE_MUTE = 0x0200
SCARD_SCOPE_USER = 0
SCARD_SHARE_SHARED = 2
SCARD_PROTOCOL_T0 = 1
SCARD_PROTOCOL_T1 = 2
SCARD_UNPOWER_CARD = 2
_PROTOCOLS = {SCARD_PROTOCOL_T0: "T=0", SCARD_PROTOCOL_T1: "T=1"}


@dataclass(frozen=True)
class PcscCode:
    """One PC/SC return code: its name, the port error it becomes, and what it means to a person."""

    code: int
    name: str
    error: type[Exception]
    text: str


# What each PC/SC code means here.  ``CardRemovedError``: the card is gone or no
# longer answers (the transaction ends with "present card again");
# ``DeviceGone``: the reader or pcscd is; ``DeviceError``: the reader cannot be
# used as asked.  During an exchange every failure is a card communication
# error (see :meth:`PcscSession.exchange`), so that the kernel ends the
# transaction in a defined outcome whatever pcscd says.
_TABLE = (
    # the card
    PcscCode(0x80100069, "SCARD_W_REMOVED_CARD", CardRemovedError, "the card was removed"),
    PcscCode(0x8010000C, "SCARD_E_NO_SMARTCARD", CardRemovedError, "there is no card in the reader"),
    PcscCode(0x80100068, "SCARD_W_RESET_CARD", CardRemovedError, "the card was reset (by another application?)"),
    PcscCode(0x80100067, "SCARD_W_UNPOWERED_CARD", CardRemovedError, "the card is not powered"),
    PcscCode(
        0x80100066, "SCARD_W_UNRESPONSIVE_CARD", CardRemovedError, "the card stopped answering (no answer to reset)"
    ),
    PcscCode(0x8010000A, "SCARD_E_TIMEOUT", CardRemovedError, "the card stopped answering (timeout)"),
    PcscCode(0x80100007, "SCARD_F_WAITED_TOO_LONG", CardRemovedError, "the card stopped answering (waited too long)"),
    PcscCode(
        0x80100016,
        "SCARD_E_NOT_TRANSACTED",
        CardRemovedError,
        "the exchange with the card failed (it left the field or stopped answering)",
    ),
    PcscCode(0x8010002F, "SCARD_E_COMM_DATA_LOST", CardRemovedError, "data from the card was lost"),
    PcscCode(0x80100065, "SCARD_W_UNSUPPORTED_CARD", CardRemovedError, "the reader cannot talk to this card (its ATR)"),
    PcscCode(0x8010001C, "SCARD_E_CARD_UNSUPPORTED", CardRemovedError, "the card does not meet the reader's needs"),
    PcscCode(0x80100015, "SCARD_E_INVALID_ATR", CardRemovedError, "the card's ATR is not valid"),
    PcscCode(0x8010000F, "SCARD_E_PROTO_MISMATCH", CardRemovedError, "the card speaks neither T=0 nor T=1"),
    PcscCode(0x80100008, "SCARD_E_INSUFFICIENT_BUFFER", CardRemovedError, "the card's answer is longer than allowed"),
    # the reader, pcscd
    PcscCode(0x80100017, "SCARD_E_READER_UNAVAILABLE", DeviceGone, "the reader is unavailable (unplugged?)"),
    PcscCode(0x80100009, "SCARD_E_UNKNOWN_READER", DeviceGone, "pcscd does not know this reader (unplugged?)"),
    PcscCode(0x8010002E, "SCARD_E_NO_READERS_AVAILABLE", DeviceGone, "pcscd reports no reader"),
    PcscCode(0x8010001D, "SCARD_E_NO_SERVICE", DeviceGone, "pcscd is not running"),
    PcscCode(0x8010001E, "SCARD_E_SERVICE_STOPPED", DeviceGone, "pcscd stopped"),
    PcscCode(0x80100013, "SCARD_F_COMM_ERROR", DeviceGone, "the connection to pcscd broke (pcscd stopped?)"),
    PcscCode(
        0x80100003, "SCARD_E_INVALID_HANDLE", DeviceGone, "the PC/SC handle is no longer valid (pcscd restarted?)"
    ),
    PcscCode(0x80100018, "SCARD_P_SHUTDOWN", DeviceGone, "the system is shutting down"),
    PcscCode(0x80100012, "SCARD_E_SYSTEM_CANCELLED", DeviceGone, "the system cancelled the action (logoff, shutdown)"),
    # using the reader
    PcscCode(0x8010000B, "SCARD_E_SHARING_VIOLATION", DeviceError, "another application holds the card exclusively"),
    PcscCode(0x80100010, "SCARD_E_NOT_READY", DeviceError, "the reader or the card is not ready"),
    PcscCode(0x80100031, "SCARD_E_SERVER_TOO_BUSY", DeviceError, "pcscd is too busy"),
    PcscCode(0x80100006, "SCARD_E_NO_MEMORY", DeviceError, "pcscd ran out of memory"),
    PcscCode(0x80100004, "SCARD_E_INVALID_PARAMETER", DeviceError, "pcscd refused a parameter"),
    PcscCode(0x80100011, "SCARD_E_INVALID_VALUE", DeviceError, "pcscd refused a value"),
    PcscCode(0x80100005, "SCARD_E_INVALID_TARGET", DeviceError, "pcscd refused the target"),
    PcscCode(0x8010001F, "SCARD_E_UNSUPPORTED_FEATURE", DeviceError, "the reader does not support this"),
    PcscCode(0x8010001A, "SCARD_E_READER_UNSUPPORTED", DeviceError, "the reader driver does not support this"),
    PcscCode(0x80100001, "SCARD_F_INTERNAL_ERROR", DeviceError, "pcscd reported an internal error"),
    PcscCode(0x80100014, "SCARD_F_UNKNOWN_ERROR", DeviceError, "pcscd reported an unknown error"),
    PcscCode(0x80100002, "SCARD_E_CANCELLED", WaitCancelled, "the wait was cancelled"),
)
PCSC_ERRORS: Mapping[int, PcscCode] = {entry.code: entry for entry in _TABLE}


def error_for(code: int, where: str = "") -> Exception:
    """The port error for a PC/SC return code, its message naming the code (``where``: which reader/action)."""
    code &= 0xFFFFFFFF
    entry = PCSC_ERRORS.get(code)
    prefix = f"{where}: " if where else ""
    if entry is None:
        return DeviceError(f"{prefix}PC/SC error 0x{code:08X}")
    text = entry.text
    if entry.code == SCARD_E_NO_SERVICE:
        text = f"{text}; {PCSCD_HINT}"
    return entry.error(f"{prefix}{text} ({entry.name})")


def _exchange_error(code: int, where: str) -> CardCommunicationError:
    """During an exchange every failure ends the transaction: the card or the reader is gone."""
    error = error_for(code, where)
    if isinstance(error, CardCommunicationError):
        return error
    return CardRemovedError(str(error))


def _scard() -> Any:
    """pyscard's PC/SC wrapper, imported on first use (it loads libpcsclite)."""
    try:
        from smartcard import scard
    except ImportError as exc:  # no pyscard, or no libpcsclite for it to load
        raise DeviceError(
            f"PC/SC is not available: {exc} (install pyscard and the PC/SC library: apt-get install libpcsclite1)"
        ) from exc
    return scard


def _establish(where: str) -> Any:
    hresult, context = _scard().SCardEstablishContext(SCARD_SCOPE_USER)
    if hresult != SCARD_S_SUCCESS:
        raise error_for(hresult, where)
    return context


def _release(context: Any) -> None:
    with contextlib.suppress(Exception):  # pcscd already gone: nothing left to release
        _scard().SCardReleaseContext(context)


def _list_readers(context: Any, where: str) -> list[str]:
    hresult, names = _scard().SCardListReaders(context, [])
    if _is(hresult, SCARD_E_NO_READERS_AVAILABLE):
        return []
    if hresult != SCARD_S_SUCCESS:
        raise error_for(hresult, where)
    return [str(name) for name in names]


def _is(hresult: int, code: int) -> bool:
    return (hresult & 0xFFFFFFFF) == code


def reader_url(name: str) -> str:
    """The ``pcsc:`` URL of a reader name (only ``%`` and ``?`` are encoded, so the name stays readable)."""
    return "pcsc:" + name.replace("%", "%25").replace("?", "%3F")


def _parse_url(url: str) -> tuple[str, float | None]:
    scheme, sep, rest = url.partition(":")
    if scheme != "pcsc" or not sep:
        raise DeviceError(f"{url!r} is not a pcsc: URL (pcsc: or pcsc:READER NAME)")
    path, _, query = rest.partition("?")
    answer_timeout: float | None = DEFAULT_ANSWER_TIMEOUT
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key != "answer-timeout":
            raise DeviceError(f"{url!r}: unknown option {key!r} (answer-timeout=SECONDS)")
        try:
            seconds = float(value)
        except ValueError:
            raise DeviceError(f"{url!r}: answer-timeout must be a number of seconds, not {value!r}") from None
        if not 0 <= seconds < 86400:  # also refuses nan and inf
            raise DeviceError(f"{url!r}: answer-timeout must be from 0 to 86400 seconds")
        answer_timeout = seconds or None
    return unquote(path), answer_timeout


def _choose(wanted: str, names: list[str], url: str) -> str:
    if not names:
        raise DeviceError(f"{url!r}: pcscd reports no reader (is one plugged in?)")
    if not wanted:
        return names[0]
    if wanted in names:
        return wanted
    matches = [name for name in names if name.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(repr(name) for name in names)
    if matches:
        raise DeviceError(f"{url!r} names more than one reader: {', '.join(map(repr, matches))}")
    raise DeviceError(f"{url!r}: no such reader; pcscd reports {listed}")


class _Stuck(Exception):
    """A PC/SC call did not return in time (it goes on in the session's thread)."""


@dataclass
class _Job:
    call: Callable[[], Any]
    done: threading.Event
    result: Any = None
    error: BaseException | None = None


class _CallThread:
    """A daemon thread making one card session's PC/SC calls, so that a call pcscd never ends can be left behind.

    Jobs run in order; :meth:`finish` queues the clean-up after whatever is still
    running, so the card is released as soon as a stuck call returns.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.stuck = False
        self._thread = threading.Thread(target=self._run, name=f"pcsc {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job.result = job.call()
            except BaseException as exc:  # handed to the caller
                job.error = exc
            job.done.set()

    def call(self, function: Callable[[], Any], timeout: float | None) -> Any:
        """Run ``function`` in the thread; :class:`_Stuck` if it has not returned after ``timeout`` seconds."""
        job = _Job(function, threading.Event())
        self._jobs.put(job)
        if not job.done.wait(timeout):
            self.stuck = True
            raise _Stuck
        if job.error is not None:
            raise job.error
        return job.result

    def finish(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` after the pending calls, then end the thread."""

        def quietly() -> None:
            with contextlib.suppress(Exception):  # pcscd or the card already gone: nothing left to release
                cleanup()

        self._jobs.put(_Job(quietly, threading.Event()))
        self._jobs.put(None)

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end; True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class PcscSession:
    """A card connected through pcscd: ``exchange`` sends a command APDU and returns the raw response APDU.

    61xx and 6Cxx are returned as they are (the EMV layer answers them); a
    response without a status word means the card left the field.
    """

    def __init__(
        self,
        reader: str,
        calls: _CallThread,
        context: Any,
        card: Any,
        protocol: int,
        atr: bytes,
        answer_timeout: float | None,
        on_left_pending: Callable[[_CallThread], None] = lambda calls: None,
    ) -> None:
        self.reader = reader
        self._on_left_pending = on_left_pending
        self._calls = calls
        self._context = context
        self._card = card
        self._protocol = protocol
        self._atr = atr
        self._answer_timeout = answer_timeout
        self._gone: CardCommunicationError | None = None
        self._closed = False

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def protocol(self) -> str:
        """``T=0`` or ``T=1``: what pcscd agreed with the card."""
        return _PROTOCOLS.get(self._protocol, f"protocol {self._protocol}")

    def exchange(self, command: bytes) -> bytes:
        if self._closed:
            raise CardRemovedError(f"{self.reader}: the card session is closed")
        if self._gone is not None:
            raise type(self._gone)(str(self._gone))
        scard, card, protocol, data = _scard(), self._card, self._protocol, list(bytes(command))
        try:
            hresult, response = self._calls.call(
                lambda: scard.SCardTransmit(card, protocol, data), self._answer_timeout
            )
        except _Stuck:
            self._gone = CardRemovedError(
                f"{self.reader}: the card stopped answering: no answer within {self._answer_timeout:g} s "
                f"to {mask_hex(bytes(command[:4]))}"
            )
            raise self._gone from None
        if hresult != SCARD_S_SUCCESS:
            error = _exchange_error(hresult, self.reader)
            if isinstance(error, DeviceGone):
                self._gone = error
            raise error
        if len(response) < 2:
            raise CardRemovedError(f"{self.reader}: the card gave no answer (it left the field or stopped answering)")
        return bytes(response)

    def close(self) -> None:
        """Power the card down and release it; when a call is still stuck in pcscd, as soon as it returns."""
        if self._closed:
            return
        self._closed = True
        scard, card, context = _scard(), self._card, self._context

        def release() -> None:
            try:
                scard.SCardDisconnect(card, SCARD_UNPOWER_CARD)
            finally:
                _release(context)

        self._calls.finish(release)
        if self._calls.stuck or not self._calls.join(self._answer_timeout or DEFAULT_ANSWER_TIMEOUT):
            self._on_left_pending(self._calls)  # the reader waits for it before the next card

    def __enter__(self) -> PcscSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PcscReader:
    """A PC/SC reader served by pcscd, opened from a ``pcsc:`` URL."""

    kind = "reader"

    def __init__(self, url: str, name: str, *, answer_timeout: float | None = DEFAULT_ANSWER_TIMEOUT) -> None:
        self.url = url
        self.name = name
        self.answer_timeout = answer_timeout
        self._context: Any = None
        self._closed = False
        self._lock = threading.Lock()  # one wait at a time
        self._pending: list[_CallThread] = []  # sessions whose last call is still inside pcscd

    @classmethod
    def open(cls, url: str) -> PcscReader:
        """Find the reader the URL names; :class:`DeviceError` when pcscd is not running or has no such reader."""
        wanted, answer_timeout = _parse_url(url)
        try:
            context = _establish("")
        except DeviceGone as exc:  # pcscd not running: it was never there, so this is a plain error
            raise DeviceError(f"cannot open {url!r}: {exc}") from None
        try:
            name = _choose(wanted, _list_readers(context, url), url)
        finally:
            _release(context)
        return cls(url, name, answer_timeout=answer_timeout)

    @staticmethod
    def discover() -> list[str]:
        """``pcsc:NAME`` for every reader pcscd reports; empty when there is none or pcscd is not running."""
        try:
            context = _establish("pcsc discovery")
        except DeviceError:
            return []
        try:
            return [reader_url(name) for name in _list_readers(context, "pcsc discovery")]
        except DeviceError:
            return []
        finally:
            _release(context)

    # -- waiting for a card -----------------------------------------------------------------------

    def _wait_context(self) -> Any:
        if self._context is None:
            try:
                self._context = _establish(self.name)
            except DeviceGone as exc:
                raise DeviceGone(f"{exc} (it was running when {self.url!r} was opened)") from None
        return self._context

    def _drop_context(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            _release(context)

    def _wait_pending(self, deadline: float | None, cancel: CancelToken | None) -> None:
        """Wait for calls left stuck by earlier sessions: pcscd holds the reader until they return."""
        while True:
            alive = [calls for calls in self._pending if calls.alive]
            self._pending[:] = alive
            if not alive:
                return
            if cancel is not None and cancel.cancelled:
                raise WaitCancelled("cancelled")
            if deadline is not None and time.monotonic() >= deadline:
                raise NoCardError(
                    f"{self.name}: the reader still waits for a card that stopped answering (take it away)"
                )
            alive[0].join(_slice(deadline))

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> PcscSession:
        """Block until a card is in the reader and connected (T=0 or T=1), in slices so that a cancel is quick."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._closed = False  # a closed reader can be used again: it makes a new context
            self._wait_pending(deadline, cancel)
            scard = _scard()
            state = 0  # SCARD_STATE_UNAWARE: tell me the current state at once
            retried = False
            while True:
                if self._closed:
                    self._drop_context()
                    raise WaitCancelled(f"{self.name}: the reader was closed")
                _check(deadline, cancel, self.name)
                context = self._wait_context()
                wait_ms = 0 if state == 0 else int(_slice(deadline) * 1000)
                hresult, states = scard.SCardGetStatusChange(context, wait_ms, [(self.name, state)])
                if _is(hresult, SCARD_E_TIMEOUT) or _is(hresult, SCARD_E_CANCELLED):
                    continue
                if hresult != SCARD_S_SUCCESS:
                    error = error_for(hresult, self.name)
                    self._drop_context()
                    if isinstance(error, DeviceGone) and not retried:
                        retried = True  # pcscd restarted since: a new context may do
                        state = 0
                        continue
                    raise error
                _, event, _atr = states[0]
                if event & SCARD_STATE_UNKNOWN:
                    raise DeviceGone(f"{self.name}: the reader is gone (unplugged?)")
                state = event & ~SCARD_STATE_CHANGED
                if event & SCARD_STATE_PRESENT and not event & (SCARD_STATE_MUTE | SCARD_STATE_EXCLUSIVE):
                    self._wait_pending(deadline, cancel)
                    session = self._connect(deadline)
                    if session is not None:
                        return session

    def _connect(self, deadline: float | None) -> PcscSession | None:
        """Connect to the card in the reader; None when it went away (or would not answer) meanwhile."""
        scard, name = _scard(), self.name
        calls = _CallThread(name)
        made: list[tuple[Any, Any]] = []  # what a connect left behind if it is given up: released at the end

        def connect() -> tuple[Any, Any, int, bytes]:
            context = _establish(name)
            hresult, card, protocol = scard.SCardConnect(
                context, name, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1
            )
            if hresult != SCARD_S_SUCCESS:
                _release(context)
                raise error_for(hresult, name)
            made.append((context, card))
            hresult, _reader, _state, _protocol, atr = scard.SCardStatus(card)
            if hresult != SCARD_S_SUCCESS:
                raise error_for(hresult, name)
            return context, card, int(protocol), bytes(atr)

        def give_up() -> None:
            for context, card in made:
                try:
                    scard.SCardDisconnect(card, SCARD_UNPOWER_CARD)
                finally:
                    _release(context)

        limit = self.answer_timeout
        if deadline is not None:  # a card that came at the last moment still gets half a second
            remaining = max(0.5, deadline - time.monotonic())
            limit = remaining if limit is None else min(limit, remaining)
        try:
            context, card, protocol, atr = calls.call(connect, limit)
        except _Stuck:
            calls.finish(give_up)
            self._pending.append(calls)
            return None
        except DeviceGone:
            calls.finish(give_up)
            raise
        except CardCommunicationError:  # the card left (or would not answer) before we got to it
            calls.finish(give_up)
            return None
        except BaseException:
            calls.finish(give_up)
            raise
        return PcscSession(name, calls, context, card, protocol, atr, self.answer_timeout, self._pending.append)

    def close(self) -> None:
        """Release pcscd's context; a wait going on in another thread ends with :class:`WaitCancelled`."""
        self._closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._drop_context()
            finally:
                self._lock.release()

    def __repr__(self) -> str:
        return f"PcscReader({self.url!r}, name={self.name!r})"


def _slice(deadline: float | None) -> float:
    if deadline is None:
        return POLL_SLICE
    return max(0.001, min(POLL_SLICE, deadline - time.monotonic()))


def _check(deadline: float | None, cancel: CancelToken | None, name: str) -> None:
    if cancel is not None and cancel.cancelled:
        raise WaitCancelled("cancelled")
    if deadline is not None and time.monotonic() >= deadline:
        raise NoCardError(f"{name}: no card was presented in time")
