"""Device URLs -> driver adapters, through entry points (group ``posterm.drivers``).

A URL's scheme (``sim``, ``pcsc``, ``nfc``, ``serial``, ``camera``, ``escpos``)
names an adapter class registered by any installed distribution, so a third
party adds a device without touching the core (the core's own ``screen:``, the
on-screen PIN pad of ``posterm ui``, is in :data:`BUILTIN`)::

    [options.entry_points]
    posterm.drivers =
        sim = simulator.devices:SimulatorCardReader

An adapter class has ``kind`` (``"reader"``, ``"scanner"``, ``"printer"`` or ``"pin-pad"``),
``open(url) -> device`` and may have ``discover() -> list[str]`` (the URLs of
what is attached now; cheap, no device is claimed) and ``check(url) -> None``
(raises :class:`~terminal.ports.DeviceUrlError` when the URL names nothing the
adapter has, without opening a device: ``posterm devices set`` refuses such a
URL when it is set rather than when the first card is read).  A scheme whose
adapter drives several kinds of device has ``route(url) -> adapter class``,
which names the adapter of that URL (``sim:card=...`` a reader, ``sim:pin=...``
a PIN pad; ``serial:...?protocol=posterm-pinpad`` a PIN pad, other
``serial:`` URLs a scanner).  A URL with no
scheme, an unknown scheme or the wrong kind of device is a ``DeviceUrlError``.  :class:`DeviceMonitor`
polls discovery and reports what was added and removed.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from terminal.ports import CardReader, CodeScanner, DeviceError, DeviceUrlError, PinPad, ReceiptPrinter

__all__ = [
    "BUILTIN",
    "GROUP",
    "KINDS",
    "DeviceChange",
    "DeviceMonitor",
    "adapter_for",
    "check_url",
    "discover",
    "discover_all",
    "kind_of",
    "open_pin_pad",
    "open_printer",
    "open_reader",
    "open_scanner",
    "schemes",
]

GROUP = "posterm.drivers"
KINDS = ("reader", "scanner", "printer", "pin-pad")
_PORTS: dict[str, type] = {"reader": CardReader, "scanner": CodeScanner, "printer": ReceiptPrinter, "pin-pad": PinPad}


#: Schemes of the core itself, registered by no distribution: the on-screen PIN pad lives in terminal/.
BUILTIN: dict[str, str] = {"screen": "terminal.screen_pinpad:ScreenPinPad"}


def schemes() -> dict[str, str]:
    """Registered schemes and the object each names (``module:attr``)."""
    return {**BUILTIN, **{ep.name: ep.value for ep in entry_points(group=GROUP)}}


def adapter_for(scheme: str) -> Any:
    """Load the adapter class registered for ``scheme``."""
    if scheme in BUILTIN:
        module, _, attr = BUILTIN[scheme].partition(":")
        return getattr(importlib.import_module(module), attr)
    for ep in entry_points(group=GROUP):
        if ep.name == scheme:
            return ep.load()
    known = ", ".join(sorted(schemes())) or "none (is posterm installed?)"
    raise DeviceUrlError(f"no driver for scheme {scheme!r}; registered: {known}")


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        raise DeviceUrlError(f"device URL {url!r} has no scheme (expected e.g. 'sim:card=NAME' or 'pcsc:')")
    return scheme


def _adapter_for_url(url: str) -> Any:
    """The adapter class of a URL: its scheme's, or the one its scheme's ``route(url)`` names."""
    adapter = adapter_for(_scheme(url))
    route = getattr(adapter, "route", None)
    return route(url) if route is not None else adapter


def kind_of(url: str) -> str:
    """``reader``, ``scanner``, ``printer`` or ``pin-pad``: what the URL's adapter drives."""
    return str(getattr(_adapter_for_url(url), "kind", "reader"))


def check_url(url: str, kind: str) -> None:
    """Whether ``url`` names a ``kind`` its adapter has, without opening anything; DeviceUrlError if not.

    The scheme and the kind are checked here; the rest (a card profile, a
    trace file, options) by the adapter's ``check(url)`` when it has one.
    """
    adapter = _adapter_for_url(url)
    actual = getattr(adapter, "kind", "reader")
    if actual != kind:
        raise DeviceUrlError(f"{url!r} names a {actual}, not a {kind}")
    check = getattr(adapter, "check", None)
    if check is not None:
        check(url)


def _open(url: str, kind: str) -> Any:
    adapter = _adapter_for_url(url)
    if getattr(adapter, "kind", "reader") != kind:
        raise DeviceUrlError(f"{url!r} names a {getattr(adapter, 'kind', 'reader')}, not a {kind}")
    try:
        device = adapter.open(url)
    except DeviceError:
        raise
    except Exception as exc:  # a driver's own error type: say which device, keep the reason
        raise DeviceError(f"cannot open {url!r}: {exc}") from exc
    if not isinstance(device, _PORTS[kind]):
        raise DeviceError(f"{url!r} does not name a {kind}")
    return device


def open_reader(url: str) -> CardReader:
    """Open the card reader a URL names."""
    reader: CardReader = _open(url, "reader")
    return reader


def open_scanner(url: str) -> CodeScanner:
    """Open the code scanner a URL names."""
    scanner: CodeScanner = _open(url, "scanner")
    return scanner


def open_printer(url: str) -> ReceiptPrinter:
    """Open the receipt printer a URL names."""
    printer: ReceiptPrinter = _open(url, "printer")
    return printer


def open_pin_pad(url: str) -> PinPad:
    """Open the PIN pad a URL names."""
    pad: PinPad = _open(url, "pin-pad")
    return pad


def discover(scheme: str) -> list[str]:
    """URLs of what the adapter for ``scheme`` sees attached now."""
    adapter = adapter_for(scheme)
    finder = getattr(adapter, "discover", None)
    return list(finder()) if finder is not None else []


def discover_all(kinds: Iterable[str] = KINDS, *, include_sim: bool = False) -> dict[str, list[str]]:
    """What every adapter sees attached now, by kind; an adapter that fails to look is skipped.

    The ``sim`` scheme lists every card profile; it is left out unless asked for.
    """
    wanted = set(kinds)
    found: dict[str, list[str]] = {k: [] for k in KINDS if k in wanted}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if ep.name == "sim" and not include_sim:
            continue
        try:
            adapter = ep.load()
            kind = str(getattr(adapter, "kind", "reader"))
            finder = getattr(adapter, "discover", None)
            if kind not in wanted or finder is None:
                continue
            found[kind].extend(finder())
        except Exception:  # a driver whose library or daemon is missing finds nothing
            continue
    return found


@dataclass(frozen=True)
class DeviceChange:
    kind: str  # reader | scanner | printer | pin-pad
    url: str
    added: bool  # False: removed


class DeviceMonitor:
    """Polls discovery in a thread and calls ``listener`` for every device added or removed.

    The first poll reports what is attached as added.  :meth:`stop` joins the thread.
    """

    def __init__(
        self,
        listener: Callable[[DeviceChange], None],
        *,
        interval_seconds: float = 1.0,
        kinds: Iterable[str] = KINDS,
        discover_fn: Callable[[], dict[str, list[str]]] | None = None,
    ) -> None:
        self._listener = listener
        self._interval = interval_seconds
        self._kinds = tuple(kinds)
        self._discover = discover_fn or (lambda: discover_all(self._kinds))
        self._known: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> list[DeviceChange]:
        """One round: compare what is attached with what was, report the differences."""
        now = {(kind, url) for kind, urls in self._discover().items() for url in urls}
        changes = [DeviceChange(k, u, True) for k, u in sorted(now - self._known)]
        changes += [DeviceChange(k, u, False) for k, u in sorted(self._known - now)]
        self._known = now
        for change in changes:
            try:
                self._listener(change)
            except Exception:  # a broken listener must not stop the monitor
                continue
        return changes

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="posterm-device-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self._interval)

    def stop(self, timeout: float = 5.0) -> bool:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True
