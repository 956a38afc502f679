"""The contact kernel against every simulated contact card (EMV Book 3; Book 2 for ODA).

Each test names the section of Book 3 it checks.  The cards are real
:class:`~simulator.contact.card.ContactCard` instances computing real
cryptograms and signatures; the host's ARPCs and script MACs come from the
simulator's issuer keys.
"""

from __future__ import annotations

import dataclasses

import pytest

from emv.contact import ContactConfig, ContactKernel, HostAnswer, PinStatus
from emv.contact.kernel import REVERSE
from emv.contact.ports import EncipheredPinEntry, EncipheringCardholder
from emv.oda import PublicKey
from emv.outcome import Message, Outcome
from emv.tvr import Tsi, Tvr
from simulator.contact.card import ContactCard
from simulator.contact.profiles import list_names
from simulator.pinpad import encipher_offline
from simulator.pki import load_pki
from tests.contact_rig import Pad, config, host_arpc, profile, run, script

EXPECTED_AT_12_34 = {
    "contact-arpc2": (Outcome.ONLINE_REQUEST, "ARQC", "DDA", "passed", "1F0002"),
    "contact-offline-pin": (Outcome.APPROVED, "TC", "CDA", "passed", "410002"),
    "contact-enciphered-pin": (Outcome.APPROVED, "TC", "DDA", "passed", "440002"),
    "contact-pin-blocked": (Outcome.ONLINE_REQUEST, "ARQC", "DDA", "passed", "010001"),
    "contact-online-pin": (Outcome.ONLINE_REQUEST, "ARQC", "SDA", "passed", "420000"),
    "contact-scripts": (Outcome.ONLINE_REQUEST, "ARQC", None, "not_performed", "1F0002"),
    "contact-sda": (Outcome.APPROVED, "TC", "SDA", "passed", "1E0300"),
    "contact-dda": (Outcome.APPROVED, "TC", "DDA", "passed", "1F0002"),
    "contact-bad-sda": (Outcome.ONLINE_REQUEST, "ARQC", "SDA", "failed", "1F0002"),
    "contact-bad-dda": (Outcome.ONLINE_REQUEST, "ARQC", "DDA", "failed", "1F0002"),
    "contact-bad-cda": (Outcome.DECLINED, "TC", "CDA", "failed", "1F0002"),
    "contact-mute": (Outcome.END_APPLICATION, None, None, "not_performed", ""),
    "contact-garbage": (Outcome.END_APPLICATION, None, None, "not_performed", ""),
}


def test_every_contact_profile_has_an_expectation() -> None:
    """Every simulated contact card is in the Book 3 end-to-end table below."""
    assert sorted(EXPECTED_AT_12_34) == list_names()


@pytest.mark.parametrize("name", sorted(EXPECTED_AT_12_34))
def test_each_card_ends_as_documented(name: str) -> None:
    """Book 3 10.1-10.8 end to end at 12.34 with the right PIN at the PIN pad."""
    outcome, cryptogram, method, oda_result, cvm_results = EXPECTED_AT_12_34[name]
    _kernel, r, _card = run(name, cardholder=Pad("1234"))
    assert r.outcome is outcome, r.error
    assert r.kernel == "contact" and r.to_json()["kernel"] == "contact"
    assert r.cryptogram_type == cryptogram
    assert (r.oda.method, r.oda.result) == (method, oda_result)
    if cvm_results:
        assert r.cvm_results.hex().upper() == cvm_results
        assert r.card_data[0x9F34] == r.cvm_results


# --------------------------------------------------------------------------- offline approval


def test_offline_approval_with_offline_pin_and_cda() -> None:
    """Book 3 10.5.1 (offline plaintext PIN), 10.8 with CDA (Book 2 6.6): TC approved offline."""
    pad = Pad("1234")
    _k, r, card = run("contact-offline-pin", cardholder=pad)
    assert r.outcome is Outcome.APPROVED and r.messages[-1].message is Message.APPROVED
    assert r.cvm.value == "offline_pin" and pad.asked == [("plaintext", 3, False)]
    verify = [c for c in r.commands if c[:2] == b"\x00\x20"]
    assert verify == [bytes.fromhex("0020008008") + bytes(8)]  # the card got the PIN block; no record keeps it
    assert "241234FFFFFFFFFF" not in str(r.to_json()) and card.pin_try_counter == 3
    genac = [c for c in r.commands if c[:2] == b"\x80\xae"]
    assert genac[0][2] == 0x50  # TC with a CDA signature asked for
    assert r.card_data[0x9F26] == r.cryptogram and len(r.cryptogram or b"") == 8
    assert Tvr(r.tvr).names() == []
    assert set(Tsi(r.tsi).names()) == {
        "oda_performed",
        "cardholder_verification_performed",
        "card_risk_management_performed",
        "terminal_risk_management_performed",
    }
    assert r.selection == "PSE" and r.aid == bytes.fromhex("A0000000031010")
    assert card.pin_try_counter == 3


def test_sda_card_found_by_the_list_of_aids_approves_with_signature() -> None:
    """Book 1 12.3.3 (no PSE: list of AIDs), Book 3 10.3 SDA, 10.5 signature: approved, please sign."""
    _k, r, _card = run("contact-sda")
    assert r.selection == "AIDs"
    assert r.outcome is Outcome.APPROVED and r.signature_required
    assert r.messages[-1].message is Message.APPROVED_PLEASE_SIGN
    assert r.card_data[0x9F45] == bytes.fromhex("DAC0")  # the data authentication code the SSAD carried
    assert Tvr(r.tvr).names() == ["sda_selected"]


def test_dda_with_the_cards_ddol() -> None:
    """Book 3 10.3 / Book 2 6.5: INTERNAL AUTHENTICATE with the card's DDOL (9F37, 9F02)."""
    _k, r, _card = run("contact-dda")
    internal = [c for c in r.commands if c[:2] == b"\x00\x88"]
    assert internal == [
        bytes.fromhex("008800000A") + bytes.fromhex("1A2B3C4D") + bytes.fromhex("000000001234") + b"\x00"
    ]
    assert r.oda.result == "passed" and r.card_data[0x9F4C] == (21).to_bytes(2, "big")


def test_dda_with_the_default_ddol_when_the_card_has_none() -> None:
    """Book 2 6.5.1: no DDOL on the card: the terminal's default DDOL (9F37)."""
    _k, r, _card = run(profile("contact-dda", drop={0x9F49}))
    internal = [c for c in r.commands if c[:2] == b"\x00\x88"]
    assert internal == [bytes.fromhex("00880000041A2B3C4D00")]
    assert r.oda.result == "passed"


# --------------------------------------------------------------------------- online


def test_online_request_then_approved_with_arpc_by_external_authenticate() -> None:
    """Book 3 10.9: ARQC, the host approves with an ARPC, EXTERNAL AUTHENTICATE, second GENERATE AC TC."""
    kernel, r, card = run("contact-offline-pin", 6000, Pad("1234"))
    assert r.outcome is Outcome.ONLINE_REQUEST and r.cryptogram_type == "ARQC"
    assert r.messages[-1].message is Message.AUTHORISING
    assert r.cryptogram_inputs[0x9F02] == bytes.fromhex("000000006000")  # what the issuer checks the ARQC over
    done = kernel.complete(HostAnswer.approved(arpc=host_arpc(card, r)))
    assert done.outcome is Outcome.APPROVED and done.cryptogram_type == "TC"
    assert done.issuer_authentication == "passed" and done.authorisation_response_code == "00"
    ext = [c for c in done.commands if c[:2] == b"\x00\x82"]
    assert len(ext) == 1 and ext[0][4] == 10 and ext[0][-2:] == b"00"
    second = [c for c in done.commands if c[:2] == b"\x80\xae"][1]
    assert second[2] == 0x50  # TC, CDA signature asked for again
    assert done.oda.result == "passed"
    assert Tsi(done.tsi).is_set(Tsi.ISSUER_AUTHENTICATION_PERFORMED)
    assert card.last_online_atc == card.atc


def test_online_declined_by_the_issuer_asks_for_an_aac() -> None:
    """Book 3 10.9: the issuer declines (05): second GENERATE AC for an AAC; declined."""
    kernel, r, card = run("contact-offline-pin", 6000, Pad("1234"))
    done = kernel.complete(HostAnswer.from_host("05", host_arpc(card, r, "05")))
    assert done.outcome is Outcome.DECLINED and done.cryptogram_type == "AAC"
    assert [c for c in done.commands if c[:2] == b"\x80\xae"][1][2] == 0x00
    assert done.error is not None and "issuer declined (05)" in done.error


def test_wrong_arpc_sets_issuer_authentication_failed_and_the_card_declines() -> None:
    """Book 3 10.9: EXTERNAL AUTHENTICATE refused (6300): TVR issuer authentication failed; the card's AAC."""
    kernel, _r, _card = run("contact-offline-pin", 6000, Pad("1234"))
    bad = bytes(8)
    done = kernel.complete(HostAnswer.approved(arpc=bad))
    assert Tvr(done.tvr).is_set(Tvr.ISSUER_AUTHENTICATION_FAILED)
    assert done.issuer_authentication == "failed"
    assert done.outcome is Outcome.DECLINED and done.cryptogram_type == "AAC"
    assert (done.error or "").endswith(REVERSE)  # the host approved: the terminal must reverse


def test_arpc_in_the_second_generate_ac_when_cdol2_asks_for_91() -> None:
    """Book 3 10.9: 91 in CDOL2: no EXTERNAL AUTHENTICATE, the ARPC goes in the second GENERATE AC."""
    kernel, r, card = run("contact-online-pin", cardholder=Pad())
    assert r.online_pin and Tvr(r.tvr).is_set(Tvr.ONLINE_PIN_ENTERED)
    arpc = host_arpc(card, r)
    done = kernel.complete(HostAnswer.approved(arpc=arpc))
    assert not [c for c in done.commands if c[:2] == b"\x00\x82"]
    second = [c for c in done.commands if c[:2] == b"\x80\xae"][1]
    assert second[5:15] == arpc + b"00"
    assert done.outcome is Outcome.APPROVED and done.issuer_authentication == "passed"


def test_wrong_arpc_in_cdol2_is_declined_by_the_card() -> None:
    """Book 3 10.9: a wrong ARPC in CDOL2's 91: the card answers the TC request with an AAC."""
    kernel, _r, _card = run("contact-online-pin", cardholder=Pad())
    done = kernel.complete(HostAnswer.approved(arpc=bytes(8)))
    assert done.outcome is Outcome.DECLINED and done.cryptogram_type == "AAC"


def test_unable_to_go_online_declines_by_the_default_action_codes() -> None:
    """Book 3 10.7 / 10.9: no host answer: TAC/IAC-Default decide; floor limit exceeded matches: AAC, 8A Z3."""
    kernel, _r, _card = run("contact-offline-pin", 6000, Pad("1234"))
    done = kernel.complete(HostAnswer.unable_to_go_online())
    assert done.outcome is Outcome.DECLINED and done.cryptogram_type == "AAC"
    assert done.authorisation_response_code == "Z3"
    assert done.error is not None and "default action codes" in done.error


def _no_default_tacs(cfg: ContactConfig) -> ContactConfig:
    apps = tuple(dataclasses.replace(a, tac_default=bytes(5)) for a in cfg.applications)
    return dataclasses.replace(cfg, applications=apps)


def test_unable_to_go_online_approves_when_the_default_codes_allow() -> None:
    """Book 3 10.7: neither TAC- nor IAC-Default match: TC with 8A Y3, approved offline."""
    quiet = profile("contact-offline-pin", data={0x9F0D: bytes(5)})
    cfg = _no_default_tacs(config())
    kernel, r, _card = run(quiet, 6000, Pad("1234"), cfg)
    assert r.outcome is Outcome.ONLINE_REQUEST
    done = kernel.complete(HostAnswer.unable_to_go_online())
    assert done.outcome is Outcome.APPROVED and done.authorisation_response_code == "Y3"


def test_an_offline_only_terminal_never_asks_for_an_arqc() -> None:
    """Book 3 10.7: an offline-only terminal uses the default codes at the first GENERATE AC."""
    _k, r, _card = run("contact-offline-pin", 6000, Pad("1234"), config(online_capable=False))
    assert r.outcome is Outcome.DECLINED and r.cryptogram_type == "AAC"
    assert next(c for c in r.commands if c[:2] == b"\x80\xae")[2] == 0x00


def test_an_online_only_card_answering_arqc_to_an_offline_terminal_is_completed_offline() -> None:
    """Book 3 10.8: ARQC at a terminal that cannot go online: completed as "unable to go online"."""
    cfg = _no_default_tacs(config(online_capable=False))
    quiet = profile("contact-scripts", data={0x9F0D: bytes(5)})
    _k, r, _card = run(quiet, cfg=cfg)
    assert r.authorisation_response_code == "Y3" and r.outcome is Outcome.APPROVED


def test_complete_without_an_online_request_is_a_programming_error() -> None:
    """Book 3 10.9 follows an ARQC only: complete() after an offline approval is the caller's bug."""
    kernel, r, _card = run("contact-sda")
    assert r.outcome is Outcome.APPROVED
    with pytest.raises(RuntimeError):
        kernel.complete(HostAnswer.approved())


# --------------------------------------------------------------------------- scripts


def test_issuer_scripts_before_and_after_the_second_generate_ac() -> None:
    """Book 3 10.10: 71 before and 72 after the second GENERATE AC; results in 9F5B."""
    kernel, r, card = run("contact-scripts")
    assert r.outcome is Outcome.ONLINE_REQUEST
    before = script(card, r, 0x71, [(bytes.fromhex("84DA9F14"), b"\x09")], b"\x00\x00\x00\x71")
    after = script(card, r, 0x72, [(bytes.fromhex("841E0000"), b"")], b"\x00\x00\x00\x72")
    done = kernel.complete(HostAnswer.approved(arpc=host_arpc(card, r), scripts=before + after))
    assert done.outcome is Outcome.APPROVED
    assert done.script_results.hex().upper() == "2000000071" + "2000000072"
    assert done.card_data[0x9F5B] == done.script_results
    assert Tsi(done.tsi).is_set(Tsi.SCRIPT_PROCESSING_PERFORMED)
    assert card.put_data == {0x9F14: b"\x09"} and card.blocked
    order = [c[:2].hex().upper() for c in done.commands if c[:2] in (b"\x84\xda", b"\x80\xae", b"\x84\x1e")]
    assert order == ["80AE", "84DA", "80AE", "841E"]
    assert Tvr(done.tvr).names() == ["oda_not_performed"]
    # The blocked application: the next insertion finds nothing to select (Book 1 12.4, 6283).
    card.reset()
    _k, again, _c = run(card)
    assert again.outcome is Outcome.END_APPLICATION and "no application" in (again.error or "")


def test_a_script_with_a_wrong_mac_fails_and_says_which_command() -> None:
    """Book 3 10.10: a command answered other than 90/62/63 ends its script: result 1n, TVR bit."""
    kernel, r, card = run("contact-scripts")
    good = (bytes.fromhex("84DA9F23"), b"\x10")
    bad = script(card, r, 0x71, [good, good], bad_mac=True)
    done = kernel.complete(HostAnswer.approved(arpc=host_arpc(card, r), scripts=bad))
    assert done.script_results.hex().upper() == "1100000001"
    assert Tvr(done.tvr).is_set(Tvr.SCRIPT_FAILED_BEFORE_FINAL_GAC)
    assert not Tvr(done.tvr).is_set(Tvr.SCRIPT_FAILED_AFTER_FINAL_GAC)
    assert done.outcome is Outcome.APPROVED and card.put_data == {}


def test_a_failed_script_after_the_final_generate_ac_sets_its_own_bit() -> None:
    """Book 3 10.10: a 72 script whose second command fails: result 12, TVR byte 5 b5."""
    kernel, r, card = run("contact-scripts")
    second_command_fails = script(
        card, r, 0x72, [(bytes.fromhex("84DA9F14"), b"\x07"), (bytes.fromhex("84DA5A00"), b"\x01")]
    )
    done = kernel.complete(HostAnswer.approved(arpc=host_arpc(card, r), scripts=second_command_fails))
    assert done.script_results.hex().upper() == "1200000001"
    assert Tvr(done.tvr).is_set(Tvr.SCRIPT_FAILED_AFTER_FINAL_GAC)


def test_a_malformed_script_is_reported_failed_without_commands() -> None:
    """Book 3 10.10: a script template that is not well formed is not run and is reported failed."""
    kernel, r, card = run("contact-scripts")
    done = kernel.complete(HostAnswer.approved(arpc=host_arpc(card, r), scripts=bytes.fromhex("7105 9F1802 0001")))
    assert done.script_results.hex().upper() == "1000000000"
    assert not [c for c in done.commands if c[0] == 0x84]


# --------------------------------------------------------------------------- PIN


def test_wrong_pin_then_right_pin() -> None:
    """Book 3 10.5.1: 63C2 is a wrong PIN with two tries left; the cardholder tries again."""
    pad = Pad("0000", "1234")
    _k, r, card = run("contact-offline-pin", cardholder=pad)
    assert pad.asked == [("plaintext", 3, False), ("plaintext", 2, False)]
    assert r.cvm_results.hex().upper() == "410002" and r.outcome is Outcome.APPROVED
    assert card.pin_try_counter == 3


def test_three_wrong_pins_exceed_the_try_limit_and_fall_to_signature() -> None:
    """Book 3 10.5.1: the last try fails: PIN try limit exceeded; the rule's apply-next bit: signature."""
    pad = Pad("0000", "1111", "2222")
    _k, r, card = run("contact-offline-pin", cardholder=pad)
    assert [a[1:] for a in pad.asked] == [(3, False), (2, False), (1, True)]
    assert card.pin_try_counter == 0
    assert Tvr(r.tvr).names() == ["pin_try_limit_exceeded"]
    assert r.cvm_results.hex().upper() == "1E0300" and r.signature_required


def test_blocked_pin_is_not_asked_for() -> None:
    """Book 3 10.5.1: PIN try counter 0 (GET DATA 9F17): no PIN entry, PIN try limit exceeded."""
    pad = Pad("1234")
    _k, r, _card = run("contact-pin-blocked", cardholder=pad)
    assert pad.asked == [] and bytes.fromhex("80CA9F1700") in r.commands
    assert not [c for c in r.commands if c[:2] == b"\x00\x20"]
    assert set(Tvr(r.tvr).names()) == {"pin_try_limit_exceeded", "cardholder_verification_failed"}
    assert r.cvm.value == "failed" and r.outcome is Outcome.ONLINE_REQUEST


def test_pin_bypass_sets_pin_not_entered() -> None:
    """Book 3 10.5.1: PIN entry bypassed: PIN not entered, next rule (signature)."""
    _k, r, _card = run("contact-offline-pin", cardholder=Pad(PinStatus.BYPASS))
    assert Tvr(r.tvr).names() == ["pin_not_entered"] and r.cvm_results.hex().upper() == "1E0300"


@pytest.mark.parametrize("status", [PinStatus.CANCEL, PinStatus.TIMEOUT])
def test_pin_cancel_or_timeout_ends_the_transaction(status: PinStatus) -> None:
    """Book 3 10.5.1: PIN entry cancelled or timed out: the transaction ends before GENERATE AC."""
    _k, r, _card = run("contact-offline-pin", cardholder=Pad(status))
    assert r.outcome is Outcome.END_APPLICATION and status.value in (r.error or "")
    assert not [c for c in r.commands if c[:2] == b"\x80\xae"]


def test_enciphered_pin_under_the_icc_key() -> None:
    """Book 3 10.5.1 / Book 2 7: GET CHALLENGE, VERIFY P2 88 with the PIN block enciphered."""
    _k, r, _card = run("contact-enciphered-pin", cardholder=Pad("1234"))
    assert r.cvm_results.hex().upper() == "440002"
    verify = [c for c in r.commands if c[:2] == b"\x00\x20"]
    assert len(verify) == 1 and verify[0][3] == 0x88 and verify[0][4] == 128
    assert verify[0][5:] == bytes(128)  # recorded without the enciphered PIN block
    assert bytes.fromhex("0084000000") in r.commands


def test_enciphered_pin_under_the_icc_pin_encipherment_key() -> None:
    """Book 2 7.1: the card's ICC PIN Encipherment key (9F2D, 9F2E, 9F2F) is used before the ICC key."""
    base = profile("contact-enciphered-pin")
    records = tuple(
        dataclasses.replace(r, tags=(*r.tags, 0x9F2D, 0x9F2E, 0x9F2F)) if (r.sfi, r.number) == (3, 2) else r
        for r in base.records
    )
    card = ContactCard(dataclasses.replace(base, pin_key="visa-expired", records=records))
    _k, r, _card = run(card, cardholder=Pad("1234"))
    assert 0x9F2D in r.card_data and r.cvm_results.hex().upper() == "440002"
    assert card.pin_try_counter == 3


def test_enciphered_pin_wrong() -> None:
    """Book 3 10.5.1: a wrong enciphered PIN, then the right one, each with a fresh GET CHALLENGE."""
    pad = Pad("9999", "1234")
    _k, r, _card = run("contact-enciphered-pin", cardholder=pad)
    assert [a[1] for a in pad.asked] == [3, 2] and r.cvm_results.hex().upper() == "440002"
    assert len([c for c in r.commands if c[:5] == bytes.fromhex("0084000000")]) == 2


def test_no_cardholder_interface_means_pin_pad_absent() -> None:
    """Book 3 10.5.1: offline PIN with no PIN pad to enter it on: PIN pad not present."""
    _k, r, _card = run("contact-offline-pin")
    assert Tvr(r.tvr).names() == ["pin_pad_absent"] and r.cvm_results.hex().upper() == "1E0300"


def test_online_pin_is_only_recorded() -> None:
    """Book 3 10.5: online PIN: 9F34 result unknown, TVR online PIN entered; no PIN through the card."""
    pad = Pad("1234")
    _k, r, _card = run("contact-online-pin", cardholder=pad)
    assert pad.asked == [] and r.online_pin and r.cvm.value == "online_pin"
    assert r.cvm_results.hex().upper() == "420000"


def test_without_a_pin_pad_online_pin_is_skipped_for_signature() -> None:
    """Book 3 10.5: the terminal does not support online PIN without a PIN pad: the next rule."""
    _k, r, _card = run("contact-online-pin", cfg=config(pin_pad=False))
    assert r.cvm_results.hex().upper() == "1E0300" and not r.online_pin


# --------------------------------------------------------------------------- ODA failures


@pytest.mark.parametrize(
    ("name", "bit", "failure"),
    [
        ("contact-bad-sda", Tvr.SDA_FAILED, "ssad_hash"),
        ("contact-bad-dda", Tvr.DDA_FAILED, "sdad_hash"),
        ("contact-bad-cda", Tvr.CDA_FAILED, "sdad_hash"),
    ],
)
def test_oda_failures_set_their_tvr_bit(name: str, bit: tuple[int, int], failure: str) -> None:
    """Book 3 10.3 / Book 2 5-6: the failed method's TVR bit and the named failure."""
    _k, r, _card = run(name)
    assert Tvr(r.tvr).is_set(bit) and r.oda.failure == failure
    assert Tsi(r.tsi).is_set(Tsi.ODA_PERFORMED)


def test_cda_failure_on_an_arqc_closes_the_card_with_an_aac() -> None:
    """Book 2 6.6: CDA fails on the ARQC: the terminal declines and asks the card for an AAC."""
    _k, r, _card = run("contact-bad-cda", 6000)
    assert r.outcome is Outcome.DECLINED
    genac = [c for c in r.commands if c[:2] == b"\x80\xae"]
    assert [c[2] for c in genac] == [0x90, 0x00]


def test_unknown_ca_key_fails_sda_with_ca_key_missing() -> None:
    """Book 3 10.3 / Book 2 5.2: no CA key for (RID, 8F): SDA failed."""
    from emv.capk import CapkStore

    _k, r, _card = run("contact-sda", cfg=config(capks=CapkStore()))
    assert r.oda.failure == "ca_key_missing" and Tvr(r.tvr).is_set(Tvr.SDA_FAILED)


# --------------------------------------------------------------------------- card trouble


def test_a_card_removed_after_online_approval_asks_for_a_reversal() -> None:
    """Book 3 10.9: the card gone before the second GENERATE AC after an approval: reverse."""
    kernel, r, card = run("contact-offline-pin", 6000, Pad("1234"))

    class Gone:
        def exchange(self, command: bytes) -> bytes:
            from emv.apdu import CardCommunicationError

            raise CardCommunicationError("card removed")

    kernel.transport.inner = Gone()
    done = kernel.complete(HostAnswer.approved(arpc=host_arpc(card, r)))
    assert done.outcome is Outcome.END_APPLICATION and "reverse" in (done.error or "")


def test_gpo_6985_removes_the_application() -> None:
    """Book 3 10.1: GPO 6985: the application is removed from the candidate list and selection resumes."""

    class Refuses(ContactCard):
        def exchange(self, command: bytes) -> bytes:
            if command[:2] == b"\x80\xa8":
                return b"\x69\x85"
            return super().exchange(command)

    _k, r, _card = run(Refuses("contact-dda"))
    assert r.outcome is Outcome.END_APPLICATION and "no application" in (r.error or "")
    assert len([c for c in r.commands if c[:2] == b"\x80\xa8"]) == 1


def test_kernel_entry_points_take_a_plain_transport() -> None:
    """Book 3 end to end on a bare ApduTransport (the kernel records the exchanges itself)."""
    card = ContactCard("contact-dda")
    from tests.contact_rig import txn

    kernel = ContactKernel(card, config(), txn())
    assert kernel.start().outcome is Outcome.APPROVED


def test_host_answer_forms_issuer_authentication_data() -> None:
    """Book 3 10.9: 91 is ARPC and response code (method 1), or ARPC and CSU as the host sent them (method 2)."""
    assert HostAnswer.from_host("05", bytes(range(8))).issuer_authentication_data == bytes(range(8)) + b"05"
    assert HostAnswer.from_host("00", bytes(range(8)), method2=True).issuer_authentication_data == bytes(range(8))
    assert HostAnswer.from_host("00", None).issuer_authentication_data is None
    assert not HostAnswer.from_host("05", None).issuer_approved and HostAnswer.approved().issuer_approved
    with pytest.raises(ValueError):
        HostAnswer.from_host("000", None)


def test_contact_configuration_from_the_terminal_configuration() -> None:
    from emv.config import TerminalConfig
    from emv.contact import ContactConfig
    from tests.contact_rig import capks

    terminal = TerminalConfig.example(capks(), pin_pad=True)
    cfg = ContactConfig.from_terminal(terminal)
    assert [a.aid.hex().upper() for a in cfg.applications] == ["A0000000031010", "A0000000041010"]
    assert cfg.pin_pad and cfg.capks is terminal.capks and cfg.terminal_capabilities()[1] & 0x90 == 0x90
    assert cfg.data_objects()[0x9F1C] == b"TERM0001" and cfg.applications[0].floor_limit == 5000
    _k, r, _card = run("contact-offline-pin", cardholder=Pad("1234"), cfg=cfg)
    assert r.outcome is Outcome.APPROVED


def test_the_online_request_carries_what_the_issuer_verifies_the_arqc_over() -> None:
    """Book 3 10.9: the authorisation request's data: the ARQC verifies over the CDOL1 values and card data."""
    from simulator.cryptograms import CryptogramData, verify_arqc

    _k, r, card = run("contact-scripts")
    tags = {**r.card_data, **r.cryptogram_inputs}
    data = CryptogramData.from_tags(tags)
    p = card.profile
    assert verify_arqc(p.cryptogram_key, p.pan, p.psn, data, r.card_data[0x9F26])
    assert r.to_json()["pan"] == "476173******0150"


# --------------------------------------------------------------------------- a PIN pad that enciphers the PIN itself


class SealingPad(Pad):
    """A separate PIN pad: for an enciphered PIN it gets the card's key and challenge and answers the ciphertext."""

    def __init__(self, *entries: str | PinStatus, cut: int = 0) -> None:
        super().__init__(*entries)
        self.cut = cut  # bytes dropped from the ciphertext (a pad gone wrong)
        self.sealed: list[tuple[PublicKey, bytes, int | None, bool]] = []

    def encipher_pin(
        self, key: PublicKey, challenge: bytes, tries_left: int | None, last_try: bool
    ) -> EncipheredPinEntry:
        self.sealed.append((key, challenge, tries_left, last_try))
        entry = self.entries.pop(0) if self.entries else PinStatus.TIMEOUT
        if isinstance(entry, PinStatus):
            return EncipheredPinEntry(entry)
        data = encipher_offline(bytearray(entry.encode()), key, challenge)
        return EncipheredPinEntry(PinStatus.ENTERED, data[: len(data) - self.cut])


def test_a_pad_that_enciphers_gets_the_cards_key_and_challenge_and_the_kernel_no_digits() -> None:
    """Book 2 7.2 / Book 3 10.5.1: GET CHALLENGE, the pad's ciphertext in VERIFY P2 88, nothing between."""
    pad = SealingPad("9999", "1234")
    assert isinstance(pad, EncipheringCardholder)
    _k, r, card = run("contact-enciphered-pin", cardholder=pad)
    assert r.cvm_results.hex().upper() == "440002" and card.pin_try_counter == 3
    assert pad.asked == []  # no digits were asked for
    icc = load_pki().icc("visa-qvsdc-offline")
    assert [(int.from_bytes(k.modulus, "big"), t, last) for k, _c, t, last in pad.sealed] == [
        (icc.n, 3, False),
        (icc.n, 2, False),
    ]
    assert pad.sealed[0][1] != pad.sealed[1][1]  # a fresh challenge for each try
    for at, command in enumerate(r.commands):
        if command[:2] == b"\x00\x20":
            assert r.commands[at - 1] == bytes.fromhex("0084000000") and command[3] == 0x88


def test_a_ciphertext_not_the_keys_length_is_not_sent_to_the_card() -> None:
    """The pad is not working: offline PIN failed, no VERIFY; the rule's apply-next bit: signature."""
    pad = SealingPad("1234", cut=1)
    _k, r, card = run("contact-enciphered-pin", cardholder=pad)
    assert not [c for c in r.commands if c[:2] == b"\x00\x20"] and card.pin_try_counter == 3
    assert r.cvm_results.hex().upper() == "1E0300" and len(pad.sealed) == 1


def test_a_plaintext_pin_the_terminal_does_not_claim_goes_to_the_next_rule() -> None:
    """Book 3 10.5: a serial PIN pad cannot give the card a clear PIN: 9F33 claims none, the CVM is not
    supported, the rule fails with no TVR bit of its own and 4100's apply-next bit takes signature."""
    cfg = dataclasses.replace(config(), plaintext_pin=False)
    assert cfg.terminal_capabilities()[1] & 0xD0 == 0x50
    pad = SealingPad("1234")
    _k, r, card = run("contact-offline-pin", cardholder=pad, cfg=cfg)
    assert r.cvm_results.hex().upper() == "1E0300" and r.signature_required
    assert Tvr(r.tvr).names() == [] and r.outcome is Outcome.APPROVED
    assert pad.asked == [] and pad.sealed == [] and card.pin_try_counter == 3
    assert r.card_data[0x9F33] == cfg.terminal_capabilities()


def test_an_enciphered_pin_the_pad_cannot_give_goes_to_the_next_rule() -> None:
    """A serial pad that did not say EPIN: no offline PIN claimed at all."""
    cfg = dataclasses.replace(config(), plaintext_pin=False, enciphered_pin=False)
    pad = SealingPad("1234")
    _k, r, _card = run("contact-enciphered-pin", cardholder=pad, cfg=cfg)
    assert r.cvm_results.hex().upper() == "1E0300" and pad.sealed == [] and Tvr(r.tvr).names() == []
