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
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any, Final
from urllib.parse import unquote

from emv.pan import mask_text
from terminal.pinblock import EncryptedPin, PinBlockError, PinFormat
from terminal.ports import CancelToken, DeviceError, DeviceGone, DeviceUrlError, PinEntry, PinOutcome, PinRequest

__all__ = ["DEFAULT_TIMEOUT", "GRACE_SECONDS", "PROTOCOL", "SerialPinPad", "parse_answer", "parse_pinpad_url"]

PROTOCOL: Final = "posterm-pinpad"
DEFAULT_TIMEOUT: Final = 30.0  # seconds the customer has when the caller does not say
GRACE_SECONDS: Final = 5.0  # past the entry's timeout, how long the pad has to say TIMEOUT
_POLL: Final = 0.05
_MAX_LINE: Final = 256
_BLOCK = re.compile(r"BLOCK ([0-9A-F]{16}|[0-9A-F]{32}) KSN ([0-9A-F]{20}|[0-9A-F]{24}) FORMAT ([04])")
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


class SerialPinPad:
    """A posterm-pinpad PIN pad on a serial port (see the module docstring)."""

    kind = "pin-pad"

    def __init__(self, url: str, port: Any) -> None:
        self.url = url
        self._port = port
        self._buffer = bytearray()

    @classmethod
    def open(cls, url: str) -> SerialPinPad:
        path, baud, answer = parse_pinpad_url(url)
        import serial

        try:
            port = serial.Serial(port=path, baudrate=baud, timeout=_POLL)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"cannot open PIN pad {path}: {exc}") from exc
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
                return
        raise DeviceError(f"no {PROTOCOL} PIN pad answered on {self.url.split('?')[0]} within {seconds:g} s")

    def enter_pin(
        self, request: PinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> PinEntry:
        if cancel is not None and cancel.cancelled:
            return PinEntry(PinOutcome.CANCELLED)
        seconds = DEFAULT_TIMEOUT if timeout is None else max(1.0, timeout)
        self._buffer.clear()
        with contextlib.suppress(Exception):
            self._port.reset_input_buffer()
        self._write(
            f"PIN amount={request.amount} currency={request.currency:03d} pan={request.pan} "
            f"format={int(request.format)} bypass={int(request.allow_bypass)} timeout={seconds:g}"
        )
        deadline = time.monotonic() + seconds + GRACE_SECONDS
        aborted_at: float | None = None
        while True:
            line = self._line()
            if line is not None:
                entry = parse_answer(line)
                if entry is not None:
                    return PinEntry(PinOutcome.CANCELLED) if aborted_at is not None else entry
            now = time.monotonic()
            if cancel is not None and cancel.cancelled and aborted_at is None:
                self._write("ABORT")
                aborted_at = now
            if aborted_at is not None and now - aborted_at > GRACE_SECONDS:
                return PinEntry(PinOutcome.CANCELLED)  # the pad never confirmed: the terminal's cancel stands
            if now > deadline:
                self._write("ABORT")
                raise DeviceError(f"the PIN pad on {self.url.split('?')[0]} did not answer within {seconds:g} s")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a port that is gone cannot be closed cleanly
            self._port.close()

    def __repr__(self) -> str:
        return f"SerialPinPad({self.url!r})"
