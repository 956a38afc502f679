"""ARPC method 2 (EMV Book 2 8.2.2) end to end in process: the computation, the card, the kernel.

The reference ARPC is computed here from the books with ``cryptography`` alone
(EMV Book 2 A1.4.1 option A ICC master key, A1.3.1 common session key, ISO/IEC
9797-1 MAC algorithm 3 with padding method 2), not with the simulator's
functions, so that a mistake in those shows.  The card is the shipped
``contact-arpc2`` profile (Visa CVN 18 keys of the simulator's test PKI).
"""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from emv.contact import HostAnswer
from emv.contact.kernel import REVERSE
from emv.outcome import Outcome
from emv.tvr import Tsi, Tvr
from simulator.contact.card import ContactCard
from simulator.cryptograms import arpc, issuer_authentication_data
from simulator.csu import CSU_APPROVED, CSU_DECLINED, CardStatusUpdate
from simulator.issuer_keys import issuer_master_keys
from tests.contact_rig import config, profile, run

CARD = "contact-arpc2"
EXTERNAL_AUTHENTICATE = b"\x00\x82"
GENERATE_AC = b"\x80\xae"


# --------------------------------------------------------------------------- the reference, from the books


def _ecb(key: bytes, block: bytes, *, decrypt: bool = False) -> bytes:
    k = key * 3 if len(key) == 8 else key + key[:8]  # single DES as TDES with equal keys; 2-key TDES
    cipher = Cipher(TripleDES(k), modes.ECB())
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(block) + op.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _icc_master_key(issuer_mk: bytes, pan: str, psn: str) -> bytes:
    """Book 2 A1.4.1 option A: Y = rightmost 16 digits of PAN || PSN; Z = E(Y) || E(Y xor FF..FF)."""
    y = bytes.fromhex((pan + psn)[-16:].rjust(16, "0"))
    return _ecb(issuer_mk, y) + _ecb(issuer_mk, _xor(y, b"\xff" * 8))


def _session_key(icc_mk: bytes, atc: bytes) -> bytes:
    """Book 2 A1.3.1, R = ATC || 00 * 6: F1 = R0 R1 F0 R3..R7, F2 = R0 R1 0F R3..R7; SK = E(F1) || E(F2)."""
    f1 = atc + b"\xf0" + bytes(5)
    f2 = atc + b"\x0f" + bytes(5)
    return _ecb(icc_mk, f1) + _ecb(icc_mk, f2)


def _retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 (padding method 2): DES-CBC under KL, last block D(KR) then E(KL)."""
    padded = data + b"\x80" + bytes((-len(data) - 1) % 8)
    kl, kr = key[:8], key[8:]
    h = bytes(8)
    for i in range(0, len(padded), 8):
        h = _ecb(kl, _xor(h, padded[i : i + 8]))
    return _ecb(kl, _ecb(kr, h, decrypt=True))


def reference_arpc2(pan: str, psn: str, arqc: bytes, atc: bytes, csu: bytes, proprietary: bytes = b"") -> bytes:
    keys = issuer_master_keys("sim-visa-cvn18")
    sk = _session_key(_icc_master_key(keys.mk_ac, pan, psn), atc)
    return _retail_mac(sk, arqc + csu + proprietary)[:4]


def _card_91(
    card: ContactCard, data: dict[int, bytes], csu: bytes, proprietary: bytes = b"", *, bad: bool = False
) -> bytes:
    p = card.profile
    mac = reference_arpc2(p.pan, p.psn, data[0x9F26], data[0x9F36], csu, proprietary)
    if bad:
        mac = bytes([mac[0] ^ 0x01]) + mac[1:]
    return mac + csu + proprietary


def _answer(data: bytes, code: str = "00") -> HostAnswer:
    return HostAnswer.from_host(code, None, issuer_authentication_data=data)


# --------------------------------------------------------------------------- the computation


@pytest.mark.parametrize("proprietary", [b"", bytes.fromhex("A1B2C3"), bytes(range(8))])
@pytest.mark.parametrize("csu", [CSU_APPROVED, CSU_DECLINED, bytes.fromhex("83930001")])
def test_method_2_arpc_matches_the_books(csu: bytes, proprietary: bytes) -> None:
    """Book 2 8.2.2: 4-byte MAC over ARQC || CSU || proprietary data under the ATC's common session key."""
    pan, psn = "4761739001010242", "01"
    arqc, atc = bytes.fromhex("1234567890ABCDEF"), bytes.fromhex("0015")
    want = reference_arpc2(pan, psn, arqc, atc, csu, proprietary)
    got = arpc("sim-visa-cvn18", pan, psn, arqc=arqc, atc=atc, response=csu, proprietary=proprietary)
    assert len(got) == 4 and got == want
    whole = issuer_authentication_data(
        "sim-visa-cvn18", pan, psn, arqc=arqc, atc=atc, response_code="00", csu=csu, proprietary=proprietary
    )
    assert whole == want + csu + proprietary and 8 <= len(whole) <= 16


def test_the_reference_implementation_knows_a_published_value() -> None:
    """The helpers above against pyemv's documented example of MAC algorithm 3 (ac.generate_arpc_2)."""
    sk = bytes.fromhex("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")
    assert _retail_mac(sk, bytes.fromhex("1234567890ABCDEF") + bytes(4))[:4].hex().upper() == "9308BEBC"


def test_method_1_keeps_its_arc_and_refuses_proprietary_data() -> None:
    whole = issuer_authentication_data("sim-visa-cvn10", "4761739001010176", "01", arqc=bytes(8), atc=b"\x00\x01",
                                       response_code="05")  # fmt: skip
    assert len(whole) == 10 and whole[8:] == b"05"
    with pytest.raises(ValueError, match="method 2"):
        arpc("sim-visa-cvn10", "4761739001010176", "01", arqc=bytes(8), atc=b"\x00\x01", response=b"00",
             proprietary=b"\x01")  # fmt: skip


def test_card_status_update_bits() -> None:
    """The CSU layout of the Common Core Definitions, both ways."""
    assert CSU_APPROVED.hex() == "00800000" and CSU_DECLINED.hex() == "00000000"
    csu = CardStatusUpdate(approved=True, pin_try_counter=3, application_block=True, counters="reset",
                           proprietary_data=True, go_online_next=True)  # fmt: skip
    raw = csu.encode()
    assert raw.hex().upper() == "83B90000"
    assert CardStatusUpdate.decode(raw) == csu
    with pytest.raises(ValueError):
        CardStatusUpdate(pin_try_counter=16).encode()
    with pytest.raises(ValueError):
        CardStatusUpdate.decode(b"\x00")


# --------------------------------------------------------------------------- the kernel against the card


def test_approved_with_method_2_by_external_authenticate() -> None:
    """Book 3 10.9: 91 = ARPC || CSU (8 bytes) goes to EXTERNAL AUTHENTICATE as it came; the CSU approves."""
    kernel, r, card = run(CARD)
    assert r.outcome is Outcome.ONLINE_REQUEST and r.card_data[0x9F10][2] == 0x12  # CVN 18
    data = _card_91(card, r.card_data, CSU_APPROVED)
    done = kernel.complete(HostAnswer.from_host("00", None, issuer_authentication_data=data))
    assert done.outcome is Outcome.APPROVED and done.cryptogram_type == "TC", done.error
    ext = [c for c in done.commands if c[:2] == EXTERNAL_AUTHENTICATE]
    assert ext == [bytes.fromhex("0082000008") + data]
    assert done.issuer_authentication == "passed"
    assert Tsi(done.tsi).is_set(Tsi.ISSUER_AUTHENTICATION_PERFORMED)
    assert not Tvr(done.tvr).is_set(Tvr.ISSUER_AUTHENTICATION_FAILED)


def test_proprietary_data_is_carried_whole_to_the_card() -> None:
    """Book 2 8.2.2: 0-8 bytes of proprietary authentication data after the CSU (its b8 of byte 1 says so)."""
    kernel, r, card = run(CARD)
    csu = CardStatusUpdate(approved=True, proprietary_data=True).encode()
    data = _card_91(card, r.card_data, csu, bytes.fromhex("0102030405060708"))
    assert len(data) == 16
    done = kernel.complete(HostAnswer.from_host("00", None, issuer_authentication_data=data))
    assert done.outcome is Outcome.APPROVED, done.error
    assert [c[5:] for c in done.commands if c[:2] == EXTERNAL_AUTHENTICATE] == [data]


def test_the_simulated_issuers_answer_approves() -> None:
    """What the simulated host sends for CVN 18 (ARPC || CSU "approved") is what the card accepts."""
    kernel, r, card = run(CARD)
    p = card.profile
    data = issuer_authentication_data(p.cryptogram_key, p.pan, p.psn, arqc=r.card_data[0x9F26],
                                      atc=r.card_data[0x9F36], response_code="00")  # fmt: skip
    assert data == _card_91(card, r.card_data, CSU_APPROVED)
    done = kernel.complete(HostAnswer.from_host("00", data[:8], method2=True))
    assert done.outcome is Outcome.APPROVED, done.error


def test_a_wrong_method_2_arpc_fails_issuer_authentication_and_the_card_declines() -> None:
    """Book 3 10.9: EXTERNAL AUTHENTICATE answered 6300: TVR issuer authentication failed; the card's AAC."""
    kernel, r, card = run(CARD)
    data = _card_91(card, r.card_data, CSU_APPROVED, bad=True)
    done = kernel.complete(HostAnswer.from_host("00", None, issuer_authentication_data=data))
    assert Tvr(done.tvr).is_set(Tvr.ISSUER_AUTHENTICATION_FAILED)
    assert Tsi(done.tsi).is_set(Tsi.ISSUER_AUTHENTICATION_PERFORMED)
    assert done.issuer_authentication == "failed"
    assert done.outcome is Outcome.DECLINED and done.cryptogram_type == "AAC"
    assert (done.error or "").endswith(REVERSE)  # the issuer approved, the card did not: reverse


def test_a_csu_that_declines_wins_over_an_approving_response_code() -> None:
    """A method 2 card decides by the CSU: 8A says 00, the authenticated CSU says declined: AAC."""
    kernel, r, card = run(CARD)
    data = _card_91(card, r.card_data, CSU_DECLINED)
    done = kernel.complete(HostAnswer.from_host("00", None, issuer_authentication_data=data))
    assert done.issuer_authentication == "passed"
    assert done.outcome is Outcome.DECLINED and done.cryptogram_type == "AAC"
    assert (done.error or "").endswith(REVERSE)


def test_an_issuer_decline_with_its_csu_is_declined() -> None:
    kernel, r, card = run(CARD)
    data = _card_91(card, r.card_data, CSU_DECLINED)
    done = kernel.complete(HostAnswer.from_host("05", None, issuer_authentication_data=data))
    assert done.outcome is Outcome.DECLINED and "issuer declined (05)" in (done.error or "")


def test_the_card_honours_the_csu_pin_try_counter_block_and_go_online() -> None:
    """Authenticated CSU flags change the card: PIN try counter set, go online next time, application block."""
    card = ContactCard(CARD, seed=7)
    card.pin_try_counter = 1
    kernel, r, _ = run(card)
    reset = CardStatusUpdate(approved=True, pin_try_counter=3, go_online_next=True, counters="reset").encode()
    done = kernel.complete(_answer(_card_91(card, r.card_data, reset)))
    assert done.outcome is Outcome.APPROVED
    assert card.pin_try_counter == 3 and card.go_online_next and card.last_online_atc == card.atc

    card.reset()
    kernel, r, _ = run(card)
    block = CardStatusUpdate(approved=True, application_block=True).encode()
    done = kernel.complete(_answer(_card_91(card, r.card_data, block)))
    assert done.outcome is Outcome.DECLINED and card.blocked  # blocked: no TC, whatever else the CSU says
    card.reset()
    assert run(card)[1].outcome is not Outcome.APPROVED


def test_a_csu_with_a_wrong_arpc_changes_nothing() -> None:
    card = ContactCard(CARD, seed=7)
    card.pin_try_counter = 1
    kernel, r, _ = run(card)
    forged = CardStatusUpdate(approved=True, pin_try_counter=3).encode()
    data = _card_91(card, r.card_data, forged, bad=True)
    done = kernel.complete(HostAnswer.from_host("00", None, issuer_authentication_data=data))
    assert done.outcome is Outcome.DECLINED and card.pin_try_counter == 1


@pytest.mark.parametrize("size", [8, 12])
def test_method_2_in_cdol2_travels_unchanged(size: int) -> None:
    """Book 3 10.9: CDOL2 asks for 91 of the method 2 length: no EXTERNAL AUTHENTICATE, 91 in the second GENERATE
    AC byte for byte; a wrong one is declined by the card."""
    cdol2 = bytes([0x91, size]) + bytes.fromhex("8A0295059F3704")
    card_profile = profile(CARD, data={0x8D: cdol2})
    for bad in (False, True):
        kernel, r, card = run(ContactCard(card_profile, seed=7))
        extra = bytes(range(size - 8))
        csu = CardStatusUpdate(approved=True, proprietary_data=bool(extra)).encode()
        data = _card_91(card, r.card_data, csu, extra, bad=bad)
        done = kernel.complete(HostAnswer.from_host("00", None, issuer_authentication_data=data))
        assert not [c for c in done.commands if c[:2] == EXTERNAL_AUTHENTICATE]
        second = [c for c in done.commands if c[:2] == GENERATE_AC][1]
        assert second[5 : 5 + size] == data
        assert (done.outcome is Outcome.APPROVED) is not bad, done.error


def test_91_of_a_length_no_method_has_is_not_sent() -> None:
    """Book 3 6.5.4: EXTERNAL AUTHENTICATE takes 8 to 16 bytes; 7 or 17 count as issuer authentication failed."""
    for size in (7, 17):
        kernel, _r, _card = run(CARD)
        done = kernel.complete(HostAnswer.from_host("00", None, issuer_authentication_data=bytes(size)))
        assert not [c for c in done.commands if c[:2] == EXTERNAL_AUTHENTICATE]
        assert Tvr(done.tvr).is_set(Tvr.ISSUER_AUTHENTICATION_FAILED) and done.outcome is Outcome.DECLINED


def test_unable_to_go_online_the_card_approves_y3_and_the_result_carries_the_tc_inputs() -> None:
    """Book 3 10.7: no answer; the default codes allow (under the floor limit): TC, 8A Y3.  The result's
    cryptogram inputs are what the card received for that TC (CDOL2's TVR and 8A over CDOL1's)."""
    kernel, first, _card = run(CARD, cfg=dataclasses.replace(config(), applications=tuple(
        dataclasses.replace(a, tac_default=bytes(5)) for a in config().applications)))  # fmt: skip
    arqc = first.card_data[0x9F26]
    done = kernel.complete(HostAnswer.unable_to_go_online())
    assert done.outcome is Outcome.APPROVED and done.cryptogram_type == "TC"
    assert done.authorisation_response_code == "Y3" and done.card_data[0x9F26] != arqc
    assert done.cryptogram_inputs[0x8A] == b"Y3" and done.cryptogram_inputs[0x95] == done.tvr
    assert done.card_data[0x9F27] == b"\x40" and done.card_data[0x9B] == done.tsi
