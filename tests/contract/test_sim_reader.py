"""The reader contract on the in-process simulator reader (``sim:card=...``).

Its world is steered through the URL's fault options (``present-after`` keeps
the card out of the field for an hour: "no card") and the reader's runtime
``remove_after``, as vpcd's and nfc-udp's virtual cards are.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulator.devices import SimulatorCardReader
from terminal import registry
from terminal.ports import CardReader
from tests.contract.reader_suite import *  # noqa: F403
from tests.contract.rigs import Unsupported


class SimRig:
    """The ``sim:`` reader: one card, absent on request, leaving after N commands on request."""

    def __init__(self) -> None:
        self.reader: CardReader = registry.open_reader("sim:card=visa-qvsdc-online")

    def insert(self, profile: str) -> None:
        self.reader = registry.open_reader(f"sim:card={profile}")

    def insert_two(self, first: str, second: str) -> None:
        raise Unsupported("the in-process sim: reader holds one card (two cards: the vpcd and nfc-udp rigs)")

    def remove(self) -> None:
        self.reader = registry.open_reader("sim:card=visa-qvsdc-online?present-after=3600")

    def remove_after(self, exchanges: int) -> None:
        assert isinstance(self.reader, SimulatorCardReader)
        self.reader.remove_after(exchanges)

    def unplug(self) -> None:
        raise Unsupported("the in-process sim: reader cannot be unplugged")


@pytest.fixture
def reader_rig() -> Iterator[SimRig]:
    rig = SimRig()
    yield rig
    rig.reader.close()
