"""The kernel against a fake wallet: every refusal of §5, and the torn payments of §7."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import pytest

from cbdc import kernel, tlv
from cbdc.checks import Refusal, TrustStore
from cbdc.kernel import Intent, OfflineState, OutcomeKind, WalletOutcome
from cbdc.protocol import AID, Ins, PaymentRecord, PaymentRequest, SelectResponse, WalletInfo
from cbdc.sm3 import sm3
from tests.unit.cbdc.wallet import (
    NOW,
    WALLET_ID,
    FakeWallet,
    Key,
    WalletGone,
    operator_certificate,
    request,
    trust,
    wallet_certificate,
)

OTHER_OPERATOR = Key.from_seed("untrusted operator")


@dataclass
class Journal:
    """What the terminal's before_payment does: note the intent, and when (how many commands had gone)."""

    wallet: FakeWallet
    intents: list[Intent] = field(default_factory=list)
    commands_before: list[int] = field(default_factory=list)

    def __call__(self, intent: Intent) -> None:
        self.intents.append(intent)
        self.commands_before.append(len(self.wallet.commands))


def pay(
    wallet: FakeWallet, req: PaymentRequest | None = None, store: TrustStore | None = None,
    state: OfflineState | None = None, **kwargs: Any,
) -> tuple[WalletOutcome, Journal]:  # fmt: skip
    journal = Journal(wallet)
    out = kernel.pay(wallet, req or request(), store or trust(), state or OfflineState(), NOW, journal,
                     transport_errors=(WalletGone,), **kwargs)  # fmt: skip
    return out, journal


def test_a_good_wallet_pays_and_the_intent_is_written_once_before_pay() -> None:
    wallet = FakeWallet()
    out, journal = pay(wallet)
    assert out.kind is OutcomeKind.APPROVED and out.refusal is None and out.approved
    assert out.record is not None and out.record.raw == wallet.records[1]
    assert out.record.counter == 1 and out.record.amount == 1234 and wallet.balance == 500_000 - 1234
    assert len(journal.intents) == 1
    pay_index = [c[1] for c in wallet.commands].index(Ins.PAY)
    assert journal.commands_before == [pay_index]  # everything before PAY had been sent, PAY not yet
    intent = journal.intents[0]
    assert intent == out.intent and intent.expected_counter == 1 and intent.previous_hash == bytes(32)
    assert Intent.from_dict(intent.to_dict()) == intent
    assert [e.command for e in out.exchanges] == wallet.commands
    assert all(e.response is not None and e.response.endswith(b"\x90\x00") for e in out.exchanges)
    assert out.to_json() == {
        "kind": "approved", "refusal": None, "wallet_id": "D1A0000000000001", "counter": 1,
        "record_hash": sm3(wallet.records[1]).hex(), "detail": "",
    }  # fmt: skip


def test_the_chain_of_records_carries_on() -> None:
    wallet = FakeWallet()
    first, _ = pay(wallet)
    second, _ = pay(wallet, request(challenge=b"\x01" * 16), state=OfflineState({WALLET_ID.hex().upper(): 1}))
    assert second.approved and second.record is not None and first.record is not None
    assert second.record.previous_hash == first.record.hash and second.record.counter == 2


def test_entry_point_may_have_selected_already() -> None:
    wallet = FakeWallet()
    out, _ = pay(wallet, selected=SelectResponse(AID, "DIGITAL CNY", 1).encode())
    assert out.approved and wallet.commands[0][1] == Ins.GET_WALLET_INFO


def _before_pay(out: WalletOutcome, journal: Journal, wallet: FakeWallet) -> None:
    """Refused before PAY: nothing debited, no intent, PAY never sent."""
    assert not journal.intents and out.intent is None and out.record is None
    assert Ins.PAY not in [c[1] for c in wallet.commands]


@pytest.mark.parametrize(
    ("wallet_changes", "store_changes", "state", "req", "refusal"),
    [
        ({"answer": {Ins.GET_WALLET_INFO: b"\xe1\x01\x00\x90\x00"}}, {}, None, None, Refusal.MALFORMED),
        ({"answer": {Ins.GET_WALLET_INFO: b"\x6a\x80"}}, {}, None, None, Refusal.MALFORMED),
        ({"answer": {Ins.READ_CERTIFICATE: b"\xe2\x00\x90\x00"}}, {}, None, None, Refusal.MALFORMED),
        (
            {"answer": {Ins.SELECT: SelectResponse(AID, "X", 2).encode() + b"\x90\x00"}},
            {},
            None,
            None,
            Refusal.UNSUPPORTED_VERSION,
        ),
        ({"operator": "untrusted"}, {}, None, None, Refusal.UNTRUSTED_CHAIN),
        ({"certificate": "expired"}, {}, None, None, Refusal.CERTIFICATE_EXPIRED),
        ({"certificate": "future"}, {}, None, None, Refusal.CERTIFICATE_NOT_YET_VALID),
        ({"wallet_id": bytes(8)}, {}, None, None, Refusal.UNTRUSTED_CHAIN),  # info does not match the certificate
        ({}, {"blocked_wallets": [WALLET_ID.hex()]}, None, None, Refusal.WALLET_BLOCKED),
        ({"counter": 4}, {}, OfflineState({WALLET_ID.hex().upper(): 5}), None, Refusal.COUNTER_REPLAYED),
        ({"counter": 4}, {}, OfflineState({WALLET_ID.hex().upper(): 4}), None, None),
        ({"currency": 978}, {}, None, None, Refusal.CURRENCY_MISMATCH),
        ({"certificate": "low limit"}, {}, None, None, Refusal.OVER_WALLET_LIMIT),
        (
            {},
            {
                "limits": {
                    "156": {"per_payment": 1000, "max_count": 20, "max_total": 500_000, "max_unsent_age_s": 86_400}
                }
            },
            None,
            None,
            Refusal.OVER_PAYMENT_LIMIT,
        ),
        ({}, {}, None, request(currency=978), Refusal.CURRENCY_MISMATCH),
        ({}, {}, OfflineState(count_since_sync=20), None, Refusal.OVER_COUNT_LIMIT),
        ({}, {}, OfflineState(total_since_sync=499_000), None, Refusal.OVER_TOTAL_LIMIT),
        ({}, {}, OfflineState(oldest_unsent_age_s=90_000), None, Refusal.UNSENT_TOO_OLD),
    ],
)
def test_refusals_before_pay(
    wallet_changes: dict[str, Any], store_changes: dict[str, Any], state: OfflineState | None,
    req: PaymentRequest | None, refusal: Refusal | None,
) -> None:  # fmt: skip
    certificates = {
        "expired": wallet_certificate(not_after=date(2026, 12, 5)),
        "future": wallet_certificate(not_before=date(2026, 12, 7)),
        "low limit": wallet_certificate(limits=(1000, 5000, 10_000)),
    }
    if "certificate" in wallet_changes:
        wallet_changes = {**wallet_changes, "certificate": certificates[wallet_changes["certificate"]]}
    if wallet_changes.get("operator") == "untrusted":
        wallet_changes = {**wallet_changes, "operator": operator_certificate(OTHER_OPERATOR)}
    wallet = FakeWallet(**wallet_changes)
    out, journal = pay(wallet, req, trust(**store_changes), state)
    if refusal is None:
        assert out.approved
        return
    assert (out.kind, out.refusal) == (OutcomeKind.REFUSED, refusal), out.detail
    _before_pay(out, journal, wallet)


@pytest.mark.parametrize(
    ("wallet_changes", "refusal"),
    [
        ({"balance": 1000}, Refusal.INSUFFICIENT_BALANCE),
        ({"spent_today": 499_000}, Refusal.OVER_DAILY_LIMIT),
        ({"locked": True}, Refusal.WALLET_LOCKED),
        ({"answer": {Ins.PAY: b"\x6a\x91"}}, Refusal.OVER_WALLET_LIMIT),
        ({"answer": {Ins.PAY: b"\x6a\x93"}}, Refusal.CURRENCY_MISMATCH),
    ],
)
def test_the_wallets_own_refusals(wallet_changes: dict[str, Any], refusal: Refusal) -> None:
    wallet = FakeWallet(**wallet_changes)
    before = wallet.balance
    out, journal = pay(wallet)
    assert (out.kind, out.refusal) == (OutcomeKind.WALLET_DECLINED, refusal)
    assert len(journal.intents) == 1 and out.record is None and wallet.balance == before


def test_a_locked_wallet_may_say_so_before_pay() -> None:
    out, journal = pay(FakeWallet(answer={Ins.GET_WALLET_INFO: b"\x69\x85"}))
    assert (out.kind, out.refusal) == (OutcomeKind.WALLET_DECLINED, Refusal.WALLET_LOCKED) and not journal.intents


def _flip_last_bit(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 1])


@pytest.mark.parametrize(
    ("wallet_changes", "refusal"),
    [
        ({"alter_bytes": _flip_last_bit}, Refusal.RECORD_SIGNATURE),
        ({"alter_bytes": lambda raw: raw + b"\x00"}, Refusal.MALFORMED),
        (
            {"alter_bytes": lambda raw: raw[:3] + raw[3:].replace(b"\xdf\x40\x01\x01", b"\xdf\x40\x01\x02")},
            Refusal.MALFORMED,
        ),
        ({"alter_record": lambda r: replace(r, merchant_id="ELSEWHERE")}, Refusal.WRONG_PAYEE),
        ({"alter_record": lambda r: replace(r, challenge=bytes(16))}, Refusal.WRONG_CHALLENGE),
        ({"alter_record": lambda r: replace(r, counter=r.counter + 1)}, Refusal.COUNTER_REPLAYED),
        ({"alter_record": lambda r: replace(r, amount=r.amount - 1)}, Refusal.AMOUNT_MISMATCH),
        ({"alter_record": lambda r: replace(r, currency=978)}, Refusal.CURRENCY_MISMATCH),
        ({"alter_record": lambda r: replace(r, wallet_id=bytes(8))}, Refusal.WRONG_WALLET),
        ({"alter_record": lambda r: replace(r, previous_hash=b"\x01" * 32)}, Refusal.CHAIN_BROKEN),
    ],
)
def test_refusals_after_pay_keep_the_evidence(wallet_changes: dict[str, Any], refusal: Refusal) -> None:
    wallet = FakeWallet(**wallet_changes)
    out, journal = pay(wallet)
    assert (out.kind, out.refusal) == (OutcomeKind.REFUSED, refusal), out.detail
    assert wallet.balance == 500_000 - 1234  # the wallet debited: the terminal keeps what it got
    assert out.intent is not None and journal.intents == [out.intent]
    assert out.exchanges[-1].response == wallet.records[1] + b"\x90\x00"
    if refusal is not Refusal.MALFORMED:
        assert out.record is not None and out.record.raw == wallet.records[1]


def test_a_replayed_old_record_is_refused() -> None:
    wallet = FakeWallet()
    first, _ = pay(wallet)
    assert first.approved
    wallet.answer[Ins.PAY] = wallet.records[1] + b"\x90\x00"  # the same record again, for a new payment
    out, _ = pay(wallet, request(challenge=b"\x02" * 16), state=OfflineState({WALLET_ID.hex().upper(): 1}))
    assert (out.kind, out.refusal) == (OutcomeKind.REFUSED, Refusal.WRONG_CHALLENGE)


def test_no_answer_before_pay_is_no_wallet() -> None:
    for ins in (Ins.SELECT, Ins.GET_WALLET_INFO, Ins.READ_CERTIFICATE):
        wallet = FakeWallet(gone_on={ins})
        out, journal = pay(wallet)
        assert out.kind is OutcomeKind.NO_WALLET and out.refusal is None and not journal.intents
        assert out.exchanges[-1].response is None
    out, _ = pay(FakeWallet(answer={Ins.SELECT: b"\x6a\x82"}))
    assert out.kind is OutcomeKind.NO_WALLET and out.detail == "SELECT: 6A82"


def test_a_failing_journal_stops_before_pay() -> None:
    wallet = FakeWallet()

    def cannot_write(intent: Intent) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        kernel.pay(wallet, request(), trust(), OfflineState(), NOW, cannot_write)
    assert Ins.PAY not in [c[1] for c in wallet.commands] and wallet.balance == 500_000


def test_an_unexpected_error_of_the_transport_is_not_swallowed() -> None:
    """Only the transport's named errors mean "the wallet left"; a bug elsewhere propagates."""
    wallet = FakeWallet(gone_on={Ins.GET_WALLET_INFO})
    with pytest.raises(WalletGone):
        kernel.pay(wallet, request(), trust(), OfflineState(), NOW, lambda i: None, transport_errors=(OSError,))


# --------------------------------------------------------------------------- torn payments (§7)


def _torn(**wallet_changes: Any) -> tuple[FakeWallet, Intent]:
    wallet = FakeWallet(**wallet_changes)
    out, journal = pay(wallet)
    assert out.kind is OutcomeKind.TORN and out.intent is not None and journal.intents == [out.intent]
    assert out.exchanges[-1].response is None or not out.exchanges[-1].response.endswith(b"\x90\x00")
    return wallet, out.intent


def resume(wallet: FakeWallet, intent: Intent, **kwargs: Any) -> WalletOutcome:
    return kernel.resume(wallet, intent, trust(), OfflineState(), transport_errors=(WalletGone,), **kwargs)


def test_torn_after_debit_then_the_retap_completes_the_same_payment() -> None:
    wallet, intent = _torn(leave_after_debit=True)
    assert wallet.counter == 1 and wallet.balance == 500_000 - 1234
    journal = Intent.from_dict(intent.to_dict())  # what the terminal read back from its journal
    out = resume(wallet, journal)
    assert out.approved and out.record is not None and out.record.raw == wallet.records[1]
    assert wallet.commands[-1] == bytes.fromhex("80560000040000000100")  # GET RECORD 1
    assert wallet.balance == 500_000 - 1234  # paid once


def test_torn_before_debit_then_the_retap_pays_with_the_same_request() -> None:
    wallet, intent = _torn(gone_on={Ins.PAY})
    first_pay = wallet.commands[-1]
    wallet.gone_on.clear()
    out = resume(wallet, intent)
    assert out.approved and wallet.counter == 1 and wallet.balance == 500_000 - 1234
    assert wallet.commands[-1] == first_pay  # the SAME challenge, date and amount


def test_retap_without_retry_reports_not_debited() -> None:
    wallet, intent = _torn(gone_on={Ins.PAY})
    wallet.gone_on.clear()
    out = resume(wallet, intent, retry=False)
    assert out.kind is OutcomeKind.NOT_DEBITED and wallet.balance == 500_000
    assert Ins.PAY not in [c[1] for c in wallet.commands[-2:]]


def test_an_odd_status_word_to_pay_is_torn_and_resolved_by_the_retap() -> None:
    wallet, intent = _torn(answer={Ins.PAY: b"\x6f\x00"})
    del wallet.answer[Ins.PAY]
    assert resume(wallet, intent).approved


def test_retap_with_another_wallet() -> None:
    _, intent = _torn(leave_after_debit=True)
    other = FakeWallet(wallet_id=bytes.fromhex("D1A0000000000002"))
    out = resume(other, intent)
    assert out.kind is OutcomeKind.OTHER_WALLET and out.wallet_id == bytes.fromhex("D1A0000000000002")


def test_retap_finds_the_counter_rolled_back_or_the_chain_forked() -> None:
    _, intent = _torn(leave_after_debit=True)
    rolled_back = FakeWallet()  # counter 0, where the intent expects 3: the wallet went back in time
    out = resume(rolled_back, replace(intent, expected_counter=3))
    assert (out.kind, out.refusal) == (OutcomeKind.REFUSED, Refusal.COUNTER_REPLAYED) and out.record is None
    forked = FakeWallet()  # counter 0 as expected - 1, but its last hash is not the one read at the first tap
    out = resume(forked, replace(intent, previous_hash=b"\x02" * 32))
    assert (out.kind, out.refusal) == (OutcomeKind.REFUSED, Refusal.CHAIN_BROKEN) and out.record is None
    assert Ins.PAY not in [c[1] for c in rolled_back.commands + forked.commands]


def test_retap_record_gone_or_mute_stays_torn() -> None:
    wallet, intent = _torn(leave_after_debit=True)
    wallet.records.clear()
    assert resume(wallet, intent).kind is OutcomeKind.TORN
    wallet2, intent2 = _torn(leave_after_debit=True)
    wallet2.gone_on.add(Ins.GET_RECORD)
    assert resume(wallet2, intent2).kind is OutcomeKind.TORN
    wallet2.gone_on = {Ins.GET_WALLET_INFO}
    assert resume(wallet2, intent2).kind is OutcomeKind.NO_WALLET


def test_retap_checks_the_record_it_fetches() -> None:
    wallet, intent = _torn(leave_after_debit=True, alter_record=lambda r: replace(r, amount=1))
    out = resume(wallet, intent)
    assert (out.kind, out.refusal) == (OutcomeKind.REFUSED, Refusal.AMOUNT_MISMATCH) and out.record is not None


def test_retap_of_a_payment_already_completed_here_is_a_replay() -> None:
    wallet, intent = _torn(leave_after_debit=True)
    out = kernel.resume(wallet, intent, trust(), OfflineState({WALLET_ID.hex().upper(): 1}))
    assert (out.kind, out.refusal) == (OutcomeKind.REFUSED, Refusal.COUNTER_REPLAYED)


def test_retap_refuses_a_wallet_blocked_since() -> None:
    wallet, intent = _torn(leave_after_debit=True)
    out = kernel.resume(wallet, intent, trust(blocked_wallets=[WALLET_ID.hex()]), OfflineState())
    assert (out.kind, out.refusal) == (OutcomeKind.REFUSED, Refusal.WALLET_BLOCKED)


def test_the_wallet_info_says_what_the_fake_wallet_holds() -> None:
    """The fake wallet itself answers as the spec says (so the tests above test the kernel, not the fake)."""
    wallet = FakeWallet(counter=3, last_hash=b"\x07" * 32)
    response = wallet.exchange(bytes.fromhex("80CA000000"))
    info = WalletInfo.parse(response[:-2])
    assert (info.counter, info.last_hash, info.balance) == (3, b"\x07" * 32, 500_000)
    assert tlv.decode(response[:-2])[0].tag == 0xE1
    assert wallet.exchange(bytes.fromhex("8056000004000000FF00")) == b"\x6a\x83"
    assert PaymentRecord  # imported for the fake's records


def test_odd_answers_to_pay() -> None:
    out, _ = pay(FakeWallet(answer={Ins.PAY: b"\x90\x00"}))  # "done", and no record
    assert (out.kind, out.refusal) == (OutcomeKind.REFUSED, Refusal.MALFORMED) and out.intent is not None
    out, _ = pay(FakeWallet(answer={Ins.PAY: b"\x90"}))
    assert out.kind is OutcomeKind.TORN and out.detail == "PAY: no status word"
    out, _ = pay(FakeWallet(answer={Ins.PAY: b"\x6a\x80"}))
    assert out.kind is OutcomeKind.TORN and out.detail == "PAY: 6A80"


def test_a_wallet_at_the_end_of_its_counter_cannot_pay() -> None:
    out, journal = pay(FakeWallet(counter=0xFFFFFFFF, last_hash=b"\x01" * 32))
    assert (out.kind, out.refusal) == (OutcomeKind.REFUSED, Refusal.MALFORMED) and not journal.intents


def test_a_journalled_intent_that_does_not_read_back_is_named() -> None:
    _, intent = _torn(leave_after_debit=True)
    data = intent.to_dict()
    del data["challenge"]
    with pytest.raises(ValueError, match="intent without challenge"):
        Intent.from_dict(data)
    with pytest.raises(ValueError, match="malformed intent"):
        Intent.from_dict({**intent.to_dict(), "wallet_id": "D1A0"})
