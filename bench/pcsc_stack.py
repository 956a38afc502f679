"""A full transaction read through pcscd and vpcd, next to the same transaction in-process.

For each profile: the median wall time of Entry Point through outcome
(``run_tap``) with the simulated card called directly, and with the same card
served by a :class:`~simulator.vpcd.VirtualCard` to the real pcscd and read
back through pyscard (``pcsc:Virtual PCD 00 00``).  Both include the card's
own computing time (the same card object is reused, reset between runs, so
both pay the same); the difference is the PC/SC stack: pyscard, pcscd's
socket, the vpcd driver's TCP connection, and the thread hops on both sides
(the virtual card answers from a thread of this process).  Connecting to the
card (power-up, ATR) is not counted.

Needs pcscd with the vpcd driver: started here (as root) when none runs, and
stopped again.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from drivers.pcsc import PcscReader
from emv.transaction import TransactionData
from simulator.card import SimulatedCard
from simulator.pcscd import ensure_pcscd, wait_for_reader_state
from simulator.transport import as_transport
from simulator.vpcd import VPCD_PORT, VirtualCard, reader_name
from terminal.emv_session import run_tap
from terminal.settings import load_default_config

__all__ = ["markdown", "measure"]

WARM_UP = 3


def _txn() -> TransactionData:
    return TransactionData(
        amount=1234,
        currency=978,
        date=bytes.fromhex("261121"),
        unpredictable_number=bytes.fromhex("1A2B3C4D"),
    )


def _in_process(profile: str, runs: int) -> float:
    config, txn = load_default_config(), _txn()
    card = SimulatedCard(profile, seed=0)
    samples = []
    for i in range(runs + WARM_UP):
        card.reset()
        report = run_tap(as_transport(card), config, txn)
        if i >= WARM_UP:
            samples.append(report.elapsed_seconds)
    return statistics.median(samples) * 1000


def _through_pcscd(reader: PcscReader, profile: str, runs: int) -> float:
    config, txn = load_default_config(), _txn()
    samples = []
    with VirtualCard(SimulatedCard(profile, seed=0), port=VPCD_PORT) as card:
        if not wait_for_reader_state(reader.name, True, 5.0):
            raise RuntimeError(f"pcscd did not see the virtual card in {reader.name!r}")
        for i in range(runs + WARM_UP):
            session = reader.wait_for_card(timeout=5.0)
            try:
                report = run_tap(session, config, txn)
            finally:
                session.close()
            if i >= WARM_UP:
                samples.append(report.elapsed_seconds)
        card.remove()
    wait_for_reader_state(reader.name, False, 5.0)
    return statistics.median(samples) * 1000


def measure(profiles: Sequence[str], runs: int) -> list[tuple[str, float, float]]:
    """(profile, median ms in-process, median ms through pcscd + vpcd) for each profile."""
    daemon = ensure_pcscd()
    try:
        reader = PcscReader.open(f"pcsc:{reader_name(VPCD_PORT)}")
        rows = []
        try:
            for profile in profiles:
                rows.append((profile, _in_process(profile, runs), _through_pcscd(reader, profile, runs)))
        finally:
            reader.close()
        return rows
    finally:
        daemon.stop()


def markdown(rows: Sequence[tuple[str, float, float]]) -> str:
    lines = [
        "| profile | in-process median (ms) | through pcscd + vpcd median (ms) | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for profile, here, there in rows:
        lines.append(f"| {profile} | {here:.2f} | {there:.2f} | {there / here:.1f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    started = time.monotonic()
    table = measure(["visa-qvsdc-online", "visa-qvsdc-offline", "mc-cda-offline"], runs=50)
    print(markdown(table))
    print(f"({time.monotonic() - started:.1f} s)")
