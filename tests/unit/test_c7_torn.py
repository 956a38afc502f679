"""Kernel C-7's torn electronic-cash log (emv.c7_torn), posterm's guess at "闪卡" handling.

unionpay-ec-torn debits its EC balance at its first EC GPO and leaves the field
before sending the answer (fault ``torn``); it remembers that debit and answers
the same PDOL data again with the same answer, without debiting again.  Each
test names the requirement it proves (the list of docs/internals.md "Kernel
C-7", guess 11).
"""

from __future__ import annotations

from dataclasses import replace

from emv import c7_torn
from emv.apdu import CardCommunicationError
from emv.c7_torn import LIFETIME_SECONDS, MAX_RECORDS, MemoryEcTornLog
from emv.entry_point import process
from emv.outcome import Message, Outcome, TransactionResult
from emv.transaction import TransactionData
from simulator import profiles
from simulator.card import SimulatedCard
from simulator.transport import as_transport
from terminal.settings import load_default_config

DATE = bytes.fromhex("261121")
FIRST_UN, SECOND_UN, THIRD_UN = bytes.fromhex("01020304"), bytes.fromhex("05060708"), bytes.fromhex("090A0B0C")
GPO, READ_RECORD = 0xA8, 0xB2
BALANCE = 30000  # the profile's 300.00 CNY


class LeavesAt:
    """A card that leaves the field at the first command with instruction ``ins`` (once)."""

    def __init__(self, card: SimulatedCard, ins: int) -> None:
        self.card, self.ins, self.gone = card, ins, False

    def exchange(self, command: bytes) -> bytes:
        if command[1] == self.ins and not self.gone:
            self.gone = True
            raise CardCommunicationError("the card left the field")
        return self.card.exchange(command)

    def reset(self) -> None:
        self.card.reset()


def tap(
    card: SimulatedCard | LeavesAt,
    log: MemoryEcTornLog | None,
    un: bytes,
    amount: int = 10000,
    time: str = "120000",
) -> TransactionResult:
    card.reset()  # a new presentation: powered up afresh
    txn = TransactionData(amount, 156, DATE, un, time=bytes.fromhex(time), ec_torn_log=log)
    return process(as_transport(card), load_default_config(), txn)  # type: ignore[arg-type]


def gpo_data(result: TransactionResult) -> bytes:
    return next(c for c in result.commands if c[1] == GPO)


def torn_card() -> SimulatedCard:
    return SimulatedCard("unionpay-ec-torn", seed=3)


def test_torn_ec_gpo_is_kept_and_the_retap_completes_it_with_one_debit() -> None:
    """Requirement: a card taken away during GPO after it debited gives "present card again" and a torn
    record (the PDOL values sent, no answer); the re-tap sends the same GPO, the card answers it as it did
    (same ATC, cryptogram over the first data) without debiting again, and the sale is approved once."""
    card, log = torn_card(), MemoryEcTornLog()
    first = tap(card, log, FIRST_UN)
    assert first.outcome is Outcome.TRY_AGAIN
    assert [m.message for m in first.messages] == [Message.PRESENT_CARD_AGAIN]
    assert card.ec_balance == BALANCE - 10000  # the card debited at GPO
    [record] = log.records()
    assert record.answer is None and record.pdol_values == gpo_data(first)[7:-1]
    atc = card.atc
    again = tap(card, log, SECOND_UN)
    assert again.outcome is Outcome.APPROVED and again.cryptogram_type == "TC"
    assert again.oda.method == "fDDA" and again.oda.result == "passed"  # over the first tap's data
    assert gpo_data(again) == gpo_data(first) and again.cryptogram_inputs[0x9F37] == FIRST_UN
    assert card.atc == atc and again.card_data[0x9F36] == atc.to_bytes(2, "big")
    assert card.ec_balance == BALANCE - 10000  # debited once
    assert again.electronic_cash is not None and again.electronic_cash.balance == BALANCE - 10000
    assert len(log) == 0


def test_without_the_log_the_retap_debits_a_second_time() -> None:
    """The defect the log is for: without it the re-tap is a new GPO (a new number), a second debit."""
    card = torn_card()
    assert tap(card, None, FIRST_UN).outcome is Outcome.TRY_AGAIN
    again = tap(card, None, SECOND_UN)
    assert again.outcome is Outcome.APPROVED and again.cryptogram_inputs[0x9F37] == SECOND_UN
    assert card.ec_balance == BALANCE - 2 * 10000


def test_torn_during_the_records_keeps_the_answer_and_the_retap_completes_it() -> None:
    """Requirement: a card taken away during READ RECORD after a TC: the record keeps the card's answer
    (ATC, cryptogram, 9F5D); the re-tap gets that answer again, and the sale is approved with one debit."""
    card, log = SimulatedCard("unionpay-ec", seed=3), MemoryEcTornLog()
    first = tap(LeavesAt(card, READ_RECORD), log, FIRST_UN)
    assert first.outcome is Outcome.TRY_AGAIN
    [record] = log.records()
    assert record.answer is not None
    assert record.answer.atc == card.atc.to_bytes(2, "big") and len(record.answer.cryptogram) == 8
    assert record.answer.aosa == bytes.fromhex(f"{BALANCE - 10000:012d}")  # 9F5D: the balance after the sale
    again = tap(card, log, SECOND_UN)
    assert again.outcome is Outcome.APPROVED
    assert (again.card_data[0x9F36], again.cryptogram) == (record.answer.atc, record.answer.cryptogram)
    assert card.ec_balance == BALANCE - 10000 and len(log) == 0


def test_a_different_card_on_the_retap_runs_as_a_new_transaction_and_the_record_goes() -> None:
    """Requirement: another EC card of the same application gets the re-sent GPO, does not know it, and
    makes a new debit of its own, completed as usual (one debit for it); the record is used once."""
    card, log = torn_card(), MemoryEcTornLog()
    first = tap(card, log, FIRST_UN)
    other = SimulatedCard("unionpay-ec", seed=5)
    result = tap(other, log, SECOND_UN)
    assert gpo_data(result) == gpo_data(first)  # the same GPO was sent again ...
    assert result.outcome is Outcome.APPROVED and other.ec_balance == BALANCE - 10000  # ... a new debit
    assert (
        result.card_data[0x9F36]
        == other.atc.to_bytes(2, "big")
        == (profiles.load("unionpay-ec").atc + 1).to_bytes(2, "big")
    )
    assert len(log) == 0  # sent again once: not a third time to the next card


def test_a_card_of_another_application_gets_a_new_gpo_and_the_record_stays() -> None:
    """A UnionPay credit card (another AID, no EC in its PDOL) is not sent the torn GPO."""
    card, log = torn_card(), MemoryEcTornLog()
    tap(card, log, FIRST_UN)
    credit = tap(SimulatedCard("unionpay-credit", seed=5), log, SECOND_UN)
    assert credit.cryptogram_inputs[0x9F37] == SECOND_UN and len(log) == 1


def test_another_amount_is_a_new_transaction_and_the_record_stays() -> None:
    """Requirement: the amount changed: a new GPO (a new number, a new debit), the record kept for its own amount."""
    card, log = torn_card(), MemoryEcTornLog()
    tap(card, log, FIRST_UN, amount=10000)
    other = tap(card, log, SECOND_UN, amount=5000)
    assert other.outcome is Outcome.APPROVED and other.cryptogram_inputs[0x9F37] == SECOND_UN
    assert card.ec_balance == BALANCE - 10000 - 5000
    assert [r.amount for r in log.records()] == [10000]


def test_a_record_past_its_lifetime_is_dropped_and_not_sent_again() -> None:
    """Requirement: records expire after LIFETIME_SECONDS: at that age the GPO is sent again; one second
    later the record is dropped and the tap is a new transaction."""
    in_time, log = torn_card(), MemoryEcTornLog()
    tap(in_time, log, FIRST_UN, time="120000")
    assert c7_torn.age_seconds_of(log.records()[0], DATE, bytes.fromhex("120200")) == LIFETIME_SECONDS
    assert tap(in_time, log, SECOND_UN, time="120200").cryptogram_inputs[0x9F37] == FIRST_UN
    late, log = torn_card(), MemoryEcTornLog()
    tap(late, log, FIRST_UN, time="120000")
    result = tap(late, log, SECOND_UN, time="120201")
    assert result.cryptogram_inputs[0x9F37] == SECOND_UN and len(log) == 0
    assert late.ec_balance == BALANCE - 2 * 10000  # what the lifetime costs: a late re-tap is a second debit


def test_a_retap_torn_again_keeps_the_first_moment() -> None:
    """A re-sent GPO torn again is kept again with the first tap's moment: the lifetime counts from the first tap."""
    card, log = torn_card(), MemoryEcTornLog()
    tap(card, log, FIRST_UN, time="120000")
    tap(LeavesAt(card, READ_RECORD), log, SECOND_UN, time="120100")
    [record] = log.records()
    assert record.time == bytes.fromhex("120000") and record.answer is not None
    done = tap(card, log, THIRD_UN, time="120150")
    assert done.outcome is Outcome.APPROVED and card.ec_balance == BALANCE - 10000 and len(log) == 0


def test_the_log_keeps_at_most_max_records() -> None:
    log = MemoryEcTornLog()
    for amount in (1000, 2000, 3000):
        tap(torn_card(), log, FIRST_UN, amount=amount)
    assert MAX_RECORDS == 2 and [r.amount for r in log.records()] == [2000, 3000]  # the oldest went


def test_nothing_is_kept_when_ec_was_not_offered() -> None:
    """Only a GPO that offered EC can have debited: a credit card taken away after GPO leaves no record."""
    log = MemoryEcTornLog()
    result = tap(LeavesAt(SimulatedCard("unionpay-credit", seed=5), READ_RECORD), log, FIRST_UN)
    assert result.outcome is Outcome.TRY_AGAIN and len(log) == 0


def test_the_card_answers_its_last_ec_debit_again_and_a_new_gpo_is_a_new_debit() -> None:
    """The card side (simulator.card_qpboc.replay): the same PDOL data get the same answer (no debit, no
    ATC); different data are a new transaction, and the card forgets the first debit."""
    card = SimulatedCard(replace(profiles.load("unionpay-ec-torn"), fault=None), seed=3)
    first = tap(card, None, FIRST_UN)
    assert first.outcome is Outcome.APPROVED and card.ec_balance == BALANCE - 10000
    select, sent = next(c for c in first.commands if c[1] == 0xA4 and c[5:-1] == card.profile.aid), gpo_data(first)

    def gpo_again() -> bytes:
        card.reset()
        assert card.exchange(select)[-2:] == b"\x90\x00"
        return card.exchange(sent)

    answer = gpo_again()
    assert answer[-2:] == b"\x90\x00" and gpo_again() == answer
    assert card.atc == profiles.load("unionpay-ec").atc + 1 and card.ec_balance == BALANCE - 10000
    tap(card, None, SECOND_UN)
    assert card.ec_balance == BALANCE - 2 * 10000
    assert card.last_ec_debit is not None and card.last_ec_debit.pdol_values != sent[7:-1]


def test_the_torn_fault_strikes_at_the_first_ec_debit_only() -> None:
    card = torn_card()
    tap(card, None, FIRST_UN, amount=40000)  # over the balance: an AAC, no debit, not torn
    assert card.ec_balance == BALANCE
    result = tap(card, None, FIRST_UN)
    assert result.outcome is Outcome.TRY_AGAIN and "left the field before answering GPO" in (result.error or "")
    assert card.ec_balance == BALANCE - 10000
    assert tap(card, None, SECOND_UN).outcome is Outcome.APPROVED  # struck once: the next GPO is answered
