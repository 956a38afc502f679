"""PIN pads on a serial port that speak the posterm-pinpad line protocol (docs/pinpad-protocol.md), through pyserial.

URL: ``serial:PATH?protocol=posterm-pinpad&baud=9600`` (the ``serial`` scheme
routes a URL with ``protocol=posterm-pinpad`` here; other ``serial:`` URLs are
scanners). Options: ``baud`` (default 9600), ``answer`` (seconds to wait for
the pad's ``PONG`` when opened, default 2).

The pad forms the PIN block; this driver sends the request and reads the
answer, and never sees a PIN. The PAN goes to the pad (it is bound into the
block) and nothing here logs it. ``cancel`` sends ``ABORT``, and the entry ends
cancelled; a pad that does not answer within the entry's timeout and a grace
of :data:`GRACE_SECONDS` is a device error, as is an ``ERR`` answer.

An inserted card's offline PIN: a pad whose ``PONG`` lists ``EPIN`` enciphers
it for the card itself (:meth:`SerialPinPad.encipher_offline_pin`: the card's
public key and challenge go to the pad, the ciphertext for VERIFY comes back);
the clear PIN never crosses the serial line, so this pad gives no plaintext
offline PIN (:meth:`SerialPinPad.offline_pin_ability`).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar
from urllib.parse import unquote

from drivers.serial_errors import open_failure
from emv.pan import mask_text
from terminal.pinblock import EncryptedPin, PinBlockError, PinFormat
from terminal.ports import (
    CancelToken,
    DeviceError,
    DeviceGone,
    DeviceUrlError,
    EncipheredOfflinePin,
    OfflinePinAbility,
    OfflinePinRequest,
    PinEntry,
    PinOutcome,
    PinRequest,
    PublicKey,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "GRACE_SECONDS",
    "PROTOCOL",
    "SerialPinPad",
    "parse_answer",
    "parse_enciphered_answer",
    "parse_pinpad_url",
]

PROTOCOL: Final = "posterm-pinpad"
DEFAULT_TIMEOUT: Final = 30.0  # seconds the customer has when the caller does not say
GRACE_SECONDS: Final = 5.0  # past the entry's timeout, how long the pad has to say TIMEOUT
_POLL: Final = 0.05
_MAX_LINE: Final = 1024  # an ENCIPHERED answer is 11 + 2 x the card key's length (at most 248 bytes)
_BLOCK = re.compile(r"BLOCK ([0-9A-F]{16}|[0-9A-F]{32}) KSN ([0-9A-F]{20}|[0-9A-F]{24}) FORMAT ([04])")
_ENCIPHERED = re.compile(r"ENCIPHERED ((?:[0-9A-F]{2}){25,256})")
_A = TypeVar("_A", PinEntry, EncipheredOfflinePin)
_OUTCOMES: Final = {"CANCEL": PinOutcome.CANCELLED, "TIMEOUT": PinOutcome.TIMEOUT, "BYPASS": PinOutcome.BYPASSED}


def parse_pinpad_url(url: str) -> tuple[str, int, float]:
    """``serial:PATH?protocol=posterm-pinpad&baud=N&answer=S`` -> (path, baud, answer seconds); DeviceUrlError."""
    scheme, _, rest = url.partition(":")
    path, _, query = rest.partition("?")
    if scheme != "serial" or not path:
        raise DeviceUrlError(f"{url!r}: expected serial:/dev/ttyUSB0?protocol={PROTOCOL}")
    seen: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        name, _, value = (unquote(part) for part in item.partition("="))
        if name not in ("protocol", "baud", "answer") or name in seen:
            raise DeviceUrlError(f"{url!r}: unknown or repeated option {name!r} (protocol, baud, answer)")
        seen[name] = value
    if seen.get("protocol") != PROTOCOL:
        raise DeviceUrlError(f"{url!r}: a PIN pad URL says protocol={PROTOCOL}")
    try:
        baud = int(seen.get("baud", "9600"))
        answer = float(seen.get("answer", "2"))
    except ValueError:
        raise DeviceUrlError(f"{url!r}: baud is a whole number and answer a number of seconds") from None
    if not 50 <= baud <= 4_000_000 or not 0.1 <= answer <= 60:
        raise DeviceUrlError(f"{url!r}: baud 50..4000000, answer 0.1..60 seconds")
    return path, baud, answer


def parse_answer(line: str) -> PinEntry | None:
    """A pad's answer line as the entry it ends; None for a line that is no answer (ignored).

    ``ERR text`` raises :class:`DeviceError` (the pad refused the request).
    """
    if line in _OUTCOMES:
        return PinEntry(_OUTCOMES[line])
    if line.startswith("ERR"):
        raise DeviceError(f"the PIN pad refused the request: {mask_text(line[3:].strip())[:120] or 'no reason'}")
    match = _BLOCK.fullmatch(line)
    if match is None:
        return None
    try:
        pin = EncryptedPin(bytes.fromhex(match[1]), bytes.fromhex(match[2]), PinFormat(int(match[3])))
    except PinBlockError as exc:
        raise DeviceError(f"the PIN pad answered a block that does not fit: {exc}") from None
    return PinEntry(PinOutcome.ENTERED, pin)


def parse_enciphered_answer(line: str, size: int) -> EncipheredOfflinePin | None:
    """A pad's answer to ``EPIN`` for a card key of ``size`` bytes; None for a line that is no answer (ignored).

    ``ERR text`` and a ciphertext that is not as long as the key raise :class:`DeviceError`.
    """
    if line in _OUTCOMES:
        return EncipheredOfflinePin(_OUTCOMES[line])
    if line.startswith("ERR"):
        raise DeviceError(f"the PIN pad refused the request: {mask_text(line[3:].strip())[:120] or 'no reason'}")
    match = _ENCIPHERED.fullmatch(line)
    if match is None:
        return None
    data = bytes.fromhex(match[1])
    if len(data) != size:
        raise DeviceError(f"the PIN pad answered {len(data)} bytes for a card key of {size}")
    return EncipheredOfflinePin(PinOutcome.ENTERED, data)


class SerialPinPad:
    """A posterm-pinpad PIN pad on a serial port (see the module docstring)."""

    kind = "pin-pad"

    def __init__(self, url: str, port: Any) -> None:
        self.url = url
        self._port = port
        self._buffer = bytearray()
        self.features: frozenset[str] = frozenset()  # what the pad's PONG listed after its version

    @classmethod
    def open(cls, url: str) -> SerialPinPad:
        path, baud, answer = parse_pinpad_url(url)
        import serial

        try:
            port = serial.Serial(port=path, baudrate=baud, timeout=_POLL)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"cannot open PIN pad {path}: {open_failure(exc)}") from exc
        pad = cls(url, port)
        try:
            pad._hello(answer)
        except DeviceError:
            pad.close()
            raise
        return pad

    @staticmethod
    def check(url: str) -> None:
        parse_pinpad_url(url)

    # ------------------------------------------------------------------ the line protocol

    def _write(self, line: str) -> None:
        import serial

        try:
            self._port.write(line.encode("ascii") + b"\n")
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise DeviceGone(f"PIN pad {self._port.port} went away: {exc}") from exc

    def _line(self) -> str | None:
        """One line from the pad if one is complete within a poll; None if not (yet)."""
        import serial

        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                raw = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return raw.decode("ascii", "replace").strip("\r ")
            if len(self._buffer) > _MAX_LINE:
                self._buffer.clear()  # line noise: no answer is this long
            try:
                data = self._port.read(max(1, self._port.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                raise DeviceGone(f"PIN pad {self.url.split('?')[0]} went away: {exc}") from exc
            if not data:
                return None
            self._buffer += data

    def _hello(self, seconds: float) -> None:
        with contextlib.suppress(Exception):
            self._port.reset_input_buffer()
        self._write("PING")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            line = self._line()
            if line is not None and line.startswith("PONG " + PROTOCOL):
                self.features = frozenset(line.split()[3:])
                return
        raise DeviceError(f"no {PROTOCOL} PIN pad answered on {self.url.split('?')[0]} within {seconds:g} s")

    def offline_pin_ability(self) -> OfflinePinAbility:
        """An enciphered offline PIN when the pad said ``EPIN`` when opened; never a plaintext one."""
        return OfflinePinAbility(enciphers="EPIN" in self.features)

    def enter_pin(
        self, request: PinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> PinEntry:
        if cancel is not None and cancel.cancelled:
            return PinEntry(PinOutcome.CANCELLED)
        seconds = DEFAULT_TIMEOUT if timeout is None else max(1.0, timeout)
        line = (
            f"PIN amount={request.amount} currency={request.currency:03d} pan={request.pan} "
            f"format={int(request.format)} bypass={int(request.allow_bypass)} timeout={seconds:g}"
            + (f" purpose={request.purpose}" if request.purpose != "sale" else "")  # a sale's line is as before
        )
        return self._exchange(line, seconds, cancel, parse_answer, PinEntry(PinOutcome.CANCELLED))

    def encipher_offline_pin(
        self,
        request: OfflinePinRequest,
        key: PublicKey,
        challenge: bytes,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
    ) -> EncipheredOfflinePin:
        """The pad enciphers the customer's PIN for the card (``EPIN``); only the ciphertext comes back."""
        if "EPIN" not in self.features:
            raise DeviceError(f"the PIN pad on {self.url.split('?')[0]} cannot encipher an offline PIN (no EPIN)")
        if cancel is not None and cancel.cancelled:
            return EncipheredOfflinePin(PinOutcome.CANCELLED)
        seconds = DEFAULT_TIMEOUT if timeout is None else max(1.0, timeout)
        tries = "" if request.tries_left is None else f" tries={request.tries_left}"
        line = (
            f"EPIN amount={request.amount} currency={request.currency:03d} modulus={key.modulus.hex().upper()} "
            f"exponent={key.exponent.hex().upper()} challenge={challenge.hex().upper()}{tries} "
            f"last={int(request.last_try)} bypass={int(request.allow_bypass)} timeout={seconds:g}"
        )
        size = key.size
        return self._exchange(
            line, seconds, cancel, lambda text: parse_enciphered_answer(text, size),
            EncipheredOfflinePin(PinOutcome.CANCELLED),
        )  # fmt: skip

    def _exchange(
        self, request: str, seconds: float, cancel: CancelToken | None, parse: Callable[[str], _A | None], cancelled: _A
    ) -> _A:
        """Send one request line and wait for its answer (``ABORT`` on the terminal's cancel; see the module)."""
        self._buffer.clear()
        with contextlib.suppress(Exception):
            self._port.reset_input_buffer()
        self._write(request)
        deadline = time.monotonic() + seconds + GRACE_SECONDS
        aborted_at: float | None = None
        while True:
            line = self._line()
            if line is not None:
                entry = parse(line)
                if entry is not None:
                    return cancelled if aborted_at is not None else entry
            now = time.monotonic()
            if cancel is not None and cancel.cancelled and aborted_at is None:
                self._write("ABORT")
                aborted_at = now
            if aborted_at is not None and now - aborted_at > GRACE_SECONDS:
                return cancelled  # the pad never confirmed: the terminal's cancel stands
            if now > deadline:
                self._write("ABORT")
                raise DeviceError(f"the PIN pad on {self.url.split('?')[0]} did not answer within {seconds:g} s")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a port that is gone cannot be closed cleanly
            self._port.close()

    def __repr__(self) -> str:
        return f"SerialPinPad({self.url!r})"
