"""Simulated cards: PPSE/SELECT/GPO, cryptograms checked host-side with pyemv, ODA chains
checked with an independent raw-RSA walk, CDA, faults, and malformed commands."""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyemv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import _ber, cryptograms, profiles
from simulator.card import PPSE, CardMuteError, SimulatedCard
from simulator.issuer_keys import issuer_master_keys

DATA = Path(profiles.__file__).resolve().parent / "data"
VISA_PDOL_TERMINAL = {
    0x9F66: bytes.fromhex("36000000"),  # qVSDC, contact, online PIN, signature
    0x9F02: bytes.fromhex("000000001234"),
    0x9F03: bytes(6),
    0x9F1A: bytes.fromhex("0276"),
    0x95: bytes(5),
    0x5F2A: bytes.fromhex("0978"),
    0x9A: bytes.fromhex("251121"),
    0x9C: b"\x00",
    0x9F37: bytes.fromhex("DEADBEEF"),
    0x9F35: b"\x22",
    0x9F45: bytes(2),
    0x9F4C: bytes(8),
    0x9F34: bytes.fromhex("1F0302"),
    0x8A: b"00",
    0x91: bytes(10),
}


# ---------------------------------------------------------------- helpers (independent of emv/)


def apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", *, le: bool = True) -> bytes:
    out = bytes([cla, ins, p1, p2])
    if data:
        out += bytes([len(data)]) + data
    return out + (b"\x00" if le else b"")


def ok(response: bytes) -> bytes:
    assert response[-2:] == b"\x90\x00", response.hex()
    return response[:-2]


def dol_values(dol: bytes, terminal: dict[int, bytes]) -> bytes:
    return b"".join(terminal.get(t, bytes(n))[:n].rjust(n, b"\x00") for t, n in _ber.parse_dol(dol))


def amount(terminal: dict[int, bytes], minor: int) -> dict[int, bytes]:
    return {**terminal, 0x9F02: bytes.fromhex(f"{minor:012d}")}


def select_app(card: SimulatedCard) -> bytes:
    ok(card.exchange(apdu(0x00, 0xA4, 0x04, 0x00, PPSE)))
    return ok(card.exchange(apdu(0x00, 0xA4, 0x04, 0x00, card.profile.aid)))


def gpo(card: SimulatedCard, terminal: dict[int, bytes]) -> tuple[bytes, bytes]:
    """(PDOL values sent, GPO response without SW)."""
    fci = select_app(card)
    pdol = _ber.find(fci, 0x9F38) or b""
    values = dol_values(pdol, terminal)
    return values, ok(card.exchange(apdu(0x80, 0xA8, 0, 0, _ber.encode(0x83, values))))


def flat(template: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for tag, value in _ber.iter_flat(template):
        out.setdefault(tag, value)
    return out


def read_records(card: SimulatedCard, afl: bytes) -> tuple[dict[int, bytes], bytes]:
    """All record tags and the static data to authenticate (records the AFL marks)."""
    tags: dict[int, bytes] = {}
    static = b""
    for i in range(0, len(afl), 4):
        sfi, first, last, signed = afl[i] >> 3, afl[i + 1], afl[i + 2], afl[i + 3]
        for number in range(first, last + 1):
            answer = card.exchange(apdu(0x00, 0xB2, number, sfi << 3 | 4))
            spec = next(r for r in card.profile.records if (r.sfi, r.number) == (sfi, number))
            if not spec.emv_mode:  # a mag-stripe record (mc-magstripe-afl): refused in EMV mode
                assert answer == b"\x69\x85" and not signed
                continue
            record = ok(answer)
            [(tag, body)] = _ber.decode(record)
            assert tag == 0x70
            tags.update(flat(body))
            if number < first + signed:
                static += body if sfi <= 10 else record
    return tags, static


def capks() -> dict[tuple[str, int], tuple[int, int]]:
    doc = json.loads((DATA / "capks.json").read_text(encoding="utf-8"))
    return {
        (k["rid"], int(k["index"], 16)): (int(k["modulus"], 16), int(k["exponent"], 16)) for k in doc["keys"]
    }


def rsa(signature: bytes, n: int, e: int) -> bytes:
    size = (n.bit_length() + 7) // 8
    assert len(signature) == size, "signature length differs from the modulus length"
    return pow(int.from_bytes(signature, "big"), e, n).to_bytes(size, "big")


def oda_chain(rid: str, tags: dict[int, bytes], static: bytes, pan: str) -> tuple[int, int, list[str]]:
    """Walk CA -> issuer -> ICC independently; returns the ICC key and the names of failed checks."""
    failures: list[str] = []
    n_ca, e_ca = capks()[(rid, tags[0x8F][0])]
    rec = rsa(tags[0x90], n_ca, e_ca)
    n_i_len = rec[13]
    rem = tags.get(0x92, b"")
    if rec[0] != 0x6A or rec[-1] != 0xBC or rec[1] != 0x02:
        failures.append("issuer_certificate_layout")
    if hashlib.sha1(rec[1:-21] + rem + tags[0x9F32]).digest() != rec[-21:-1]:
        failures.append("issuer_certificate_hash")
    if not pan.startswith(rec[2:6].hex().upper().rstrip("F")):
        failures.append("issuer_identifier_mismatch")
    n_i = int.from_bytes((rec[15:-21] + rem)[:n_i_len], "big")
    e_i = int.from_bytes(tags[0x9F32], "big")
    rec = rsa(tags[0x9F46], n_i, e_i)
    rem = tags.get(0x9F48, b"")
    if hashlib.sha1(rec[1:-21] + rem + tags[0x9F47] + static).digest() != rec[-21:-1]:
        failures.append("icc_certificate_hash")
    if rec[2:12].hex().upper().rstrip("F") != pan:
        failures.append("icc_pan_mismatch")
    n_icc = int.from_bytes((rec[21:-21] + rem)[: rec[19]], "big")
    return n_icc, int.from_bytes(tags[0x9F47], "big"), failures


def host_ac(cvn: int, key: str, pan: str, psn: str, t: dict[int, bytes]) -> bytes:
    """Recompute an AC directly with pyemv, as an issuer host would (not via simulator.cryptograms)."""
    k = issuer_master_keys(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args: dict[str, Any] = {
            "tag_9f02": t[0x9F02], "tag_9f03": t[0x9F03], "tag_9f1a": t[0x9F1A], "tag_95": t[0x95],
            "tag_5f2a": t[0x5F2A], "tag_9a": t[0x9A], "tag_9c": t[0x9C], "tag_9f37": t[0x9F37],
            "tag_82": t[0x82], "tag_9f36": t[0x9F36],
        }
        if cvn == 0x0A:
            cvn10 = pyemv.cvn.VisaCVN10(k.mk_ac, k.mk_smi, k.mk_smc, pan, psn)
            return bytes(cvn10.generate_ac(cvr=t[0x9F10][3:7], **args))
        if cvn == 0x12:
            cvn18 = pyemv.cvn.VisaCVN18(k.mk_ac, k.mk_smi, k.mk_smc, pan, psn)
            return bytes(cvn18.generate_ac(tag_9f10=t[0x9F10], **args))
        cvn16 = pyemv.cvn.MasterCardCVN16(k.mk_ac, k.mk_smi, k.mk_smc, pan, psn)
        return bytes(cvn16.generate_ac(cvr=t[0x9F10][2:8], **args))


@pytest.fixture(params=profiles.list_names())
def any_card(request: pytest.FixtureRequest) -> Iterator[SimulatedCard]:
    yield SimulatedCard(request.param, seed=7)


# ---------------------------------------------------------------- every profile


def test_every_profile_answers_ppse_and_select(any_card: SimulatedCard) -> None:
    p = any_card.profile
    fci = ok(any_card.exchange(apdu(0x00, 0xA4, 0x04, 0x00, PPSE)))
    assert _ber.decode(fci)[0][0] == 0x6F
    assert _ber.find(fci, 0x84) == PPSE
    entry = _ber.find(fci, 0x61)
    assert entry is not None
    assert flat(entry)[0x4F] == p.aid and flat(entry)[0x50] == p.label.encode()
    assert flat(entry)[0x9F2A] == bytes([p.kernel])
    fci = ok(any_card.exchange(apdu(0x00, 0xA4, 0x04, 0x00, p.aid)))
    assert _ber.find(fci, 0x84) == p.aid and _ber.find(fci, 0x87) == b"\x01"
    assert (_ber.find(fci, 0x9F38) or b"") == p.pdol


def test_relay_resistance_card_answers_exchange_relay_resistance_data() -> None:
    """mc-rrp: 80 EA 00 00 04 <entropy> 00 after GPO gives template 80 with its entropy and times;
    before GPO 6985; a card without relay resistance: 6D00."""
    card = SimulatedCard("mc-rrp", seed=1)
    select_app(card)
    errd = apdu(0x80, 0xEA, 0, 0, bytes.fromhex("01020304"))
    assert card.exchange(errd) == b"\x69\x85"
    gpo(card, VISA_PDOL_TERMINAL)
    [(tag, body)] = _ber.decode(ok(card.exchange(errd)))
    assert tag == 0x80 and len(body) == 10
    assert body[4:].hex().upper() == "000101900012"  # min 1, max 400, transmission 18 (100 us units)
    other = SimulatedCard("mc-cda-offline", seed=1)
    select_app(other)
    gpo(other, VISA_PDOL_TERMINAL)
    assert other.exchange(errd) == b"\x6d\x00"


def test_every_profile_answers_gpo_sanely(any_card: SimulatedCard) -> None:
    p = any_card.profile
    if p.fault == "mute":
        select_app(any_card)
        with pytest.raises(CardMuteError):
            any_card.exchange(apdu(0x80, 0xA8, 0, 0, bytes.fromhex("8300")))
        any_card.reset()
        select_app(any_card)  # after a power cycle it answers SELECT again, then goes mute
        return
    _, response = gpo(any_card, VISA_PDOL_TERMINAL)
    if p.fault == "garbage":
        assert response  # random bytes with 9000
        return
    tags = flat(response)
    assert response[0] == 0x77 and tags[0x82] == p.aip
    afl = tags[0x94]
    assert len(afl) % 4 == 0 and afl
    if p.kernel == 3:
        assert tags[0x9F36] == (p.atc + 1).to_bytes(2, "big")
        assert tags[0x9F27][0] in (0x00, 0x40, 0x80) and len(tags[0x9F26]) == 8
        assert tags[0x9F6C] == p.ctq
        assert tags[0x57].hex().upper().startswith(p.pan + "D" + p.expiry[:4])
    else:
        assert set(tags) == {0x77, 0x82, 0x94}
    rec_tags, _ = read_records(any_card, afl)
    assert rec_tags[0x5A].hex().upper().rstrip("F") == p.pan
    assert rec_tags[0x5F24].hex() == p.expiry


def test_profiles_pans_are_luhn_valid_and_distinct() -> None:
    pans = [profiles.load(n).pan for n in profiles.list_names()]
    assert len(set(pans)) == len(pans)
    for pan in pans:
        digits = [int(d) for d in reversed(pan)]
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
        assert total % 10 == 0, pan


# ---------------------------------------------------------------- Visa-style


def test_visa_offline_tc_with_fdda_verifies_end_to_end() -> None:
    card = SimulatedCard("visa-qvsdc-offline", seed=1)
    _, response = gpo(card, VISA_PDOL_TERMINAL)
    gpo_tags = flat(response)
    assert gpo_tags[0x9F27] == b"\x40"
    rec, static = read_records(card, gpo_tags[0x94])
    assert rec[0x9F4A] == b"\x82"
    static += gpo_tags[0x82]
    n, e, failures = oda_chain("A000000003", rec, static, card.profile.pan)
    assert failures == []
    sdad = rsa(gpo_tags[0x9F4B], n, e)
    assert sdad[:3] == bytes.fromhex("6A0501") and sdad[-1] == 0xBC
    t = VISA_PDOL_TERMINAL
    terminal_data = t[0x9F37] + t[0x9F02] + t[0x5F2A] + rec[0x9F69]
    assert hashlib.sha1(sdad[1:-21] + terminal_data).digest() == sdad[-21:-1]
    assert rec[0x9F69][0] == 0x01 and rec[0x9F69][5:] == card.profile.ctq
    # the cryptogram verifies host-side
    host = {**t, 0x82: gpo_tags[0x82], 0x9F36: gpo_tags[0x9F36], 0x9F10: gpo_tags[0x9F10]}
    assert gpo_tags[0x9F10][:3] == bytes.fromhex("06010A") and gpo_tags[0x9F10][4] == 0x10
    assert host_ac(0x0A, "sim-visa-cvn10", card.profile.pan, "01", host) == gpo_tags[0x9F26]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("visa-bad-issuer-cert", ["issuer_certificate_hash"]),
        ("visa-bad-sdad", []),
        ("visa-revoked-ca", []),
        ("visa-exception-pan", []),
        ("visa-expired", []),
    ],
)
def test_visa_oda_variants(name: str, expected: list[str]) -> None:
    card = SimulatedCard(name, seed=3)
    _, response = gpo(card, VISA_PDOL_TERMINAL)
    tags = flat(response)
    rec, static = read_records(card, tags[0x94])
    if name == "visa-bad-issuer-cert":
        n_ca, e_ca = capks()[("A000000003", 0x50)]
        rec_cert = rsa(rec[0x90], n_ca, e_ca)
        assert hashlib.sha1(rec_cert[1:-21] + rec.get(0x92, b"") + rec[0x9F32]).digest() != rec_cert[-21:-1]
        return
    n, e, failures = oda_chain("A000000003", rec, static + tags[0x82], card.profile.pan)
    assert failures == expected
    sdad = rsa(tags[0x9F4B], n, e)
    t = VISA_PDOL_TERMINAL
    terminal_data = t[0x9F37] + t[0x9F02] + t[0x5F2A] + rec[0x9F69]
    good = hashlib.sha1(sdad[1:-21] + terminal_data).digest() == sdad[-21:-1]
    assert good == (name != "visa-bad-sdad")
    assert rec[0x8F] == (b"\x51" if name == "visa-revoked-ca" else b"\x50")
    if name == "visa-expired":
        assert rec[0x5F24] == bytes.fromhex("231231")
    if name == "visa-exception-pan":
        assert card.profile.pan == "4761739001010119"


def test_visa_decisions() -> None:
    offline = {**VISA_PDOL_TERMINAL, 0x9F66: bytes.fromhex("36800000")}  # online cryptogram required
    _, r = gpo(SimulatedCard("visa-qvsdc-offline"), offline)
    assert flat(r)[0x9F27] == b"\x80" and 0x9F4B not in flat(r)
    _, r = gpo(SimulatedCard("visa-qvsdc-offline"), amount(VISA_PDOL_TERMINAL, 20000))  # over its own limit
    assert flat(r)[0x9F27] == b"\x80"
    _, r = gpo(SimulatedCard("visa-qvsdc-offline"), {**VISA_PDOL_TERMINAL, 0x5F2A: bytes.fromhex("0840")})
    assert flat(r)[0x9F27] == b"\x80"
    _, r = gpo(SimulatedCard("visa-qvsdc-online"), VISA_PDOL_TERMINAL)
    tags = flat(r)
    assert tags[0x9F27] == b"\x80" and tags[0x82] == b"\x00\x00" and 0x9F4B not in tags
    assert tags[0x9F10][4] == 0x20  # CVR byte 2: ARQC
    # ODA for online authorisations (TTQ byte 1 b1): the offline card signs its ARQC too
    _, r = gpo(SimulatedCard("visa-qvsdc-offline"), {**offline, 0x9F66: bytes.fromhex("37800000")})
    assert 0x9F4B in flat(r)
    # an offline-only reader and an online-only card: AAC
    _, r = gpo(SimulatedCard("visa-qvsdc-online"), {**VISA_PDOL_TERMINAL, 0x9F66: bytes.fromhex("28000000")})
    assert flat(r)[0x9F27] == b"\x00"
    # a reader without qVSDC
    card = SimulatedCard("visa-qvsdc-offline")
    pdol_values = dol_values(card.profile.pdol, {**VISA_PDOL_TERMINAL, 0x9F66: bytes(4)})
    select_app(card)
    assert card.exchange(apdu(0x80, 0xA8, 0, 0, _ber.encode(0x83, pdol_values))) == b"\x69\x85"


def test_visa_mobile_cvn18_and_ctq() -> None:
    card = SimulatedCard("visa-mobile-cdcvm")
    _, r = gpo(card, amount(VISA_PDOL_TERMINAL, 6000))
    tags = flat(r)
    assert tags[0x9F6C] == bytes.fromhex("0080") and tags[0x9F27] == b"\x80"
    assert tags[0x9F10][2] == 0x12
    host = {**amount(VISA_PDOL_TERMINAL, 6000), 0x82: tags[0x82], 0x9F36: tags[0x9F36], 0x9F10: tags[0x9F10]}
    assert host_ac(0x12, "sim-visa-cvn18", card.profile.pan, card.profile.psn, host) == tags[0x9F26]


def test_cryptograms_are_reproducible_and_atc_increments() -> None:
    results = []
    for _ in range(2):
        card = SimulatedCard("visa-qvsdc-online", seed=5)
        _, first = gpo(card, VISA_PDOL_TERMINAL)
        _, second = gpo(card, VISA_PDOL_TERMINAL)
        results.append((flat(first)[0x9F26], flat(second)[0x9F26]))
        assert int.from_bytes(flat(second)[0x9F36], "big") == int.from_bytes(flat(first)[0x9F36], "big") + 1
        assert ok(card.exchange(apdu(0x80, 0xCA, 0x9F, 0x36))) == _ber.encode(0x9F36, flat(second)[0x9F36])
    assert results[0] == results[1]
    assert results[0][0] != results[0][1]


def test_simulator_cryptograms_helper_matches_pyemv() -> None:
    card = SimulatedCard("visa-qvsdc-online")
    _, r = gpo(card, VISA_PDOL_TERMINAL)
    tags = {**VISA_PDOL_TERMINAL, **flat(r)}
    data = cryptograms.CryptogramData.from_tags(tags)
    assert cryptograms.verify_arqc("sim-visa-cvn10", card.profile.pan, "01", data, tags[0x9F26])
    assert not cryptograms.verify_arqc("sim-visa-cvn10", card.profile.pan, "02", data, tags[0x9F26])
    arpc = cryptograms.arpc("sim-visa-cvn10", card.profile.pan, "01", arqc=tags[0x9F26], atc=tags[0x9F36],
                            response=b"00")
    assert len(arpc) == 8


# ---------------------------------------------------------------- Mastercard-style


def mc_first_ac(
    card: SimulatedCard, p1: int, terminal: dict[int, bytes]
) -> tuple[bytes, bytes, bytes, dict[Any, bytes]]:
    pdol_values, response = gpo(card, terminal)
    gpo_tags = flat(response)
    rec, static = read_records(card, gpo_tags[0x94])
    cdol1 = dol_values(rec[0x8C], terminal)
    answer = ok(card.exchange(apdu(0x80, 0xAE, p1, 0x00, cdol1)))
    return pdol_values, cdol1, answer, {**rec, 0x82: gpo_tags[0x82], "static": static + gpo_tags[0x82]}


@pytest.mark.parametrize("name", ["mc-cda-offline", "mc-cda-online", "mc-bad-cda"])
def test_mc_cda_signature_and_hash_code(name: str) -> None:
    card = SimulatedCard(name, seed=11)
    pdol_values, cdol1, answer, rec = mc_first_ac(card, 0x50, VISA_PDOL_TERMINAL)  # TC + CDA
    assert rec[0x82][0] & 0x01  # CDA supported
    objects = _ber.decode(_ber.decode(answer)[0][1])
    assert [t for t, _ in objects] == [0x9F27, 0x9F36, 0x9F4B, 0x9F10]
    values = dict(objects)
    expected_cid = b"\x80" if name == "mc-cda-online" else b"\x40"
    assert values[0x9F27] == expected_cid
    n, e, failures = oda_chain("A000000004", rec, rec["static"], card.profile.pan)
    assert failures == []
    sdad = rsa(values[0x9F4B], n, e)
    assert sdad[:3] == bytes.fromhex("6A0501")
    ldd = sdad[3]
    dyn = sdad[4 : 4 + ldd]
    ldn = dyn[0]
    cid, ac, hash_code = dyn[1 + ldn], dyn[2 + ldn : 10 + ldn], dyn[10 + ldn : 30 + ldn]
    assert bytes([cid]) == values[0x9F27]
    returned = b"".join(_ber.encode(t, v) for t, v in objects if t != 0x9F4B)
    assert hashlib.sha1(pdol_values + cdol1 + returned).digest() == hash_code
    good = hashlib.sha1(sdad[1:-21] + VISA_PDOL_TERMINAL[0x9F37]).digest() == sdad[-21:-1]
    assert good == (name != "mc-bad-cda")
    host = {**VISA_PDOL_TERMINAL, 0x82: rec[0x82], 0x9F36: values[0x9F36], 0x9F10: values[0x9F10]}
    assert host_ac(0x10, "sim-mc-cvn16", card.profile.pan, card.profile.psn, host) == ac


def test_mc_without_cda_and_risk_management() -> None:
    card = SimulatedCard("mc-cda-offline", seed=2)
    _, _, answer, rec = mc_first_ac(card, 0x40, VISA_PDOL_TERMINAL)  # TC, no CDA
    values = dict(_ber.decode(_ber.decode(answer)[0][1]))
    assert list(values) == [0x9F27, 0x9F36, 0x9F26, 0x9F10] and values[0x9F27] == b"\x40"
    assert len(values[0x9F10]) == 18 and values[0x9F10][1] == 0x10
    host = {**VISA_PDOL_TERMINAL, 0x82: rec[0x82], 0x9F36: values[0x9F36], 0x9F10: values[0x9F10]}
    assert host_ac(0x10, "sim-mc-cvn16", card.profile.pan, "00", host) == values[0x9F26]

    _, _, answer, _ = mc_first_ac(SimulatedCard("mc-cda-offline"), 0x40, amount(VISA_PDOL_TERMINAL, 20000))
    assert flat(answer)[0x9F27] == b"\x80"  # over its own limit: ARQC instead of TC
    _, _, answer, _ = mc_first_ac(SimulatedCard("mc-cda-offline"), 0x90, VISA_PDOL_TERMINAL)
    assert flat(answer)[0x9F27] == b"\x80" and 0x9F4B in flat(answer)
    _, _, answer, _ = mc_first_ac(SimulatedCard("mc-cda-online"), 0x40, VISA_PDOL_TERMINAL)
    assert flat(answer)[0x9F27] == b"\x80"
    _, _, answer, _ = mc_first_ac(SimulatedCard("mc-cda-online"), 0x10, VISA_PDOL_TERMINAL)
    assert flat(answer)[0x9F27] == b"\x00" and 0x9F4B not in flat(answer)  # AAC is never signed


def test_mc_second_generate_ac() -> None:
    card = SimulatedCard("mc-cda-online")
    _, _, answer, rec = mc_first_ac(card, 0x80, VISA_PDOL_TERMINAL)
    assert flat(answer)[0x9F27] == b"\x80"
    cdol2 = dol_values(rec[0x8D], VISA_PDOL_TERMINAL)
    second = ok(card.exchange(apdu(0x80, 0xAE, 0x40, 0x00, cdol2)))
    assert flat(second)[0x9F27] == b"\x40"
    assert ok(card.exchange(apdu(0x80, 0xCA, 0x9F, 0x13))) == _ber.encode(0x9F13, flat(second)[0x9F36])
    assert card.exchange(apdu(0x80, 0xAE, 0x40, 0x00, cdol2)) == b"\x69\x85"  # no third


def test_internal_authenticate_and_get_data() -> None:
    card = SimulatedCard("mc-cda-offline", seed=4)
    _, _, _, rec = mc_first_ac(card, 0x40, VISA_PDOL_TERMINAL)
    n, e, _ = oda_chain("A000000004", rec, rec["static"], card.profile.pan)
    ddol_values = bytes.fromhex("01020304")
    response = ok(card.exchange(apdu(0x00, 0x88, 0, 0, ddol_values)))
    [(tag, signature)] = _ber.decode(response)
    assert tag == 0x80
    sdad = rsa(signature, n, e)
    assert hashlib.sha1(sdad[1:-21] + ddol_values).digest() == sdad[-21:-1]
    assert ok(card.exchange(apdu(0x80, 0xCA, 0x9F, 0x17))) == bytes.fromhex("9F170103")
    assert card.exchange(apdu(0x80, 0xCA, 0x9F, 0x99)) == b"\x6a\x88"
    assert SimulatedCard("visa-qvsdc-online").exchange(apdu(0x00, 0x88, 0, 0, b"1234")) == b"\x69\x85"


# ---------------------------------------------------------------- faults and malformed commands


def test_garbage_is_seeded() -> None:
    answers = []
    for _ in range(2):
        card = SimulatedCard("visa-garbage", seed=42)
        answers.append(gpo(card, VISA_PDOL_TERMINAL)[1])
    assert answers[0] == answers[1]


@pytest.mark.parametrize(
    ("command", "sw"),
    [
        ("00", "6700"),
        ("00A4", "6700"),
        ("00A40400050102", "6700"),  # Lc says 5, 2 bytes follow
        ("00EE000000", "6D00"),
        ("80A4040007A000000003101000", "6E00"),
        ("00A4010007A000000003101000", "6A86"),
        ("00A40400", "6700"),
        ("00A4040007A000000009999900", "6A82"),
        ("80A80000028300", "6985"),  # GPO before SELECT
        ("00B2000C00", "6A86"),
        ("00B2010800", "6A86"),
        ("80AE000000", "6985"),
        ("80AEC00000", "6A86"),
        ("80AE400100", "6A86"),
    ],
)
def test_malformed_commands_get_status_words(command: str, sw: str) -> None:
    card = SimulatedCard("mc-cda-offline")
    assert card.exchange(bytes.fromhex(command)).hex().upper() == sw


def test_gpo_malformed_data() -> None:
    card = SimulatedCard("visa-qvsdc-offline")
    select_app(card)
    assert card.exchange(bytes.fromhex("80A80001028300")) == b"\x6a\x86"
    assert card.exchange(bytes.fromhex("80A8000002830000")) == b"\x67\x00"  # PDOL wants 33 bytes
    assert card.exchange(bytes.fromhex("80A80000029F0100")) == b"\x6a\x80"
    assert card.exchange(bytes.fromhex("80A800000283FF00")) == b"\x6a\x80"
    assert card.exchange(bytes.fromhex("00B2050C00")) == b"\x6a\x83"


def test_compute_seconds_accumulates() -> None:
    card = SimulatedCard("mc-cda-offline")
    assert card.compute_seconds == 0.0
    mc_first_ac(card, 0x50, VISA_PDOL_TERMINAL)
    assert card.compute_seconds > 0.0


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(profiles.list_names()), commands=st.lists(st.binary(max_size=40), max_size=6),
       select=st.booleans())
def test_random_commands_never_raise(name: str, commands: list[bytes], select: bool) -> None:
    card = SimulatedCard(name, seed=0)
    if select:
        with contextlib.suppress(CardMuteError):
            select_app(card)
    for command in commands:
        try:
            response = card.exchange(command)
        except CardMuteError:
            assert card.profile.fault == "mute"
            return
        assert len(response) >= 2
        assert response != b"\x6f\x00", card.last_error


@settings(max_examples=200, deadline=None)
@given(ins=st.sampled_from([0xA8, 0xB2, 0xAE, 0x88, 0xCA]), p1=st.integers(0, 255), p2=st.integers(0, 255),
       data=st.binary(max_size=60))
def test_structured_commands_after_gpo_never_raise(ins: int, p1: int, p2: int, data: bytes) -> None:
    card = SimulatedCard("mc-cda-offline", seed=0)
    gpo(card, VISA_PDOL_TERMINAL)
    cla = 0x00 if ins in (0xB2, 0x88) else 0x80
    response = card.exchange(apdu(cla, ins, p1, p2, data))
    assert len(response) >= 2 and response != b"\x6f\x00", card.last_error


def test_transport_adapter_reraises_as_card_communication_error() -> None:
    from emv.apdu import CardCommunicationError
    from simulator.transport import as_transport

    transport = as_transport(SimulatedCard("visa-mute"))
    ok(transport.exchange(apdu(0x00, 0xA4, 0x04, 0x00, PPSE)))
    ok(transport.exchange(apdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("A0000000031010"))))
    with pytest.raises(CardCommunicationError):
        transport.exchange(bytes.fromhex("80A8000002830000"))
    assert transport.compute_seconds >= 0.0
