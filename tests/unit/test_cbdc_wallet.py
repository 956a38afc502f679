"""The simulated hard wallets (simulator.cbdc) answer CBDC-SPEC §4 exactly, each profile failing in its named way.

Answers are read with the test-local TLV reader and signatures checked with a
ZA computed here (tests/unit/cbdc_wallet_helpers.py), not with the wallet's code.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import cards
from simulator.card import CardMuteError
from simulator.cbdc import pki, sm2
from simulator.cbdc import profiles as wallet_profiles
from simulator.cbdc.state import KEEP_RECORDS, WalletStore
from simulator.cbdc.wallet import AID, WalletCard
from simulator.devices import SimulatorCardReader, SimulatorDeviceError
from simulator.profiles import ProfileError
from tests.unit.cbdc_wallet_helpers import sm3, template, tlv_items, verify, za

SELECT_AID = bytes.fromhex("00A404000B") + AID + b"\x00"
SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
INFO = bytes.fromhex("80CA000000")
LAST_RECORD = bytes.fromhex("8056000000")
OK = b"\x90\x00"
CHALLENGE = bytes(range(16))


def _tlv(tag: int, value: bytes) -> bytes:
    tag_bytes = tag.to_bytes(2 if tag > 0xFF else 1, "big")
    length = bytes([len(value)]) if len(value) < 0x80 else bytes([0x81, len(value)])
    return tag_bytes + length + value


def request(
    amount: int = 1234,
    currency: str = "0156",
    merchant: bytes = b"MERCHANT0000001",
    terminal: bytes = b"TERM0001",
    challenge: bytes = CHALLENGE,
    when: str = "20261206101500",
    extra: bytes = b"",
) -> bytes:
    body = (
        _tlv(0xDF51, bytes.fromhex(f"{amount:012d}"))
        + _tlv(0xDF44, bytes.fromhex(currency))
        + _tlv(0xDF52, merchant)
        + _tlv(0xDF56, terminal)
        + _tlv(0xDF53, challenge)
        + _tlv(0xDF54, bytes.fromhex(when))
        + extra
    )
    return _tlv(0xE3, body)


def pay_apdu(data: bytes) -> bytes:
    return bytes.fromhex("80540000") + bytes([len(data)]) + data + b"\x00"


def get_record(counter: int) -> bytes:
    return bytes.fromhex("8056000004") + counter.to_bytes(4, "big") + b"\x00"


def ok(answer: bytes) -> bytes:
    assert answer[-2:] == OK, answer.hex()
    return answer[:-2]


def sw(answer: bytes) -> str:
    return answer[-2:].hex().upper()


def info(card: WalletCard) -> dict[int, bytes]:
    return template(ok(card.exchange(INFO)), 0xE1)


def counter_of(card: WalletCard) -> int:
    return int.from_bytes(info(card)[0xDF42], "big")


def balance_of(card: WalletCard) -> int:
    return int(info(card)[0xDF45].hex())


@pytest.fixture
def open_wallet(tmp_path: Path):  # type: ignore[no-untyped-def]
    def opener(name: str, seed: int = 1) -> WalletCard:
        card = WalletCard(name, state_dir=tmp_path, seed=seed)
        ok(card.exchange(SELECT_AID))
        return card

    return opener


# -- SM2 and the PKI ---------------------------------------------------------------------------------------


def test_signing_reproduces_the_gbt_32918_vector() -> None:
    """GB/T 32918.5 Appendix A (PAYMENT-MEANS.md §4): the vector's d and k give its r and s; ZA and e match too."""
    d = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
    public = sm2.public_key_of(d)
    assert public.hex().upper() == (
        "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
        "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
    )
    assert za(public).hex().upper() == "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
    assert sm3(za(public) + b"message digest").hex().upper() == (
        "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
    )
    k = bytes.fromhex("59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21")
    signature = sm2.sign(d, public, b"message digest", k)
    assert signature.hex().upper() == (
        "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
        "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
    )
    assert verify(public, b"message digest", signature)
    assert not verify(public, b"message digesT", signature)
    fresh = sm2.sign(d, public, b"message digest")  # a random k: another signature, valid too
    assert fresh != signature and verify(public, b"message digest", fresh)


def test_sm3_of_the_gbt_32905_vector() -> None:
    assert sm2.sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_a_key_gmssl_would_misread_is_refused() -> None:
    with pytest.raises(sm2.SignError, match="04"):
        sm2.sign(b"\x01" * 32, b"\x04" + bytes(63), b"m")


def test_the_pki_file_is_marked_simulator_only_and_its_roots_carry_checksums() -> None:
    raw = pki._load()
    assert raw["simulator_only"] is True and "NOT FOR PRODUCTION" in raw["warning"]
    roots = pki.trust_roots()
    assert [r["id"] for r in roots] == ["00000001"]
    root = roots[0]
    assert root["checksum"] == sm3(bytes.fromhex(root["id"] + root["public_key"])).hex().upper()
    assert len(bytes.fromhex(root["public_key"])) == 64


def _cert(data: bytes) -> dict[int, bytes]:
    return template(data, 0xE2)


def _signed_by(data: bytes, key: bytes) -> bool:
    from tests.unit.cbdc_wallet_helpers import signed_part

    signed, signature = signed_part(data)
    return verify(key, signed, signature)


def test_operators_are_certified_by_the_root_except_the_forged_one() -> None:
    root_key = bytes.fromhex(pki.trust_roots()[0]["public_key"])
    rogue_key = bytes.fromhex(pki._load()["rogue_roots"][0]["public_key"])
    for op_id, trusted in (("00000101", True), ("00000102", True), ("00000103", False)):
        op = pki.operator(op_id)
        fields = _cert(op.certificate)
        assert fields[0xDF72] == bytes.fromhex(op_id) and fields[0xDF73] == bytes.fromhex("00000001")
        assert fields[0xDF74] == b"\x02" and fields[0xDF75] == op.public_key
        assert _signed_by(op.certificate, root_key) is trusted
        assert _signed_by(op.certificate, rogue_key) is not trusted


def test_wallets_are_certified_by_their_operator_with_the_tier_limits() -> None:
    limits = {1: (200_000, 500_000, 1_000_000), 2: (5_000_000, 10_000_000, 50_000_000)}
    seen = set()
    for keys in pki.wallets():
        fields = _cert(keys.certificate)
        op = pki.operator(keys.operator_id.hex())
        assert fields[0xDF72] == keys.wallet_id and fields[0xDF73] == keys.operator_id and fields[0xDF74] == b"\x03"
        assert fields[0xDF75] == keys.public_key and sm2.public_key_of(keys.private_key) == keys.public_key
        assert _signed_by(keys.certificate, op.public_key), keys.name
        tier = fields[0xDF78][0]
        assert (int(fields[0xDF79].hex()), int(fields[0xDF7A].hex()), int(fields[0xDF7B].hex())) == limits[tier]
        assert fields[0xDF77] == bytes.fromhex(keys.not_after.strftime("%Y%m%d"))
        assert keys.opening_balance <= limits[tier][2]
        seen.add(keys.wallet_id)
    assert len(seen) == len(pki.wallets())  # one wallet id per PKI wallet (the clones share one PKI wallet)
    assert pki.wallet("expired").not_after < date(2026, 1, 1) < pki.wallet("anon").not_after
    assert pki.wallet("verified").tier == 2 and pki.wallet("anon").tier == 1
    assert pki.opening_balances()["D1A0000000000001"] == 500_000
    assert pki.wallet("blocked").wallet_id.hex().upper() == "D1A0000000000007"
    with pytest.raises(pki.CbdcPkiError, match="no wallet"):
        pki.wallet("nope")


# -- the commands --------------------------------------------------------------------------------------------


def test_ppse_lists_the_wallet_with_the_domestic_kernel_id(tmp_path: Path) -> None:
    card = WalletCard("cbdc-anon", state_dir=tmp_path)
    fci = template(ok(card.exchange(SELECT_PPSE)), 0x6F)
    assert fci[0x84] == b"2PAY.SYS.DDF01"
    directory = {t: v for t, v, _ in tlv_items(fci[0xA5])}
    entry = template(directory[0xBF0C], 0x61)
    assert entry == {0x4F: AID, 0x50: b"DIGITAL CNY", 0x87: b"\x01", 0x9F2A: bytes.fromhex("810156")}
    assert AID.hex().upper() == "F0504F5354434244430101"


def test_select_get_info_and_certificates(open_wallet) -> None:  # type: ignore[no-untyped-def]
    card = open_wallet("cbdc-anon")
    fci = template(ok(card.exchange(SELECT_AID)), 0x6F)
    assert fci[0x84] == AID and template(_tlv(0xA5, fci[0xA5]), 0xA5) == {0x50: b"DIGITAL CNY", 0xDF40: b"\x01"}
    fields = info(card)
    assert list(fields) == [0xDF40, 0xDF41, 0xDF42, 0xDF43, 0xDF44, 0xDF45]
    assert fields[0xDF41] == bytes.fromhex("D1A0000000000001") and fields[0xDF42] == bytes(4)
    assert fields[0xDF43] == bytes(32) and fields[0xDF44] == bytes.fromhex("0156")
    assert fields[0xDF45] == bytes.fromhex("000000500000")
    assert ok(card.exchange(bytes.fromhex("80B2010000"))) == pki.wallet("anon").certificate
    assert ok(card.exchange(bytes.fromhex("80B2020000"))) == pki.operator("00000101").certificate
    assert sw(card.exchange(bytes.fromhex("80B2030000"))) == "6A86"
    assert sw(card.exchange(bytes.fromhex("80B2010100"))) == "6A86"
    assert sw(card.exchange(LAST_RECORD)) == "6A83"  # no record yet


def test_a_payment_is_signed_chained_and_debited(open_wallet) -> None:  # type: ignore[no-untyped-def]
    card = open_wallet("cbdc-anon")
    keys = pki.wallet("anon")
    first = ok(card.exchange(pay_apdu(request(1234))))
    fields = template(first, 0xE4)
    assert list(fields) == [0xDF40, 0xDF41, 0xDF42, 0xDF51, 0xDF44, 0xDF52, 0xDF56, 0xDF53, 0xDF54, 0xDF43, 0xDF5F]
    assert fields[0xDF42] == (1).to_bytes(4, "big") and fields[0xDF43] == bytes(32)
    assert fields[0xDF51] == bytes.fromhex("000000001234") and fields[0xDF52] == b"MERCHANT0000001"
    assert fields[0xDF56] == b"TERM0001" and fields[0xDF53] == CHALLENGE
    assert fields[0xDF54] == bytes.fromhex("20261206101500")
    assert _signed_by(first, keys.public_key)
    after = info(card)
    assert int.from_bytes(after[0xDF42], "big") == 1 and after[0xDF43] == sm3(first)
    assert int(after[0xDF45].hex()) == 500_000 - 1234
    second = ok(card.exchange(pay_apdu(request(100, challenge=bytes(16)))))
    assert template(second, 0xE4)[0xDF43] == sm3(first) and template(second, 0xE4)[0xDF42] == (2).to_bytes(4, "big")
    assert ok(card.exchange(LAST_RECORD)) == second
    assert ok(card.exchange(get_record(1))) == first
    assert sw(card.exchange(get_record(3))) == "6A83"


def test_the_wallet_keeps_its_last_records_and_state_across_instances(tmp_path: Path) -> None:
    card = WalletCard("cbdc-verified", state_dir=tmp_path)
    ok(card.exchange(SELECT_AID))
    made = [ok(card.exchange(pay_apdu(request(100, challenge=bytes([i]) * 16)))) for i in range(KEEP_RECORDS + 3)]
    again = WalletCard("cbdc-verified", state_dir=tmp_path)  # another "process": same state file
    ok(again.exchange(SELECT_AID))
    assert counter_of(again) == KEEP_RECORDS + 3 and balance_of(again) == 2_000_000 - 100 * (KEEP_RECORDS + 3)
    for counter in range(1, 4):
        assert sw(again.exchange(get_record(counter))) == "6A83"
    for counter in range(4, KEEP_RECORDS + 4):
        assert ok(again.exchange(get_record(counter))) == made[counter - 1]
    state, kept = WalletStore(tmp_path).snapshot(wallet_profiles.load("cbdc-verified"))
    assert kept == made[3:] and state.counter == KEEP_RECORDS + 3


@pytest.mark.parametrize(
    ("name", "amount", "kwargs", "status"),
    [
        ("cbdc-anon", 1234, {"currency": "0978"}, "6A93"),
        ("cbdc-anon", 0, {}, "6A80"),
        ("cbdc-anon", 200_001, {}, "6A91"),
        ("cbdc-low-balance", 1234, {}, "6A90"),
        ("cbdc-locked", 1234, {}, "6985"),
        ("cbdc-verified", 5_000_001, {}, "6A91"),
    ],
)
def test_refusals_come_before_any_debit(  # type: ignore[no-untyped-def]
    open_wallet, name: str, amount: int, kwargs: dict[str, str], status: str
) -> None:
    card = open_wallet(name)
    before = info(card)
    assert sw(card.exchange(pay_apdu(request(amount, **kwargs)))) == status
    assert info(card) == before


def test_the_daily_limit_counts_by_the_requests_date(open_wallet) -> None:  # type: ignore[no-untyped-def]
    card = open_wallet("cbdc-anon")  # 2,000.00 a payment, 5,000.00 a day, 5,000.00 held
    ok(card.exchange(pay_apdu(request(200_000, when="20261206090000"))))
    ok(card.exchange(pay_apdu(request(200_000, when="20261206100000", challenge=bytes(16)))))
    assert sw(card.exchange(pay_apdu(request(100_001, when="20261206110000")))) == "6A92"
    ok(card.exchange(pay_apdu(request(100_000, when="20261206110000"))))  # exactly the daily limit
    # the next day the daily limit is fresh: now the balance (0.00) refuses
    assert sw(card.exchange(pay_apdu(request(1, when="20261207080000")))) == "6A90"
    assert balance_of(card) == 0


@pytest.mark.parametrize(
    ("apdu", "status"),
    [
        (pay_apdu(request(extra=_tlv(0xDF51, bytes(6)))), "6A80"),  # a tag twice
        (pay_apdu(_tlv(0xE3, _tlv(0xDF51, bytes.fromhex("000000001234")))), "6A80"),  # tags missing
        (pay_apdu(request(merchant=b"")), "6A80"),
        (pay_apdu(request(merchant=b"M" * 16)), "6A80"),
        (pay_apdu(request(terminal=b"TERM001")), "6A80"),
        (pay_apdu(request(terminal=b"TERM\x00001")), "6A80"),
        (pay_apdu(request(challenge=bytes(15))), "6A80"),
        (pay_apdu(request(when="20261306101500")), "6A80"),
        (pay_apdu(request(currency="01FF")), "6A80"),
        (pay_apdu(request() + b"\x00"), "6A80"),  # something after the template
        (pay_apdu(_tlv(0xE4, request()[2:])), "6A80"),
        (bytes.fromhex("8054000000"), "6700"),
        (bytes.fromhex("8054010005") + request()[:5], "6A86"),
        (bytes.fromhex("80CA010000"), "6A86"),
        (bytes.fromhex("80CA000001AA00"), "6700"),
        (bytes.fromhex("8056000002000100"), "6700"),
        (bytes.fromhex("00CA000000"), "6E00"),
        (bytes.fromhex("80540000") + bytes([5]) + b"\x00", "6700"),  # Lc says 5, one byte follows
        (bytes.fromhex("8099000000"), "6D00"),
        (bytes.fromhex("80"), "6700"),
        (bytes.fromhex("04A404000B") + AID, "6E00"),
        (bytes.fromhex("00A4040C0B") + AID, "6A86"),
        (bytes.fromhex("00A4040005A000000003"), "6A82"),
    ],
)
def test_malformed_commands_get_status_words(open_wallet, apdu: bytes, status: str) -> None:  # type: ignore[no-untyped-def]
    card = open_wallet("cbdc-anon")
    assert sw(card.exchange(apdu)) == status
    assert card.last_error is None
    ok(card.exchange(SELECT_AID))  # a SELECT of another application deselected the wallet's
    assert counter_of(card) == 0 and balance_of(card) == 500_000


def test_wallet_commands_need_the_application_selected(tmp_path: Path) -> None:
    card = WalletCard("cbdc-anon", state_dir=tmp_path)
    assert sw(card.exchange(INFO)) == "6D00"
    ok(card.exchange(SELECT_PPSE))
    assert sw(card.exchange(pay_apdu(request()))) == "6D00"
    ok(card.exchange(SELECT_AID))
    ok(card.exchange(INFO))
    card.reset()
    assert sw(card.exchange(INFO)) == "6D00"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commands=st.lists(st.binary(max_size=90), max_size=8), tail=st.binary(max_size=8))
def test_random_commands_never_raise_and_never_credit(tmp_path: Path, commands: list[bytes], tail: bytes) -> None:
    card = WalletCard("cbdc-anon", state_dir=tmp_path)
    ok(card.exchange(SELECT_AID))
    start = balance_of(card)
    for command in [*commands, pay_apdu(request()[: 10 + len(tail)] + tail)]:
        answer = card.exchange(command)
        assert len(answer) >= 2 and (answer[-2:] == OK or len(answer) == 2), answer.hex()
    assert card.last_error is None
    ok(card.exchange(SELECT_AID))
    assert 0 <= balance_of(card) <= start


# -- the profiles' faults ------------------------------------------------------------------------------------


def test_tampered_record_fails_its_signature_but_is_chained_and_debited(open_wallet) -> None:  # type: ignore[no-untyped-def]
    card = open_wallet("cbdc-tampered")
    record = ok(card.exchange(pay_apdu(request())))
    keys = pki.wallet("tampered")
    assert not _signed_by(record, keys.public_key)
    fields = template(record, 0xE4)
    repaired = record[:-1] + bytes([record[-1] ^ 0x01])  # the one bit flipped back
    assert _signed_by(repaired, keys.public_key) and fields[0xDF42] == (1).to_bytes(4, "big")
    assert info(card)[0xDF43] == sm3(record) and balance_of(card) == 500_000 - 1234


def test_redirect_debits_and_signs_a_genuine_record_to_another_payee(open_wallet) -> None:  # type: ignore[no-untyped-def]
    card = open_wallet("cbdc-redirect")
    record = ok(card.exchange(pay_apdu(request(challenge=CHALLENGE))))
    fields = template(record, 0xE4)
    assert _signed_by(record, pki.wallet("redirect").public_key)  # genuine: only the payee is not the one asked
    assert (fields[0xDF52], fields[0xDF56]) == (b"REDIRECT000001", b"RDRT0001")
    assert fields[0xDF53] == CHALLENGE and int(fields[0xDF51].hex()) == 1234
    assert info(card)[0xDF43] == sm3(record) and balance_of(card) == 500_000 - 1234


def test_redirect_to_goes_only_with_the_redirect_fault(tmp_path: Path) -> None:
    from simulator.cbdc.profiles import _from_dict

    base = {"name": "cbdc-x", "description": "x", "wallet": "anon"}
    with pytest.raises(ValueError, match="redirect_to"):
        _from_dict({**base, "fault": "redirect_payee"})
    with pytest.raises(ValueError, match="redirect_to"):
        _from_dict({**base, "redirect_to": {"merchant": "M", "terminal": "TERM0001"}})
    with pytest.raises(ValueError, match="terminal id"):
        _from_dict({**base, "fault": "redirect_payee", "redirect_to": {"merchant": "M", "terminal": "T1"}})


def test_replay_answers_pay_with_its_previous_record_and_debits_nothing(open_wallet) -> None:  # type: ignore[no-untyped-def]
    card = open_wallet("cbdc-replay")
    before = info(card)
    assert int.from_bytes(before[0xDF42], "big") == 1 and int(before[0xDF45].hex()) == 500_000 - 500
    old = ok(card.exchange(LAST_RECORD))
    assert _signed_by(old, pki.wallet("replay").public_key) and sm3(old) == before[0xDF43]
    for challenge in (CHALLENGE, bytes(16)):
        assert ok(card.exchange(pay_apdu(request(challenge=challenge)))) == old
    assert info(card) == before


def test_rollback_reuses_one_counter_with_different_records(open_wallet) -> None:  # type: ignore[no-untyped-def]
    card = open_wallet("cbdc-rollback")
    keys = pki.wallet("rollback")
    first = ok(card.exchange(pay_apdu(request(1000, challenge=b"A" * 16))))
    assert info(card)[0xDF42] == bytes(4) and balance_of(card) == 500_000  # the state went back
    second = ok(card.exchange(pay_apdu(request(2000, challenge=b"B" * 16))))
    a, b = template(first, 0xE4), template(second, 0xE4)
    assert a[0xDF42] == b[0xDF42] == (1).to_bytes(4, "big") and a[0xDF43] == b[0xDF43] == bytes(32)
    assert first != second and _signed_by(first, keys.public_key) and _signed_by(second, keys.public_key)


def test_clones_share_identity_but_not_state(tmp_path: Path) -> None:
    a = WalletCard("cbdc-clone-a", state_dir=tmp_path)
    b = WalletCard("cbdc-clone-b", state_dir=tmp_path)
    for card in (a, b):
        ok(card.exchange(SELECT_AID))
    assert ok(a.exchange(bytes.fromhex("80B2010000"))) == ok(b.exchange(bytes.fromhex("80B2010000")))
    ra = ok(a.exchange(pay_apdu(request(1000, challenge=b"A" * 16))))
    assert counter_of(b) == 0 and balance_of(b) == 500_000
    rb = ok(b.exchange(pay_apdu(request(3000, challenge=b"B" * 16))))
    fa, fb = template(ra, 0xE4), template(rb, 0xE4)
    assert fa[0xDF41] == fb[0xDF41] == bytes.fromhex("D1A000000000000A")
    assert fa[0xDF42] == fb[0xDF42] == (1).to_bytes(4, "big") and ra != rb  # one counter, two records


def test_torn_wallet_debits_goes_mute_and_answers_get_record_when_presented_again(open_wallet) -> None:  # type: ignore[no-untyped-def]
    card = open_wallet("cbdc-torn")
    with pytest.raises(CardMuteError, match="torn"):
        card.exchange(pay_apdu(request(1234)))
    with pytest.raises(CardMuteError):
        card.exchange(INFO)
    card.reset()  # presented again
    ok(card.exchange(SELECT_AID))
    assert counter_of(card) == 1 and balance_of(card) == 500_000 - 1234
    record = ok(card.exchange(get_record(1)))
    fields = template(record, 0xE4)
    assert fields[0xDF53] == CHALLENGE and fields[0xDF51] == bytes.fromhex("000000001234")
    assert _signed_by(record, pki.wallet("torn").public_key)
    assert ok(card.exchange(LAST_RECORD)) == record


def test_mute_wallet_stops_after_select(tmp_path: Path) -> None:
    card = WalletCard("cbdc-mute", state_dir=tmp_path)
    ok(card.exchange(SELECT_PPSE))
    ok(card.exchange(SELECT_AID))
    with pytest.raises(CardMuteError):
        card.exchange(INFO)


def test_garbage_wallet_answers_random_bytes_and_debits_nothing(tmp_path: Path) -> None:
    card = WalletCard("cbdc-garbage", state_dir=tmp_path, seed=5)
    ok(card.exchange(SELECT_AID))
    answers = {card.exchange(INFO) for _ in range(5)}
    assert len(answers) == 5 and all(a[-2:] == OK for a in answers)
    assert ok(card.exchange(pay_apdu(request()))) != b""
    assert WalletStore(tmp_path).used() == {}  # it never touched its state


@pytest.mark.parametrize("name", wallet_profiles.list_names())
def test_every_profile_selects_and_says_what_is_expected(tmp_path: Path, name: str) -> None:
    profile = wallet_profiles.load(name)
    assert name.startswith("cbdc-") and profile.expected.get("12.34") and profile.description
    card = cards.open_card(name, state_dir=tmp_path)
    assert isinstance(card, WalletCard)
    ok(card.exchange(SELECT_PPSE))
    ok(card.exchange(SELECT_AID))


def test_names_and_errors() -> None:
    assert set(wallet_profiles.list_names()) >= {
        "cbdc-anon", "cbdc-verified", "cbdc-low-balance", "cbdc-expired", "cbdc-untrusted-operator", "cbdc-blocked",
        "cbdc-tampered", "cbdc-replay", "cbdc-clone-a", "cbdc-clone-b", "cbdc-rollback", "cbdc-torn", "cbdc-mute",
        "cbdc-garbage", "cbdc-redirect",
    }
    assert set(wallet_profiles.list_names()) <= set(cards.names())
    with pytest.raises(ProfileError, match="cbdc-anon"):
        cards.open_card("cbdc-nope")
    with pytest.raises(ProfileError, match="cbdc-anon"):
        cards.open_card("no-such-card")


# -- the sim: device URL ---------------------------------------------------------------------------------------


def test_sim_url_opens_a_wallet_with_its_state_dir(tmp_path: Path) -> None:
    reader = SimulatorCardReader.open(f"sim:card=cbdc-anon?state-dir={tmp_path}")
    assert "sim:card=cbdc-anon" in SimulatorCardReader.discover()
    session = reader.wait_for_card(timeout=1)
    ok(session.exchange(SELECT_AID))
    ok(session.exchange(pay_apdu(request())))
    assert (tmp_path / "wallets.sqlite").is_file()
    assert WalletStore(tmp_path).used()["cbdc-anon"].counter == 1
    with pytest.raises(SimulatorDeviceError, match="state-dir"):
        SimulatorCardReader.open("sim:card=cbdc-anon?state-dir=")


def test_sim_url_without_state_dir_uses_the_environment(sim_wallet_state: Path) -> None:
    session = SimulatorCardReader.open("sim:card=cbdc-verified").wait_for_card(timeout=1)
    ok(session.exchange(SELECT_AID))
    ok(session.exchange(pay_apdu(request())))
    assert WalletStore().path == sim_wallet_state / "wallets.sqlite"
    assert WalletStore().used()["cbdc-verified"].counter == 1


def test_the_mute_wallet_through_the_sim_reader_is_a_card_communication_error(tmp_path: Path) -> None:
    from emv.apdu import CardCommunicationError

    session = SimulatorCardReader.open(f"sim:card=cbdc-torn?state-dir={tmp_path}").wait_for_card(timeout=1)
    ok(session.exchange(SELECT_AID))
    with pytest.raises(CardCommunicationError):
        session.exchange(pay_apdu(request()))
    session = SimulatorCardReader.open(f"sim:card=cbdc-torn?state-dir={tmp_path}").wait_for_card(timeout=1)
    ok(session.exchange(SELECT_AID))
    assert int.from_bytes(template(ok(session.exchange(INFO)), 0xE1)[0xDF42], "big") == 1


def test_bad_identity_profiles_carry_their_defect_in_what_they_send(open_wallet) -> None:  # type: ignore[no-untyped-def]
    root_key = bytes.fromhex(pki.trust_roots()[0]["public_key"])
    expired = open_wallet("cbdc-expired")
    assert _cert(ok(expired.exchange(bytes.fromhex("80B2010000"))))[0xDF77] == bytes.fromhex("20241231")
    untrusted = open_wallet("cbdc-untrusted-operator")
    operator_cert = ok(untrusted.exchange(bytes.fromhex("80B2020000")))
    wallet_cert = ok(untrusted.exchange(bytes.fromhex("80B2010000")))
    assert _cert(operator_cert)[0xDF73] == bytes.fromhex("00000001")  # claims the root ...
    assert not _signed_by(operator_cert, root_key)  # ... which did not sign it
    assert _signed_by(wallet_cert, _cert(operator_cert)[0xDF75])  # the wallet itself is consistent
    blocked = open_wallet("cbdc-blocked")
    assert info(blocked)[0xDF41] == bytes.fromhex("D1A0000000000007")
    ok(blocked.exchange(pay_apdu(request())))  # the wallet pays: the block list is the terminal's business


def test_a_dual_card_lists_both_applications_and_routes_by_selection(tmp_path: Path) -> None:
    from simulator.card import SimulatedCard

    card = WalletCard("cbdc-dual", state_dir=tmp_path)
    visa = SimulatedCard("visa-qvsdc-offline")
    fci = template(ok(card.exchange(SELECT_PPSE)), 0x6F)
    entries = tlv_items(template(_tlv(0xA5, fci[0xA5]), 0xA5)[0xBF0C])
    assert [t for t, _, _ in entries] == [0x61, 0x61]
    wallet_entry, emv_entry = (template(whole, 0x61) for _, _, whole in entries)
    assert wallet_entry[0x4F] == AID and wallet_entry[0x9F2A] == bytes.fromhex("810156")
    visa_ppse = template(ok(visa.exchange(SELECT_PPSE)), 0x6F)
    assert emv_entry == template(template(_tlv(0xA5, visa_ppse[0xA5]), 0xA5)[0xBF0C], 0x61)
    select_visa = bytes.fromhex("00A4040007") + emv_entry[0x4F] + b"\x00"
    assert ok(card.exchange(select_visa)) == ok(visa.exchange(select_visa))
    record = bytes.fromhex("00B2010C00")
    assert ok(card.exchange(record)) == ok(visa.exchange(record))  # the EMV application answers
    assert sw(card.exchange(INFO)) == "6A88"  # GET DATA 0000 of the EMV application, not the wallet's
    ok(card.exchange(SELECT_AID))
    paid = template(ok(card.exchange(pay_apdu(request()))), 0xE4)
    assert paid[0xDF41] == pki.wallet("dual").wallet_id and balance_of(card) == 500_000 - 1234
    assert sw(card.exchange(record)) == "6E00"  # B2 under the wallet is READ CERTIFICATE, CLA 80
    card.reset()
    assert sw(card.exchange(INFO)) == "6D00"


_REQUEST_TAGS = [0xDF51, 0xDF44, 0xDF52, 0xDF56, 0xDF53, 0xDF54, 0xDF55, 0x9F02]
_GOOD_VALUES = {
    0xDF51: bytes.fromhex("000000000100"),
    0xDF44: bytes.fromhex("0156"),
    0xDF52: b"SHOP",
    0xDF56: b"TERM0001",
    0xDF53: bytes(16),
    0xDF54: bytes.fromhex("20261206101500"),
}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(
        st.tuples(
            st.sampled_from(_REQUEST_TAGS),
            st.one_of(st.binary(max_size=18), st.sampled_from(list(_GOOD_VALUES.values()))),
        ),
        max_size=8,
    ),
    base=st.booleans(),
)
def test_random_payment_requests_are_refused_cleanly_or_paid_exactly(
    tmp_path: Path, items: list[tuple[int, bytes]], base: bool
) -> None:
    """Whatever the E3 holds: a status word of §4 and nothing debited, or a record of exactly what was asked."""
    card = WalletCard("cbdc-verified", state_dir=tmp_path)
    ok(card.exchange(SELECT_AID))
    before = info(card)
    body_items = ([*_GOOD_VALUES.items()] if base else []) + items
    data = _tlv(0xE3, b"".join(_tlv(t, v) for t, v in body_items))
    if len(data) > 255:
        return
    answer = card.exchange(pay_apdu(data))
    assert card.last_error is None
    after = info(card)
    if answer[-2:] != OK:
        assert sw(answer) in {"6A80", "6A90", "6A91", "6A92", "6A93"}
        assert after == before
        return
    fields = template(answer[:-2], 0xE4)
    sent = dict(body_items)
    assert len(sent) == len(body_items)  # the wallet paid: no tag was given twice
    for tag in _GOOD_VALUES:
        assert fields[tag] == sent[tag]
    amount = int(fields[0xDF51].hex())
    assert amount > 0 and int(after[0xDF45].hex()) == int(before[0xDF45].hex()) - amount
    assert _signed_by(answer[:-2], pki.wallet("verified").public_key)
    assert int.from_bytes(after[0xDF42], "big") == int.from_bytes(before[0xDF42], "big") + 1
