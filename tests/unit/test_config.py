"""emv.config and emv.transaction: validation, round trips, the exception file."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emv.capk import CapkStore
from emv.config import Combination, ConfigError, ExceptionFile, TerminalConfig
from emv.oda import CertificateRevocationList
from emv.transaction import TransactionData, TransactionDataError, bcd, bcd_date, bcd_to_int

PAN = "4761739001010010"


def example_dict() -> dict[str, Any]:
    return TerminalConfig.example(capks=None).to_dict()


# --------------------------------------------------------------------------- TerminalConfig


def test_example_matches_card_profiles_doc() -> None:
    cfg = TerminalConfig.example(capks=None)
    assert (cfg.currency, cfg.currency_exponent, cfg.country_code, cfg.terminal_type) == (978, 2, 276, 22)
    for combo in cfg.combinations:
        assert (combo.transaction_limit, combo.floor_limit, combo.cvm_required_limit) == (100000, 5000, 5000)
    visa, mc = cfg.combinations
    assert (visa.aid.hex().upper(), visa.kernel_id) == ("A0000000031010", 3)
    assert visa.ttq[0] & 0x20  # qVSDC
    assert (mc.aid.hex().upper(), mc.kernel_id) == ("A0000000041010", 2)
    assert mc.tac_online.hex().upper() == "F45084800C"
    assert (mc.card_data_input_capability, mc.security_capability) == (b"\xe0", b"\x08")


def test_round_trip() -> None:
    cfg = TerminalConfig.example(capks=None)
    again = TerminalConfig.from_dict(cfg.to_dict(), capks=None)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()


def test_capks_are_passed_in() -> None:
    store = CapkStore()
    cfg = TerminalConfig.from_dict(example_dict(), capks=store)
    assert cfg.capks is store
    assert isinstance(TerminalConfig.from_dict(example_dict(), capks=None).capks, CapkStore)


def test_data_objects() -> None:
    objs = TerminalConfig.example(capks=None).data_objects()
    assert objs[0x9F35] == b"\x22"
    assert objs[0x9F1A] == bytes.fromhex("0276")
    assert objs[0x9F15] == bytes.fromhex("5411")
    assert len(objs[0x9F16]) == 15 and len(objs[0x9F1C]) == 8 and len(objs[0x9F1E]) == 8
    assert objs[0x9F01] == bytes.fromhex("000000123456")
    assert objs[0x9F1B] == (5000).to_bytes(4, "big")


@pytest.mark.parametrize(
    ("path", "value", "field_name"),
    [
        (("combinations", 0, "ttq"), "3600", "combinations[0].ttq"),
        (("combinations", 1, "aid"), "A000", "combinations[1].aid"),
        (("combinations", 1, "aid"), "XYZ", "combinations[1].aid"),
        (("combinations", 0, "kernel_id"), "3", "combinations[0].kernel_id"),
        (("combinations", 0, "floor_limit"), -1, "combinations[0].floor_limit"),
        (("combinations", 0, "floor_limit"), True, "combinations[0].floor_limit"),
        (("combinations", 0, "status_check"), 1, "combinations[0].status_check"),
        (("combinations", 0, "tac_denial"), "00", "combinations[0].tac_denial"),
        (("combinations", 0, "target_percent"), 120, "combinations[0].target_percent"),
        (("combinations", 0, "extra"), {"ZZ": "00"}, "combinations[0].extra.ZZ"),
        (("combinations", 0, "ttq"), "16004000", "combinations[0].ttq"),  # kernel 3 without qVSDC
        (("terminal_type",), 99, "terminal_type"),
        (("terminal_type",), "22", "terminal_type"),
        (("terminal_capabilities",), "E068", "terminal_capabilities"),
        (("country_code",), 1000, "country_code"),
        (("merchant_category_code",), "54", "merchant_category_code"),
        (("merchant_category_code",), "54AB", "merchant_category_code"),
        (("terminal_id",), "TOO-LONG-ID", "terminal_id"),
        (("online_capable",), "yes", "online_capable"),
        (("exception_file",), [PAN], "exception_file[0]"),
        (("exception_file",), ["sha256:abcd"], "exception_file[0]"),
        (("combinations",), [], "combinations"),
    ],
)
def test_errors_name_the_field(path: tuple[Any, ...], value: Any, field_name: str) -> None:
    d = example_dict()
    target: Any = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        TerminalConfig.from_dict(d, capks=None)
    assert info.value.field == field_name
    assert str(info.value).startswith(field_name + ":")


def test_unknown_and_missing_fields() -> None:
    d = example_dict()
    d["combinations"][0]["tll"] = 5
    with pytest.raises(ConfigError, match=r"combinations\[0\]\.tll: unknown field"):
        TerminalConfig.from_dict(d, capks=None)
    d = example_dict()
    del d["combinations"][1]["kernel_id"]
    with pytest.raises(ConfigError, match=r"combinations\[1\]\.kernel_id: missing"):
        TerminalConfig.from_dict(d, capks=None)
    d = example_dict()
    del d["currency"]
    with pytest.raises(ConfigError, match="currency: missing"):
        TerminalConfig.from_dict(d, capks=None)
    with pytest.raises(ConfigError, match="expected an object"):
        TerminalConfig.from_dict([], capks=None)  # type: ignore[arg-type]


def test_duplicate_combination() -> None:
    d = example_dict()
    d["combinations"].append(copy.deepcopy(d["combinations"][0]))
    with pytest.raises(ConfigError, match=r"combinations\[2\]: AID A0000000031010 with kernel 3"):
        TerminalConfig.from_dict(d, capks=None)


def test_revocation_list_round_trip() -> None:
    d = example_dict()
    d["revocation_list"] = [{"rid": "A000000003", "index": 0x50, "serial": "000123"}]
    cfg = TerminalConfig.from_dict(d, capks=None)
    assert cfg.revocation_list.is_revoked(bytes.fromhex("A000000003"), 0x50, bytes.fromhex("000123"))
    assert cfg.to_dict()["revocation_list"] == d["revocation_list"]
    d["revocation_list"] = [{"rid": "A000000003", "index": 0x50}]
    with pytest.raises(ConfigError, match=r"revocation_list\[0\]\.serial: missing"):
        TerminalConfig.from_dict(d, capks=None)
    crl = CertificateRevocationList([("A000000004", 1, "000001")])
    assert TerminalConfig.from_dict(example_dict(), capks=None, revocation_list=crl).revocation_list is crl


def test_combination_defaults_and_extra() -> None:
    c = Combination.from_dict({"aid": "A0000000041010", "kernel_id": 2, "extra": {"9F7C": "0102"}})
    assert c.extra == {0x9F7C: b"\x01\x02"}
    assert c.floor_limit is None and c.zero_amount_allowed
    assert Combination.from_dict(c.to_dict()) == c
    assert c.rid == bytes.fromhex("A000000004")


# --------------------------------------------------------------------------- PIN pad and PIN claims


def _claims_pin(cfg: TerminalConfig) -> list[str]:
    """Every place a configuration advertises a PIN method (empty: none)."""
    out = [f"9F33 {cfg.terminal_capabilities.hex()}"] if cfg.terminal_capabilities[1] & 0xD0 else []
    for c in cfg.combinations:
        if c.ttq[0] & 0x04 or c.ttq[1] & 0x20:
            out.append(f"{c.label} TTQ {c.ttq.hex()}")
        for value in (c.cvm_capability_cvm_required, c.cvm_capability_no_cvm_required):
            if value is not None and value[0] & 0xD0:
                out.append(f"{c.label} C-2 CVM capability {value.hex()}")
    return out


def test_without_a_pin_pad_no_pin_is_advertised() -> None:
    cfg = TerminalConfig.example(capks=None)
    assert not cfg.pin_pad
    assert _claims_pin(cfg) == []
    visa, mc = cfg.combinations
    assert cfg.terminal_capabilities.hex().upper() == "E028C8"  # signature, no CVM
    assert visa.ttq.hex().upper() == "32004000"  # qVSDC, contact, signature; CDCVM (byte 3)
    assert (mc.cvm_capability_cvm_required, mc.cvm_capability_no_cvm_required) == (b"\x20", b"\x08")
    assert len(cfg.capability_notes) == 3  # 9F33, the VISA TTQ, MasterCard's DF8118


def test_with_a_pin_pad_the_pin_methods_stay() -> None:
    cfg = TerminalConfig.example(capks=None, pin_pad=True)
    assert cfg.pin_pad and cfg.capability_notes == ()
    assert len(_claims_pin(cfg)) == 3
    again = TerminalConfig.from_dict(cfg.to_dict(), capks=None)
    assert again == cfg and again.pin_pad and again.to_dict()["pin_pad"] is True


def test_shipped_configuration_claims_no_pin_and_needs_no_masking() -> None:
    from terminal.settings import load_config, shipped_document

    doc = shipped_document()
    assert "pin_pad" not in doc  # the host's TerminalParameters schema has no such field: default false
    cfg = load_config(doc)
    assert _claims_pin(cfg) == []
    assert cfg.capability_notes == ()  # the file itself says only what the terminal can do


def test_pin_claims_in_a_loaded_file_are_masked_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    from terminal.settings import load_config, shipped_document

    doc = shipped_document()
    doc["terminal_capabilities"] = "E0F8C8"
    doc["combinations"][0]["ttq"] = "36204000"
    doc["combinations"][1]["cvm_capability_cvm_required"] = "60"
    doc["combinations"][1]["extra"] = {"DF8119": "48"}
    with caplog.at_level("WARNING", logger="terminal.settings"):
        cfg = load_config(doc)
    assert _claims_pin(cfg) == []
    assert cfg.combinations[1].extra[0xDF8119] == b"\x08"
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [f"terminal configuration: {note}" for note in cfg.capability_notes]
    assert logged[0] == (
        "terminal configuration: terminal_capabilities: E0F8C8 claims plaintext PIN for ICC verification, "
        "enciphered PIN online, enciphered PIN for offline verification without a PIN pad (pin_pad false); "
        "advertised as E028C8"
    )
    assert any("combinations[0].ttq: 36204000 claims online PIN, offline PIN (contact)" in m for m in logged)
    assert any("combinations[1].cvm_capability_cvm_required: 60 claims enciphered PIN online" in m for m in logged)
    assert any("combinations[1].extra.DF8119: 48 claims PIN" in m for m in logged)
    doc["pin_pad"] = True
    assert load_config(doc).terminal_capabilities.hex().upper() == "E0F8C8"


def test_pin_pad_must_be_a_boolean() -> None:
    d = example_dict()
    d["pin_pad"] = "yes"
    with pytest.raises(ConfigError, match="pin_pad: expected true or false"):
        TerminalConfig.from_dict(d, capks=None)


# --------------------------------------------------------------------------- exception file


def test_exception_file_keeps_no_pan_in_clear() -> None:
    ef = ExceptionFile.from_entries([ExceptionFile.entry_for(PAN)])
    assert ef.contains(PAN) and PAN in ef
    assert ef.contains(PAN + "F")  # F padding as in tag 5A
    assert not ef.contains("4761739001010011")
    assert not ef.contains("")
    cfg = TerminalConfig.example(capks=None, exception_file=ef)
    text = repr(cfg.to_dict())
    assert PAN not in text
    assert TerminalConfig.from_dict(cfg.to_dict(), capks=None).exception_file.contains(PAN)


def test_exception_file_entry_needs_a_pan() -> None:
    with pytest.raises(ValueError, match="not a PAN"):
        ExceptionFile.entry_for("12AB")
    with pytest.raises(ConfigError):
        ExceptionFile.from_entries(["SHA256:" + "a" * 64])  # prefix is lower case


@given(st.from_regex(r"[0-9]{12,19}", fullmatch=True))
def test_exception_file_property(pan: str) -> None:
    ef = ExceptionFile.from_entries([ExceptionFile.entry_for(pan)])
    assert ef.contains(pan)
    assert len(ef) == 1


# --------------------------------------------------------------------------- transaction data


def txn(**kw: Any) -> TransactionData:
    args: dict[str, Any] = {
        "amount": 1234,
        "currency": 978,
        "date": bytes.fromhex("250614"),
        "unpredictable_number": bytes.fromhex("01020304"),
    }
    args.update(kw)
    return TransactionData(**args)


def test_transaction_helpers() -> None:
    t = txn(amount_other=500, transaction_type=0x09, sequence_counter=42)
    assert t.amount_bcd() == bytes.fromhex("000000001234")
    assert t.amount_other_bcd() == bytes.fromhex("000000000500")
    assert t.currency_bcd() == bytes.fromhex("0978")
    assert t.currency_exponent_bcd() == b"\x02"
    assert t.transaction_type_byte() == b"\x09"
    assert t.sequence_counter_bcd() == bytes.fromhex("00000042")
    assert t.on_date() == datetime.date(2025, 6, 14)


@pytest.mark.parametrize(
    ("kw", "field_name"),
    [
        ({"amount": -1}, "amount"),
        ({"amount": 10**12}, "amount"),
        ({"currency": 1000}, "currency"),
        ({"date": bytes.fromhex("251314")}, "date"),
        ({"date": b"\x25\x06"}, "date"),
        ({"date": bytes.fromhex("2A0101")}, "date"),
        ({"time": bytes.fromhex("1A0000")}, "time"),
        ({"unpredictable_number": b"\x00"}, "unpredictable_number"),
        ({"transaction_type": 0x0A}, "transaction_type"),
        ({"random_number": 100}, "random_number"),
        ({"overrides": {0x9F02: "12"}}, "overrides"),
    ],
)
def test_transaction_validation(kw: dict[str, Any], field_name: str) -> None:
    with pytest.raises(TransactionDataError, match=repr(field_name)):
        txn(**kw)


def test_overrides_are_frozen() -> None:
    src = {0x9F37: b"\xaa" * 4}
    t = txn(overrides=src)
    src[0x9F02] = b"\x00"
    assert dict(t.overrides) == {0x9F37: b"\xaa" * 4}
    with pytest.raises(TypeError):
        t.overrides[0x9F02] = b"\x00"  # type: ignore[index]


@given(st.integers(0, 999_999_999_999))
def test_bcd_round_trip(n: int) -> None:
    assert bcd_to_int(bcd(n, 6)) == n


def test_bcd_date_century() -> None:
    assert bcd_date(bytes.fromhex("000101")).year == 2000
    assert bcd_date(bytes.fromhex("500101")).year == 1950
    with pytest.raises(ValueError):
        bcd(100, 1)
    with pytest.raises(ValueError):
        bcd_to_int(b"\x1f")
