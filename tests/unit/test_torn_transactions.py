"""Book C-2's torn transaction log and RECOVER AC, with the simulator's mc-torn card.

mc-torn computes its answer to the first GENERATE AC of its life and leaves the
field before sending it (fault ``torn``); it keeps that answer and gives it to a
RECOVER AC whose DRDOL related data match.  Presented again to a terminal
that logged the torn transaction, it is recovered: the first cryptogram (its
ATC, its CDA signature over the first transaction's data), not a second one.
"""

from __future__ import annotations

import dataclasses
import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from emv.c2_torn import MemoryTornLog, TornLog, age_seconds
from emv.config import TerminalConfig
from emv.entry_point import process
from emv.outcome import Message, Outcome, TransactionResult
from emv.transaction import TransactionData
from simulator.card import SimulatedCard
from simulator.devices import SimulatorCardReader
from simulator.transport import as_transport

DATE = bytes.fromhex("261121")
FIRST_UN, SECOND_UN = bytes.fromhex("01020304"), bytes.fromhex("05060708")
RECOVER_AC, GENERATE_AC = 0xD0, 0xAE


def tap(
    card: SimulatedCard,
    config: TerminalConfig,
    log: TornLog | None,
    un: bytes,
    amount: int = 1234,
    time: str = "120000",
) -> TransactionResult:
    card.reset()  # a new presentation: powered up afresh
    txn = TransactionData(amount, 978, DATE, un, time=bytes.fromhex(time), torn_log=log)
    return process(as_transport(card), config, txn)


def sent(result: TransactionResult) -> list[int]:
    return [c[1] for c in result.commands]


def with_c2(config: TerminalConfig, **objects: str) -> TerminalConfig:
    visa, mc, *others = config.combinations  # the shipped terminal: Visa, Mastercard, then UnionPay
    extra = {**mc.extra, **{int(t, 16): bytes.fromhex(v) for t, v in objects.items()}}
    return dataclasses.replace(config, combinations=(visa, dataclasses.replace(mc, extra=extra), *others))


@pytest.mark.parametrize(("amount", "outcome"), [(1234, Outcome.APPROVED), (6000, Outcome.ONLINE_REQUEST)])
def test_torn_generate_ac_is_logged_then_recovered_with_recover_ac(
    terminal_config: TerminalConfig, amount: int, outcome: Outcome
) -> None:
    """Book C-2 (torn transaction log, RECOVER AC): the card leaves during GENERATE AC: Try Again,
    "present card again", and a torn record; presented again: RECOVER AC, and its answer is the first
    GENERATE AC's (the ATC of the first GPO, CDA verified over the first transaction's data)."""
    card, log = SimulatedCard("mc-torn", seed=3), MemoryTornLog()
    first = tap(card, terminal_config, log, FIRST_UN, amount)
    assert first.outcome is Outcome.TRY_AGAIN
    assert [m.message for m in first.messages] == [Message.PRESENT_CARD_AGAIN]
    assert sent(first)[-1] == GENERATE_AC and len(log) == 1
    first_atc = card.atc.to_bytes(2, "big")
    again = tap(card, terminal_config, log, SECOND_UN, amount)
    assert again.outcome is outcome and again.oda.result == "passed"
    assert RECOVER_AC in sent(again) and GENERATE_AC not in sent(again)
    assert again.card_data[0x9F36] == first_atc != card.atc.to_bytes(2, "big")
    assert again.cryptogram_inputs[0x9F37] == FIRST_UN  # what the issuer verifies the cryptogram over
    assert len(log) == 0


def test_without_a_torn_log_the_first_cryptogram_is_lost(terminal_config: TerminalConfig) -> None:
    """What the log is for: without it the card computes a second cryptogram (another ATC)."""
    card = SimulatedCard("mc-torn", seed=3)
    assert tap(card, terminal_config, None, FIRST_UN).outcome is Outcome.TRY_AGAIN
    first_atc = card.atc
    again = tap(card, terminal_config, None, SECOND_UN)
    assert GENERATE_AC in sent(again) and RECOVER_AC not in sent(again)
    assert int.from_bytes(again.card_data[0x9F36], "big") == first_atc + 1


def test_another_amount_is_not_recovered_and_the_record_stays(terminal_config: TerminalConfig) -> None:
    card, log = SimulatedCard("mc-torn", seed=3), MemoryTornLog()
    tap(card, terminal_config, log, FIRST_UN, 1234)
    other = tap(card, terminal_config, log, SECOND_UN, 1000)
    assert RECOVER_AC not in sent(other) and other.outcome is Outcome.APPROVED
    assert len(log) == 1


def test_a_record_older_than_df811c_is_dropped(terminal_config: TerminalConfig) -> None:
    """DF811C (Max Lifetime of Torn Transaction Log Record, default 300 s): past it, no RECOVER AC."""
    card, log = SimulatedCard("mc-torn", seed=3), MemoryTornLog()
    tap(card, terminal_config, log, FIRST_UN, time="120000")
    assert age_seconds(log.records()[0], DATE, bytes.fromhex("120501")) == 301
    late = tap(card, terminal_config, log, SECOND_UN, time="120501")
    assert RECOVER_AC not in sent(late) and len(log) == 0
    card2, log2 = SimulatedCard("mc-torn", seed=3), MemoryTornLog()
    config = with_c2(terminal_config, DF811C="0258")  # 600 s
    tap(card2, config, log2, FIRST_UN, time="120000")
    assert RECOVER_AC in sent(tap(card2, config, log2, SECOND_UN, time="120501"))


def test_a_card_that_does_not_know_the_transaction_gets_generate_ac(terminal_config: TerminalConfig) -> None:
    """RECOVER AC refused (the card never computed that answer): GENERATE AC as usual, record gone."""
    card, log = SimulatedCard("mc-torn", seed=3), MemoryTornLog()
    tap(card, terminal_config, log, FIRST_UN)
    stranger = SimulatedCard("mc-torn", seed=4)  # the same card number, but no torn answer kept
    stranger._torn = True  # its own fault has struck already: it answers GENERATE AC
    result = tap(stranger, terminal_config, log, SECOND_UN)
    assert sent(result)[-2:] == [RECOVER_AC, GENERATE_AC]
    assert result.outcome is Outcome.APPROVED and len(log) == 0


def test_df811d_bounds_the_log_and_zero_keeps_none(terminal_config: TerminalConfig) -> None:
    """DF811D (Max Number of Torn Transaction Log Records): 0 logs nothing."""
    card, log = SimulatedCard("mc-torn", seed=3), MemoryTornLog()
    tap(card, with_c2(terminal_config, DF811D="00"), log, FIRST_UN)
    assert len(log) == 0
    log = MemoryTornLog()
    for seed in (1, 2):
        tap(SimulatedCard("mc-torn", seed=seed), with_c2(terminal_config, DF811D="01"), log, FIRST_UN)
    assert len(log) == 1


def test_the_terminal_asks_for_the_card_again_and_recovers(terminal_config: TerminalConfig) -> None:
    """terminal.card_reading.read_card: Try Again, "present card again", the same card again: the
    payment goes on with the first cryptogram (RECOVER AC), the torn log being the terminal's."""
    from terminal.card_reading import CardRequest, read_card

    reader = SimulatorCardReader.open("sim:card=mc-torn")
    events: list[tuple[str, dict[str, Any]]] = []
    core: Any = SimpleNamespace(
        config=terminal_config,
        settings=SimpleNamespace(card_timeout_seconds=5.0, card_retries=2),
        listeners=[],
        emit=lambda kind, _txn, **data: events.append((kind, data)),
        clock=SimpleNamespace(now=lambda: datetime.datetime(2026, 11, 21, 12, 0, 0)),
        torn_log=MemoryTornLog(),
        ec_torn_log=None,
    )
    request = CardRequest(amount=1234, currency=978, exponent=2, transaction_type=0x00, force_online=False)
    token = SimpleNamespace(cancelled=False, wait=lambda _s: False)
    result = read_card(core, reader, request, token)
    assert result.outcome is Outcome.APPROVED
    assert RECOVER_AC in sent(result)
    assert len(core.torn_log) == 0


def test_a_recovered_cda_answer_the_terminal_cannot_verify_now_is_declined(terminal_config: TerminalConfig) -> None:
    """The torn GENERATE AC asked for CDA; presented again to a terminal that now has no CDA (DF811F
    00: no ICC key recovered), the recovered signature cannot be verified: CDA failed, declined."""
    card, log = SimulatedCard("mc-torn", seed=3), MemoryTornLog()
    tap(card, terminal_config, log, FIRST_UN)
    again = tap(card, with_c2(terminal_config, DF811F="00"), log, SECOND_UN)
    assert RECOVER_AC in sent(again)
    assert again.outcome is Outcome.DECLINED
    assert (again.oda.method, again.oda.result, again.oda.failure) == ("CDA", "failed", "icc_data_missing")
