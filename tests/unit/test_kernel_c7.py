"""Kernel 7 (UnionPay QuickPass, qPBOC-style) with the simulator's UnionPay cards.

Each path of the kernel: electronic cash approved (the balance read after the
sale, or computed when the card does not say), EC short (declined, or online
for a card that may go online), EC not offered (over the terminal's EC limit,
an online cryptogram required, a terminal or a card without EC), the reader's
EC checks against the card's own EC data, online, fDDA failure, the card's CVM
requests, and malformed card data.  Where a card must misbehave, a wrapper
rewrites its answers (:class:`Rewrite`); the kernel sees only bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from emv.apdu import CardCommunicationError
from emv.config import Combination, TerminalConfig
from emv.entry_point import process
from emv.outcome import CvmPerformed, Message, Outcome, TransactionResult
from emv.transaction import TransactionData
from emv.tvr import Tvr
from simulator import profiles
from simulator.card import SimulatedCard
from simulator.cryptograms import CryptogramData, verify_arqc
from simulator.issuer_keys import issuer_master_keys
from simulator.profiles import CardProfile, EcSpec, RecordSpec
from simulator.transport import as_transport
from terminal.settings import load_default_config

DATE = bytes.fromhex("261121")
UN = bytes.fromhex("1A2B3C4D")
GET_DATA_9F79 = bytes.fromhex("80CA9F7900")


class Rewrite:
    """A simulated card whose answers to one instruction (INS) pass through ``change``."""

    def __init__(self, card: SimulatedCard, ins: int, change: Callable[[bytes, bytes], bytes]) -> None:
        self.card = card
        self.ins = ins
        self.change = change

    def exchange(self, command: bytes) -> bytes:
        answer = self.card.exchange(command)
        return self.change(command, answer) if command[1] == self.ins else answer


def _txn(amount: int, currency: int = 156) -> TransactionData:
    return TransactionData(amount=amount, currency=currency, date=DATE, unpredictable_number=UN)


def _tap(card: object, amount: int, config: TerminalConfig | None = None, currency: int = 156) -> TransactionResult:
    cfg = config or load_default_config()
    return process(as_transport(card), cfg, _txn(amount, currency))  # type: ignore[arg-type]


def _unionpay(config: TerminalConfig, **changes: object) -> TerminalConfig:
    """The shipped configuration with every kernel 7 combination changed."""
    combos = tuple(replace(c, **changes) if c.kernel_id == 7 else c for c in config.combinations)  # type: ignore[arg-type]
    return replace(config, combinations=combos)


def _ec_card(**changes: object) -> SimulatedCard:
    return SimulatedCard(replace(profiles.load("unionpay-ec"), **changes), seed=3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- electronic cash


def test_ec_approval_offline_with_the_balance_read_after_the_sale() -> None:
    card = SimulatedCard("unionpay-ec", seed=3)
    r = _tap(card, 10000)
    assert r.outcome is Outcome.APPROVED, r.to_json()
    assert r.kernel == 7 and r.cryptogram_type == "TC"
    assert r.oda.method == "fDDA" and r.oda.result == "passed"
    assert r.cryptogram_inputs[0x9F7A] == b"\x01", "the PDOL asked for 9F7A: EC offered"
    assert r.commands[-1] == GET_DATA_9F79
    assert r.electronic_cash is not None
    assert r.electronic_cash.to_json() == {
        "balance": 20000,
        "balance_source": "read",
        "available_offline_spending_amount": 20000,
        "below_reset_threshold": False,
    }
    assert r.to_json()["electronic_cash"]["balance"] == 20000
    assert Message.APPROVED in [m.message for m in r.messages]
    # The same card again: its balance falls again.
    again = _tap(card, 2500)
    assert again.outcome is Outcome.APPROVED
    assert again.electronic_cash is not None and again.electronic_cash.balance == 17500
    assert card.ec_balance == 17500


def test_ec_balance_short_declines_and_keeps_the_balance() -> None:
    card = SimulatedCard("unionpay-ec", seed=3)
    r = _tap(card, 30001)  # the card holds 300.00 CNY
    assert r.outcome is Outcome.DECLINED
    assert r.cryptogram_type == "AAC"
    assert r.error is not None and "EC balance short" in r.error
    assert r.electronic_cash is not None and r.electronic_cash.balance is None
    assert r.electronic_cash.offline_spending_amount == 30000
    assert GET_DATA_9F79 not in r.commands
    assert card.ec_balance == 30000
    # the whole balance can be spent
    assert _tap(card, 30000).outcome is Outcome.APPROVED and card.ec_balance == 0


def test_ec_balance_short_on_a_card_that_may_go_online_goes_online() -> None:
    ec = EcSpec(balance=1000, balance_limit=100000, single_limit=50000, reset_threshold=0, only=False)
    card = _ec_card(ec=ec, online_only=False, offline_limit=0)
    r = _tap(card, 10000)
    assert r.outcome is Outcome.ONLINE_REQUEST and r.cryptogram_type == "ARQC"
    assert card.ec_balance == 1000


@pytest.mark.parametrize(
    ("why", "config_change", "amount"),
    [
        ("over the terminal's EC limit 9F7B", {"extra": {0x9F7A: b"\x01", 0x9F7B: bytes.fromhex("000000005000")}},
         10000),
        ("a CVM required (at the CVM required limit, within 9F7B)", {}, 50000),
        ("online cryptogram required (floor limit 0)", {"floor_limit": 0}, 10000),
        ("terminal without EC (9F7A 00)", {"extra": {0x9F7A: b"\x00"}}, 10000),
        ("terminal with no 9F7A at all", {"extra": {}}, 10000),
    ],
)
def test_ec_not_offered(why: str, config_change: dict[str, object], amount: int) -> None:
    config = _unionpay(load_default_config(), **config_change)
    card = SimulatedCard("unionpay-ec", seed=3)
    r = _tap(card, amount, config)
    assert r.cryptogram_inputs[0x9F7A] == b"\x00", why
    assert r.outcome is Outcome.DECLINED and r.cryptogram_type == "AAC"  # an EC-only card: nothing else to pay with
    assert card.ec_balance == 30000
    assert GET_DATA_9F79 not in r.commands


def test_ec_not_offered_to_a_card_whose_pdol_does_not_ask() -> None:
    base = profiles.load("unionpay-ec")
    card = _ec_card(pdol=base.pdol.replace(bytes.fromhex("9F7A01"), b""))
    r = _tap(card, 10000)
    assert 0x9F7A not in r.cryptogram_inputs
    assert r.outcome is Outcome.DECLINED and card.ec_balance == 30000


def test_ec_not_offered_for_a_refund() -> None:
    card = SimulatedCard("unionpay-ec", seed=3)
    txn = replace(_txn(10000), transaction_type=0x20)
    r = process(as_transport(card), load_default_config(), txn)
    assert r.cryptogram_inputs[0x9F7A] == b"\x00"
    assert card.ec_balance == 30000


def test_ec_balance_computed_when_the_card_does_not_answer_get_data() -> None:
    card = Rewrite(SimulatedCard("unionpay-ec", seed=3), 0xCA, lambda _c, _a: bytes.fromhex("6A88"))
    r = _tap(card, 10000)
    assert r.outcome is Outcome.APPROVED
    assert r.electronic_cash is not None
    assert (r.electronic_cash.balance, r.electronic_cash.balance_source) == (20000, "computed")


@pytest.mark.parametrize("answer", ["9F7906000000039999 9000", "9F790500000399 9000", "9F7906AB0000039999 9000"])
def test_ec_balance_read_that_disagrees_or_is_malformed(answer: str) -> None:
    card = Rewrite(SimulatedCard("unionpay-ec", seed=3), 0xCA, lambda _c, _a: bytes.fromhex(answer))
    r = _tap(card, 10000)
    assert r.electronic_cash is not None
    if answer.startswith("9F790600000003"):  # well formed, another figure than 9F5D: refused
        assert r.outcome is Outcome.DECLINED
        assert r.error is not None and "differs" in r.error and "may already have debited" in r.error
    else:  # malformed: not a read, the card's own 9F5D stands
        assert r.outcome is Outcome.APPROVED
        assert r.electronic_cash.balance_source == "computed"


def _unsigned_ec_records(profile: CardProfile) -> tuple[RecordSpec, ...]:
    """The EC card with its EC data objects in an unsigned record of their own (SFI 3)."""
    ec_tags = (0x9F51, 0x9F77, 0x9F78, 0x9F6D)
    out = [replace(r, tags=tuple(t for t in r.tags if t not in ec_tags)) for r in profile.records]
    return (*out, RecordSpec(3, 1, False, ec_tags))


@pytest.mark.parametrize(
    ("original", "forged", "why"),
    [
        ("9F7806000000050000", "9F7806000000005000", "single-transaction limit"),
        ("9F7706000000100000", "9F7706000000020000", "balance limit"),
        ("9F51020156", "9F51020978", "EC currency"),
    ],
)
def test_ec_approval_against_the_cards_own_ec_data(original: str, forged: str, why: str) -> None:
    base = profiles.load("unionpay-ec")
    card = SimulatedCard(replace(base, records=_unsigned_ec_records(base)), seed=3)
    swap = Rewrite(card, 0xB2, lambda _c, a: a.replace(bytes.fromhex(original), bytes.fromhex(forged)))
    r = _tap(swap, 10000)
    assert r.outcome is Outcome.DECLINED, r.to_json()
    assert r.error is not None and why in r.error
    # unchanged, the same card layout approves
    fresh = SimulatedCard(replace(base, records=_unsigned_ec_records(base)), seed=3)
    assert _tap(fresh, 10000).outcome is Outcome.APPROVED


def test_ec_balance_below_the_reset_threshold_is_flagged() -> None:
    ec = EcSpec(balance=15000, balance_limit=100000, single_limit=50000, reset_threshold=10000, only=True)
    r = _tap(_ec_card(ec=ec), 10000)
    assert r.outcome is Outcome.APPROVED
    assert r.electronic_cash is not None and r.electronic_cash.balance == 5000
    assert r.electronic_cash.below_reset_threshold


def test_ec_approval_with_a_failed_fdda_is_declined_and_says_the_card_may_have_debited() -> None:
    base = profiles.load("unionpay-ec")
    assert base.oda is not None
    card = _ec_card(oda=replace(base.oda, tamper={"sdad": "hash"}))
    r = _tap(card, 10000)
    assert r.outcome is Outcome.DECLINED
    assert r.oda.failure == "sdad_hash" and Tvr(r.tvr).is_set(Tvr.DDA_FAILED)
    assert r.error is not None and "may already have debited" in r.error


# --------------------------------------------------------------------------- online, fDDA, qPBOC offline


def test_online_arqc_verifies_under_the_issuers_keys() -> None:
    r = _tap(SimulatedCard("unionpay-debit", seed=3), 10000)
    assert r.outcome is Outcome.ONLINE_REQUEST and r.cryptogram_type == "ARQC"
    assert r.card_data[0x9F10][:3] == bytes.fromhex("070101"), "UnionPay-style IAD: 07 DKI CVN 01"
    tags = r.card_data | r.cryptogram_inputs
    data = CryptogramData.from_tags(tags)
    assert r.cryptogram is not None
    assert verify_arqc(issuer_master_keys("sim-unionpay-cvn01"), "6214830001010015", "01", data, r.cryptogram)
    forged = replace(data, amount=bytes.fromhex("000000010001"))
    assert not verify_arqc(issuer_master_keys("sim-unionpay-cvn01"), "6214830001010015", "01", forged, r.cryptogram)


def test_qpboc_offline_approval_without_ec() -> None:
    r = _tap(SimulatedCard("unionpay-credit", seed=3), 10000)
    assert r.outcome is Outcome.APPROVED and r.cryptogram_type == "TC"
    assert r.oda.result == "passed" and r.electronic_cash is None


@pytest.mark.parametrize(("ctq", "outcome"), [("2000", Outcome.ONLINE_REQUEST), ("0000", Outcome.DECLINED)])
def test_fdda_failure_follows_the_ctq(ctq: str, outcome: Outcome) -> None:
    card = SimulatedCard(replace(profiles.load("unionpay-bad-fdda"), ctq=bytes.fromhex(ctq)), seed=3)
    r = _tap(card, 10000)
    assert r.outcome is outcome
    assert (r.oda.result, r.oda.failure) == ("failed", "sdad_hash")


def test_tc_without_fdda_support_is_not_approved() -> None:
    card = SimulatedCard(replace(profiles.load("unionpay-credit"), aip=b"\x00\x00"), seed=3)
    r = _tap(card, 10000)
    assert r.outcome is Outcome.ONLINE_REQUEST, "its CTQ (6000) says go online when ODA fails"
    assert Tvr(r.tvr).is_set(Tvr.ODA_NOT_PERFORMED)


def test_exception_file_declines_an_offline_approval() -> None:
    from emv.config import ExceptionFile

    cfg = load_default_config()
    cfg = replace(cfg, exception_file=ExceptionFile.from_entries([ExceptionFile.entry_for("6214830001010031")]))
    r = _tap(SimulatedCard("unionpay-ec", seed=3), 10000, cfg)
    assert r.outcome is Outcome.DECLINED and Tvr(r.tvr).is_set(Tvr.PAN_IN_EXCEPTION_FILE)


# --------------------------------------------------------------------------- CVM


def _pin_pad_config() -> TerminalConfig:
    cfg = load_default_config()
    doc = cfg.to_dict()
    doc["pin_pad"] = True
    for combo in doc["combinations"]:
        if combo["kernel_id"] == 7:
            combo["ttq"] = "36004000"  # + online PIN
    return TerminalConfig.from_dict(doc, capks=cfg.capks, revocation_list=cfg.revocation_list)


@pytest.mark.parametrize(
    ("profile", "ctq", "pin_pad", "outcome", "cvm"),
    [
        ("unionpay-credit", "6000", False, Outcome.ONLINE_REQUEST, CvmPerformed.SIGNATURE),
        ("unionpay-debit", "0080", False, Outcome.ONLINE_REQUEST, CvmPerformed.CONSUMER_DEVICE),
        ("unionpay-debit", "8000", False, Outcome.TRY_ANOTHER_INTERFACE, CvmPerformed.FAILED),
        ("unionpay-debit", "8000", True, Outcome.ONLINE_REQUEST, CvmPerformed.ONLINE_PIN),
        ("unionpay-debit", "0000", False, Outcome.DECLINED, CvmPerformed.FAILED),
    ],
)
def test_the_cards_cvm_request(profile: str, ctq: str, pin_pad: bool, outcome: Outcome, cvm: CvmPerformed) -> None:
    """Over the CVM required limit (500.00 CNY): the CTQ asks, the reader does what it can."""
    card = SimulatedCard(replace(profiles.load(profile), ctq=bytes.fromhex(ctq)), seed=3)
    r = _tap(card, 60000, _pin_pad_config() if pin_pad else None)
    assert (r.outcome, r.cvm) == (outcome, cvm), r.error
    if cvm is CvmPerformed.ONLINE_PIN:
        assert Tvr(r.tvr).is_set(Tvr.ONLINE_PIN_ENTERED)
    if cvm is CvmPerformed.FAILED:
        assert Tvr(r.tvr).is_set(Tvr.CARDHOLDER_VERIFICATION_FAILED)
        assert not Tvr(r.tvr).is_set(Tvr.ONLINE_PIN_ENTERED)


def test_no_cvm_below_the_limit() -> None:
    r = _tap(SimulatedCard("unionpay-debit", seed=3), 49999)
    assert r.cvm is CvmPerformed.NO_CVM and r.outcome is Outcome.ONLINE_REQUEST


def test_offline_approval_with_signature_says_please_sign() -> None:
    config = _unionpay(load_default_config(), floor_limit=300000, cvm_required_limit=5000)
    card = SimulatedCard(replace(profiles.load("unionpay-credit"), offline_limit=100000), seed=3)
    r = _tap(card, 10000, config)
    assert r.outcome is Outcome.APPROVED and r.cvm is CvmPerformed.SIGNATURE
    assert Message.APPROVED_PLEASE_SIGN in [m.message for m in r.messages]


# --------------------------------------------------------------------------- malformed card data


def _gpo_rewrite(old: str, new: str) -> Callable[[bytes, bytes], bytes]:
    return lambda _c, a: a.replace(bytes.fromhex(old), bytes.fromhex(new))


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (_gpo_rewrite("9F5D06", "9F5D05"), "9F5D"),  # a 5-byte 9F5D (its last byte then overruns)
        (_gpo_rewrite("9F5D06000000020000", "9F5D060000AB020000"), "9F5D"),  # not BCD
        (_gpo_rewrite("9F2701", "9F2801"), ""),  # no 9F27: the IAD tells, a TC
        (_gpo_rewrite("9F270140", "9F2701C0"), "reserved"),
        (_gpo_rewrite("9F2608", "9F2808"), "9F26"),
    ],
)
def test_malformed_gpo_answers_end_the_application_or_are_read_right(
    change: Callable[[bytes, bytes], bytes], what: str
) -> None:
    card = Rewrite(SimulatedCard("unionpay-ec", seed=3), 0xA8, change)
    r = _tap(card, 10000)
    if what:
        assert r.outcome is Outcome.END_APPLICATION, r.to_json()
        assert r.error is not None and what in r.error
        assert Message.PROCESSING_ERROR in [m.message for m in r.messages]
    else:
        assert r.outcome is Outcome.APPROVED and r.cryptogram_type == "TC"
    r.to_json()


def test_cryptogram_type_from_a_unionpay_iad_without_9f27() -> None:
    card = Rewrite(SimulatedCard("unionpay-debit", seed=3), 0xA8, _gpo_rewrite("9F270180", "9F280180"))
    r = _tap(card, 10000)
    assert r.outcome is Outcome.ONLINE_REQUEST and r.cryptogram_type == "ARQC"


@pytest.mark.parametrize(
    ("sw", "outcome"),
    [("6984", Outcome.TRY_ANOTHER_INTERFACE), ("6986", Outcome.TRY_AGAIN), ("6985", Outcome.END_APPLICATION),
     ("6A80", Outcome.END_APPLICATION)],
)  # fmt: skip
def test_gpo_status_words(sw: str, outcome: Outcome) -> None:
    """6985 is Select Next: with one application on the card, nothing is left (End Application)."""
    card = Rewrite(SimulatedCard("unionpay-debit", seed=3), 0xA8, lambda _c, _a: bytes.fromhex(sw))
    assert _tap(card, 10000).outcome is outcome


def test_the_shipped_combinations() -> None:
    cfg = load_default_config()
    unionpay = [c for c in cfg.combinations if c.kernel_id == 7]
    assert [c.aid.hex().upper()[-2:] for c in unionpay] == ["01", "02", "03", "06"]
    for c in unionpay:
        assert c.aid.startswith(bytes.fromhex("A0000003330101"))
        assert c.ttq[0] & 0x20 and not c.ttq[0] & 0x04  # qPBOC, no online PIN without a PIN pad
        assert c.extra[0x9F7A] == b"\x01" and c.extra[0x9F7B] == bytes.fromhex("000000050000")


def test_kernel_7_needs_qpboc_in_its_ttq() -> None:
    from emv.config_fields import ConfigError

    with pytest.raises(ConfigError, match="qPBOC"):
        Combination.from_dict({"aid": "A000000333010101", "kernel_id": 7, "ttq": "80004000"})


def test_a_card_taken_away_during_get_data_is_approved_once_not_read_again() -> None:
    """The card debits its EC balance at GPO: once it gave its TC and records, the sale is the card's.

    Taken away before answering GET DATA 9F79, it must not end in "present card again":
    presented again, it would be debited a second time for one sale.
    """

    class LeavesAtGetData:
        def __init__(self, card: SimulatedCard) -> None:
            self.card = card

        def exchange(self, command: bytes) -> bytes:
            if command[1] == 0xCA:
                raise CardCommunicationError("card left the field")
            return self.card.exchange(command)

    card = SimulatedCard("unionpay-ec", seed=3)
    r = _tap(LeavesAtGetData(card), 10000)
    assert r.outcome is Outcome.APPROVED, r.error
    assert r.electronic_cash is not None
    assert (r.electronic_cash.balance, r.electronic_cash.balance_source) == (20000, "computed")
    assert card.ec_balance == 20000
