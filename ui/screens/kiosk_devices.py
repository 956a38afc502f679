"""The kiosk's devices watched: a reader, scanner or printer that goes away is "out of order", and back when it returns.

An unattended kiosk has nobody to notice a reader unplugged or a printer
switched off.  :class:`DeviceWatch` looks at the devices the terminal uses
every few seconds, off the UI thread (a :class:`terminal.registry.DeviceMonitor`
whose discovery is "which of the configured devices answer now"), and tells
the kiosk's screens on the UI thread when the set of devices out of order
changes.  Nothing needs restarting when a device returns: the terminal opens
its reader and printer again on their next use (:class:`terminal.devices.LazyReader`).

How each device is looked at (:func:`device_present`), as cheaply as the
device allows and without taking it from the terminal:

- ``sim:`` devices are the simulator's, in this process: always there;
- a serial scanner (``serial:/dev/ttyACM0``) is there while its device file
  is (an unplugged USB scanner takes its file with it);
- an nfcpy USB reader is looked for by discovery: opening it would claim it;
- the terminal's own printer is asked its status through the terminal's
  printer object (paper out, cover open and offline count as out of order);
- anything else (a PC/SC reader, a network printer named elsewhere) is opened
  and closed, as ``posterm devices`` probes it; PC/SC opening claims nothing.

While a payment runs the watch only waits (:meth:`DeviceWatch.pause`): a probe
must never compete with the payment for its reader or printer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from terminal import registry
from terminal.devices import load_devices
from terminal.ports import PrinterStatus
from terminal.registry import DeviceChange, DeviceMonitor
from ui.session import Session

__all__ = ["DEVICE_NAMES", "DeviceState", "DeviceWatch", "device_present"]

_log = logging.getLogger("ui.kiosk.devices")

#: How each kind of device is named to a customer ("Out of order: card reader").
DEVICE_NAMES: Final = {"reader": "card reader", "scanner": "code scanner", "printer": "receipt printer"}
_OUT_OF_ORDER_STATUSES: Final = (PrinterStatus.PAPER_OUT, PrinterStatus.COVER_OPEN, PrinterStatus.OFFLINE)


@dataclass(frozen=True)
class DeviceState:
    """One configured device as last seen: there or not, and why not."""

    kind: str
    url: str | None  # None: no device of this kind is configured
    present: bool
    reason: str = ""


def _path_of(url: str) -> str:
    """The device file of ``serial:/dev/ttyACM0?baud=9600`` or ``nfc:tty:/dev/ttyUSB0``."""
    rest = url.split(":", 1)[1]
    if rest.startswith("tty:"):
        rest = rest[4:]
    return urlsplit(rest).path or rest.split("?", 1)[0]


def device_present(kind: str, url: str, own: Any = None) -> tuple[bool, str]:
    """Whether the ``kind`` device ``url`` answers now, and what was seen (see the module's documentation).

    ``own`` is the terminal's own device object for that URL, when it has one
    (its printer is asked through it).  Never raises: a probe that fails is
    the device's absence, with the reason.
    """
    scheme = url.partition(":")[0]
    try:
        if scheme == "sim":
            return True, "simulated"
        if scheme == "serial" or url.startswith("nfc:tty"):
            path = _path_of(url)
            return (True, path) if os.path.exists(path) else (False, f"{path} is not there")
        if url.startswith("nfc:usb"):
            found = registry.discover("nfc")
            wanted = url.rstrip(":")
            present = any(u == wanted or (wanted == "nfc:usb" and u.startswith("nfc:usb")) for u in found)
            return (True, "attached") if present else (False, "not attached")
        if kind == "printer" and own is not None and callable(getattr(own, "status", None)):
            status = own.status()
            if status in _OUT_OF_ORDER_STATUSES:
                return False, str(status.value).replace("_", " ")
            return True, str(status.value).replace("_", " ")
        openers: dict[str, Callable[[str], Any]] = {
            "reader": registry.open_reader,
            "scanner": registry.open_scanner,
            "printer": registry.open_printer,
        }
        device = openers[kind](url)
        try:
            if kind == "printer":
                status = device.status()
                if status in _OUT_OF_ORDER_STATUSES:
                    return False, str(status.value).replace("_", " ")
        finally:
            with contextlib.suppress(Exception):
                device.close()
        return True, "answers"
    except Exception as exc:  # whatever a driver raises, the device is not usable now
        return False, str(exc) or type(exc).__name__


class DeviceWatch:
    """The configured devices looked at every ``interval`` seconds; ``on_change(states)`` on the UI thread.

    ``states`` maps each kind to its :class:`DeviceState`.  The first look
    reports every kind; later ones only when something changed.  Stopped with
    the session.
    """

    def __init__(self, session: Session, on_change: Callable[[dict[str, DeviceState]], None], interval: float) -> None:
        self.session = session
        self._on_change = on_change
        self._interval = interval
        self._monitor: DeviceMonitor | None = None
        self._last: dict[str, DeviceState] | None = None
        self._paused = threading.Event()
        self._frozen = False
        self._lock = threading.Lock()
        self.states: dict[str, DeviceState] = {}  # as last told, on the UI thread

    @property
    def running(self) -> bool:
        return self._monitor is not None

    def start(self) -> None:
        """Start looking (once; again after :meth:`stop`, never after :meth:`freeze`)."""
        if self._monitor is not None or self._frozen:
            return
        self._monitor = DeviceMonitor(self._changed, interval_seconds=self._interval, discover_fn=self._look)
        self._monitor.start()
        self.session.on_stop(self.stop)

    def freeze(self) -> None:
        """Stop, and never look again: the states stay what they are set to (screenshots' samples)."""
        self._frozen = True
        self.stop()

    def stop(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.stop(timeout=10.0)

    def pause(self, paused: bool) -> None:
        """Stop probing while a payment runs (``True``), and start again after it (``False``)."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    def configured(self) -> dict[str, tuple[str | None, Any]]:
        """Each kind's URL in force and the terminal's own object for it (reader and printer: the terminal's)."""
        terminal = self.session.terminal
        try:
            scanner = load_devices(self.session.data_dir).scanner
        except Exception as exc:  # a damaged devices.json: the scanner cannot be named
            _log.warning("the device configuration cannot be read: %s", exc)
            scanner = None
        reader, printer = terminal.reader, terminal.printer
        return {
            "reader": (getattr(reader, "url", None) if reader is not None else None, reader),
            "scanner": (scanner, None),
            "printer": (getattr(printer, "url", None) if printer is not None else None, printer),
        }

    def look(self) -> dict[str, DeviceState]:
        """Look at every configured device now (on the caller's thread: never the UI's)."""
        states: dict[str, DeviceState] = {}
        for kind, (url, own) in self.configured().items():
            if url is None:
                states[kind] = DeviceState(kind, None, kind != "reader", "not configured")
                continue
            present, reason = device_present(kind, url, own)
            states[kind] = DeviceState(kind, url, present, reason)
        return states

    def _look(self) -> dict[str, list[str]]:
        """The monitor's discovery: the devices that answer; a change is handed to the UI thread."""
        if self._paused.is_set():
            with self._lock:
                last = dict(self._last or {})
        else:
            last = self.look()
            with self._lock:
                changed = last != self._last
                self._last = last
            if changed:
                told = dict(last)
                self.session.dispatch(lambda: self._tell(told))
        return {kind: [state.url] for kind, state in last.items() if state.present and state.url is not None}

    def _changed(self, change: DeviceChange) -> None:
        _log.info("%s %s: %s", change.kind, change.url, "answers" if change.added else "gone")

    def _tell(self, states: dict[str, DeviceState]) -> None:
        self.states = states
        self._on_change(states)

    def out_of_order(self) -> list[str]:
        """The kinds out of order now, reader first (as last told)."""
        return [
            kind for kind in ("reader", "scanner", "printer") if kind in self.states and not self.states[kind].present
        ]
