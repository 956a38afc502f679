"""Device URLs -> driver adapters, through entry points (group ``posterm.drivers``).

A URL's scheme (``sim``, ``pcsc``, ``nfc``, ...) names an adapter class
registered by any installed distribution, so a third party adds a device
without touching the core::

    [options.entry_points]
    posterm.drivers =
        sim = simulator.devices:SimulatorCardReader

An adapter class has ``open(url) -> device`` and may have ``discover() -> list[str]``.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from terminal.ports import CardReader, DeviceError

__all__ = ["GROUP", "adapter_for", "discover", "open_reader", "schemes"]

GROUP = "posterm.drivers"


def schemes() -> dict[str, str]:
    """Registered schemes and the object each names (``module:attr``)."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def adapter_for(scheme: str) -> Any:
    """Load the adapter class registered for ``scheme``."""
    for ep in entry_points(group=GROUP):
        if ep.name == scheme:
            return ep.load()
    known = ", ".join(sorted(schemes())) or "none (is posterm installed?)"
    raise DeviceError(f"no driver for scheme {scheme!r}; registered: {known}")


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        raise DeviceError(f"device URL {url!r} has no scheme (expected e.g. 'sim:card=NAME' or 'pcsc:')")
    return scheme


def open_reader(url: str) -> CardReader:
    """Open the card reader a URL names."""
    adapter = adapter_for(_scheme(url))
    try:
        reader = adapter.open(url)
    except DeviceError:
        raise
    except Exception as exc:  # a driver's own error type: say which device, keep the reason
        raise DeviceError(f"cannot open {url!r}: {exc}") from exc
    if not isinstance(reader, CardReader):
        raise DeviceError(f"{url!r} does not name a card reader")
    return reader


def discover(scheme: str) -> list[str]:
    """URLs of what the adapter for ``scheme`` sees attached now."""
    adapter = adapter_for(scheme)
    finder = getattr(adapter, "discover", None)
    return list(finder()) if finder is not None else []
