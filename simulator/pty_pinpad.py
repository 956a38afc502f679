"""A virtual serial PIN pad on a pty pair, speaking the posterm-pinpad line protocol (docs/pinpad-protocol.md).

:class:`VirtualPinPad` opens a pseudo-terminal; the terminal opens its slave
side with ``serial:/dev/pts/N?protocol=posterm-pinpad`` (:mod:`drivers.serial_pinpad`),
so that PIN entry goes through a real device driver. Its customer does one
thing every time (:func:`simulator.pinpad.parse_action`): enters a PIN,
cancels, lets the entry time out or bypasses, after ``delay`` seconds (an
``ABORT`` from the terminal meanwhile ends the entry ``CANCEL``). The block is
formed with the simulated PIN pads' DUKPT keys (:class:`simulator.pinpad.PinKeys`),
whose counters advance persistently. For an inserted card it answers ``EPIN``
(an enciphered offline PIN: the card's key and challenge in, the ciphertext
out, :func:`simulator.pinpad.encipher_offline`), and says so in its ``PONG``.

``posterm sim pinpad --pin 1234`` serves one and prints its device path and URL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import sys
import threading
import time
import tty
from typing import Final

from emv.pan import mask_text
from simulator.net_printer import run_until_signalled
from simulator.pinpad import PinAction, PinKeys, answer, enciphered_answer, parse_action
from terminal.pinblock import PinFormat
from terminal.ports import (
    PIN_PURPOSES,
    DeviceError,
    DeviceUrlError,
    OfflinePinRequest,
    PinOutcome,
    PinRequest,
    PublicKey,
)

__all__ = [
    "RequestError",
    "VirtualPinPad",
    "add_pinpad_arguments",
    "parse_offline_request",
    "parse_request",
    "serve_pinpad_cli",
]

PROTOCOL: Final = "posterm-pinpad"
VERSION: Final = 1
FEATURES: Final = ("EPIN",)  # what the pad offers beyond PIN, listed after the version in its PONG
_WORDS: Final = {PinOutcome.CANCELLED: "CANCEL", PinOutcome.TIMEOUT: "TIMEOUT", PinOutcome.BYPASSED: "BYPASS"}
_FIELDS: Final = ("amount", "currency", "pan", "format", "bypass", "timeout", "purpose")
_EPIN_FIELDS: Final = ("amount", "currency", "modulus", "exponent", "challenge", "tries", "last", "bypass", "timeout")


class RequestError(ValueError):
    """A ``PIN`` line the pad cannot take; the message (sent as ``ERR``) holds no PAN."""


def _fields(line: str, command: str, allowed: tuple[str, ...], expected: str) -> dict[str, str]:
    """The ``name=value`` fields of a ``command`` line, each allowed and given once; RequestError (``expected``)."""
    words = line.split()
    if not words or words[0] != command:
        raise RequestError(expected)
    fields: dict[str, str] = {}
    for word in words[1:]:
        name, sep, value = word.partition("=")
        if not sep or name not in allowed or name in fields:
            raise RequestError(f"unknown or repeated field {mask_text(name)[:20]!r}")
        fields[name] = value
    return fields


def parse_request(line: str) -> tuple[PinRequest, float]:
    """``PIN amount=.. currency=.. pan=.. [format=4|0] [bypass=0|1] [timeout=S] [purpose=sale|refund]``.

    The request and its timeout; RequestError (its text goes back as ``ERR``) for anything else.
    """
    fields = _fields(line, "PIN", _FIELDS, "expected PIN amount=.. currency=.. pan=..")
    try:
        amount, currency = int(fields["amount"]), int(fields["currency"])
        fmt = PinFormat(int(fields.get("format", "4")))
        bypass = {"0": False, "1": True}[fields.get("bypass", "0")]
        timeout = float(fields.get("timeout", "30"))
        pan = fields["pan"]
        purpose = fields.get("purpose", "sale")
    except KeyError:
        raise RequestError("amount, currency and pan are required; bypass is 0 or 1") from None
    except ValueError:
        raise RequestError("amount and currency are numbers, format 4 or 0, timeout seconds") from None
    if not (pan.isascii() and pan.isdigit() and 12 <= len(pan) <= 19) or amount < 0 or not 0 < currency < 1000:
        raise RequestError("pan is 12 to 19 digits, amount at least 0, currency ISO 4217 numeric")
    if not 0 < timeout <= 600:
        raise RequestError("timeout is 0 to 600 seconds")
    if purpose not in PIN_PURPOSES:
        raise RequestError(f"purpose is {' or '.join(PIN_PURPOSES)}")
    return PinRequest(amount, currency, pan, bypass, fmt, purpose), timeout


def _hex(text: str, name: str, low: int, high: int) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise RequestError(f"{name} is hex") from None
    if not low <= len(value) <= high or len(text) != 2 * len(value):
        raise RequestError(f"{name} is {low} to {high} bytes of hex")
    return value


def parse_offline_request(line: str) -> tuple[OfflinePinRequest, PublicKey, bytes, float]:
    """``EPIN amount=.. currency=.. modulus=HEX exponent=HEX challenge=HEX [tries=N] [last=0|1] [bypass=0|1]
    [timeout=S]`` -> the request, the card's key, its challenge and the timeout."""
    fields = _fields(
        line, "EPIN", _EPIN_FIELDS, "expected EPIN amount=.. currency=.. modulus=.. exponent=.. challenge=.."
    )
    try:
        amount, currency = int(fields["amount"]), int(fields["currency"])
        bypass = {"0": False, "1": True}[fields.get("bypass", "0")]
        last = {"0": False, "1": True}[fields.get("last", "0")]
        tries = int(fields["tries"]) if "tries" in fields else None
        timeout = float(fields.get("timeout", "30"))
        modulus, exponent, challenge = fields["modulus"], fields["exponent"], fields["challenge"]
    except KeyError:
        raise RequestError(
            "amount, currency, modulus, exponent and challenge are required; bypass, last 0 or 1"
        ) from None
    except ValueError:
        raise RequestError("amount, currency and tries are numbers, timeout seconds") from None
    key = PublicKey(_hex(modulus, "modulus", 25, 256), _hex(exponent, "exponent", 1, 3))
    nonce = _hex(challenge, "challenge", 8, 8)
    if amount < 0 or not 0 < currency < 1000 or (tries is not None and not 0 < tries <= 255):
        raise RequestError("amount at least 0, currency ISO 4217 numeric, tries 1 to 255")
    if not 0 < timeout <= 600:
        raise RequestError("timeout is 0 to 600 seconds")
    request = OfflinePinRequest(amount, currency, "enciphered", tries, last, bypass)
    return request, key, nonce, timeout


class VirtualPinPad:
    """A PIN pad on a pty: answers ``PING`` and ``PIN`` lines as its customer's action says."""

    def __init__(
        self,
        action: PinAction,
        *,
        keys: PinKeys | None = None,
        delay: float = 0.0,
        features: tuple[str, ...] = FEATURES,
    ) -> None:
        self.action = action
        self.features = features  # listed in PONG; a pad without EPIN answers it "ERR unknown command"
        self.keys = keys or PinKeys()
        self.delay = delay
        self.requests = 0  # PIN and EPIN requests answered
        self.shown: list[str] = []  # what the display showed for each request (amount, masked PAN or tries left)
        self._closed = threading.Event()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.device_path = os.ttyname(self._slave)
        self._buffer = bytearray()
        self._thread = threading.Thread(target=self._run, name=f"posterm-pinpad {self.device_path}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"serial:{self.device_path}?protocol={PROTOCOL}"

    def _send(self, line: str) -> None:
        data = memoryview(line.encode("ascii") + b"\r\n")
        while data and not self._closed.is_set():
            try:
                written = os.write(self._master, data)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            except OSError:
                return
            data = data[written:]

    def _read_line(self, until: float) -> str | None:
        """The next line from the terminal, waiting until ``until`` (monotonic); None when none came."""
        while not self._closed.is_set():
            end = self._buffer.find(b"\n")
            if end >= 0:
                raw = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return raw.decode("ascii", "replace").strip("\r ")
            left = until - time.monotonic()
            if left <= 0:
                return None
            try:
                ready, _, _ = select.select([self._master], [], [], min(left, 0.2))
            except (OSError, ValueError):
                return None
            if ready:
                try:
                    chunk = os.read(self._master, 4096)
                except BlockingIOError:
                    continue
                except OSError:
                    time.sleep(0.05)  # no terminal has the port open yet (EIO on Linux)
                    continue
                self._buffer += chunk
                if len(self._buffer) > 4096:
                    self._buffer.clear()  # noise
        return None

    def _run(self) -> None:
        while not self._closed.is_set():
            line = self._read_line(time.monotonic() + 0.5)
            if line is None or not line:
                continue
            if line == "PING":
                self._send(" ".join(("PONG", PROTOCOL, str(VERSION), *self.features)))
            elif line.startswith("PIN"):
                self._entry(line)
            elif line.startswith("EPIN") and "EPIN" in self.features:
                self._offline_entry(line)
            elif line != "ABORT":  # an ABORT with no entry going on needs no answer
                self._send("ERR unknown command")

    def _entry(self, line: str) -> None:
        try:
            request, timeout = parse_request(line)
        except RequestError as exc:
            self._send(f"ERR {exc}")
            return
        shown = f"{request.amount} {request.currency:03d} {request.masked_pan}"
        self.shown.append(shown if request.purpose == "sale" else f"{request.purpose.upper()} {shown}")
        if self._aborted(timeout):
            return
        try:
            entry = answer(self.action, request, self.keys)
        except DeviceError as exc:
            self._send(f"ERR {exc}")
            return
        self.requests += 1
        if entry.pin is not None:
            pin = entry.pin
            self._send(f"BLOCK {pin.block.hex().upper()} KSN {pin.ksn.hex().upper()} FORMAT {int(pin.format)}")
        else:
            self._send(_WORDS[entry.outcome])

    def _aborted(self, timeout: float) -> bool:
        """The customer is typing for ``delay`` seconds: True (answered ``CANCEL``) if the terminal sent ``ABORT``."""
        deadline = time.monotonic() + min(self.delay, timeout)
        while True:
            got = self._read_line(deadline)
            if got == "ABORT":
                self._send("CANCEL")
                self.requests += 1
                return True
            if got is None:
                return False

    def _offline_entry(self, line: str) -> None:
        try:
            request, key, challenge, timeout = parse_offline_request(line)
        except RequestError as exc:
            self._send(f"ERR {exc}")
            return
        tries = "" if request.tries_left is None else f" {request.tries_left} tries left"
        self.shown.append(f"{request.amount} {request.currency:03d} chip PIN{tries}{' LAST TRY' * request.last_try}")
        if self._aborted(timeout):
            return
        try:
            sealed = enciphered_answer(self.action, request, key, challenge)
        except DeviceError as exc:
            self._send(f"ERR {exc}")
            return
        self.requests += 1
        if sealed.data is not None:
            self._send(f"ENCIPHERED {sealed.data.hex().upper()}")
        else:
            self._send(_WORDS[sealed.outcome])

    def close(self) -> None:
        """Unplug: both ends of the pty close."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> VirtualPinPad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the command line (posterm sim pinpad) -------------------------------------------------------------------------


def add_pinpad_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pin",
        required=True,
        metavar="DIGITS|cancel|timeout|bypass",
        help="what the customer does each time: enter these digits (a test PIN), cancel, let it time out, bypass",
    )
    parser.add_argument("--delay", type=float, default=0.0, metavar="SECONDS", help="time the customer takes")
    parser.add_argument(
        "--state-dir", metavar="DIR", help="where the KSN counters are kept (default: $POSTERM_SIM_STATE, else the "
        "user state directory)"
    )  # fmt: skip


def serve_pinpad_cli(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Print the device path and the URL, answer PIN requests until SIGINT / SIGTERM."""
    try:
        action = parse_action(args.pin, "--pin")
    except DeviceUrlError as exc:
        print(f"posterm: error: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.delay <= 600:
        print("posterm: error: --delay is 0 to 600 seconds", file=sys.stderr)
        return 2
    pad = VirtualPinPad(action, keys=PinKeys(args.state_dir), delay=args.delay)
    stop = stop or threading.Event()
    try:
        print(f"virtual PIN pad on {pad.device_path}", flush=True)
        print(f"open it as: {pad.url}", flush=True)
        run_until_signalled(stop)
    finally:
        stop.set()
        pad.close()
    print("virtual PIN pad unplugged", flush=True)
    return 0
