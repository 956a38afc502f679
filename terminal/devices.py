"""Which reader, scanner, printer and PIN pad this terminal uses, by device URL.

The configuration has two layers:

1. the shipped defaults: the ``devices`` object of ``terminal/data/terminal.json``
   when it has one, else :data:`DEFAULT_DEVICES` (a simulated card in a
   simulated reader, no scanner, no printer, no PIN pad);
2. ``<data_dir>/devices.json``, written by ``posterm devices set KIND URL|none``:
   each kind it names replaces the default (``null`` means "none").

The parameters the host downloads do not carry devices: which hardware is
plugged into this terminal is a local matter, so a parameter version never
changes it.

A URL is checked against the driver registry when it is set (its scheme must
be registered, its adapter must drive that kind of device, and what the
adapter can check without a device must hold: a ``sim:`` card profile must
exist); it is not opened then.  The PIN pad (``pin-pad``, :data:`PIN_PAD`) is
configured here too (:data:`CONFIG_KINDS`); :data:`KINDS` stays the three
kinds the technician's screens list. A ``sim:pin=DIGITS`` URL holds the
simulated customer's PIN: :func:`shown_url` masks it wherever a URL is shown
or logged.  :class:`LazyReader` opens the configured reader only when a card
is first needed, so that commands that never read a card (journal, SAF,
settlement) work while the reader is unplugged.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar, cast

from terminal import registry
from terminal.files import atomic_write, make_private_dir
from terminal.limits import MAX_STATE_FILE_BYTES, InputFileError, read_input
from terminal.ports import (
    CancelToken,
    CardReader,
    CardSession,
    CodeScanner,
    DeviceError,
    DeviceGone,
    DeviceUrlError,
    EncipheredOfflinePin,
    EncipheringPinPad,
    OfflinePin,
    OfflinePinAbility,
    OfflinePinPad,
    OfflinePinRequest,
    PinEntry,
    PinPad,
    PinRequest,
    PrinterStatus,
    PublicKey,
    ReceiptPrinter,
    ScannedCode,
    offline_pin_ability,
)
from terminal.settings import SettingsError, shipped_document

__all__ = [
    "CONFIG_KINDS",
    "DEFAULT_DEVICES",
    "DEVICES_FILE",
    "KINDS",
    "PIN_PAD",
    "DeviceConfig",
    "DeviceConfigError",
    "LazyPinPad",
    "LazyPrinter",
    "LazyReader",
    "LazyScanner",
    "load_devices",
    "set_device",
    "shown_url",
    "validate_url",
]

_T = TypeVar("_T")

KINDS: Final = ("reader", "scanner", "printer")
PIN_PAD: Final = "pin-pad"
#: Every kind ``posterm devices set`` configures.
CONFIG_KINDS: Final = (*KINDS, PIN_PAD)
DEVICES_FILE: Final = "devices.json"
DEFAULT_DEVICES: Final[Mapping[str, str | None]] = {
    "reader": "sim:card=visa-qvsdc-online",
    "scanner": None,
    "printer": None,
    PIN_PAD: None,
}
_SIM_PIN: Final = re.compile(r"(?<=\bpin=)[0-9]+")


def shown_url(url: str) -> str:
    """A device URL fit to show or log: a simulated PIN pad's digits masked (``sim:pin=****``).

    >>> shown_url("sim:pin=1234?format=0")
    'sim:pin=****?format=0'
    """
    return _SIM_PIN.sub("****", url)


#: What ``posterm devices set KIND none`` stores: no device of that kind.
NONE_WORDS: Final = frozenset({"none", "null", "-"})
#: What ``posterm devices set KIND default`` does: drop the local setting, the shipped default applies.
DEFAULT_WORD: Final = "default"


class DeviceConfigError(SettingsError):
    """A device configuration or URL that cannot be used; the message names the file or URL."""


@dataclass(frozen=True)
class DeviceConfig:
    """The device URLs in force (``None``: no device of that kind) and where each comes from."""

    reader: str | None
    scanner: str | None
    printer: str | None
    sources: Mapping[str, str] = field(default_factory=dict)  # kind -> "default" | "devices.json"
    pin_pad: str | None = None

    def url(self, kind: str) -> str | None:
        if kind not in CONFIG_KINDS:
            raise ValueError(f"unknown device kind {kind!r}; expected one of {', '.join(CONFIG_KINDS)}")
        value: str | None = getattr(self, kind.replace("-", "_"))
        return value

    def to_json(self) -> dict[str, Any]:
        """Kind -> URL (as shown: :func:`shown_url`) and where it comes from."""
        out: dict[str, Any] = {}
        for kind in CONFIG_KINDS:
            url = self.url(kind)
            out[kind] = {"url": None if url is None else shown_url(url), "source": self.sources.get(kind, "default")}
        return out


def _check_kind(kind: str) -> None:
    if kind not in CONFIG_KINDS:
        raise DeviceConfigError(f"unknown device kind {kind!r}; expected one of {', '.join(CONFIG_KINDS)}")


def validate_url(kind: str, url: str) -> str:
    """``url`` stripped, if the registry can open it as a ``kind``; else :class:`DeviceConfigError` saying why.

    The scheme and the kind are checked, and what the adapter can check
    without opening a device (its ``check(url)``: for ``sim:``, that the card
    profile or the trace exists and the options are right).  Nothing is opened.
    """
    _check_kind(kind)
    text = url.strip()
    shown = shown_url(text)  # messages never hold a simulated PIN
    scheme, sep, _ = text.partition(":")
    if not sep or not scheme:
        raise DeviceConfigError(
            f"{kind} URL {shown_url(url)!r} has no scheme (expected e.g. 'sim:card=visa-qvsdc-online', 'pcsc:', "
            "'serial:/dev/ttyACM0', 'escpos:net:192.0.2.10:9100')"
        )
    known = registry.schemes()
    if scheme not in known:
        names = ", ".join(sorted(known)) or "none"
        raise DeviceConfigError(f"{kind} URL {shown!r}: no driver for scheme {scheme!r} (registered: {names})")
    try:
        actual = registry.kind_of(text)
    except DeviceError as exc:
        raise DeviceConfigError(f"{kind} URL {shown!r}: {exc}") from None
    except Exception as exc:  # the adapter's module does not import (a missing library)
        raise DeviceConfigError(f"{kind} URL {shown!r}: the {scheme!r} driver cannot be loaded: {exc}") from None
    if actual != kind:
        raise DeviceConfigError(f"{kind} URL {shown!r} names a {actual}, not a {kind}")
    try:
        registry.check_url(text, kind)
    except DeviceUrlError as exc:
        message = str(exc)  # the adapter's message may name the URL already
        named = shown in message or text in message
        raise DeviceConfigError(message if named else f"{kind} URL {shown!r}: {message}") from None
    return text


def _url_value(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise DeviceConfigError(f"{where}: expected a device URL or null, got {value!r}")
    return value.strip()


def _defaults() -> dict[str, str | None]:
    out: dict[str, str | None] = dict(DEFAULT_DEVICES)
    shipped = shipped_document().get("devices")
    if shipped is None:
        return out
    if not isinstance(shipped, dict):
        raise DeviceConfigError("terminal/data/terminal.json: 'devices' must be an object of kind -> URL or null")
    for kind, value in shipped.items():
        if kind not in CONFIG_KINDS:
            raise DeviceConfigError(f"terminal/data/terminal.json: devices.{kind}: unknown device kind")
        out[kind] = _url_value(value, f"terminal/data/terminal.json: devices.{kind}")
    return out


def _read_local(path: Path) -> dict[str, str | None]:
    """The kinds ``devices.json`` sets; {} when there is no file."""
    if not os.path.lexists(path):
        return {}
    try:
        raw = read_input(path, MAX_STATE_FILE_BYTES, "device configuration")
    except InputFileError as exc:
        raise DeviceConfigError(str(exc)) from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeviceConfigError(
            f"{path} cannot be read ({exc}); fix it or set the devices again with 'posterm devices set'"
        ) from None
    if not isinstance(doc, dict):
        raise DeviceConfigError(f"{path}: expected a JSON object of kind -> URL or null")
    out: dict[str, str | None] = {}
    for kind, value in doc.items():
        if kind not in CONFIG_KINDS:
            raise DeviceConfigError(f"{path}: unknown device kind {kind!r} (expected {', '.join(CONFIG_KINDS)})")
        out[kind] = _url_value(value, f"{path}: {kind}")
    return out


def load_devices(data_dir: Path) -> DeviceConfig:
    """The device configuration in force for the terminal in ``data_dir`` (nothing is opened)."""
    urls = _defaults()
    sources = dict.fromkeys(CONFIG_KINDS, "default")
    local = _read_local(Path(data_dir) / DEVICES_FILE)
    for kind, value in local.items():
        urls[kind] = value
        sources[kind] = DEVICES_FILE
    return DeviceConfig(urls["reader"], urls["scanner"], urls["printer"], sources, pin_pad=urls[PIN_PAD])


def _write_atomically(path: Path, text: str) -> None:
    """Old or new content, never half (see :func:`terminal.files.atomic_write`)."""
    make_private_dir(path.parent)
    atomic_write(path, text.encode("utf-8"))  # 0600: the terminal's own


def set_device(data_dir: Path, kind: str, url: str | None) -> DeviceConfig:
    """Configure the ``kind`` device of the terminal in ``data_dir`` and return the configuration in force.

    ``url`` is a device URL (checked with :func:`validate_url`), ``None`` or
    ``"none"`` for no device, or ``"default"`` to go back to the shipped default.
    """
    _check_kind(kind)
    path = Path(data_dir) / DEVICES_FILE
    local = _read_local(path)
    word = url.strip().lower() if url is not None else "none"
    if word == DEFAULT_WORD:
        local.pop(kind, None)
    elif word in NONE_WORDS:
        local[kind] = None
    else:
        assert url is not None
        local[kind] = validate_url(kind, url)
    ordered = {k: local[k] for k in CONFIG_KINDS if k in local}
    try:
        _write_atomically(path, json.dumps(ordered, indent=1) + "\n")
    except OSError as exc:
        raise DeviceConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc  # the cause: for the CLI
    return load_devices(data_dir)


class LazyReader:
    """A reader named by URL, opened when a card is first needed (and again after it went away).

    It is a :class:`~terminal.ports.CardReader` itself; an error opening the
    device is raised from :meth:`wait_for_card` as the registry's
    :class:`~terminal.ports.DeviceError`.
    """

    def __init__(self, url: str, opener: Callable[[str], CardReader] | None = None) -> None:
        self.url = url
        self._opener = opener or registry.open_reader
        self._reader: CardReader | None = None

    @property
    def opened(self) -> bool:
        return self._reader is not None

    def device(self) -> CardReader:
        """The open reader (opened now if it is not yet)."""
        if self._reader is None:
            self._reader = self._opener(self.url)
        return self._reader

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        reader = self.device()
        try:
            return reader.wait_for_card(timeout, cancel)
        except DeviceGone:
            self.close()  # unplugged: the next wait opens it again
            raise

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):  # a reader that is gone cannot be closed cleanly
                reader.close()

    def __getattr__(self, name: str) -> Any:  # the adapter's own extras (e.g. the simulator's card)
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.device(), name)

    def __repr__(self) -> str:
        return f"LazyReader({self.url!r}, opened={self.opened})"


class LazyPrinter:
    """A receipt printer named by URL, opened when the first receipt is printed.

    A :class:`~terminal.ports.ReceiptPrinter` itself; an error opening the
    device comes from :meth:`print_job` (or :meth:`status`) as a DeviceError.
    """

    kind = "printer"

    def __init__(self, url: str, opener: Callable[[str], ReceiptPrinter] | None = None) -> None:
        self.url = url
        self._opener = opener or registry.open_printer
        self._printer: ReceiptPrinter | None = None

    def device(self) -> ReceiptPrinter:
        if self._printer is None:
            self._printer = self._opener(self.url)
        return self._printer

    def print_job(self, data: bytes) -> None:
        try:
            self.device().print_job(data)
        except DeviceGone:
            self.close()
            raise

    def status(self) -> PrinterStatus:
        return self.device().status()

    def close(self) -> None:
        printer, self._printer = self._printer, None
        if printer is not None:
            with contextlib.suppress(Exception):
                printer.close()

    def __repr__(self) -> str:
        return f"LazyPrinter({self.url!r}, opened={self._printer is not None})"


class LazyScanner:
    """A code scanner named by URL, opened when a code is first awaited (and again after it went away).

    A :class:`~terminal.ports.CodeScanner` itself; an error opening the
    device comes from :meth:`read` as a DeviceError.
    """

    kind = "scanner"

    def __init__(self, url: str, opener: Callable[[str], CodeScanner] | None = None) -> None:
        self.url = url
        self._opener = opener or registry.open_scanner
        self._scanner: CodeScanner | None = None

    def read(self, timeout: float | None = None, cancel: CancelToken | None = None) -> ScannedCode:
        if self._scanner is None:
            self._scanner = self._opener(self.url)
        try:
            return self._scanner.read(timeout, cancel)
        except DeviceGone:
            self.close()  # unplugged: the next read opens it again
            raise

    def close(self) -> None:
        scanner, self._scanner = self._scanner, None
        if scanner is not None:
            with contextlib.suppress(Exception):
                scanner.close()

    def __repr__(self) -> str:
        return f"LazyScanner({self.url!r}, opened={self._scanner is not None})"


class LazyPinPad:
    """A PIN pad named by URL, opened when a PIN is first asked for (and again after it went away).

    A :class:`~terminal.ports.PinPad` itself; an error opening the device
    comes from :meth:`enter_pin` as a DeviceError. ``url`` and ``repr`` show
    the URL as :func:`shown_url` does (a simulated PIN masked).
    """

    kind = "pin-pad"

    def __init__(self, url: str, opener: Callable[[str], PinPad] | None = None) -> None:
        self._url = url
        self.url = shown_url(url)
        self._opener = opener or registry.open_pin_pad
        self._pad: PinPad | None = None

    def _opened(self) -> PinPad:
        if self._pad is None:
            self._pad = self._opener(self._url)
        return self._pad

    def _using(self, call: Callable[[PinPad], _T]) -> _T:
        """``call`` on the opened pad; a pad that went away is closed, so that the next entry opens it again."""
        pad = self._opened()
        try:
            return call(pad)
        except DeviceGone:
            self.close()
            raise

    def enter_pin(
        self, request: PinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> PinEntry:
        return self._using(lambda pad: pad.enter_pin(request, timeout, cancel))

    def enter_offline_pin(
        self, request: OfflinePinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> OfflinePin:
        """The pad's offline PIN for an inserted card (DeviceError when this pad cannot give one)."""
        if not isinstance(self._opened(), OfflinePinPad):
            raise DeviceError(f"the PIN pad {self.url} cannot take an offline PIN for an inserted card")
        return self._using(lambda pad: cast(OfflinePinPad, pad).enter_offline_pin(request, timeout, cancel))

    def encipher_offline_pin(
        self,
        request: OfflinePinRequest,
        key: PublicKey,
        challenge: bytes,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
    ) -> EncipheredOfflinePin:
        """The pad's enciphered offline PIN for an inserted card (DeviceError when this pad cannot form one)."""
        if not isinstance(self._opened(), EncipheringPinPad):
            raise DeviceError(f"the PIN pad {self.url} cannot encipher an offline PIN")
        return self._using(
            lambda pad: cast(EncipheringPinPad, pad).encipher_offline_pin(request, key, challenge, timeout, cancel)
        )

    def offline_pin_ability(self) -> OfflinePinAbility:
        """What the pad this URL names can do for an offline PIN (it is opened to ask; DeviceError if it cannot be)."""
        return offline_pin_ability(self._opened())

    def close(self) -> None:
        pad, self._pad = self._pad, None
        if pad is not None:
            with contextlib.suppress(Exception):
                pad.close()

    def __repr__(self) -> str:
        return f"LazyPinPad({self.url!r}, opened={self._pad is not None})"
