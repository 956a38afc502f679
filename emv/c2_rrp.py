"""Kernel C-2's relay resistance protocol (Book C-2 section 5.3 and state R1), as pure functions.

When the card (AIP byte 2 b1) and the kernel (Kernel Configuration DF811B b5)
both support it, the kernel sends EXCHANGE RELAY RESISTANCE DATA right after
GET PROCESSING OPTIONS::

    80 EA 00 00 04 <Terminal Relay Resistance Entropy (4)> 00

and times the exchange.  The card answers template 80 with 10 bytes: Device
Relay Resistance Entropy (4), Min and Max Time For Processing Relay Resistance
APDU (2 each) and Device Estimated Transmission Time For Relay Resistance
R-APDU (2), times in units of 100 microseconds.

:func:`measured_processing_time` and :func:`judge` are Book C-2's
arithmetic; the kernel (:mod:`emv.kernel_c2`) sends and times (``emv``
reads no clock: the transaction brings one, :attr:`emv.transaction.TransactionData.clock`).

>>> card = parse_errd_response(bytes.fromhex("800A 01020304 000A 0190 0012"))
>>> card.min_time, card.max_time, card.device_estimated_time
(10, 400, 18)
>>> from emv.c2_data import C2Config
>>> cfg = C2Config({})
>>> measured_processing_time(0.0031, cfg, card)   # 31 units, less 18 (C-APDU) and min(18, 24)
0
>>> j = judge(measured_processing_time(0.1, cfg, card), cfg, card, counter=0)
>>> j.retry, j.time_limits_exceeded, j.threshold_exceeded
(True, False, False)
"""

from __future__ import annotations

from dataclasses import dataclass

from emv import tlv
from emv.c2_data import C2Config
from emv.c2_outcome import L2_CARD_DATA_ERROR, L2_PARSING_ERROR, L2_STATUS_BYTES, C2KernelError
from emv.kernel_common import KernelContext, send
from emv.tvr import Tvr

__all__ = [
    "AIP2_RRP_SUPPORTED",
    "MAX_RRP_RETRIES",
    "CardRrpTimes",
    "RrpJudgement",
    "errd_command",
    "judge",
    "measured_processing_time",
    "parse_errd_response",
    "perform",
]

#: AIP byte 2 b1: relay resistance protocol supported (Book C-2 Annex A, AIP).
AIP2_RRP_SUPPORTED = 0x01
#: How many times the exchange is repeated when it took too long (RRP Counter < 2).
MAX_RRP_RETRIES = 2


def errd_command(entropy: bytes) -> bytes:
    """EXCHANGE RELAY RESISTANCE DATA with the Terminal Relay Resistance Entropy (DF8301).

    >>> errd_command(bytes.fromhex("11223344")).hex().upper()
    '80EA0000041122334400'
    """
    if len(entropy) != 4:
        raise ValueError("the terminal relay resistance entropy is 4 bytes")
    return bytes([0x80, 0xEA, 0x00, 0x00, 0x04]) + entropy + b"\x00"


@dataclass(frozen=True)
class CardRrpTimes:
    """What the card answers to EXCHANGE RELAY RESISTANCE DATA (DF8302-DF8305)."""

    device_entropy: bytes
    min_time: int  # Min Time For Processing Relay Resistance APDU, 100 us units
    max_time: int  # Max Time For Processing Relay Resistance APDU
    device_estimated_time: int  # Device Estimated Transmission Time For Relay Resistance R-APDU

    def data_objects(self) -> dict[int, bytes]:
        return {
            0xDF8302: self.device_entropy,
            0xDF8303: self.min_time.to_bytes(2, "big"),
            0xDF8304: self.max_time.to_bytes(2, "big"),
            0xDF8305: self.device_estimated_time.to_bytes(2, "big"),
        }


def parse_errd_response(data: bytes) -> CardRrpTimes | None:
    """The card's answer, or None when it is not one template 80 of exactly 10 bytes."""
    try:
        objs = tlv.decode(data)
    except tlv.TlvError:
        return None
    if len(objs) != 1 or objs[0].tag != 0x80 or len(objs[0].value) != 10:
        return None
    v = objs[0].value
    return CardRrpTimes(
        v[0:4], int.from_bytes(v[4:6], "big"), int.from_bytes(v[6:8], "big"), int.from_bytes(v[8:10], "big")
    )


def measured_processing_time(seconds: float, cfg: C2Config, card: CardRrpTimes) -> int:
    """Measured Relay Resistance Processing Time (DF8306), in 100 us units:

    MAX(0, timer - Terminal Expected Transmission Time C-APDU
           - MIN(Device Estimated Transmission Time R-APDU, Terminal Expected Transmission Time R-APDU)).
    """
    units = int(seconds * 10_000)
    expected_c = cfg.number(0xDF8134)
    expected_r = cfg.number(0xDF8135)
    return max(0, units - expected_c - min(card.device_estimated_time, expected_r))


@dataclass(frozen=True)
class RrpJudgement:
    """What one timed exchange says: an error, a retry, or the TVR bits to set."""

    measured: int
    too_fast: bool  # below MAX(0, min time - minimum grace period): CARD DATA ERROR
    retry: bool  # above max time + maximum grace period, and a retry is left
    time_limits_exceeded: bool
    threshold_exceeded: bool


def judge(measured: int, cfg: C2Config, card: CardRrpTimes, *, counter: int) -> RrpJudgement:
    """Book C-2's checks of one exchange, ``counter`` being the RRP Counter (retries so far)."""
    too_fast = measured < max(0, card.min_time - cfg.number(0xDF8132))
    too_slow = measured > card.max_time + cfg.number(0xDF8133)
    if too_fast or (too_slow and counter < MAX_RRP_RETRIES):
        return RrpJudgement(measured, too_fast, not too_fast, False, False)
    expected_r = cfg.number(0xDF8135)
    device_r = card.device_estimated_time
    mismatch = cfg.number(0xDF8137)
    threshold = (
        (expected_r != 0 and device_r * 100 < mismatch * expected_r)
        or (device_r != 0 and expected_r * 100 < mismatch * device_r)
        or measured - card.min_time > cfg.number(0xDF8136)
    )
    return RrpJudgement(measured, False, False, too_slow, threshold)


def perform(ctx: KernelContext, cfg: C2Config, td: dict[int, bytes], card: dict[int, bytes], tvr: Tvr) -> None:
    """Run the protocol (state R1): send, time, judge, repeat while too slow and a retry is left.

    The entropy is the transaction's ``relay_entropy`` (a replay's recorded one)
    or else its unpredictable number, then one of its ``retry_numbers`` per
    repetition; each becomes 9F37 too (the CDOL1 carries the last).  Sets TVR
    byte 5 (performed; time limits or threshold exceeded); raises
    :class:`~emv.c2_outcome.C2KernelError` for an error status (STATUS BYTES),
    an answer that does not parse (PARSING ERROR) or an answer faster than the
    card's own minimum (CARD DATA ERROR).
    """
    currency = ctx.txn.currency_bcd()
    clock = ctx.txn.clock
    entropy = ctx.txn.relay_entropy or bytes(td.get(0x9F37, ctx.txn.unpredictable_number))
    spare = list(ctx.txn.retry_numbers)
    counter = 0
    while True:
        td[0x9F37] = entropy
        td[0xDF8301] = entropy
        started = clock() if clock is not None else 0.0
        resp = send(ctx, errd_command(entropy), "EXCHANGE RELAY RESISTANCE DATA")
        elapsed = (clock() - started) if clock is not None else 0.0
        if not resp.ok:
            what = f"EXCHANGE RELAY RESISTANCE DATA: status {resp.sw:04X}"
            raise C2KernelError(what, L2_STATUS_BYTES, resp.sw, currency=currency)
        times = parse_errd_response(resp.data)
        if times is None:
            what = "EXCHANGE RELAY RESISTANCE DATA: not a template 80 of 10 bytes"
            raise C2KernelError(what, L2_PARSING_ERROR, currency=currency)
        measured = measured_processing_time(elapsed, cfg, times)
        verdict = judge(measured, cfg, times, counter=counter)
        card.update(times.data_objects())
        card[0xDF8306] = min(measured, 0xFFFF).to_bytes(2, "big")
        card[0xDF8307] = bytes([counter])
        if verdict.too_fast:
            what = "relay resistance: the card answered before its own minimum processing time"
            raise C2KernelError(what, L2_CARD_DATA_ERROR, currency=currency)
        if verdict.retry and spare:
            counter += 1
            entropy = spare.pop(0)
            continue
        break
    if verdict.retry or verdict.time_limits_exceeded:  # too slow, and no retry left
        tvr.set(Tvr.RELAY_RESISTANCE_TIME_LIMITS_EXCEEDED)
    if verdict.threshold_exceeded:
        tvr.set(Tvr.RELAY_RESISTANCE_THRESHOLD_EXCEEDED)
    tvr.set(Tvr.RRP_PERFORMED)
