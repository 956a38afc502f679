"""terminal.receipts: receipt content per status / flag / CVM, PAN masking, ESC/POS bytes."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, get_args

import pytest

from emv.pan import mask_pan
from terminal.money import MoneyError
from terminal.receipts import Copy, ReceiptData, Status, check_masked_pan, render_escpos, render_text

FULL_PAN = "4761739001010028"
ESC, GS = b"\x1b", b"\x1d"
BOLD_ON, BOLD_OFF = ESC + b"E\x01", ESC + b"E\x00"


def make(**changes: Any) -> ReceiptData:
    base = ReceiptData(
        merchant_name="Corner Shop",
        merchant_address="1 Main Street\n75001 Paris",
        terminal_id="T0000001",
        merchant_id="M000000000001",
        txn_id="01HXYZ-0001",
        kind="sale",
        at=datetime(2024, 5, 1, 12, 30, 5, tzinfo=UTC),
        masked_pan=mask_pan(FULL_PAN),
        application_label="VISA CREDIT",
        aid="a0000000031010",
        amount=1234,
        currency=978,
        cryptogram_type="TC",
        cryptogram="1a2b3c4d5e6f7081",
        tvr="0000008000",
        tsi="E800",
        cvm="no_cvm",
        status="APPROVED",
    )
    return dataclasses.replace(base, **changes)


def both(data: ReceiptData) -> dict[str, str]:
    return {copy: render_text(data, copy) for copy in ("merchant", "customer")}


# -- content ------------------------------------------------------------------------------------


def test_common_content_on_both_copies() -> None:
    for copy, text in both(make()).items():
        assert "Corner Shop" in text
        assert "1 Main Street" in text and "75001 Paris" in text
        assert "M000000000001" in text and "T0000001" in text
        assert "2024-05-01" in text and "12:30:05" in text
        assert "SALE" in text and "APPROVED" in text
        assert "VISA CREDIT" in text and "476173******0028" in text
        assert "A0000000031010" in text  # AID, upper case
        assert "12.34 EUR" in text
        assert "TC" in text and "1A2B3C4D5E6F7081" in text
        assert "01HXYZ-0001" in text
        assert ("MERCHANT COPY" in text) == (copy == "merchant")
        assert ("CUSTOMER COPY" in text) == (copy == "customer")
        assert FULL_PAN not in text


def test_header_is_centred_and_lines_fit_the_width() -> None:
    for width in (32, 42, 48):
        text = render_text(make(cvm="signature"), "merchant", width=width)
        lines = text.splitlines()
        assert all(len(line) <= width for line in lines)
        assert lines[0] == "Corner Shop".center(width).rstrip()


def test_tvr_and_tsi_on_the_merchant_copy_only() -> None:
    texts = both(make())
    assert "TVR" in texts["merchant"] and "0000008000" in texts["merchant"]
    assert "TSI" in texts["merchant"] and "E800" in texts["merchant"]
    assert "TVR" not in texts["customer"] and "0000008000" not in texts["customer"]
    assert "TSI" not in texts["customer"]


STATUSES = ["APPROVED", "DECLINED", "NOT COMPLETED", "REVERSAL PENDING", "REVERSED", "VOID PENDING", "VOIDED"]


def test_the_status_names() -> None:
    assert sorted(get_args(Status)) == sorted(STATUSES)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("kind", ["sale", "refund", "void"])
def test_each_kind_and_status_is_printed(kind: str, status: str) -> None:
    for text in both(make(kind=kind, status=status)).values():
        assert kind.upper() in text
        printed = " ".join(text.split())  # a status may wrap on a narrow receipt
        assert status in printed
        others = set(STATUSES) - {status}
        assert not any(other in printed for other in others)


@pytest.mark.parametrize("width", [24, 32, 42, 48])
@pytest.mark.parametrize("status", STATUSES)
def test_every_status_fits_every_width(status: str, width: int) -> None:
    text = render_text(make(status=status, reason="CANCELLED BY THE CASHIER"), "merchant", width=width)
    assert all(len(line) <= width for line in text.splitlines())
    assert status in " ".join(text.split())


def test_a_cancelled_sale_is_not_declined() -> None:
    data = make(status="NOT COMPLETED", reason="cancelled", cryptogram_type=None, cryptogram=None, cvm="no_cvm")
    for text in both(data).values():
        assert "NOT COMPLETED" in text and "cancelled" in text
        assert "DECLINED" not in text and "APPROVED" not in text


def test_a_lost_answer_is_reversal_pending_not_reversed() -> None:
    text = render_text(make(status="REVERSAL PENDING"), "customer")
    assert "REVERSAL PENDING" in text and "REVERSED" not in text


def test_reason_is_optional_and_cleaned() -> None:
    assert "INSUFFICIENT FUNDS" in render_text(make(status="DECLINED", reason="INSUFFICIENT FUNDS"), "customer")
    assert "\x1b" not in render_text(make(status="DECLINED", reason="\x1bEVIL"), "customer")
    bare = render_text(make(), "customer").splitlines()
    assert bare[bare.index("APPROVED".center(42).rstrip()) + 1].startswith("TC")


@pytest.mark.parametrize("offline", [False, True])
@pytest.mark.parametrize("deferred", [False, True])
def test_offline_and_deferred_marks(offline: bool, deferred: bool) -> None:
    for text in both(make(offline=offline, deferred=deferred)).values():
        assert ("OFFLINE" in text) == offline
        assert ("DEFERRED" in text) == deferred


@pytest.mark.parametrize(
    ("cvm", "pin_entered", "status", "line"),
    [
        ("signature", False, "APPROVED", None),
        ("online_pin", True, "APPROVED", "PIN VERIFIED"),
        ("online_pin", True, "DECLINED", "PIN ENTERED"),  # the issuer did not say it was right
        ("offline_pin", True, "APPROVED", "PIN VERIFIED"),
        ("offline_pin", True, "DECLINED", "PIN VERIFIED"),  # the card verified it
        ("online_pin", False, "APPROVED", None),  # no PIN was entered: say nothing of a PIN
        ("offline_pin", False, "APPROVED", None),
        ("consumer_device", False, "APPROVED", "VERIFIED ON DEVICE"),
        ("no_cvm", False, "APPROVED", None),
    ],
)
@pytest.mark.parametrize("copy", ["merchant", "customer"])
def test_cvm_lines_and_signature_only_on_merchant_copy(
    cvm: str, pin_entered: bool, status: str, line: str | None, copy: Copy
) -> None:
    text = render_text(make(cvm=cvm, pin_entered=pin_entered, status=status), copy)
    for cvm_text in ("PIN VERIFIED", "PIN ENTERED", "VERIFIED ON DEVICE"):
        assert (cvm_text in text) == (cvm_text == line)
    assert ("PIN" in text) == (line is not None and "PIN" in line)
    signature = cvm == "signature" and copy == "merchant"
    assert ("SIGNATURE" in text) == signature
    assert ("X____" in text) == signature


@pytest.mark.parametrize("status", [s for s in STATUSES if s != "APPROVED"])
def test_no_signature_strip_unless_approved(status: str) -> None:
    text = render_text(make(cvm="signature", status=status), "merchant")
    assert "X____" not in text and "SIGNATURE" not in text


def test_pin_cvm_without_pin_entry_is_never_printed_as_pin() -> None:
    """The original defect: an online-PIN CVM recorded for a sale where no PIN was typed."""
    for copy in ("merchant", "customer"):
        for width in (24, 42):
            text = render_text(make(cvm="online_pin"), copy, width=width)
            assert "PIN" not in text
    assert b"PIN" not in render_escpos(make(cvm="online_pin"), "merchant")


@pytest.mark.parametrize("cvm", ["signature", "consumer_device", "no_cvm"])
def test_pin_entered_needs_a_pin_cvm(cvm: str) -> None:
    with pytest.raises(ValueError, match="pin_entered"):
        make(cvm=cvm, pin_entered=True)


def test_duplicate_only_on_reprint() -> None:
    for text in both(make(reprint=True)).values():
        assert "*** DUPLICATE ***" in text
    for text in both(make(reprint=False)).values():
        assert "DUPLICATE" not in text


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "void", "status": "VOIDED"},
        {"kind": "refund"},
        {"status": "NOT COMPLETED"},
        {"status": "REVERSAL PENDING"},
        {"offline": True, "deferred": True},
        {"cvm": "signature"},
        {"approval_code": "A1B2C3", "host_reference": "412345678901", "response_code": "00"},
        {"reason": "second copy"},
    ],
)
def test_nothing_but_the_reprint_flag_makes_a_duplicate(changes: dict[str, Any]) -> None:
    data = make(**changes)
    for copy in ("merchant", "customer"):
        assert "DUPLICATE" not in render_text(data, copy)
        assert b"DUPLICATE" not in render_escpos(data, copy)
        assert "*** DUPLICATE ***" in render_text(dataclasses.replace(data, reprint=True), copy)


def test_approval_code_host_reference_and_response_code() -> None:
    text = render_text(
        make(approval_code="A1B2C3", host_reference="412345678901", response_code="00"), "customer"
    )
    assert "APPROVAL CODE" in text and "A1B2C3" in text
    assert "HOST REF" in text and "412345678901" in text
    assert "RESPONSE CODE" in text and "00" in text
    bare = render_text(make(), "customer")
    assert "APPROVAL CODE" not in bare and "HOST REF" not in bare and "RESPONSE CODE" not in bare


def test_declined_with_aac_and_response_code() -> None:
    text = render_text(make(status="DECLINED", cryptogram_type="AAC", response_code="51"), "merchant")
    assert "DECLINED" in text and "AAC" in text and "51" in text


def test_no_cryptogram() -> None:
    text = render_text(make(cryptogram_type=None, cryptogram=None), "merchant")
    assert "1A2B3C4D5E6F7081" not in text
    assert not re.search(r"^(TC|ARQC|AAC)\b", text, re.MULTILINE)


def test_empty_address_prints_no_blank_header_line() -> None:
    lines = render_text(make(merchant_address=""), "customer").splitlines()
    assert lines[0].strip() == "Corner Shop"
    assert lines[1].startswith("MID ")


def test_time_in_the_given_timezone_or_as_is() -> None:
    data = make(at=datetime(2024, 5, 1, 23, 30, tzinfo=UTC))
    assert "23:30:00" in render_text(data, "customer")
    local = render_text(data, "customer", tz=timezone(timedelta(hours=2)))
    assert "2024-05-02" in local and "01:30:00" in local


def test_amount_formatting_per_currency() -> None:
    assert "1500 JPY" in render_text(make(amount=1500, currency=392), "customer")
    assert "1.500 KWD" in render_text(make(amount=1500, currency=414), "customer")


def test_control_characters_from_card_data_are_not_printed() -> None:
    data = make(application_label="VISA\x1b@\x1dV\x00EVIL", merchant_name="Shop\x1bE")
    text = render_text(data, "merchant")
    assert "\x1b" not in text and "\x1d" not in text and "\x00" not in text
    raw = render_escpos(data, "merchant")
    assert b"VISA @ V EVIL" in raw
    assert raw.count(GS + b"V") == 1  # only the real cut


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pan",
    [
        FULL_PAN,
        "476173900101",  # 12 digits
        "4761739001010028FFF",
        "xx4761739001010028",
        "4761 7390 0101 0028",  # spaced: more than 6 + 4 digits visible
        "4761739*****0028",  # 7 first digits + 4 last
    ],
)
def test_full_pan_refused(pan: str) -> None:
    with pytest.raises(ValueError, match=r"PAN|digits"):
        make(masked_pan=pan)
    with pytest.raises(ValueError):
        check_masked_pan(pan)


@pytest.mark.parametrize("pan", ["476173******0028", "476173*********1234", "************0028", "****", ""])
def test_masked_pans_accepted(pan: str) -> None:
    assert check_masked_pan(pan) == pan
    assert pan in render_text(make(masked_pan=pan), "customer")


def test_full_pan_refused_at_render_even_if_forced_in() -> None:
    data = make()
    object.__setattr__(data, "masked_pan", FULL_PAN)
    with pytest.raises(ValueError):
        render_text(data, "customer")
    with pytest.raises(ValueError):
        render_escpos(data, "customer")


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "preauth"},
        {"status": "PENDING"},
        {"cvm": "offline_pin_maybe"},
        {"cryptogram_type": "XYZ"},
        {"at": datetime(2024, 5, 1, 12, 0)},  # naive
        {"amount": -1},
        {"aid": "A00000000G"},
        {"tvr": "zz"},
        {"cryptogram": "not hex"},
    ],
)
def test_invalid_data_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make(**changes)


def test_unknown_currency_refused() -> None:
    with pytest.raises(MoneyError):
        make(currency=999)


def test_bad_copy_or_width_refused() -> None:
    with pytest.raises(ValueError):
        render_text(make(), "bank")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        render_text(make(), "customer", width=10)


# -- ESC/POS ------------------------------------------------------------------------------------


def test_escpos_commands_and_text() -> None:
    raw = render_escpos(make(cvm="signature", offline=True), "merchant")
    assert raw.startswith(ESC + b"@")  # initialise
    assert raw.endswith(ESC + b"d\x06" + GS + b"V\x00")  # feed 6 lines, full cut, last
    assert GS + b"(k" in raw  # QR store / print commands
    assert GS + b"(k\x0e\x001P0" + b"01HXYZ-0001" in raw  # the txn id stored in the QR code
    assert GS + b"(k\x03\x001Q0" in raw  # print the stored QR code
    assert BOLD_ON in raw and BOLD_OFF in raw
    assert raw.rfind(BOLD_ON) < raw.rfind(BOLD_OFF)
    assert ESC + b"!\x30" in raw  # double width and height (status)
    assert ESC + b"a\x01" in raw  # centred header
    for text in (
        b"Corner Shop",
        b"476173******0028",
        b"12.34 EUR",
        b"APPROVED",
        b"OFFLINE",
        b"MERCHANT COPY",
    ):
        assert text in raw
    assert FULL_PAN.encode() not in raw


def test_escpos_amount_and_status_are_bold_and_status_big() -> None:
    raw = render_escpos(make(), "customer")
    amount_at = raw.index(b"AMOUNT")
    assert raw.rfind(BOLD_ON, 0, amount_at) > raw.rfind(BOLD_OFF, 0, amount_at)
    status_at = raw.index(b"APPROVED")
    before = raw[:status_at]
    assert before.rfind(ESC + b"!\x30") > before.rfind(ESC + b"!\x00\x1b!\x00\x1b!\x00")
    assert before.rfind(BOLD_ON) > before.rfind(BOLD_OFF)


def test_escpos_without_qr() -> None:
    raw = render_escpos(make(), "customer", qr=False)
    assert GS + b"(k" not in raw
    assert raw.endswith(GS + b"V\x00")


def test_escpos_is_deterministic_and_differs_by_copy() -> None:
    data = make(cvm="signature")
    assert render_escpos(data, "merchant") == render_escpos(data, "merchant")
    assert render_escpos(data, "merchant") != render_escpos(data, "customer")
    assert b"TVR" not in render_escpos(data, "customer")
    assert b"SIGNATURE" not in render_escpos(data, "customer")


def test_escpos_non_ascii_merchant_name() -> None:
    raw = render_escpos(make(merchant_name="Café Zoë"), "customer")
    assert raw == render_escpos(make(merchant_name="Café Zoë"), "customer")
    assert b"Caf" in raw


def test_import_does_not_load_escpos() -> None:
    import subprocess
    import sys

    code = "import sys, terminal.receipts; print('escpos' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"


# -- electronic cash (kernel C-7) ----------------------------------------------------------------


def test_ec_balance_after_the_sale_on_both_copies() -> None:
    data = make(currency=156, amount=10000, ec_balance=40000, offline_spending_amount=40000, offline=True)
    for copy, text in both(data).items():
        lines = text.splitlines()
        assert "EC BALANCE                      400.00 CNY" in lines, (copy, text)
        assert not any("AVAILABLE OFFLINE" in line for line in lines)  # the balance says it already
    assert "EC BALANCE" not in render_text(make(), "customer")
    assert b"EC BALANCE" in render_escpos(data, "customer")


def test_available_offline_spending_amount_when_there_is_no_ec_balance() -> None:
    text = render_text(make(currency=156, offline_spending_amount=25050), "customer", width=32)
    assert "AVAILABLE OFFLINE     250.50 CNY" in text.splitlines()


@pytest.mark.parametrize("bad", [-1, True, "400"])
def test_ec_amounts_are_non_negative_integers(bad: Any) -> None:
    with pytest.raises(ValueError, match="ec_balance"):
        make(ec_balance=bad)
    with pytest.raises(ValueError, match="offline_spending_amount"):
        make(offline_spending_amount=bad)
