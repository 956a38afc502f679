"""The simulator's devices as ordinary drivers of the ``sim`` URL scheme.

- ``sim:card=PROFILE``: a simulated card (see ``simulator/profiles``) in the field,
  or a digital-currency hard wallet (``sim:card=cbdc-anon``, see :mod:`simulator.cbdc`);
- ``sim:replay=PATH``: the replay card answering from a recorded trace;
- ``sim:pin=1234`` / ``cancel`` / ``timeout`` / ``bypass``: a simulated PIN pad
  (:class:`simulator.pinpad.SimulatorPinPad`, routed there by :meth:`SimulatorCardReader.route`).

Registered under the ``posterm.drivers`` entry point group, so the terminal
opens them like any reader and never imports the simulator.

Faults, in the URL's query, spelled as the ``--fault`` options of the vpcd and
nfc-udp virtual cards, so that the terminal's "present card again" loop can be
tested in process (``sim:card=visa-qvsdc-online?remove-after=3``):

``remove-after=N``
    the card leaves the field after answering N commands: command N+1 raises
    :class:`~terminal.ports.CardRemovedError` (a ``CardCommunicationError``,
    which Entry Point turns into Try Again, "Present card again");
``mute-after=N``
    the card stops answering after N commands, staying in the field: command
    N+1 and every later one of that session raise ``CardRemovedError``;
``reinsert-after=SECONDS``
    how long a card that left stays away: ``wait_for_card`` presents it again
    only then (default 0, at once; vpcd's card stays away without this option);
``present-after=SECONDS``
    the card enters the field this long after the first ``wait_for_card``
    begins (default 0), to test the wait itself (timeout, cancel);
``insert=contact-...``
    the chip card the customer inserts when the terminal asks for it ("try
    another interface", :meth:`SimulatorCardReader.wait_for_insert`): a
    combined reader with a contact slot, the customer's card played by a
    ``contact-`` profile (the contactless and contact profiles are separate
    cards of the simulator; use the one of the same card holder);
``state-dir=DIR``
    a wallet's state directory (see :mod:`simulator.cbdc.state`; default
    ``$POSTERM_SIM_STATE``, else the user state directory): not a fault, but
    spelled the same way.

``remove-after`` and ``mute-after`` apply to the *first* session only: the card
presented again is powered up afresh and behaves, as a customer's second tap
does.  A card that fails every time is the ``visa-mute`` profile.  A bad option
is a one-line :class:`SimulatorDeviceError` naming it.  The query starts at the
first ``?``, so a replay path cannot contain one.

>>> reader = SimulatorCardReader.open("sim:card=visa-qvsdc-online?remove-after=1")
>>> session = reader.wait_for_card()
>>> session.exchange(bytes.fromhex("00A404000E325041592E5359532E444446303100"))[-2:].hex()
'9000'
>>> session.exchange(bytes.fromhex("00A404000E325041592E5359532E444446303100"))
Traceback (most recent call last):
...
terminal.ports.CardRemovedError: the card left the field after 1 command (fault remove-after)
>>> SimulatorCardReader.open("sim:card=x?mute-after=y")
Traceback (most recent call last):
...
simulator.devices.SimulatorDeviceError: 'sim:card=x?mute-after=y': option mute-after: 'y' is not a count of commands
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from simulator import cards, profiles
from simulator.card import SimulatedCard
from simulator.cbdc.wallet import WalletCard
from simulator.contact.card import ContactCard
from simulator.replay import ReplayCard, TraceError, load_trace
from simulator.transport import CardTransport
from terminal.ports import CancelToken, CardRemovedError, DeviceUrlError, NoCardError, WaitCancelled

__all__ = ["SimulatorCardReader", "SimulatorDeviceError"]

_OPTIONS = (
    "remove-after=N, mute-after=N, reinsert-after=SECONDS, present-after=SECONDS, state-dir=DIR, insert=contact-..."
)
_MAX_SECONDS = 3600.0


class SimulatorDeviceError(DeviceUrlError):
    """A ``sim:`` URL that names nothing the simulator has, or a bad option (the user's input)."""


@dataclass(frozen=True)
class _Faults:
    """The URL's fault options (see the module docstring)."""

    remove_after: int | None = None
    mute_after: int | None = None
    reinsert_after: float = 0.0
    present_after: float = 0.0
    state_dir: str | None = None
    insert: str | None = None  # the contact card inserted after "try another interface"


def _parse_faults(url: str, query: str) -> _Faults:
    values: dict[str, int | float] = {}
    state: str | None = None
    insert: str | None = None
    for item in query.split("&"):
        if not item:
            continue
        key, sep, text = item.partition("=")
        key = key.strip().replace("_", "-")
        if key not in ("remove-after", "mute-after", "reinsert-after", "present-after", "state-dir", "insert"):
            raise SimulatorDeviceError(f"{url!r}: unknown option {item!r} (options: {_OPTIONS})")
        if key == "insert":
            name = text.strip()
            if insert is not None:
                raise SimulatorDeviceError(f"{url!r}: option insert given twice")
            if not sep or not name.startswith("contact-"):
                raise SimulatorDeviceError(f"{url!r}: option insert names a contact card (insert=contact-...)")
            try:
                cards.check(name)
            except profiles.ProfileError as exc:
                raise SimulatorDeviceError(f"{url!r}: option insert: {exc}") from None
            insert = name
            continue
        if not sep or (key == "state-dir" and not text.strip()):
            raise SimulatorDeviceError(f"{url!r}: option {key} needs a value ({_OPTIONS})")
        if key in values or (key == "state-dir" and state is not None):
            raise SimulatorDeviceError(f"{url!r}: option {key} given twice")
        if key == "state-dir":
            state = text.strip()
            continue
        values[key] = _value(url, key, text.strip())
    remove, mute = values.get("remove-after"), values.get("mute-after")
    return _Faults(
        remove_after=None if remove is None else int(remove),
        mute_after=None if mute is None else int(mute),
        reinsert_after=float(values.get("reinsert-after", 0.0)),
        present_after=float(values.get("present-after", 0.0)),
        state_dir=state,
        insert=insert,
    )


def _value(url: str, key: str, text: str) -> int | float:
    if key in ("remove-after", "mute-after"):
        if not text.isdigit():
            raise SimulatorDeviceError(f"{url!r}: option {key}: {text!r} is not a count of commands")
        return int(text)
    try:
        seconds = float(text)
    except ValueError:
        raise SimulatorDeviceError(f"{url!r}: option {key}: {text!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or not 0 <= seconds <= _MAX_SECONDS:
        raise SimulatorDeviceError(f"{url!r}: option {key}: seconds between 0 and {_MAX_SECONDS:.0f}")
    return seconds


def _card_for(url: str) -> tuple[SimulatedCard | WalletCard | ContactCard | ReplayCard, _Faults]:
    """The card a ``sim:`` URL names and its faults; :class:`SimulatorDeviceError` saying what is wrong."""
    _, _, rest = url.partition(":")
    rest, _, query = rest.partition("?")
    key, sep, value = rest.partition("=")
    if not sep or not value:
        raise SimulatorDeviceError(f"{url!r}: expected sim:card=PROFILE or sim:replay=TRACE.json")
    if key not in ("card", "replay"):
        raise SimulatorDeviceError(f"{url!r}: unknown simulator device {key!r} (card, replay, pin)")
    faults = _parse_faults(url, query)
    if key == "card":
        try:
            return cards.open_card(value, state_dir=faults.state_dir), faults
        except profiles.ProfileError as exc:
            raise SimulatorDeviceError(str(exc)) from None
    try:
        trace = load_trace(value)
    except TraceError as exc:
        raise SimulatorDeviceError(str(exc)) from None
    return ReplayCard(trace), faults


def _plural(n: int) -> str:
    return f"{n} command" if n == 1 else f"{n} commands"


class _Session(CardTransport):
    """A card in the simulated field; closing it takes the card away.

    ``remove_after`` / ``mute_after``: this session's faults (None: none).
    """

    # What a PC/SC reader reports for a contactless ISO 14443-4 card (PC/SC part 3,
    # historical bytes empty), for a card that has no ATR of its own; an inserted
    # contact card (``contact-*``) gives its own, a T=1 ATR.
    _CONTACTLESS_ATR = bytes.fromhex("3B80800101")

    @property
    def atr(self) -> bytes:
        own = getattr(self.card, "atr", None)
        return bytes(own) if isinstance(own, bytes) else self._CONTACTLESS_ATR

    def __init__(
        self,
        reader: SimulatorCardReader,
        card: SimulatedCard | WalletCard | ContactCard | ReplayCard,
        remove_after: int | None = None,
        mute_after: int | None = None,
    ) -> None:
        super().__init__(card)
        self._reader = reader
        self._remove_after = remove_after
        self._mute_after = mute_after
        self._answered = 0
        self._gone: str | None = None  # why the card no longer answers in this session

    def exchange(self, command: bytes) -> bytes:
        if self._gone is None:
            if self._remove_after is not None and self._answered >= self._remove_after:
                self._gone = f"the card left the field after {_plural(self._answered)} (fault remove-after)"
                self._reader._card_left()
            elif self._mute_after is not None and self._answered >= self._mute_after:
                self._gone = f"the card stopped answering after {_plural(self._answered)} (fault mute-after)"
        if self._gone is not None:
            raise CardRemovedError(self._gone)
        answer = super().exchange(command)
        self._answered += 1
        return answer

    def fail_after(self, exchanges: int, *, mute: bool) -> None:
        """Leave the field (or go mute) after answering ``exchanges`` more commands."""
        if mute:
            self._mute_after = self._answered + exchanges
        else:
            self._remove_after = self._answered + exchanges

    def close(self) -> None:
        pass


class SimulatorCardReader:
    """A reader with one simulated card in its field, opened from a ``sim:`` URL."""

    kind = "reader"

    def __init__(
        self, url: str, card: SimulatedCard | WalletCard | ContactCard | ReplayCard, faults: _Faults | None = None
    ) -> None:
        self.url = url
        self._card = card
        self._faults = faults or _Faults()
        self._lock = threading.Lock()
        self._sessions = 0
        self._first_wait: float | None = None
        self._absent_until = 0.0  # time.monotonic() before which the card is not in the field
        self._current: _Session | None = None  # the latest session (for remove_after / mute_after)

    @staticmethod
    def route(url: str) -> type:
        """The adapter of a ``sim:`` URL: a PIN pad for ``sim:pin=...``, else this reader (see terminal.registry)."""
        _, _, rest = url.partition(":")
        if rest.partition("=")[0] == "pin":
            from simulator.pinpad import SimulatorPinPad

            return SimulatorPinPad
        return SimulatorCardReader

    @classmethod
    def open(cls, url: str) -> SimulatorCardReader:
        card, faults = _card_for(url)
        return cls(url, card, faults)

    @staticmethod
    def check(url: str) -> None:
        """Whether ``url`` names a card the simulator has, with right options (see :mod:`terminal.registry`).

        What :meth:`open` would refuse is refused here, with the same message;
        nothing is put in a field.
        """
        _card_for(url)

    @staticmethod
    def discover() -> list[str]:
        return [f"sim:card={name}" for name in cards.names()]

    @property
    def card(self) -> SimulatedCard | WalletCard | ContactCard | ReplayCard:
        return self._card

    def remove_after(self, exchanges: int) -> None:
        """The card leaves the field after answering ``exchanges`` more commands of its current session.

        The runtime form of ``remove-after`` (as vpcd's and nfc-udp's virtual cards
        have it), for a test that opens the session first.
        """
        if exchanges < 0:
            raise ValueError("exchanges must be >= 0")
        with self._lock:
            session = self._current
        if session is not None:
            session.fail_after(exchanges, mute=False)

    def mute_after(self, exchanges: int) -> None:
        """The card stops answering after ``exchanges`` more commands of its current session."""
        if exchanges < 0:
            raise ValueError("exchanges must be >= 0")
        with self._lock:
            session = self._current
        if session is not None:
            session.fail_after(exchanges, mute=True)

    def _card_left(self) -> None:
        """A session's card left the field: it is back after ``reinsert-after`` seconds."""
        with self._lock:
            self._absent_until = time.monotonic() + self._faults.reinsert_after

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> _Session:
        """The card, once it is in the field: at once unless ``present-after`` or ``reinsert-after`` delay it.

        A cancel already set still wins.  Each call is a new session: the card is
        powered up afresh; ``remove-after`` and ``mute-after`` apply to the first only.
        """
        if cancel is not None and cancel.cancelled:
            raise WaitCancelled("cancelled")
        with self._lock:
            now = time.monotonic()
            if self._first_wait is None:
                self._first_wait = now
                self._absent_until = max(self._absent_until, now + self._faults.present_after)
            delay = self._absent_until - now
        if delay > 0:
            if timeout is not None and timeout < delay:
                self._sleep(timeout, cancel)
                raise NoCardError(f"no card in the field of {self.url} within {timeout:g} s")
            self._sleep(delay, cancel)
        with self._lock:
            self._sessions += 1
            first = self._sessions == 1
        reset = getattr(self._card, "reset", None)
        if callable(reset):
            reset()  # power-up: selection and transaction state go, as in a real field
        if first:
            session = _Session(self, self._card, self._faults.remove_after, self._faults.mute_after)
        else:
            session = _Session(self, self._card)
        with self._lock:
            self._current = session
        return session

    @property
    def can_insert(self) -> bool:
        """Whether a chip card is inserted when asked for (the URL's ``insert=``)."""
        return self._faults.insert is not None

    def wait_for_insert(self, timeout: float | None = None, cancel: CancelToken | None = None) -> _Session:
        """The chip card inserted after "try another interface": the ``insert=`` profile, powered up afresh."""
        if cancel is not None and cancel.cancelled:
            raise WaitCancelled("cancelled")
        name = self._faults.insert
        if name is None:
            raise NoCardError(f"no card was inserted in {self.url} (no insert=contact-... option)")
        try:
            card = cards.open_card(name)
        except profiles.ProfileError as exc:  # checked when the URL was read
            raise NoCardError(str(exc)) from None
        session = _Session(self, card)
        with self._lock:
            self._current = session
        return session

    @staticmethod
    def _sleep(seconds: float, cancel: CancelToken | None) -> None:
        if cancel is None:
            time.sleep(max(0.0, seconds))
        elif cancel.wait(max(0.0, seconds)):
            raise WaitCancelled("cancelled")

    def close(self) -> None:
        pass
