"""Entry Point to the letter of EMV Contactless Book B: each test names the requirement it checks.

Pre-processing (3.1.1), protocol activation (3.2.1, in terminal.card_reading where the reader
polls), combination selection (3.3.2 PPSE, 3.3.3 final selection), kernel activation (3.4) and
outcome processing (3.5, with the restarts at Start B and C).  docs/internals.md lists them.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emv import entry_point
from emv.apdu import CardCommunicationError, select
from emv.c2_outcome import L2_STATUS_BYTES, C2KernelError
from emv.config import Combination, TerminalConfig
from emv.entry_point import TRANSITIONS, CollisionDetected, Event, State, parse_ppse, pre_process, process
from emv.kernel_common import KernelContext, PreProcessingIndicators
from emv.outcome import Message, Outcome, ReaderStatus, Restart, Start, TransactionResult, UiMessage
from emv.tlv import encode
from emv.transaction import TransactionData
from tests.unit.test_entry_point import (
    MC,
    OK,
    PPSE_SELECT,
    VISA,
    FakeCard,
    FakeKernel,
    adf_fci,
    cfg,
    dir_entry,
    ppse_fci,
    txn,
)

VISA_COMBO, MC_COMBO = TerminalConfig.example(capks=None).combinations


def indicators(combo: Combination, amount: int, **kw: Any) -> PreProcessingIndicators | None:
    """The indicators of ``combo`` alone for ``amount``; None when it is not allowed."""
    allowed = pre_process(cfg(combo, **kw), txn(amount))
    return allowed[0][1] if allowed else None


@pytest.fixture
def kernels(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeKernel]:
    def install(*outcomes: Outcome | Exception, kernel_id: int = 3) -> FakeKernel:
        fake = FakeKernel(*outcomes)
        monkeypatch.setitem(entry_point._KERNELS, kernel_id, fake)
        return fake

    return install


# --------------------------------------------------------------------------- 3.1 pre-processing


def test_book_b_3_1_1_1_every_indicator_starts_at_zero() -> None:
    """Book B 3.1.1.1: the Pre-Processing Indicators of every combination start at 0."""
    for combo, ind in pre_process(cfg(), txn(1234)):
        assert not (ind.status_check_requested or ind.zero_amount or ind.floor_limit_exceeded)
        assert not (ind.cvm_required_limit_exceeded or ind.contactless_application_not_allowed), combo.label


@pytest.mark.parametrize("configured", ["36C04000", "36804000", "36404000", "36004000"])
def test_book_b_3_1_1_2_ttq_copied_with_byte_2_b8_b7_reset(configured: str) -> None:
    """Book B 3.1.1.2: the TTQ is copied per combination, byte 2 b8 and b7 reset (other bits kept)."""
    combo = replace(VISA_COMBO, ttq=bytes.fromhex(configured))
    ind = indicators(combo, 100)
    assert ind is not None and ind.ttq == bytes.fromhex("32004000")  # b3 (online PIN) masked: no PIN pad


@pytest.mark.parametrize(("exponent", "unit"), [(2, 100), (0, 1), (3, 1000)])
def test_book_b_3_1_1_3_status_check_is_a_single_unit_of_currency(exponent: int, unit: int) -> None:
    """Book B 3.1.1.3 and 3.1.1.10: status check supported and the amount one unit of currency:
    Status Check Requested, and TTQ byte 2 b8 (online cryptogram required)."""
    combo = replace(VISA_COMBO, status_check=True, floor_limit=100000)
    for amount, expected in ((unit, True), (unit + 1, False), (2 * unit, False)):
        t = TransactionData(amount, 978, bytes.fromhex("250614"), bytes(4), currency_exponent=exponent)
        ((_, ind),) = pre_process(cfg(combo), t)
        assert ind.status_check_requested is expected and bool(ind.ttq[1] & 0x80) is expected
    unsupported = replace(combo, status_check=False)
    ((_, ind),) = pre_process(cfg(unsupported), txn(100))
    assert not ind.status_check_requested


def test_book_b_3_1_1_4_zero_amount() -> None:
    """Book B 3.1.1.4: amount zero: not allowed when the Zero Amount Allowed flag is 0, else Zero Amount."""
    ind = indicators(VISA_COMBO, 0)
    assert ind is not None and ind.zero_amount
    assert indicators(replace(VISA_COMBO, zero_amount_allowed=False), 0) is None


def test_book_b_3_1_1_5_reader_contactless_transaction_limit() -> None:
    """Book B 3.1.1.5: amount >= Reader Contactless Transaction Limit: Contactless Application Not Allowed."""
    assert indicators(VISA_COMBO, 99999) is not None
    assert indicators(VISA_COMBO, 100000) is None
    assert indicators(replace(VISA_COMBO, transaction_limit=None), 10**9) is not None  # absent: no limit


def test_book_b_3_1_1_6_and_7_floor_limits() -> None:
    """Book B 3.1.1.6: amount > Reader Contactless Floor Limit; 3.1.1.7: without one, amount > Terminal
    Floor Limit (9F1B); 3.1.1.9: either sets TTQ byte 2 b8."""
    for amount, exceeded in ((5000, False), (5001, True)):
        ind = indicators(VISA_COMBO, amount)
        assert ind is not None and ind.floor_limit_exceeded is exceeded and bool(ind.ttq[1] & 0x80) is exceeded
    no_reader_limit = replace(VISA_COMBO, floor_limit=None)
    for amount, exceeded in ((700, False), (701, True)):
        ind = indicators(no_reader_limit, amount, terminal_floor_limit=700)
        assert ind is not None and ind.floor_limit_exceeded is exceeded
    ind = indicators(replace(VISA_COMBO, floor_limit=10000), 8000, terminal_floor_limit=700)
    assert ind is not None and not ind.floor_limit_exceeded  # the reader's limit wins over 9F1B


def test_book_b_3_1_1_8_and_12_cvm_required_limit() -> None:
    """Book B 3.1.1.8: amount >= Reader CVM Required Limit; 3.1.1.12: TTQ byte 2 b7 (CVM required)."""
    for amount, exceeded in ((4999, False), (5000, True)):
        ind = indicators(VISA_COMBO, amount)
        assert ind is not None and ind.cvm_required_limit_exceeded is exceeded and bool(ind.ttq[1] & 0x40) is exceeded
    ind = indicators(replace(VISA_COMBO, cvm_required_limit=None), 90000)
    assert ind is not None and not ind.cvm_required_limit_exceeded  # absent: never


def test_book_b_3_1_1_11_zero_amount_online_capable_reader_asks_for_a_cryptogram() -> None:
    """Book B 3.1.1.11: Zero Amount on a reader that can go online (TTQ byte 1 b4 = 0): byte 2 b8."""
    ind = indicators(VISA_COMBO, 0)
    assert ind is not None and ind.ttq[1] & 0x80


def test_book_b_3_1_1_11_zero_amount_offline_only_reader_is_not_allowed() -> None:
    """Book B 3.1.1.11: Zero Amount on an offline-only reader (TTQ byte 1 b4 = 1): the combination is not
    allowed (no cryptogram can be asked for online).  Failed before: posterm allowed it."""
    offline_only = replace(VISA_COMBO, ttq=bytes.fromhex("3A004000"))
    assert indicators(offline_only, 0) is None
    assert indicators(offline_only, 1) is not None


def test_book_b_3_1_1_13_no_combination_allowed_is_try_another_interface_message_18() -> None:
    """Book B 3.1.1.13: Contactless Application Not Allowed for every combination: Try Another Interface,
    UI Request on Outcome message 18 ("insert or swipe card"), status Processing Error, no card talk."""
    card = FakeCard({})
    r = process(card, cfg(), txn(100000))
    assert r.outcome is Outcome.TRY_ANOTHER_INTERFACE and card.seen == []
    assert r.messages == [UiMessage(Message.INSERT_OR_SWIPE, ReaderStatus.PROCESSING_ERROR)]
    assert r.restart is None


def test_book_b_3_1_indicators_per_combination() -> None:
    """Book B 3.1.1: each combination has its own indicators (its own limits and TTQ)."""
    low = replace(MC_COMBO, cvm_required_limit=1000, floor_limit=0)
    by_label = {c.label: i for c, i in pre_process(cfg(VISA_COMBO, low), txn(2000))}
    assert not by_label["VISA"].cvm_required_limit_exceeded and by_label["MASTERCARD"].cvm_required_limit_exceeded
    assert not by_label["VISA"].floor_limit_exceeded and by_label["MASTERCARD"].floor_limit_exceeded


_LIMIT = st.one_of(st.none(), st.integers(0, 20_000))


@settings(max_examples=2000, deadline=None)
@given(
    amount=st.integers(0, 20_000),
    exponent=st.integers(0, 3),
    floor=_LIMIT,
    terminal_floor=st.integers(0, 20_000),
    tx_limit=_LIMIT,
    cvm_limit=_LIMIT,
    ttq=st.binary(min_size=4, max_size=4),
    status_check=st.booleans(),
    zero_allowed=st.booleans(),
)
def test_book_b_3_1_1_every_indicator_as_the_requirements_say(
    amount: int,
    exponent: int,
    floor: int | None,
    terminal_floor: int,
    tx_limit: int | None,
    cvm_limit: int | None,
    ttq: bytes,
    status_check: bool,
    zero_allowed: bool,
) -> None:
    """Book B 3.1.1.1-3.1.1.12 at once, against the requirements written out again here: any limits,
    TTQ, flags and amount give the indicators, the TTQ copy and the allowed / not allowed they say."""
    ttq = bytes([ttq[0] | 0x20]) + ttq[1:]  # kernel 3 needs qVSDC
    combo = replace(
        VISA_COMBO,
        floor_limit=floor,
        transaction_limit=tx_limit,
        cvm_required_limit=cvm_limit,
        ttq=ttq,
        status_check=status_check,
        zero_amount_allowed=zero_allowed,
    )
    config = cfg(combo, terminal_floor_limit=terminal_floor, pin_pad=True)
    combo = config.combinations[0]
    t = TransactionData(amount, 978, bytes.fromhex("250614"), bytes(4), currency_exponent=exponent)
    allowed = pre_process(config, t)
    status = status_check and amount == 10**exponent  # 3.1.1.3
    zero = amount == 0 and zero_allowed  # 3.1.1.4
    offline_only = bool(combo.ttq[0] & 0x08)
    not_allowed = (
        (amount == 0 and not zero_allowed)  # 3.1.1.4
        or (tx_limit is not None and amount >= tx_limit)  # 3.1.1.5
        or (zero and offline_only)  # 3.1.1.11
    )
    over_floor = amount > (floor if floor is not None else terminal_floor)  # 3.1.1.6-7
    cvm = cvm_limit is not None and amount >= cvm_limit  # 3.1.1.8
    if not_allowed:
        assert allowed == []
        return
    ((_, ind),) = allowed
    assert (ind.status_check_requested, ind.zero_amount) == (status, zero)
    assert (ind.floor_limit_exceeded, ind.cvm_required_limit_exceeded) == (over_floor, cvm)
    b2 = (0x80 if over_floor or status or zero else 0) | (0x40 if cvm else 0)  # 3.1.1.9-12
    assert ind.ttq == combo.ttq[:1] + bytes([combo.ttq[1] & 0x3F | b2]) + combo.ttq[2:]  # 3.1.1.2


# --------------------------------------------------------------------------- 3.3 combination selection


def test_book_b_3_3_2_1_select_ppse_command() -> None:
    """Book B 3.3.2.1: SELECT 2PAY.SYS.DDF01 by name, first occurrence."""
    card = FakeCard({})
    process(card, cfg(), txn())
    assert card.seen[0].hex().upper() == "00A404000E325041592E5359532E444446303100"


def test_book_b_3_3_2_2_l1_error_on_ppse_is_try_again_start_b() -> None:
    """Book B 3.3.2.2 / 3.5.1.2: the card stops answering the PPSE: Try Again, restart at Start B with
    "present card again" as the UI Request on Restart."""
    r = process(FakeCard({PPSE_SELECT: CardCommunicationError("timeout")}), cfg(), txn())
    assert r.outcome is Outcome.TRY_AGAIN
    assert r.restart is not None and r.restart.start is Start.B
    assert r.restart.ui_request == UiMessage(Message.PRESENT_CARD_AGAIN, ReaderStatus.READY_TO_READ)
    assert r.to_json()["outcome_parameters"]["start"] == "B"


@pytest.mark.parametrize(
    "answer",
    [
        b"\x6a\x82",  # 3.3.2.3: status other than 9000
        encode(0x6F, encode(0x84, b"2PAY.SYS.DDF01")) + OK,  # 3.3.2.4: no A5 / BF0C
        ppse_fci() + OK,  # 3.3.2.4: a directory with no entry
        ppse_fci(dir_entry(b"\xa0\x00\x00\x00")) + OK,  # 3.3.2.5 step 1: the only ADF name too short
    ],
)
def test_book_b_3_3_2_3_and_4_no_usable_ppse_is_an_empty_candidate_list(answer: bytes) -> None:
    """Book B 3.3.2.3-3.3.2.4, 3.3.3.1: PPSE refused, malformed or empty: the candidate list is empty:
    End Application, message 1C (insert, swipe or try another card), and no SELECT AID."""
    card = FakeCard({PPSE_SELECT: answer})
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.END_APPLICATION and card.seen == [PPSE_SELECT]
    assert r.messages[0].message is Message.INSERT_SWIPE_OR_TRY_ANOTHER


@pytest.mark.parametrize(("length", "kept"), [(4, False), (5, True), (16, True), (17, False)])
def test_book_b_3_3_2_5_step_1_adf_name_of_5_to_16_bytes(length: int, kept: bool) -> None:
    """Book B 3.3.2.5 step 1: a directory entry whose ADF name is not 5 to 16 bytes is skipped."""
    adf = (VISA + bytes(16))[:length]
    entries = parse_ppse(ppse_fci(dir_entry(adf, b"X", 1), dir_entry(MC, b"MC", 2)))
    assert [e.adf_name for e in entries] == ([adf, MC] if kept else [MC])


def test_book_b_3_3_2_5_step_2_partial_aid_matching() -> None:
    """Book B 3.3.2.5 step 2: an ADF name matches the combination's AID it equals or begins with
    (partial name selection); a shorter name or another suffix does not.  One ADF name may match two
    combinations (AIDs of different lengths): both are candidates."""
    rid_only = Combination(aid=VISA[:5], kernel_id=3, label="ANY VISA", ttq=bytes.fromhex("32004000"))
    allowed = pre_process(cfg(VISA_COMBO, rid_only), txn())
    names = [VISA, VISA + b"\x01\x02", VISA[:6], bytes.fromhex("A0000000032010"), bytes.fromhex("A0000000041010")]
    entries = parse_ppse(ppse_fci(*(dir_entry(n, prio=1) for n in names)))
    got = [(c.entry.adf_name, c.combination.label) for c in entry_point.build_candidates(entries, allowed)]
    assert got == [
        (VISA, "VISA"),
        (VISA, "ANY VISA"),
        (VISA + b"\x01\x02", "VISA"),
        (VISA + b"\x01\x02", "ANY VISA"),
        (VISA[:6], "ANY VISA"),
        (bytes.fromhex("A0000000032010"), "ANY VISA"),
    ]


@pytest.mark.parametrize(
    ("adf", "raw", "kernel"),
    [
        (MC, None, 2),  # absent: the default of the RID (Table 3-6)
        (MC, "", 2),  # empty
        (MC, "00", 2),  # zero: the default too
        (MC, "0000000000000000", 2),  # zero, 8 bytes
        (VISA, None, 3),
        (bytes.fromhex("A0000003330101"), None, 7),
        (bytes.fromhex("A0000000251010"), None, 4),
        (bytes.fromhex("A0000000651010"), None, 5),
        (bytes.fromhex("A0000001523010"), None, 6),
        (bytes.fromhex("F000000001"), None, None),  # an unknown RID has no default
        (MC, "02", 2),  # international: the short id
        (MC, "0200", 2),  # ... whatever follows, up to 8 bytes
        (MC, "02FFFFFFFFFFFFFF", 2),
        (MC, "03", 3),  # a short id that is not the RID's default: taken as given
        (MC, "3F", 63),  # the largest short id
        (MC, "42", None),  # b8-b7 = 01: RFU
        (MC, "7F0102", None),
        (MC, "81", None),  # domestic with fewer than three bytes: no kernel
        (MC, "8101", None),
        (MC, "810156", 0x810156),  # domestic, EMVCo format (10): short id and extended id
        (MC, "8101560000", 0x810156),  # longer: its first three bytes
        (MC, "C10156", 0xC10156),  # domestic, proprietary format (11)
        (MC, "FFFFFFFFFFFFFFFF", 0xFFFFFF),
    ],
)
def test_book_b_3_3_2_5_step_3_kernel_identifier_of_every_length_and_type(
    adf: bytes, raw: str | None, kernel: int | None
) -> None:
    """Book B 3.3.2.5 step 3: the Requested Kernel ID from the Kernel Identifier 9F2A (1 to 8 bytes):
    absent or zero, the RID's default; international (b8-b7 00), its short id; domestic (10 or 11),
    the short id with its extended id (three bytes); RFU (01), none."""
    entry = dir_entry(adf, b"X", 1, bytes.fromhex(raw) if raw is not None else None)
    (parsed,) = parse_ppse(ppse_fci(entry))
    assert parsed.kernel_id == kernel


def test_book_b_3_3_2_5_step_3_requested_kernel_must_be_the_combinations() -> None:
    """Book B 3.3.2.5 step 3: an entry asking for kernel 3 is no candidate for the C-2 combination of its AID."""
    entries = parse_ppse(ppse_fci(dir_entry(MC, b"MC", 1, b"\x03"), dir_entry(MC, b"MC", 2, b"\x02")))
    (cand,) = entry_point.build_candidates(entries, pre_process(cfg(), txn()))
    assert cand.entry.priority == 2 and cand.combination.kernel_id == 2


def test_book_b_3_3_2_5_step_4_kernel_not_in_the_reader_is_no_candidate() -> None:
    """Book B 3.3.2.5 step 4: a combination whose kernel the reader does not have is no candidate
    (kernel 4 configured, no such kernel here, nor passed by the caller)."""
    amex = Combination(aid=bytes.fromhex("A00000002501"), kernel_id=4, label="AMEX")
    entries = parse_ppse(ppse_fci(dir_entry(bytes.fromhex("A0000000250108"), b"AMEX", 1)))
    allowed = pre_process(cfg(amex), txn())
    assert entry_point.build_candidates(entries, allowed) == []
    assert len(entry_point.build_candidates(entries, allowed, extra_kernels={4})) == 1


@pytest.mark.parametrize("supported", [True, False])
def test_book_b_3_3_2_5_step_5_extended_selection_appended_to_the_select(
    kernels: Callable[..., FakeKernel], supported: bool
) -> None:
    """Book B 3.3.2.5 step 5 and 3.3.3.3: the directory entry's Extended Selection (9F29) is appended to
    the ADF name in the SELECT command when the combination supports extended selection; else not."""
    fake = kernels(Outcome.APPROVED)
    ext = bytes.fromhex("0102A1")
    name = VISA + ext if supported else VISA
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(VISA, b"V", 1, ext=ext)) + OK, select(name): adf_fci(name) + OK})
    r = process(card, cfg(replace(VISA_COMBO, extended_selection_supported=supported)), txn())
    assert card.seen == [PPSE_SELECT, select(name)] and r.outcome is Outcome.APPROVED
    assert fake.contexts[0].aid == name


def test_book_b_3_3_3_2_priority_then_directory_order_in_a_ppse_of_dozens() -> None:
    """Book B 3.3.3.2: priority 1 first; ties in the directory's order; no priority (absent or 0) last.
    A PPSE of 48 entries (16 priorities x 3)."""
    entries = []
    for i in range(48):
        prio = (i * 7) % 16  # every value 0..15, three times
        entries.append(dir_entry(VISA + bytes([i]), f"V{i}".encode(), prio if prio else None))
    parsed = parse_ppse(ppse_fci(*entries))
    assert len(parsed) == 48
    cands = entry_point.build_candidates(parsed, pre_process(cfg(), txn()))
    order = [c.entry.adf_name[-1] for c in cands]
    expected = sorted(range(48), key=lambda i: ((i * 7) % 16 or 16, i))
    assert order == expected


def test_book_b_3_3_3_select_next_through_dozens_of_candidates(kernels: Callable[..., FakeKernel]) -> None:
    """Book B 3.3.3.3-3.3.3.5 (and 3.5.1.1, Start C): every SELECT refused but the last: each refused
    candidate is dropped and the next selected, without a second PPSE; the last one's kernel runs."""
    fake = kernels(Outcome.APPROVED)
    names = [VISA + bytes([i]) for i in range(40)]
    answers: dict[bytes, bytes | Exception] = {PPSE_SELECT: ppse_fci(*(dir_entry(n) for n in names)) + OK}
    answers[select(names[-1])] = adf_fci(names[-1]) + OK
    card = FakeCard(answers)
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.APPROVED and [c.aid for c in fake.contexts] == [names[-1]]
    assert card.seen == [PPSE_SELECT, *(select(n) for n in names)]


def test_book_b_3_3_3_1_candidate_list_emptied_by_select_next_is_end_application(
    kernels: Callable[..., FakeKernel],
) -> None:
    """Book B 3.3.3.1: the candidate list empty (every candidate gave Select Next): End Application, 1C."""
    kernels(Outcome.SELECT_NEXT, Outcome.SELECT_NEXT)
    card = FakeCard(
        {
            PPSE_SELECT: ppse_fci(dir_entry(VISA, prio=1), dir_entry(VISA + b"\x01", prio=2)) + OK,
            select(VISA): adf_fci(VISA) + OK,
            select(VISA + b"\x01"): adf_fci(VISA + b"\x01") + OK,
        }
    )
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.END_APPLICATION
    assert r.messages[0].message is Message.INSERT_SWIPE_OR_TRY_ANOTHER


# --------------------------------------------------------------------------- 3.4 kernel activation


def test_book_b_3_4_1_the_selected_combinations_kernel_gets_its_fci_and_indicators(
    kernels: Callable[..., FakeKernel],
) -> None:
    """Book B 3.4.1.1-3.4.1.2: the kernel of the selected combination is activated with the SELECT
    response (FCI) and that combination's Pre-Processing Indicators (its TTQ copy)."""
    visa = kernels(Outcome.APPROVED, kernel_id=3)
    mc = kernels(Outcome.ONLINE_REQUEST, kernel_id=2)
    card = FakeCard(
        {PPSE_SELECT: ppse_fci(dir_entry(VISA, prio=2), dir_entry(MC, prio=1)) + OK, select(MC): adf_fci(MC) + OK}
    )
    low_cvm = replace(MC_COMBO, cvm_required_limit=1000)
    r = process(card, cfg(VISA_COMBO, low_cvm), txn(2000))
    assert r.outcome is Outcome.ONLINE_REQUEST and not visa.contexts
    (ctx,) = mc.contexts
    assert ctx.fci == adf_fci(MC) and ctx.combination == low_cvm
    assert ctx.indicators.cvm_required_limit_exceeded and ctx.ttq[1] & 0x40


# --------------------------------------------------------------------------- 3.5 outcome processing


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.APPROVED,
        Outcome.DECLINED,
        Outcome.ONLINE_REQUEST,
        Outcome.END_APPLICATION,
        Outcome.TRY_ANOTHER_INTERFACE,
    ],
)
def test_book_b_3_5_1_final_outcomes_go_to_the_reader_as_the_kernel_gave_them(
    kernels: Callable[..., FakeKernel], outcome: Outcome
) -> None:
    """Book B 3.5.1: Approved, Declined, Online Request, End Application and Try Another Interface end
    Entry Point: the outcome is handed on unchanged, with no restart."""
    kernels(outcome)
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(VISA)) + OK, select(VISA): adf_fci(VISA) + OK})
    r = process(card, cfg(), txn())
    assert r.outcome is outcome and r.restart is None


def test_book_b_3_5_1_1_select_next_restarts_at_start_c(kernels: Callable[..., FakeKernel]) -> None:
    """Book B 3.5.1.1: Select Next: Start C, the candidate list without the combination just tried (no
    new PPSE, no pre-processing)."""
    fake = kernels(Outcome.SELECT_NEXT, Outcome.DECLINED)
    second = VISA + b"\x01"
    card = FakeCard(
        {
            PPSE_SELECT: ppse_fci(dir_entry(VISA, prio=1), dir_entry(second, prio=2)) + OK,
            select(VISA): adf_fci(VISA) + OK,
            select(second): adf_fci(second) + OK,
        }
    )
    run = entry_point._Run(card, cfg(), txn())
    r = run.run()
    assert r.outcome is Outcome.DECLINED and [c.aid for c in fake.contexts] == [VISA, second]
    assert card.seen.count(PPSE_SELECT) == 1
    assert (State.KERNEL, Event.SELECT_NEXT) in run.trail and TRANSITIONS[
        (State.KERNEL, Event.SELECT_NEXT)
    ] is State.CHOOSE


def test_book_b_3_5_1_2_try_again_from_the_kernel_restarts_at_start_b(kernels: Callable[..., FakeKernel]) -> None:
    """Book B 3.5.1.2: the kernel's Try Again: restart at Start B; without a UI Request on Restart of the
    kernel's, "present card again" (21, ready to read); the indicators kept for the restart."""
    kernels(Outcome.TRY_AGAIN)
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(VISA)) + OK, select(VISA): adf_fci(VISA) + OK})
    r = process(card, cfg(), txn(6000))
    assert r.outcome is Outcome.TRY_AGAIN and r.restart is not None and r.restart.start is Start.B
    assert r.restart.ui_request == UiMessage(Message.PRESENT_CARD_AGAIN, ReaderStatus.READY_TO_READ)
    kept = r.restart.indicators[(VISA, 3)]
    assert kept.floor_limit_exceeded and kept.cvm_required_limit_exceeded
    assert r.to_json()["outcome_parameters"]["ui_request_on_restart"]["id"] == "21"


def test_book_b_3_5_1_2_the_card_leaving_mid_kernel_restarts_at_start_b(kernels: Callable[..., FakeKernel]) -> None:
    """Book B 3.5.1.2: the card leaves during the kernel (C-2's torn GENERATE AC is this case): Try Again,
    Start B, UI Request on Restart "present card again"."""
    kernels(CardCommunicationError("removed"))
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(VISA)) + OK, select(VISA): adf_fci(VISA) + OK})
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.TRY_AGAIN and r.restart is not None and r.restart.start is Start.B
    assert r.restart.ui_request is not None and r.restart.ui_request.message is Message.PRESENT_CARD_AGAIN


def test_book_b_3_2_1_1_restart_does_not_repeat_pre_processing(kernels: Callable[..., FakeKernel]) -> None:
    """Book B 3.2.1.1 with the Restart flag set (Start B after Try Again): pre-processing is not repeated;
    the kernel gets the indicators kept from the first presentation."""
    fake = kernels(Outcome.APPROVED)
    kept = PreProcessingIndicators(floor_limit_exceeded=True, ttq=bytes.fromhex("32804000"))
    restart = Restart(Start.B, None, {(VISA, 3): kept})
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(VISA)) + OK, select(VISA): adf_fci(VISA) + OK})
    run = entry_point._Run(card, cfg(), txn(1), restart=restart)
    assert run.run().outcome is Outcome.APPROVED
    assert run.trail[0] == (State.PRE_PROCESSING, Event.RESTARTED)
    assert fake.contexts[0].indicators is kept and fake.contexts[0].ttq == bytes.fromhex("32804000")


def test_book_b_3_2_1_1_restart_keeps_only_combinations_still_configured() -> None:
    """Book B 3.2.1.1: a restart keeps the indicators of the combinations the configuration still has;
    none left: Try Another Interface as 3.1.1.13 says."""
    restart = Restart(Start.B, None, {(b"\xa0\x00\x00\x00\x99", 3): PreProcessingIndicators()})
    card = FakeCard({})
    r = process(card, cfg(), txn(), restart=restart)
    assert r.outcome is Outcome.TRY_ANOTHER_INTERFACE and card.seen == []


def test_book_b_3_5_end_application_keeps_the_c2_kernels_outcome_data(kernels: Callable[..., FakeKernel]) -> None:
    """Book B 3.5 / Book C-2: an End Application from kernel C-2 keeps the kernel's outcome data
    (DF8129, DF8116, DF8115 with its L2 error and status word, FF8106).  Failed before: Entry Point
    built the result from the message alone, with no outcome data."""
    kernels(C2KernelError("GENERATE AC: status 6985", L2_STATUS_BYTES, 0x6985, currency=b"\x09\x78"), kernel_id=2)
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(MC)) + OK, select(MC): adf_fci(MC) + OK})
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.END_APPLICATION and r.error == "GENERATE AC: status 6985"
    assert r.outcome_data[0xDF8115] == bytes.fromhex("0003006985 0F")
    assert r.outcome_data[0xDF8129][0] == 0x40  # END APPLICATION
    decoded = r.to_json()["outcome_data"]
    assert decoded["DF8115"]["decoded"]["l2"] == "STATUS BYTES" and decoded["DF8115"]["decoded"]["sw12"] == "6985"


def test_book_b_3_5_field_off_request_and_removal_timeout_from_the_kernels_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Book B 3.5 (Field Off Request, Removal Timeout): taken from the kernel's Outcome Parameter Set."""
    opset = bytes.fromhex("70 10 F0 F0 C0 F0 0D 05")  # Try Again, Start B, field off 1.3 s, removal 0.5 s

    def kernel(ctx: KernelContext) -> TransactionResult:
        return TransactionResult(Outcome.TRY_AGAIN, outcome_data={0xDF8129: opset})

    monkeypatch.setitem(entry_point._KERNELS, 2, kernel)
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(MC)) + OK, select(MC): adf_fci(MC) + OK})
    r = process(card, cfg(), txn())
    assert (r.field_off_hold, r.removal_timeout) == (13, 5)
    params = r.to_json()["outcome_parameters"]
    assert (params["field_off_request"], params["removal_timeout"], params["start"]) == (13, 5, "B")


def test_book_b_3_2_1_collision_mid_transaction_is_try_again_one_card_only() -> None:
    """Book B 3.2.1: two cards answer: Try Again, "present one card only" on outcome and on restart."""
    r = process(FakeCard({PPSE_SELECT: CollisionDetected("two cards")}), cfg(), txn())
    assert r.outcome is Outcome.TRY_AGAIN and r.restart is not None
    assert r.restart.ui_request is not None and r.restart.ui_request.message is Message.PRESENT_ONE_CARD_ONLY


# --------------------------------------------------------------------------- 3.2 / 3.5 in the terminal's loop


class Session:
    def __init__(self, card: Any) -> None:
        self.card = card

    def exchange(self, command: bytes) -> bytes:
        answer: bytes = self.card.exchange(command)
        return answer

    def close(self) -> None:
        pass


class Reader:
    """A reader whose polls give, in turn, what ``script`` lists: a card session or an exception."""

    url = "test:"

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.polls = 0

    def wait_for_card(self, timeout: float | None = None, cancel: Any = None) -> Any:
        self.polls += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return Session(item)

    def close(self) -> None:
        pass


def core_for(config: TerminalConfig) -> Any:
    events: list[tuple[str, dict[str, Any]]] = []
    return SimpleNamespace(
        config=config,
        settings=SimpleNamespace(card_timeout_seconds=5.0, card_retries=2),
        listeners=[object()],
        emit=lambda kind, _txn, **data: events.append((kind, data)),
        events=events,
        clock=SimpleNamespace(now=lambda: datetime.datetime(2026, 11, 21, 12, 0, 0)),
        torn_log=None,
        ec_torn_log=None,
    )


def ui_ids(core: Any) -> list[str]:
    return [data["id"] for kind, data in core.events if kind == "ui_message"]


class Token:
    def __init__(self) -> None:
        self.waits: list[float] = []
        self.cancelled = False

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return False


def request() -> Any:
    from terminal.card_reading import CardRequest

    return CardRequest(amount=1234, currency=978, exponent=2, transaction_type=0x00, force_online=False)


def test_book_b_3_2_1_collision_at_polling_says_one_card_only_and_polls_again(
    kernels: Callable[..., FakeKernel],
) -> None:
    """Book B 3.2.1: a collision while polling: "present one card only" (19, processing error), and the
    reader polls again; one card then: the payment goes on.  Failed before: the payment was refused."""
    from terminal.card_reading import read_card

    kernels(Outcome.APPROVED)
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(VISA)) + OK, select(VISA): adf_fci(VISA) + OK})
    reader = Reader(CollisionDetected("two cards"), CollisionDetected("two cards"), card)
    core = core_for(cfg())
    result = read_card(core, reader, request(), Token())
    assert result.outcome is Outcome.APPROVED and reader.polls == 3
    assert ui_ids(core)[:3] == ["15", "19", "19"]
    collision = next(d for k, d in core.events if k == "ui_message" and d["id"] == "19")
    assert collision["status"] == "processing_error"


def test_book_b_3_2_1_a_collision_that_stays_refuses_the_payment() -> None:
    """Book B 3.2.1, bounded by posterm: two cards that stay in the field: after COLLISION_POLLS polls, refused."""
    from terminal.card_reading import COLLISION_POLLS, read_card
    from terminal.offline import PaymentRefused

    reader = Reader(CollisionDetected("two cards"))
    token = Token()
    with pytest.raises(PaymentRefused) as refused:
        read_card(core_for(cfg()), reader, request(), token)
    assert refused.value.reason == "one_card_only" and reader.polls == COLLISION_POLLS + 1
    assert len(token.waits) == COLLISION_POLLS


def test_book_b_3_2_1_2_restart_shows_the_ui_request_on_restart_and_keeps_pre_processing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Book B 3.2.1.2 / 3.5.1.2: after Try Again the reader shows the outcome's UI Request on Restart
    (here the kernel's own: "see phone" 20) before polling again, waits out the Field Off Request's hold
    time, and Entry Point restarts at Start B with the indicators of the first presentation."""
    from terminal.card_reading import read_card

    contexts: list[KernelContext] = []
    see_phone = UiMessage(Message.SEE_PHONE, ReaderStatus.NOT_READY)

    def kernel(ctx: KernelContext) -> TransactionResult:
        contexts.append(ctx)
        if len(contexts) == 1:
            return TransactionResult(
                Outcome.TRY_AGAIN, restart=Restart(Start.B, see_phone, {(VISA, 3): ctx.indicators}), field_off_hold=13
            )
        return TransactionResult(Outcome.APPROVED)

    monkeypatch.setitem(entry_point._KERNELS, 3, kernel)
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(VISA)) + OK, select(VISA): adf_fci(VISA) + OK})
    core, token = core_for(cfg()), Token()
    result = read_card(core, Reader(card), request(), token)
    assert result.outcome is Outcome.APPROVED and len(contexts) == 2
    assert contexts[1].indicators is contexts[0].indicators  # kept, not computed again
    # present card, processing, present card again and the kernel's own UI Request on Restart, processing
    assert ui_ids(core) == ["15", "16", "21", "20", "16"]
    assert token.waits == [1.3]


# --------------------------------------------------------------------------- untrusted PPSE and FCI


def _ppse_entry() -> st.SearchStrategy[bytes]:
    known = st.sampled_from([VISA, MC, WALLET_ADF])
    adf = st.one_of(
        known,
        known.flatmap(lambda a: st.binary(max_size=4).map(lambda x: a + x)),  # partial matching
        st.binary(min_size=0, max_size=18),
    )
    optional = st.one_of(st.none(), st.binary(max_size=9))
    return st.builds(
        lambda a, label, prio, kid, ext, junk: encode(
            0x61,
            encode(0x4F, a)
            + (encode(0x50, label) if label is not None else b"")
            + (encode(0x87, prio) if prio is not None else b"")
            + (encode(0x9F2A, kid) if kid is not None else b"")
            + (encode(0x9F29, ext) if ext is not None else b"")
            + junk,
        ),
        adf,
        optional,
        st.one_of(st.none(), st.binary(max_size=2)),
        st.one_of(
            st.none(), st.sampled_from([b"\x02", b"\x03", b"\x81\x01\x56", b"\x00"]), st.none(), st.binary(max_size=9)
        ),
        optional,
        st.one_of(  # other data objects in the entry: none, well-formed ones, rarely raw bytes
            st.just(b""),
            st.just(b""),
            st.builds(encode, st.sampled_from([0x9F0A, 0x5F55, 0x42, 0x9F2A, 0x87]), st.binary(max_size=6)),
            st.just(b""),
            st.binary(max_size=6),
        ),
    )


WALLET_ADF = bytes.fromhex("F0504F5354434244430101")


def _mutate(data: bytes, cut: int, flip: int | None) -> bytes:
    out = bytearray(data[: len(data) - cut] if cut else data)
    if flip is not None and out:
        out[flip % len(out)] ^= 0xFF
    return bytes(out)


_PPSE = st.builds(
    lambda entries, cut, flip, sw: _mutate(ppse_fci(*entries), cut, flip) + sw,
    st.lists(_ppse_entry(), min_size=1, max_size=40),
    st.sampled_from([0, 0, 0, 0, 0, 0, 1, 2, 3]),  # mostly whole, sometimes truncated
    st.one_of(st.none(), st.none(), st.none(), st.integers(0, 2000)),  # sometimes a byte flipped
    st.sampled_from([OK] * 8 + [b"\x62\x83", b"\x6a\x82", b""]),
)
_FCI = st.one_of(
    st.sampled_from([VISA, MC, WALLET_ADF]).map(lambda n: adf_fci(n) + OK),  # a usable FCI: a kernel runs
    st.binary(max_size=60),
    st.builds(
        lambda name, body: encode(0x6F, encode(0x84, name) + body) + OK, st.binary(max_size=18), st.binary(max_size=30)
    ),
)


class _AnyCard:
    """The PPSE answer drawn; SELECT AID gets the FCI drawn; every later command ``later`` (a status word
    the kernels end on: Select Next, Try Another Interface, Try Again, or bytes they must reject)."""

    def __init__(self, ppse: bytes, fci: bytes, later: bytes = b"\x69\x85") -> None:
        self.ppse, self.fci, self.later, self.count = ppse, fci, later, 0

    def exchange(self, command: bytes) -> bytes:
        self.count += 1
        if command == PPSE_SELECT:
            return self.ppse
        if command[:4] == bytes.fromhex("00A40400"):
            return self.fci
        return self.later


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    _PPSE,
    _FCI,
    st.integers(0, 200_000),
    st.one_of(st.sampled_from([b"\x69\x85", b"\x69\x84", b"\x69\x86", b"\x6a\x81"]), st.binary(max_size=8)),
)
def test_book_b_3_3_any_ppse_and_fci_end_in_a_defined_outcome(
    ppse: bytes, fci: bytes, amount: int, later: bytes
) -> None:
    """Book B 3.3 with untrusted cards: whatever PPSE and SELECT AID answers (entries of every shape,
    truncated, bit-flipped, dozens of them), Entry Point ends in one of the outcomes, never a crash,
    and every directory entry it keeps has an ADF name of 5 to 16 bytes."""
    config = cfg(*TerminalConfig.example(capks=None).combinations, Combination(aid=WALLET_ADF, kernel_id=0x810156))
    card = _AnyCard(ppse, fci, later)
    r = process(card, config, txn(amount))
    assert isinstance(r.outcome, Outcome) and r.outcome is not Outcome.SELECT_NEXT
    assert r.error is None or "unexpected" not in r.error, r.error
    assert all(5 <= len(e.adf_name) <= 16 for e in parse_ppse(ppse[:-2]))


def test_book_b_3_5_1_2_torn_c2_transaction_restarts_at_start_b_and_is_recovered(
    terminal_config: TerminalConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Book B 3.5.1.2 with Book C-2's torn transaction: the mc-torn card leaves during GENERATE AC; the
    terminal shows the UI Request on Restart ("present card again", 21), polls again, and runs Entry
    Point from Start B (the indicators of the first presentation kept); kernel C-2 then recovers the
    torn transaction with RECOVER AC: one cryptogram, not two."""
    from emv.c2_torn import MemoryTornLog
    from simulator.devices import SimulatorCardReader
    from terminal import card_reading

    taps: list[tuple[Restart | None, Outcome]] = []
    real_run_tap = card_reading.run_tap

    def spy(*args: Any) -> Any:
        report = real_run_tap(*args)
        taps.append((args[4], report.result.outcome))
        return report

    monkeypatch.setattr(card_reading, "run_tap", spy)
    core = core_for(terminal_config)
    core.torn_log = MemoryTornLog()
    result = card_reading.read_card(core, SimulatorCardReader.open("sim:card=mc-torn"), request(), Token())
    assert result.outcome is Outcome.APPROVED and 0xD0 in [c[1] for c in result.commands]  # RECOVER AC
    (first, torn), (again, recovered) = taps
    assert first is None and torn is Outcome.TRY_AGAIN and recovered is Outcome.APPROVED
    assert again is not None and again.start is Start.B and again.indicators
    assert again.ui_request == UiMessage(Message.PRESENT_CARD_AGAIN, ReaderStatus.READY_TO_READ)
    ids = ui_ids(core)
    assert ids[:3] == ["15", "16", "21"] and ids.count("21") == 2  # the outcome's message, then on restart
