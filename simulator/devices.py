"""The simulator's devices as ordinary drivers of the ``sim`` URL scheme.

- ``sim:card=PROFILE``: a simulated card (see ``simulator/profiles``) in the field;
- ``sim:replay=PATH``: the replay card answering from a recorded trace.

Registered under the ``posterm.drivers`` entry point group, so the terminal
opens them like any reader and never imports the simulator.
"""

from __future__ import annotations

from simulator import profiles
from simulator.card import SimulatedCard
from simulator.replay import ReplayCard, load_trace
from simulator.transport import CardTransport
from terminal.ports import CancelToken, DeviceError, WaitCancelled

__all__ = ["SimulatorCardReader", "SimulatorDeviceError"]


class SimulatorDeviceError(DeviceError):
    """A ``sim:`` URL that names nothing the simulator has."""


class _Session(CardTransport):
    """A card in the simulated field; closing it takes the card away."""

    # What a PC/SC reader reports for a contactless ISO 14443-4 card (PC/SC part 3,
    # historical bytes empty): the simulator's card has no ATR of its own.
    atr = bytes.fromhex("3B80800101")

    def close(self) -> None:
        pass


class SimulatorCardReader:
    """A reader with one simulated card in its field, opened from a ``sim:`` URL."""

    kind = "reader"

    def __init__(self, url: str, card: SimulatedCard | ReplayCard) -> None:
        self.url = url
        self._card = card

    @classmethod
    def open(cls, url: str) -> SimulatorCardReader:
        _, _, rest = url.partition(":")
        key, sep, value = rest.partition("=")
        if not sep or not value:
            raise SimulatorDeviceError(f"{url!r}: expected sim:card=PROFILE or sim:replay=TRACE.json")
        if key == "card":
            try:
                profile = profiles.load(value)
            except profiles.ProfileError as exc:
                raise SimulatorDeviceError(str(exc)) from None
            return cls(url, SimulatedCard(profile))
        if key == "replay":
            return cls(url, ReplayCard(load_trace(value)))
        raise SimulatorDeviceError(f"{url!r}: unknown simulator device {key!r} (card, replay)")

    @staticmethod
    def discover() -> list[str]:
        return [f"sim:card={name}" for name in profiles.list_names()]

    @property
    def card(self) -> SimulatedCard | ReplayCard:
        return self._card

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> _Session:
        """The card is always in the field (a cancel already set still wins)."""
        if cancel is not None and cancel.cancelled:
            raise WaitCancelled("cancelled")
        return _Session(self._card)

    def close(self) -> None:
        pass
