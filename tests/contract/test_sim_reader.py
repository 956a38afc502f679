"""The reader contract on the in-process simulator reader (``sim:card=...``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from terminal import registry
from terminal.ports import CardReader
from tests.contract.reader_suite import *  # noqa: F403
from tests.contract.rigs import Unsupported


class SimRig:
    """The ``sim:`` reader always has its one card in the field: it cannot take it away."""

    def __init__(self) -> None:
        self.reader: CardReader = registry.open_reader("sim:card=visa-qvsdc-online")

    def insert(self, profile: str) -> None:
        self.reader = registry.open_reader(f"sim:card={profile}")

    def insert_two(self, first: str, second: str) -> None:
        raise Unsupported("the in-process sim: reader holds one card (two cards: the vpcd and nfc-udp rigs)")

    def remove(self) -> None:
        raise Unsupported("the in-process sim: reader always has its card in the field")

    def remove_after(self, exchanges: int) -> None:
        raise Unsupported("the in-process sim: reader always has its card in the field")

    def unplug(self) -> None:
        raise Unsupported("the in-process sim: reader cannot be unplugged")


@pytest.fixture
def reader_rig() -> Iterator[SimRig]:
    rig = SimRig()
    yield rig
    rig.reader.close()
