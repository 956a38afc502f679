"""Adapter from a simulated card to the terminal's transport port.

The one module in :mod:`simulator` that touches ``emv``: it imports
``emv.apdu`` only to re-raise the card's own :class:`~simulator.card.SimulatedCardError`
(e.g. :class:`~simulator.card.CardMuteError`) as ``CardCommunicationError``, which
is what the kernels expect from an ``ApduTransport``.
"""

from __future__ import annotations

from typing import Protocol

from emv.apdu import CardCommunicationError
from simulator.card import SimulatedCardError

__all__ = ["CardTransport", "as_transport"]


class _Card(Protocol):
    def exchange(self, command: bytes) -> bytes: ...


class CardTransport:
    """An ``ApduTransport`` over a simulated or replay card."""

    def __init__(self, card: _Card) -> None:
        self.card = card

    def exchange(self, command: bytes) -> bytes:
        try:
            return self.card.exchange(command)
        except SimulatedCardError as exc:
            raise CardCommunicationError(str(exc)) from exc

    @property
    def compute_seconds(self) -> float:
        """The card's own computing time so far (0.0 for cards that do not measure it)."""
        return float(getattr(self.card, "compute_seconds", 0.0))


def as_transport(card: _Card) -> CardTransport:
    """Wrap ``card`` so that it plugs into ``emv.entry_point.process`` as its transport."""
    return CardTransport(card)
