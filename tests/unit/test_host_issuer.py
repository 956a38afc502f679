"""The simulated host's issuer: the decision table, the card's proof (cryptogram verification) and ARPCs."""

from __future__ import annotations

import datetime as dt

import pytest

from simulator.cryptograms import CryptogramData, arpc, build_iad, compute
from simulator.host.issuer import Decision, Issuer, parse_emv_data
from simulator.host.proofs import Claim, Proven, Purpose, Refusal
from simulator.host.store import HostStore
from simulator.issuer_keys import issuer_master_keys

NOW = dt.datetime(2025, 6, 15, 12, 0, tzinfo=dt.UTC)
PAN = "4761739001010010"


@pytest.fixture()
def store(host_store: HostStore) -> HostStore:
    """A host store on each engine (SQLite, PostgreSQL: tests/conftest.py)."""
    return host_store


@pytest.fixture()
def issuer(store: HostStore) -> Issuer:
    return Issuer(store)


def plain(token: str = "t", expiry: dt.date | None = None) -> Proven:
    """A card proven by other means (what the issuer's table sees after the proof)."""
    return Proven(token, expiry)


def decide(issuer: Issuer, amount: int, tags: dict[int, bytes], purpose: Purpose = Purpose.ONLINE) -> Decision:
    """Prove the card in ``tags`` for a payment of ``amount`` EUR, then decide (as the acquirer does)."""
    proven = issuer.prove(tags, Claim(purpose, amount, 978))
    if isinstance(proven, Refusal):
        return Issuer.refuse(proven)
    return issuer.decide(amount=amount, proven=proven, now=NOW)


def arqc_tags(
    key_name: str, *, amount: int = 1234, tvr: bytes = bytes(5), pan: str = PAN, cid: int = 0x80
) -> dict[int, bytes]:
    """The data objects of an authorisation holding a correct cryptogram (ARQC unless ``cid``) of ``key_name``."""
    keys = issuer_master_keys(key_name)
    cvr = bytes(6) if keys.cvn == 0x10 else bytes([0x03, 0x80, 0, 0])
    data = CryptogramData(
        amount=bytes.fromhex(f"{amount:012d}"),
        amount_other=bytes(6),
        country=bytes.fromhex("0276"),
        tvr=tvr,
        currency=bytes.fromhex("0978"),
        date=bytes.fromhex("250615"),
        transaction_type=b"\x00",
        unpredictable_number=bytes.fromhex("11223344"),
        aip=bytes.fromhex("1980"),
        atc=bytes.fromhex("0007"),
        iad=build_iad(keys, cvr),
    )
    cryptogram = compute(keys, pan, "01", data)
    return {
        0x5A: bytes.fromhex(pan),
        0x5F34: b"\x01",
        0x9F02: data.amount,
        0x9F03: data.amount_other,
        0x9F1A: data.country,
        0x95: data.tvr,
        0x5F2A: data.currency,
        0x9A: data.date,
        0x9C: data.transaction_type,
        0x9F37: data.unpredictable_number,
        0x82: data.aip,
        0x9F36: data.atc,
        0x9F10: data.iad,
        0x9F26: cryptogram,
        0x9F27: bytes([cid]),
    }


def test_plain_amounts_are_approved(issuer: Issuer) -> None:
    decision = issuer.decide(amount=1234, proven=plain(), now=NOW)
    assert (decision.response_code, decision.approved, decision.arpc, decision.card_token) == ("00", True, None, "t")


@pytest.mark.parametrize(
    ("amount", "code"),
    [(51, "51"), (1005, "05"), (99954, "54"), (99912, "12"), (199977, "77"), (99900, "00"), (100, "00")],
)
def test_magic_amounts(issuer: Issuer, amount: int, code: str) -> None:
    assert issuer.decide(amount=amount, proven=plain(), now=NOW).response_code == code


def test_blocked_card_comes_before_the_amount_rules(issuer: Issuer, store: HostStore) -> None:
    store.block_card("stolen", "43", "2025-01-01T00:00:00+00:00")
    assert issuer.decide(amount=1251, proven=plain("stolen"), now=NOW).response_code == "43"
    store.unblock_card("stolen")
    assert issuer.decide(amount=100, proven=plain("stolen"), now=NOW).response_code == "00"


def test_expiry_before_today_is_54(issuer: Issuer) -> None:
    card = arqc_tags("sim-visa-cvn10", amount=100)
    assert decide(issuer, 100, card | {0x5F24: bytes.fromhex("250614")}).response_code == "54"
    assert decide(issuer, 100, card | {0x5F24: bytes.fromhex("250615")}).approved
    assert decide(issuer, 100, card | {0x5F24: b"\xff\xff\xff"}).approved
    assert issuer.decide(amount=100, proven=plain(expiry=dt.date(2025, 6, 14)), now=NOW).reason == "expired"


def test_velocity_counts_approvals_within_the_window(issuer: Issuer, store: HostStore) -> None:
    store.set_velocity(2, 600)
    for minutes in (20, 5, 1):  # the first is outside the window
        store.add_record(
            method="authorise", txn_id=f"t{minutes}", idempotency_key=f"k{minutes}", kind="sale", terminal_id="T",
            merchant_id="M", amount=100, currency=978, pan_token="busy", response_code="00", approved=True,
            host_reference=f"A{minutes}", created_at=(NOW - dt.timedelta(minutes=minutes)).isoformat(),
        )
    assert issuer.decide(amount=100, proven=plain("busy"), now=NOW).response_code == "65"
    assert issuer.decide(amount=100, proven=plain("quiet"), now=NOW).response_code == "00"
    store.set_velocity(0, 0)
    assert issuer.decide(amount=100, proven=plain("busy"), now=NOW).response_code == "00"


@pytest.mark.parametrize("key_name", ["sim-visa-cvn10", "sim-visa-cvn18", "sim-mc-cvn16", "sim-unionpay-cvn01"])
def test_a_correct_arqc_gets_an_arpc(issuer: Issuer, key_name: str) -> None:
    tags = arqc_tags(key_name)
    decision = decide(issuer, 1234, tags)
    assert decision.approved and decision.arpc is not None
    assert decision.card_token == issuer.prove(tags, Claim(Purpose.ONLINE, 1234, 978)).token  # type: ignore[union-attr]
    keys = issuer_master_keys(key_name)
    if keys.cvn == 0x12:  # method 2: ARPC(4) + CSU(4)
        expected = arpc(keys, PAN, "01", arqc=tags[0x9F26], atc=tags[0x9F36], response=bytes.fromhex("00800000"))
        assert decision.arpc == expected + bytes.fromhex("00800000")
        assert decision.issuer_authentication_data == decision.arpc  # 91: ARPC || CSU, 8 bytes
    else:
        assert decision.arpc == arpc(keys, PAN, "01", arqc=tags[0x9F26], atc=tags[0x9F36], response=b"00")
        assert decision.issuer_authentication_data == decision.arpc + b"00"  # 91: ARPC || ARC, 10 bytes


def test_a_unionpay_cryptogram_is_told_by_its_iad_07_and_verified_strictly(issuer: Issuer) -> None:
    """UnionPay-style IAD ``07 DKI 01 CVR(4) 01``: the key set is chosen by its first three bytes."""
    tags = arqc_tags("sim-unionpay-cvn01")
    assert tags[0x9F10].hex().upper() == "0701010380000001"
    assert decide(issuer, 1234, tags).approved
    as_visa = tags | {0x9F10: b"\x06" + tags[0x9F10][1:]}  # the same bytes in a Visa-format IAD
    assert decide(issuer, 1234, as_visa).reason == "arqc_failed"
    changed = tags | {0x9F02: bytes.fromhex("000000001235")}
    assert decide(issuer, 1235, changed).reason == "arqc_failed"


def test_a_declined_payment_with_a_good_arqc_gets_the_arpc_of_its_code(issuer: Issuer) -> None:
    tags = arqc_tags("sim-visa-cvn10", amount=1251)
    decision = decide(issuer, 1251, tags)
    keys = issuer_master_keys("sim-visa-cvn10")
    assert decision.response_code == "51"
    assert decision.arpc == arpc(keys, PAN, "01", arqc=tags[0x9F26], atc=tags[0x9F36], response=b"51")


@pytest.mark.parametrize(
    "spoil",
    [
        lambda t: t.update({0x9F26: bytes(8)}),  # wrong cryptogram
        lambda t: t.update({0x9F02: bytes.fromhex("000000009999")}),  # amount changed after the card signed
        lambda t: t.pop(0x5A),  # no PAN
        lambda t: t.update({0x9F10: b"\x06\x09\x0a\x03\x80\x00\x00"}),  # unknown derivation key index
        lambda t: t.pop(0x9F37),  # a cryptogram input missing
        lambda t: t.update({0x5A: bytes.fromhex("4761739001010028")}),  # another card's PAN
    ],
)
def test_an_arqc_that_does_not_verify_declines_82(issuer: Issuer, spoil: object) -> None:
    tags = arqc_tags("sim-visa-cvn10")
    spoil(tags)  # type: ignore[operator]
    decision = decide(issuer, 1234, tags)
    assert (decision.response_code, decision.arpc) == (("14", None) if 0x5A not in tags else ("82", None))
    assert decision.reason == ("no_card_data" if 0x5A not in tags else "arqc_failed")


def test_pan_from_track_2_when_5a_is_absent(issuer: Issuer) -> None:
    tags = arqc_tags("sim-mc-cvn16")
    del tags[0x5A]
    tags[0x57] = bytes.fromhex(PAN + "D3012201123450000F")
    assert decide(issuer, 1234, tags).arpc is not None


def test_an_arqc_is_verified_strictly_over_the_tvr_sent(issuer: Issuer) -> None:
    """The card signed a zero TVR; a request carrying another TVR does not verify (the terminal
    must send the values the card received, see TransactionResult.cryptogram_inputs)."""
    tags = arqc_tags("sim-visa-cvn10", tvr=bytes(5))
    assert decide(issuer, 1234, tags).arpc is not None
    tags[0x95] = bytes.fromhex("8000000000")
    assert decide(issuer, 1234, tags).response_code == "82"
    mc = arqc_tags("sim-mc-cvn16", tvr=bytes(5))
    mc[0x95] = bytes.fromhex("8000000000")  # kernel 2 signs the final TVR in GENERATE AC: no fallback
    assert decide(issuer, 1234, mc).response_code == "82"


def test_a_tc_or_aac_is_verified_for_what_it_may_prove_and_gets_no_arpc(issuer: Issuer) -> None:
    tc = arqc_tags("sim-visa-cvn10", cid=0x40)
    assert decide(issuer, 1234, tc).reason == "tc_not_arqc"  # an online sale needs the card to ask the issuer
    offline = decide(issuer, 1234, tc, Purpose.OFFLINE)
    assert offline.approved and offline.arpc is None
    aac = arqc_tags("sim-mc-cvn16", cid=0x00)
    assert decide(issuer, 1234, aac, Purpose.REFUND).approved  # a C-2 card answers a refund with an AAC
    assert decide(issuer, 1234, aac, Purpose.OFFLINE).reason == "aac_not_tc"
    tc[0x9F26] = bytes(8)
    assert decide(issuer, 1234, tc, Purpose.OFFLINE).reason == "tc_failed"


def test_no_card_data_is_refused_before_any_rule(issuer: Issuer) -> None:
    assert (decide(issuer, 1234, {}).response_code, decide(issuer, 1234, {}).reason) == ("14", "no_card_data")
    assert decide(issuer, 1234, {0x9F02: bytes(6)}).reason == "no_card_data"
    assert decide(issuer, 1234, {0x5A: bytes.fromhex("1234")}).reason == "no_card_data"  # not a PAN


def test_emv_data_parsing() -> None:
    assert parse_emv_data(b"") == {}
    assert parse_emv_data(bytes.fromhex("9F02060000000012345A0847617390010100 10".replace(" ", "")))[0x9F02]
    with pytest.raises(ValueError, match="not BER-TLV"):
        parse_emv_data(bytes.fromhex("9F02"))
