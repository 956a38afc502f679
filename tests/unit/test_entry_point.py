"""Entry Point: pre-processing, PPSE and candidate list, Select Next, outcomes, garbage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emv import entry_point
from emv.apdu import CardCommunicationError, select
from emv.config import Combination, TerminalConfig
from emv.entry_point import (
    TRANSITIONS,
    CollisionDetected,
    DirectoryEntry,
    Event,
    State,
    build_candidates,
    parse_ppse,
    pre_process,
    process,
)
from emv.kernel_common import KernelContext, KernelError
from emv.outcome import Message, Outcome, TransactionResult
from emv.tlv import encode
from emv.transaction import TransactionData

VISA = bytes.fromhex("A0000000031010")
VISA_ELECTRON = bytes.fromhex("A0000000032010")
MC = bytes.fromhex("A0000000041010")
PPSE_SELECT = select(b"2PAY.SYS.DDF01")


def txn(amount: int = 1234, **kw: Any) -> TransactionData:
    return TransactionData(amount, 978, bytes.fromhex("250614"), bytes.fromhex("01020304"), **kw)


def cfg(*combos: Combination, **kw: Any) -> TerminalConfig:
    base = TerminalConfig.example(capks=None)
    if combos:
        base = replace(base, combinations=combos)
    return replace(base, **kw) if kw else base


def dir_entry(
    adf: bytes,
    label: bytes | None = None,
    prio: int | None = None,
    kernel: bytes | None = None,
    ext: bytes | None = None,
) -> bytes:
    body = encode(0x4F, adf)
    if label is not None:
        body += encode(0x50, label)
    if prio is not None:
        body += encode(0x87, bytes([prio]))
    if kernel is not None:
        body += encode(0x9F2A, kernel)
    if ext is not None:
        body += encode(0x9F29, ext)
    return encode(0x61, body)


def ppse_fci(*entries: bytes) -> bytes:
    return encode(0x6F, encode(0x84, b"2PAY.SYS.DDF01") + encode(0xA5, encode(0xBF0C, b"".join(entries))))


def adf_fci(adf: bytes) -> bytes:
    return encode(0x6F, encode(0x84, adf) + encode(0xA5, encode(0x50, b"TEST")))


OK = b"\x90\x00"


class FakeCard:
    """Answers from a dict of command -> response; anything else gets 6A82."""

    def __init__(self, answers: dict[bytes, bytes | Exception]) -> None:
        self.answers = answers
        self.seen: list[bytes] = []

    def exchange(self, command: bytes) -> bytes:
        self.seen.append(command)
        answer = self.answers.get(command, b"\x6a\x82")
        if isinstance(answer, Exception):
            raise answer
        return answer


class FakeKernel:
    """Stands in for a kernel: records the contexts it got, answers from a list of outcomes."""

    def __init__(self, *outcomes: Outcome | Exception) -> None:
        self.outcomes = list(outcomes)
        self.contexts: list[KernelContext] = []

    def __call__(self, ctx: KernelContext) -> TransactionResult:
        self.contexts.append(ctx)
        what = self.outcomes.pop(0) if self.outcomes else Outcome.APPROVED
        if isinstance(what, Exception):
            raise what
        return TransactionResult(what, kernel=ctx.combination.kernel_id, aid=ctx.aid)


@pytest.fixture
def kernels(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeKernel]:
    def install(*outcomes: Outcome | Exception, kernel_id: int = 3) -> FakeKernel:
        fake = FakeKernel(*outcomes)
        monkeypatch.setitem(entry_point._KERNELS, kernel_id, fake)
        return fake

    return install


# --------------------------------------------------------------------------- pre-processing


def test_pre_processing_bits() -> None:
    c = cfg()
    below = dict((combo.label, ind) for combo, ind in pre_process(c, txn(1234)))
    assert below["VISA"].ttq == bytes.fromhex("32004000")  # no PIN pad: no online PIN (byte 1 b3)
    assert not below["VISA"].floor_limit_exceeded and not below["VISA"].cvm_required_limit_exceeded
    at = dict((combo.label, ind) for combo, ind in pre_process(c, txn(5000)))
    # amount == floor limit is not above it; amount == CVM limit is "at or above"
    assert at["VISA"].ttq == bytes.fromhex("32404000")
    above = dict((combo.label, ind) for combo, ind in pre_process(c, txn(5001)))
    assert above["VISA"].ttq == bytes.fromhex("32C04000")
    assert above["VISA"].floor_limit_exceeded and above["VISA"].cvm_required_limit_exceeded


def test_configured_ttq_bits_are_not_trusted() -> None:
    visa = replace(cfg().combinations[0], ttq=bytes.fromhex("32C04000"))
    ((_, ind),) = pre_process(cfg(visa), txn(100))
    assert ind.ttq == bytes.fromhex("32004000")


def test_transaction_limit() -> None:
    assert pre_process(cfg(), txn(99999))
    assert pre_process(cfg(), txn(100000)) == []


def test_terminal_floor_limit_when_reader_limit_absent() -> None:
    visa = replace(cfg().combinations[0], floor_limit=None)
    ((_, ind),) = pre_process(cfg(visa, terminal_floor_limit=1000), txn(1001))
    assert ind.floor_limit_exceeded and ind.ttq[1] & 0x80


def test_zero_amount() -> None:
    visa = cfg().combinations[0]
    ((_, ind),) = pre_process(cfg(visa), txn(0))
    assert ind.zero_amount and ind.ttq[1] & 0x80
    assert pre_process(cfg(replace(visa, zero_amount_allowed=False)), txn(0)) == []


def test_status_check() -> None:
    visa = replace(cfg().combinations[0], status_check=True)
    ((_, ind),) = pre_process(cfg(visa), txn(100))
    assert ind.status_check_requested and ind.ttq[1] & 0x80
    ((_, ind),) = pre_process(cfg(visa), txn(101))
    assert not ind.status_check_requested and not ind.ttq[1] & 0x80


def test_nothing_allowed_is_try_another_interface() -> None:
    """Book B 3.1.1.13: no combination allowed: Try Another Interface, message 18 (insert or swipe card)."""
    card = FakeCard({})
    r = process(card, cfg(), txn(100000))
    assert r.outcome is Outcome.TRY_ANOTHER_INTERFACE
    assert r.messages[0].message is Message.INSERT_OR_SWIPE
    assert card.seen == []  # no card communication at all


@pytest.mark.parametrize("amount", [100000, 100001, 99_999_999])
def test_over_every_contactless_limit_says_so_in_words(amount: int) -> None:
    r = process(FakeCard({}), cfg(), txn(amount))
    assert r.outcome is Outcome.TRY_ANOTHER_INTERFACE
    assert r.error == entry_point.OVER_CONTACTLESS_LIMIT == "over the contactless limit: insert or use another payment"
    assert [m.message for m in r.messages] == [Message.INSERT_OR_SWIPE]  # Book B 3.1.1.13: message 18
    assert r.to_json()["error"] == entry_point.OVER_CONTACTLESS_LIMIT
    assert r.to_json()["messages"][0]["id"] == "18"


def test_over_the_limit_of_every_combination_only() -> None:
    visa, mc = cfg().combinations
    # MasterCard has no transaction limit: over VISA's limit, the amount is still allowed there.
    assert pre_process(cfg(visa, replace(mc, transaction_limit=None)), txn(100000))
    # Each combination excluded, but one for another reason (zero amount not allowed): no limit text.
    mixed = cfg(replace(visa, transaction_limit=0), replace(mc, zero_amount_allowed=False))
    r = process(FakeCard({}), mixed, txn(0))
    assert r.outcome is Outcome.TRY_ANOTHER_INTERFACE
    assert r.error == "no combination allowed for this amount"
    assert entry_point.none_allowed_reason(mixed, txn(0)) == r.error


# --------------------------------------------------------------------------- PPSE parsing


def test_parse_ppse_fields_and_default_kernel() -> None:
    fci = ppse_fci(
        dir_entry(VISA, b"VISA", 0x81, None),  # priority in the low nibble only
        dir_entry(MC, b"MC", None, b"\x02", ext=b"\x01\x02"),
        dir_entry(b"\xa0\x00", b"short"),  # ADF name too short: ignored
        dir_entry(VISA, b"DOMESTIC", 1, b"\xc1\x23\x45\x67"),  # domestic kernel id: its first three bytes
        dir_entry(bytes.fromhex("A000000025010801"), b"AMEX"),
        dir_entry(VISA, b"SHORT DOMESTIC", 1, b"\x81\x01"),  # a domestic id needs three bytes: no kernel
        dir_entry(VISA, b"RFU", 1, b"\x42"),  # b8-b7 = 01: RFU, no kernel
    )
    entries = parse_ppse(fci)
    assert [(e.label, e.priority, e.kernel_id) for e in entries] == [
        ("VISA", 1, 3),
        ("MC", 0, 2),
        ("DOMESTIC", 1, 0xC12345),
        ("AMEX", 0, 4),
        ("SHORT DOMESTIC", 1, None),
        ("RFU", 1, None),
    ]
    assert entries[1].extended_selection == b"\x01\x02"


@pytest.mark.parametrize(
    "fci",
    [
        b"",
        b"\x6f",
        encode(0x6F, encode(0x84, b"2PAY")),  # no A5
        encode(0x6F, encode(0xA5, encode(0x88, b"\x01"))),  # no BF0C
        encode(0x70, b""),
        encode(0x6F, b"") + encode(0x6F, b""),
        encode(0x6F, encode(0xA5, encode(0xBF0C, encode(0x61, encode(0x50, b"NO ADF"))))),
    ],
)
def test_parse_ppse_malformed(fci: bytes) -> None:
    assert parse_ppse(fci) == []


def _entry(adf: bytes, prio: int, kernel: int | None, order: int) -> DirectoryEntry:
    return DirectoryEntry(adf, None, prio, kernel, None, order)


def test_candidates_ordered_by_priority_then_directory_order() -> None:
    allowed = pre_process(cfg(), txn())
    entries = [
        _entry(VISA + b"\x01", 0, 3, 0),
        _entry(MC, 2, 2, 1),
        _entry(VISA + b"\x02", 1, 3, 2),
        _entry(VISA + b"\x03", 2, 3, 3),
        _entry(VISA + b"\x04", 0, 3, 4),
    ]
    names = [c.entry.adf_name[-1:] for c in build_candidates(entries, allowed)]
    assert names == [b"\x02", b"\x10", b"\x03", b"\x01", b"\x04"]


def test_partial_matching() -> None:
    allowed = pre_process(cfg(), txn())
    entries = [
        _entry(VISA + b"\x01\x02", 1, 3, 0),  # longer ADF name: matches
        _entry(VISA[:-1], 1, 3, 1),  # shorter than the AID: no match
        _entry(VISA_ELECTRON, 1, 3, 2),  # other AID: no match
        _entry(VISA, 1, 2, 3),  # kernel mismatch
        _entry(VISA, 1, None, 4),  # domestic kernel
    ]
    cands = build_candidates(entries, allowed)
    assert [c.entry.order for c in cands] == [0]


def test_extended_selection_only_when_supported() -> None:
    allowed = pre_process(cfg(), txn())
    entry = DirectoryEntry(VISA, None, 1, 3, b"\x55", 0)
    (cand,) = build_candidates([entry], allowed)
    assert cand.select_name == VISA
    visa = replace(cfg().combinations[0], extended_selection_supported=True)
    (cand,) = build_candidates([entry], pre_process(cfg(visa), txn()))
    assert cand.select_name == VISA + b"\x55"


# --------------------------------------------------------------------------- selection flow


def test_happy_path(kernels: Callable[..., FakeKernel]) -> None:
    fake = kernels(Outcome.APPROVED)
    card = FakeCard(
        {PPSE_SELECT: ppse_fci(dir_entry(VISA, b"VISA", 1)) + OK, select(VISA): adf_fci(VISA) + OK}
    )
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.APPROVED
    (ctx,) = fake.contexts
    assert ctx.aid == VISA and ctx.fci_data[0x50] == b"TEST"
    assert ctx.ttq == bytes.fromhex("32004000")
    assert r.commands == [PPSE_SELECT, select(VISA)]


def test_select_next_after_failed_select(kernels: Callable[..., FakeKernel]) -> None:
    fake = kernels(Outcome.APPROVED)
    a, b, c = VISA + b"\x01", VISA + b"\x02", VISA + b"\x03"
    card = FakeCard(
        {
            PPSE_SELECT: ppse_fci(dir_entry(a, prio=1), dir_entry(b, prio=2), dir_entry(c, prio=3)) + OK,
            select(a): b"\x6a\x82",  # not found
            select(b): b"\x01\x02" + OK,  # 9000 but no FCI
            select(c): adf_fci(c) + OK,
        }
    )
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.APPROVED
    assert [ctx.aid for ctx in fake.contexts] == [c]
    assert card.seen == [PPSE_SELECT, select(a), select(b), select(c)]


def test_select_next_outcome_from_kernel(kernels: Callable[..., FakeKernel]) -> None:
    fake = kernels(Outcome.SELECT_NEXT, Outcome.DECLINED)
    a, b = VISA + b"\x01", VISA + b"\x02"
    card = FakeCard(
        {
            PPSE_SELECT: ppse_fci(dir_entry(a, prio=1), dir_entry(b, prio=2)) + OK,
            select(a): adf_fci(a) + OK,
            select(b): adf_fci(b) + OK,
        }
    )
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.DECLINED
    assert [ctx.aid for ctx in fake.contexts] == [a, b]
    assert r.commands == [PPSE_SELECT, select(a), select(b)]


def test_all_candidates_fail_is_end_application(kernels: Callable[..., FakeKernel]) -> None:
    kernels(Outcome.SELECT_NEXT)
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(VISA)) + OK, select(VISA): adf_fci(VISA) + OK})
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.END_APPLICATION
    assert r.messages[0].message is Message.INSERT_SWIPE_OR_TRY_ANOTHER


@pytest.mark.parametrize("ppse_answer", [b"\x6a\x82", b"\x90", b"", b"\x6f\x05\x84\x03" + OK, OK])
def test_ppse_failure_is_end_application(ppse_answer: bytes) -> None:
    r = process(FakeCard({PPSE_SELECT: ppse_answer}), cfg(), txn())
    assert r.outcome is Outcome.END_APPLICATION
    assert r.kernel is None


def test_no_matching_application() -> None:
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(bytes.fromhex("A0000000651010"))) + OK})
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.END_APPLICATION
    assert card.seen == [PPSE_SELECT]


def test_kernel_2_is_activated_for_mastercard(kernels: Callable[..., FakeKernel]) -> None:
    fake = kernels(Outcome.ONLINE_REQUEST, kernel_id=2)
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(MC, prio=1)) + OK, select(MC): adf_fci(MC) + OK})
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.ONLINE_REQUEST
    assert fake.contexts[0].combination.kernel_id == 2


# --------------------------------------------------------------------------- errors and the card leaving


@pytest.mark.parametrize("where", ["ppse", "select"])
def test_card_gone_is_try_again(where: str) -> None:
    answers: dict[bytes, bytes | Exception] = {PPSE_SELECT: ppse_fci(dir_entry(VISA)) + OK}
    answers[PPSE_SELECT if where == "ppse" else select(VISA)] = CardCommunicationError("gone")
    r = process(FakeCard(answers), cfg(), txn())
    assert r.outcome is Outcome.TRY_AGAIN
    assert r.messages[0].message is Message.PRESENT_CARD_AGAIN


def test_card_gone_in_kernel(kernels: Callable[..., FakeKernel]) -> None:
    kernels(CardCommunicationError("removed"))
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(VISA)) + OK, select(VISA): adf_fci(VISA) + OK})
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.TRY_AGAIN
    assert r.messages[0].message is Message.PRESENT_CARD_AGAIN
    assert r.aid == VISA


def test_collision() -> None:
    r = process(FakeCard({PPSE_SELECT: CollisionDetected("two cards")}), cfg(), txn())
    assert r.outcome is Outcome.TRY_AGAIN
    assert r.messages[0].message is Message.PRESENT_ONE_CARD_ONLY


@pytest.mark.parametrize(
    ("exc", "text"), [(KernelError("bad AFL"), "bad AFL"), (IndexError("oops"), "unexpected IndexError")]
)
def test_kernel_errors_end_the_application(
    kernels: Callable[..., FakeKernel], exc: Exception, text: str
) -> None:
    kernels(exc)
    card = FakeCard({PPSE_SELECT: ppse_fci(dir_entry(VISA)) + OK, select(VISA): adf_fci(VISA) + OK})
    r = process(card, cfg(), txn())
    assert r.outcome is Outcome.END_APPLICATION
    assert r.messages[0].message is Message.PROCESSING_ERROR
    assert r.error is not None and text in r.error


# --------------------------------------------------------------------------- the transition table


def test_transition_table_is_complete() -> None:
    states = {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values())
    assert states == set(State)
    assert not any(s is State.DONE for s, _ in TRANSITIONS)  # DONE is final
    assert {e for _, e in TRANSITIONS} == set(Event)
    for state in State:
        if state is not State.DONE:
            assert any(s is state for s, _ in TRANSITIONS)


def test_trail_follows_the_table(kernels: Callable[..., FakeKernel]) -> None:
    kernels(Outcome.SELECT_NEXT, Outcome.APPROVED)
    a, b = VISA + b"\x01", VISA + b"\x02"
    card = FakeCard(
        {
            PPSE_SELECT: ppse_fci(dir_entry(a, prio=1), dir_entry(b, prio=2)) + OK,
            select(a): adf_fci(a) + OK,
            select(b): adf_fci(b) + OK,
        }
    )
    run = entry_point._Run(card, cfg(), txn())
    run.run()
    assert run.trail == [
        (State.PRE_PROCESSING, Event.ALLOWED),
        (State.PPSE, Event.CANDIDATES),
        (State.CHOOSE, Event.CANDIDATE),
        (State.FINAL_SELECT, Event.SELECTED),
        (State.KERNEL, Event.SELECT_NEXT),
        (State.CHOOSE, Event.CANDIDATE),
        (State.FINAL_SELECT, Event.SELECTED),
        (State.KERNEL, Event.FINAL),
    ]


# --------------------------------------------------------------------------- untrusted cards


class ScriptedCard:
    """A valid PPSE and SELECT, then whatever hypothesis draws for every later command."""

    def __init__(self, draw: Callable[[], bytes | Exception]) -> None:
        self.draw = draw
        self.count = 0

    def exchange(self, command: bytes) -> bytes:
        self.count += 1
        if self.count > 40:
            raise CardCommunicationError("enough")
        if command == PPSE_SELECT:
            return ppse_fci(dir_entry(VISA, b"VISA", 1)) + OK
        if command == select(VISA):
            pdol = encode(0x9F38, bytes.fromhex("9F66049F02069F3704"))
            return encode(0x6F, encode(0x84, VISA) + encode(0xA5, pdol)) + OK
        answer = self.draw()
        if isinstance(answer, Exception):
            raise answer
        return answer


_RESPONSES = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=200).map(lambda b: b + OK),
    st.sampled_from([b"\x69\x85", b"\x69\x84", b"\x69\x86", b"\x61\x10", b"\x6c\x05"]),
    st.just(CardCommunicationError("gone")),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.integers(0, 200000))
def test_any_card_bytes_end_in_an_outcome(data: st.DataObject, amount: int) -> None:
    card = ScriptedCard(lambda: data.draw(_RESPONSES))
    r = process(card, cfg(), txn(amount))
    assert isinstance(r.outcome, Outcome)
    assert r.error is None or "unexpected" not in r.error, r.error


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.binary(max_size=400))
def test_any_ppse_and_select_bytes(ppse: bytes, fci: bytes) -> None:
    card = FakeCard({PPSE_SELECT: ppse, select(VISA): fci})
    r = process(card, cfg(), txn())
    assert isinstance(r.outcome, Outcome)
    assert r.error is None or "unexpected" not in r.error, r.error


# --------------------------------------------------------------------------- the caller's kernels (Book B 3.3.2.5, 3.4)

WALLET = bytes.fromhex("F0504F5354434244430101")
WALLET_KERNEL = 0x810156


def wallet_combination() -> Combination:
    return Combination(aid=WALLET, kernel_id=WALLET_KERNEL, label="DIGITAL CNY")


class WalletKernel:
    """A caller's kernel: records what Entry Point handed it, answers with ``outcome`` (or raises)."""

    def __init__(self, outcome: Outcome | Exception = Outcome.APPROVED) -> None:
        self.outcome = outcome
        self.calls: list[tuple[bytes, TransactionData]] = []

    def __call__(self, transport: Any, fci: bytes, t: TransactionData) -> TransactionResult:
        self.calls.append((fci, t))
        transport.exchange(bytes.fromhex("80CA000000"))  # the kernel talks to the card through Entry Point's recorder
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return TransactionResult(self.outcome, kernel=99, aid=b"spoofed")


def wallet_card(*entries: bytes) -> FakeCard:
    return FakeCard(
        {
            PPSE_SELECT: ppse_fci(*entries) + OK,
            select(WALLET): adf_fci(WALLET) + OK,
            select(VISA): adf_fci(VISA) + OK,
            bytes.fromhex("80CA000000"): OK,
        }
    )


def test_domestic_kernel_from_the_caller_is_activated_beside_emv(kernels: Callable[..., FakeKernel]) -> None:
    """Book B 3.3.2.5: a domestic Kernel Identifier (81 01 56) is matched on its first three bytes; 3.4: the
    selected combination's kernel is activated, here the caller's, with the selected FCI."""
    visa = kernels(Outcome.APPROVED)
    wallet = WalletKernel()
    card = wallet_card(
        dir_entry(VISA, b"VISA", 2), dir_entry(WALLET, b"DIGITAL CNY", 1, bytes.fromhex("810156"))
    )
    config = cfg(*TerminalConfig.example(capks=None).combinations, wallet_combination())
    result = process(card, config, txn(), extra_kernels={WALLET_KERNEL: wallet})
    assert result.outcome is Outcome.APPROVED
    assert [fci for fci, _ in wallet.calls] == [adf_fci(WALLET)]
    assert not visa.contexts
    # Entry Point says which kernel and application ran, whatever the kernel claims
    assert (result.kernel, result.aid, result.application_label) == (WALLET_KERNEL, WALLET, "DIGITAL CNY")
    assert result.commands == [PPSE_SELECT, select(WALLET), bytes.fromhex("80CA000000")]


def test_domestic_kernel_without_a_callable_is_no_candidate(kernels: Callable[..., FakeKernel]) -> None:
    """Without the caller's kernel the wallet's entry is no candidate: the EMV application is selected."""
    visa = kernels(Outcome.APPROVED)
    card = wallet_card(
        dir_entry(VISA, b"VISA", 2), dir_entry(WALLET, b"DIGITAL CNY", 1, bytes.fromhex("810156"))
    )
    config = cfg(*TerminalConfig.example(capks=None).combinations, wallet_combination())
    result = process(card, config, txn())
    assert result.outcome is Outcome.APPROVED and len(visa.contexts) == 1
    assert select(WALLET) not in card.seen


def test_domestic_kernel_needs_its_combination() -> None:
    """A wallet entry is a candidate only when the terminal is configured for the combination (Book B 3.3.2.5)."""
    wallet = WalletKernel()
    card = wallet_card(dir_entry(WALLET, b"DIGITAL CNY", 1, bytes.fromhex("810156")))
    result = process(card, cfg(), txn(), extra_kernels={WALLET_KERNEL: wallet})
    assert result.outcome is Outcome.END_APPLICATION and not wallet.calls


@pytest.mark.parametrize(
    ("raised", "outcome", "message"),
    [
        (CardCommunicationError("gone"), Outcome.TRY_AGAIN, Message.PRESENT_CARD_AGAIN),
        (KernelError("bad wallet data"), Outcome.END_APPLICATION, Message.PROCESSING_ERROR),
        (ValueError("garbage"), Outcome.END_APPLICATION, Message.PROCESSING_ERROR),
    ],
)
def test_the_callers_kernel_faults_end_in_an_outcome(raised: Exception, outcome: Outcome, message: Message) -> None:
    """Book B 3.4 / untrusted cards: whatever the caller's kernel raises ends in a defined outcome."""
    card = wallet_card(dir_entry(WALLET, b"DIGITAL CNY", 1, bytes.fromhex("810156")))
    result = process(card, cfg(wallet_combination()), txn(), extra_kernels={WALLET_KERNEL: WalletKernel(raised)})
    assert result.outcome is outcome and result.messages[0].message is message


def test_the_callers_kernel_may_ask_for_select_next(kernels: Callable[..., FakeKernel]) -> None:
    """Book B 3.4.1: Select Next from the caller's kernel drops its candidate; the next one is selected."""
    visa = kernels(Outcome.APPROVED)
    card = wallet_card(
        dir_entry(VISA, b"VISA", 2), dir_entry(WALLET, b"DIGITAL CNY", 1, bytes.fromhex("810156"))
    )
    config = cfg(*TerminalConfig.example(capks=None).combinations, wallet_combination())
    wallet = WalletKernel(Outcome.SELECT_NEXT)
    result = process(card, config, txn(), extra_kernels={WALLET_KERNEL: wallet})
    assert result.outcome is Outcome.APPROVED and len(wallet.calls) == 1 and len(visa.contexts) == 1


def test_domestic_kernel_id_in_configuration() -> None:
    combo = Combination.from_dict({"aid": WALLET.hex(), "kernel_id": WALLET_KERNEL, "label": "DIGITAL CNY"})
    assert combo.kernel_id == WALLET_KERNEL
    assert Combination.from_dict(combo.to_dict()) == combo


def test_over_the_limit_beside_an_allowed_wallet_says_the_limit(kernels: Callable[..., FakeKernel]) -> None:
    """Book B 3.1.1.4: the card's only application is over its contactless transaction limit; the wallet's
    combination (no such limit) keeps pre-processing from ending, and the customer still hears the limit."""
    kernels(Outcome.APPROVED)
    card = wallet_card(dir_entry(VISA, b"VISA", 1))
    config = cfg(*TerminalConfig.example(capks=None).combinations, wallet_combination())
    result = process(card, config, txn(100000), extra_kernels={WALLET_KERNEL: WalletKernel()})
    assert result.outcome is Outcome.TRY_ANOTHER_INTERFACE and result.error == entry_point.OVER_CONTACTLESS_LIMIT
    assert result.messages[0].message is Message.INSERT_OR_SWIPE
