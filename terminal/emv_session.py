"""One contactless tap: outside inputs in, Entry Point and a kernel, a result out.

This is where the clock and the random source are read (``emv`` takes them as
arguments), where the exchange is recorded as a trace, and where the time the
terminal spends is measured apart from the time the card spends.
"""

from __future__ import annotations

import datetime
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emv.apdu import ApduTransport
from emv.c2_torn import TornLog
from emv.c7_torn import EcTornLog
from emv.config import TerminalConfig
from emv.entry_point import KernelFn, process
from emv.outcome import Restart, TransactionResult
from emv.recorder import ApduRecorder
from emv.transaction import TransactionData

__all__ = ["TapInputs", "TapReport", "build_transaction", "run_tap", "trace_header"]


@dataclass(frozen=True)
class TapInputs:
    """What the cashier and the options give; ``None`` means 'from the clock / random'."""

    amount: int
    currency: int
    currency_exponent: int = 2
    transaction_type: int = 0x00
    unpredictable_number: bytes | None = None
    date: bytes | None = None
    time: bytes | None = None
    overrides: Mapping[int, bytes] = field(default_factory=dict)
    # relay resistance entropies (the first, then those of repeated exchanges); empty: drawn
    relay_entropies: tuple[bytes, ...] = ()


@dataclass
class TapReport:
    result: TransactionResult
    recorder: ApduRecorder  # every exchange of the tap (a trace: terminal.trace.to_trace)
    transaction: TransactionData
    elapsed_seconds: float  # wall time of Entry Point through outcome


def build_transaction(
    inputs: TapInputs,
    now: Callable[[], datetime.datetime] = datetime.datetime.now,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    timer: Callable[[], float] | None = time.perf_counter,
    torn_log: TornLog | None = None,
    ec_torn_log: EcTornLog | None = None,
) -> TransactionData:
    """Fill in the date, time, unpredictable numbers, random selection number and the clock
    kernel C-2 times the relay resistance exchange with; the terminal's torn logs (C-2's, and
    C-7's of electronic cash) when it keeps them."""
    stamp = now()
    date = inputs.date if inputs.date is not None else bytes.fromhex(stamp.strftime("%y%m%d"))
    clock = inputs.time if inputs.time is not None else bytes.fromhex(stamp.strftime("%H%M%S"))
    un = inputs.unpredictable_number if inputs.unpredictable_number is not None else random_bytes(4)
    return TransactionData(
        amount=inputs.amount,
        currency=inputs.currency,
        currency_exponent=inputs.currency_exponent,
        transaction_type=inputs.transaction_type,
        date=date,
        time=clock,
        unpredictable_number=un,
        random_number=random_bytes(1)[0] % 100,
        overrides=dict(inputs.overrides),
        clock=timer,
        relay_entropy=inputs.relay_entropies[0] if inputs.relay_entropies else None,
        retry_numbers=inputs.relay_entropies[1:] or (random_bytes(4), random_bytes(4)),
        torn_log=torn_log,
        ec_torn_log=ec_torn_log,
    )


def trace_header(txn: TransactionData) -> dict[str, Any]:
    """The first keys of a trace file, so that a replay repeats the same inputs."""
    return {
        "unpredictable_number": txn.unpredictable_number.hex().upper(),
        "date": txn.date.hex(),
        "amount": txn.amount,
        "currency": f"{txn.currency:04d}",
        "transaction_type": f"{txn.transaction_type:02X}",
    }


def run_tap(
    transport: ApduTransport,
    config: TerminalConfig,
    txn: TransactionData,
    extra_kernels: Mapping[int, KernelFn] | None = None,
    restart: Restart | None = None,
) -> TapReport:
    """Run Entry Point and the selected kernel over ``transport`` (``extra_kernels``: the caller's, by kernel id;
    ``restart``: the previous tap's Try Again, to start again at Start B, Book B 3.5.1.2)."""
    recorder = ApduRecorder(transport)
    started = time.perf_counter()
    result = process(recorder, config, txn, extra_kernels, restart)
    elapsed = time.perf_counter() - started
    return TapReport(result, recorder, txn, elapsed)
