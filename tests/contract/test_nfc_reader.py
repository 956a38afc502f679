"""The reader contract on the nfcpy driver (``nfc:udp:...``) with the simulator's virtual field.

The reader is the real nfcpy stack (ContactlessFrontend, its udp driver,
Type4ATag / Type4BTag and their ISO-DEP); the cards answer from
:class:`simulator.nfc_udp.VirtualNfcField` on a loopback UDP port.  The suite
runs twice: with Type A cards, and with Type B cards (two cards are then a
Type B and a Type A card: nfcpy's udp driver drops a Type B collision on the
floor, so two Type B cards would look like none).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulator.nfc_udp import VirtualNfcField
from terminal import registry
from terminal.ports import CardReader
from tests.contract.reader_suite import *  # noqa: F403
from tests.contract.rigs import Unsupported


class NfcUdpRig:
    """An nfcpy reader on ``nfc:udp:127.0.0.1:PORT`` and the virtual field it reads."""

    def __init__(self, field: VirtualNfcField, technology: str) -> None:
        self.field = field
        self.technology = technology
        self.reader: CardReader = registry.open_reader(field.url)

    def insert(self, profile: str) -> None:
        self.field.insert(profile, technology=self.technology)

    def insert_two(self, first: str, second: str) -> None:
        # Type A + Type A: 4- and 7-byte UIDs, their ATQAs collide; Type B + Type A: both technologies answer.
        self.field.insert_two(first, second, technologies=(self.technology, "A"))

    def remove(self) -> None:
        self.field.remove()

    def remove_after(self, exchanges: int) -> None:
        self.field.remove_after(exchanges)

    def unplug(self) -> None:
        raise Unsupported(
            "nfcpy's udp device is a local socket: it cannot vanish, and an unconnected UDP socket "
            "is not told when nobody listens any more (a stopped field reads as no card)"
        )


@pytest.fixture(params=["A", "B"], ids=["type-a", "type-b"])
def reader_rig(request: pytest.FixtureRequest) -> Iterator[NfcUdpRig]:
    with VirtualNfcField() as field:
        rig = NfcUdpRig(field, str(request.param))
        try:
            yield rig
        finally:
            rig.reader.close()
