"""Terminal-side time of a contact (inserted chip) transaction against its ISO/IEC 7816-3 T=1 airtime.

For each simulated contact card: the contact kernel runs the same transaction
many times in process (selection through the first GENERATE AC, and for an
Online Request the second half with the issuer's ARPC: EXTERNAL AUTHENTICATE
or the second GENERATE AC), with an offline PIN entered at once where the card
asks; the time the simulated card spends computing (its RSA and cryptograms,
measured inside the card) is subtracted.  The median is set next to the
airtime of the same APDUs on the contact interface.

The airtime model (T=1, ISO/IEC 7816-3), a floor:

- every APDU travels in one I-block each way (the simulated cards' ATR gives
  IFSC 254, so no chaining): prologue NAD, PCB, LEN and epilogue LRC, 4
  characters of overhead around the command or the response;
- a character is 10 bits (start, 8 data, parity) at the baud rate plus the
  standard guard time of 2 etu (character guard time 12 etu, N = 0);
- between a block and the next one in the other direction, the block guard
  time of 22 etu (counted once per direction change: twice an exchange);
- the card's processing time, the character and block waiting times it may
  use, the ATR and PPS are not counted.

At 9600 baud (the default F = 372, D = 1 at 3.57 MHz) and at 115200 baud (a
typical PPS-negotiated rate).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from emv.contact import Candidate, ContactConfig, ContactKernel, HostAnswer, PinEntry, PinKind
from emv.outcome import Outcome
from emv.transaction import TransactionData
from simulator.contact.card import ContactCard
from simulator.contact.profiles import list_names
from simulator.cryptograms import issuer_authentication_data
from simulator.transport import as_transport
from terminal.settings import load_default_config

__all__ = ["BAUDS", "ContactFigures", "airtime_seconds", "markdown", "measure", "run"]

BAUDS = (9600, 115200)
BLOCK_OVERHEAD = 4  # NAD, PCB, LEN, LRC
CHARACTER_ETU = 12  # 10 bits + 2 etu guard time
BLOCK_GUARD_ETU = 22


def airtime_seconds(command: bytes, response: bytes, baud: int) -> float:
    """One exchange's T=1 airtime at ``baud`` (see the module docstring).

    >>> round(airtime_seconds(bytes(5), bytes(2), 9600) * 1000, 2)  # (9 + 6) x 12 etu + 2 x 22 etu = 224 etu
    23.33
    """
    characters = (len(command) + BLOCK_OVERHEAD) + (len(response) + BLOCK_OVERHEAD)
    return (characters * CHARACTER_ETU + 2 * BLOCK_GUARD_ETU) / baud


class _Customer:
    """Enters the card's PIN at once, takes the first application."""

    def __init__(self, pin: str) -> None:
        self.pin = pin

    def choose(self, candidates: Sequence[Candidate]) -> Candidate | None:
        return candidates[0] if candidates else None

    def confirm(self, candidate: Candidate) -> bool:
        return True

    def enter_pin(self, kind: PinKind, tries_left: int | None, last_try: bool) -> PinEntry:
        return PinEntry.digits(self.pin)


@dataclass(frozen=True)
class ContactFigures:
    profile: str
    outcome: str
    apdus: int
    bytes_exchanged: int
    terminal_ms: float  # median
    airtime_ms: dict[int, float]  # baud -> ms
    runs: int

    def ratio(self, baud: int) -> float:
        return self.terminal_ms / self.airtime_ms[baud]


def measure(name: str, runs: int = 100, amount: int = 6000) -> ContactFigures:
    config = ContactConfig.from_terminal(replace(load_default_config(), pin_pad=True))
    txn = TransactionData(amount, 978, bytes.fromhex("261121"), bytes.fromhex("1A2B3C4D"))
    samples: list[float] = []
    outcome = ""
    exchanges: list[tuple[bytes, bytes]] = []
    for i in range(runs + 5):
        card = ContactCard(name, seed=i)
        transport = as_transport(card)
        kernel = ContactKernel(transport, config, txn, cardholder=_Customer(card.profile.pin or "1234"), entropy=b"x")
        started = time.perf_counter()
        result = kernel.start()
        if result.outcome is Outcome.ONLINE_REQUEST:
            host_start = time.perf_counter()
            data = result.card_data
            p = card.profile
            issuer_data = issuer_authentication_data(
                p.cryptogram_key, p.pan, p.psn, arqc=data[0x9F26], atc=data[0x9F36], response_code="00"
            )  # 91 of either ARPC method, as the host sends it
            host_seconds = time.perf_counter() - host_start  # the issuer's work, not the terminal's
            result = kernel.complete(HostAnswer.from_host("00", None, issuer_authentication_data=issuer_data))
        else:
            host_seconds = 0.0
        elapsed = time.perf_counter() - started - host_seconds - transport.compute_seconds
        if i >= 5:  # warm-up runs are not counted
            samples.append(elapsed)
        outcome = result.outcome.value
        exchanges = [(ex.command, ex.response or b"") for ex in kernel.transport.exchanges]
    return ContactFigures(
        profile=name,
        outcome=outcome,
        apdus=len(exchanges),
        bytes_exchanged=sum(len(c) + len(r) for c, r in exchanges),
        terminal_ms=statistics.median(samples) * 1000,
        airtime_ms={baud: sum(airtime_seconds(c, r, baud) for c, r in exchanges) * 1000 for baud in BAUDS},
        runs=runs,
    )


def run(runs: int = 100) -> list[ContactFigures]:
    return [measure(name, runs) for name in list_names() if name not in ("contact-mute", "contact-garbage")]


def markdown(rows: list[ContactFigures]) -> str:
    lines = [
        "| card | outcome | APDUs | bytes | terminal-side (median) | airtime 9600 | ratio | airtime 115200 | ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.profile} | {r.outcome} | {r.apdus} | {r.bytes_exchanged} | {r.terminal_ms:.2f} ms | "
            f"{r.airtime_ms[9600]:.0f} ms | {r.ratio(9600):.2%} | {r.airtime_ms[115200]:.1f} ms | "
            f"{r.ratio(115200):.2%} |"
        )
    return "\n".join(lines)
