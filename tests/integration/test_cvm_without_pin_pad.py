"""The CVM shown is the CVM performed (issue 9): a card that asks for online PIN, through the shipped terminal.

The defect: a sale on visa-qvsdc-online (CTQ "online PIN required") at 60.00 was
approved with no PIN entered, TVR "online PIN entered", and a receipt saying
PIN VERIFIED.  The shipped configuration has no PIN pad, so it advertises no PIN
method, the kernels perform none, and nothing says a PIN was entered: not the
tap's JSON, not the TVR, not a receipt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from emv.entry_point import process
from emv.outcome import CvmPerformed, Message, Outcome, TransactionResult
from emv.transaction import TransactionData
from emv.tvr import Tvr
from terminal import registry
from terminal.receipts import Cvm, ReceiptData, render_escpos, render_text
from terminal.settings import load_default_config

POSTERM = str(Path(sys.executable).with_name("posterm"))
PIN_CARD = "visa-qvsdc-online"  # CTQ 8000: online PIN required, nothing else offered
EUR = 978


def _tap(profile: str, amount: int) -> TransactionResult:
    """One tap through the in-process reader and the shipped configuration."""
    reader = registry.open_reader(f"sim:card={profile}")
    session = reader.wait_for_card(timeout=1)
    try:
        txn = TransactionData(amount, EUR, bytes.fromhex("261121"), bytes.fromhex("1A2B3C4D"))
        return process(session, load_default_config(), txn)
    finally:
        session.close()
        reader.close()


def _receipt(result: TransactionResult, status: str) -> ReceiptData:
    """A receipt of what the kernel reports, built as plainly as possible (no PIN pad: no PIN entered)."""
    cvm = result.cvm.value if result.cvm.value in get_args(Cvm) else "no_cvm"
    return ReceiptData(
        merchant_name="posterm test shop",
        merchant_address="",
        terminal_id="TERM0001",
        merchant_id="POSTERM0000001",
        txn_id="t-1",
        kind="sale",
        at=datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
        masked_pan=result.masked_pan or "",
        application_label=result.application_label or "",
        aid=(result.aid or b"").hex(),
        amount=6000,
        currency=EUR,
        cryptogram_type=result.cryptogram_type,
        cryptogram=result.cryptogram.hex() if result.cryptogram else None,
        tvr=result.tvr.hex(),
        tsi=result.tsi.hex(),
        cvm=cvm,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
    )


def _no_pin_anywhere(result: TransactionResult) -> None:
    assert result.cvm not in (CvmPerformed.ONLINE_PIN, CvmPerformed.OFFLINE_PIN)
    assert result.to_json()["cvm"] == result.cvm.value
    assert not Tvr(result.tvr).is_set(Tvr.ONLINE_PIN_ENTERED)
    assert Message.ENTER_PIN not in [m.message for m in result.messages]


def test_the_shipped_terminal_advertises_no_pin() -> None:
    cfg = load_default_config()
    assert not cfg.pin_pad
    assert not cfg.terminal_capabilities[1] & 0xD0
    for combo in cfg.combinations:
        assert not combo.ttq[0] & 0x04 and not combo.ttq[1] & 0x20
        for value in (combo.cvm_capability_cvm_required, combo.cvm_capability_no_cvm_required):
            assert value is None or not value[0] & 0xD0


def test_a_card_requiring_online_pin_is_sent_to_insert_not_approved_with_a_pin() -> None:
    result = _tap(PIN_CARD, 6000)
    _no_pin_anywhere(result)
    assert result.outcome is Outcome.TRY_ANOTHER_INTERFACE
    assert result.cvm is CvmPerformed.FAILED
    assert Tvr(result.tvr).is_set(Tvr.CARDHOLDER_VERIFICATION_FAILED)
    assert result.messages[-1].message is Message.INSERT_CARD
    assert result.error is not None and "no PIN pad" in result.error
    gpo = next(c for c in result.commands if c[:2] == b"\x80\xa8")
    assert not gpo[7] & 0x04  # the TTQ the card saw claimed no online PIN
    for status in ("NOT COMPLETED", "DECLINED"):
        data = _receipt(result, status)
        for copy in ("merchant", "customer"):
            assert "PIN" not in render_text(data, copy)
            assert b"PIN" not in render_escpos(data, copy)


def test_below_the_cvm_limit_the_same_card_needs_no_cvm() -> None:
    result = _tap(PIN_CARD, 1234)
    _no_pin_anywhere(result)
    assert (result.outcome, result.cvm) == (Outcome.ONLINE_REQUEST, CvmPerformed.NO_CVM)


def test_a_cvm_list_offering_online_pin_moves_on_to_signature() -> None:
    result = _tap("mc-cda-online", 6000)
    _no_pin_anywhere(result)
    assert (result.outcome, result.cvm) == (Outcome.ONLINE_REQUEST, CvmPerformed.SIGNATURE)
    assert result.card_data[0x9F34] == bytes.fromhex("1E0300")
    merchant = render_text(_receipt(result, "APPROVED"), "merchant")
    assert "PIN" not in merchant and "CARDHOLDER SIGNATURE" in merchant


def test_emv_tap_json_says_what_was_performed() -> None:
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    proc = subprocess.run(
        [POSTERM, "emv", "tap", "--card", PIN_CARD, "--amount", "60.00"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.stdout, proc.stderr
    result = json.loads(proc.stdout)
    assert result["cvm"] == "failed"
    assert result["outcome"] == "try_another_interface"
    assert not bytes.fromhex(result["tvr"])[2] & 0x04  # TVR byte 3 b3: online PIN entered
