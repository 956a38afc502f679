"""A full contactless transaction through nfcpy's udp transport next to the same one in process.

In process: Entry Point and the kernel talk to the simulated card through
``simulator.transport.as_transport`` (a function call per APDU).  Through
nfcpy: the ``nfc:udp:`` reader (:mod:`drivers.nfc`) polls, activates the card
(RATS/ATS) and carries every APDU in ISO-DEP blocks, nfcpy's udp driver puts
each frame in a loopback datagram, and :class:`simulator.nfc_udp.VirtualNfcField`
(a thread of the same process) answers for the same simulated card.  Both
figures are wall time and include the card's own computing (its RSA
signatures), so the difference is the stack: polling and activation, ISO-DEP,
nfcpy, UDP.  Same transaction inputs, a fresh card per run, medians.
"""

from __future__ import annotations

import datetime
import statistics
import time
from collections.abc import Sequence

from emv.transaction import TransactionData
from simulator.card import SimulatedCard
from simulator.nfc_udp import VirtualNfcField
from simulator.transport import as_transport
from terminal import registry
from terminal.emv_session import TapInputs, build_transaction, run_tap
from terminal.settings import load_default_config

__all__ = ["INTRO", "PROFILES", "markdown", "measure"]

PROFILES = ("visa-qvsdc-online", "visa-qvsdc-offline", "mc-cda-online", "mc-cda-offline")
WARM_UP = 3

INTRO = """One transaction at 12.34 EUR per run, a fresh simulated card each time, medians of
wall time. In process: Entry Point and the kernel call the simulated card directly.
Through nfcpy: `wait_for_card` on the `nfc:udp:` reader (poll Type B and Type A,
anticollision, RATS/ATS), the same transaction in ISO-DEP blocks through nfcpy's
Type4Tag and udp driver over loopback to the virtual field (a thread of the same
process), then RF off. Both include the card's own computing.
"""


def _transaction() -> TransactionData:
    inputs = TapInputs(
        amount=1234,
        currency=978,
        unpredictable_number=bytes.fromhex("1A2B3C4D"),
        date=bytes.fromhex("261121"),
        time=bytes.fromhex("101500"),
    )
    return build_transaction(inputs, now=lambda: datetime.datetime(2026, 11, 21, 10, 15), random_bytes=bytes)


def _in_process_ms(profile: str, runs: int) -> float:
    config = load_default_config()
    txn = _transaction()
    samples: list[float] = []
    for i in range(runs + WARM_UP):
        transport = as_transport(SimulatedCard(profile, seed=i))
        started = time.perf_counter()
        run_tap(transport, config, txn)
        if i >= WARM_UP:
            samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _through_nfc_ms(profile: str, runs: int) -> float:
    config = load_default_config()
    txn = _transaction()
    samples: list[float] = []
    with VirtualNfcField() as field:
        reader = registry.open_reader(field.url)
        try:
            for i in range(runs + WARM_UP):
                field.insert(SimulatedCard(profile, seed=i))
                started = time.perf_counter()
                session = reader.wait_for_card(timeout=5)
                try:
                    run_tap(session, config, txn)
                finally:
                    session.close()
                if i >= WARM_UP:
                    samples.append(time.perf_counter() - started)
        finally:
            reader.close()
    return statistics.median(samples) * 1000


def measure(profiles: Sequence[str] = PROFILES, runs: int = 50) -> list[tuple[str, float, float]]:
    """(profile, median ms in process, median ms through nfcpy udp) for each profile."""
    return [(name, _in_process_ms(name, runs), _through_nfc_ms(name, runs)) for name in profiles]


def markdown(rows: Sequence[tuple[str, float, float]], runs: int | None = None) -> str:
    head = "| profile | in process (ms) | through nfcpy udp (ms) | ratio |\n| --- | ---: | ---: | ---: |\n"
    lines = [f"| {name} | {local:.2f} | {nfc:.2f} | {nfc / local:.1f}x |" for name, local, nfc in rows]
    tail = f"\n\n{runs} transactions per profile and path." if runs is not None else ""
    return head + "\n".join(lines) + tail
