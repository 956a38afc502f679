"""Ports the terminal core declares and the drivers implement.

Only what the EMV tap needs is here so far; scanners, printers and the host
link join in later issues.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from emv.apdu import ApduTransport, CardCommunicationError

__all__ = ["CardReader", "CardSession", "DeviceError", "NoCardError"]


class DeviceError(Exception):
    """A device could not be opened or used; the message says why."""


class NoCardError(CardCommunicationError):
    """No card came into the field before the timeout."""


@runtime_checkable
class CardSession(ApduTransport, Protocol):
    """A card in the field: an APDU transport that can be closed."""

    def close(self) -> None: ...


@runtime_checkable
class CardReader(Protocol):
    """A contactless or contact reader, opened from a device URL."""

    url: str

    def wait_for_card(self, timeout: float | None = None) -> CardSession:
        """Block until a card is in the field; raise NoCardError on timeout."""
        ...

    def close(self) -> None: ...
