"""Kernel C-7 (UnionPay QuickPass) through ``posterm`` as a cashier runs it (real subprocesses).

The acceptance lines of issue 15: an electronic cash sale approved offline
with no host, whose receipt shows the balance after the sale; a debit sale
approved online by the in-process host, which verifies the card's cryptogram
with the simulated issuer's keys; and a recorded UnionPay tap that replays.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli import run as run_emv
from tests.integration.test_terminal_cli import declined_json, run


def _sale_json(data_dir: Path, *args: str) -> dict[str, object]:
    proc = run(data_dir, "sale", *args, "--json")
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def test_ec_sale_approves_offline_with_no_host_and_the_receipt_shows_the_balance(tmp_path: Path) -> None:
    sale = _sale_json(tmp_path, "100.00", "--card", "unionpay-ec", "--currency", "156", "--host", "none")
    assert sale["approved"] is True and sale["offline"] is True and sale["state"] == "offline_approved"
    assert (sale["amount"], sale["currency"], sale["scheme"]) == (10000, 156, "unionpay")
    assert sale["ec_balance"] == 20000  # 300.00 CNY on the card, 100.00 spent
    receipt = run(tmp_path, "receipt", str(sale["txn_id"]))
    assert receipt.returncode == 0, receipt.stderr
    lines = receipt.stdout.splitlines()
    assert any(line.startswith("EC BALANCE") and line.endswith("200.00 CNY") for line in lines), receipt.stdout
    assert any(line.strip() == "OFFLINE" for line in lines)
    assert "6214830001010031" not in receipt.stdout and "621483******0031" in receipt.stdout


def test_ec_card_taken_away_after_its_debit_is_charged_once(tmp_path: Path) -> None:
    """unionpay-ec-torn leaves the field after debiting at GPO; the terminal asks for it again, sends the same
    GPO (its torn EC log, emv.c7_torn) and the card answers without a second debit: 300.00 - 100.00 once."""
    sale = _sale_json(tmp_path, "100.00", "--card", "unionpay-ec-torn", "--currency", "156", "--host", "none")
    assert sale["approved"] is True and sale["state"] == "offline_approved"
    assert sale["ec_balance"] == 20000


def test_ec_sale_in_text_says_the_balance_after_the_sale(tmp_path: Path) -> None:
    proc = run(tmp_path, "sale", "100.00", "--card", "unionpay-ec", "--currency", "CNY", "--host", "none")
    assert proc.returncode == 0, proc.stderr
    assert "approved (offline)" in proc.stdout
    assert "electronic cash balance after the sale: 200.00 CNY" in proc.stdout


def test_ec_sale_over_the_balance_is_declined_and_says_why(tmp_path: Path) -> None:
    sale = declined_json(tmp_path, "sale", "400.00", "--card", "unionpay-ec", "--currency", "156", "--host", "none")
    assert sale["state"] == "declined" and sale["ec_balance"] is None
    proc = run(tmp_path, "sale", "400.00", "--card", "unionpay-ec", "--currency", "156", "--host", "none")
    assert proc.returncode == 1
    assert "the card's electronic cash balance (300.00 CNY) is short of the amount" in proc.stdout
    receipt = run(tmp_path, "receipt", str(sale["txn_id"]))
    assert "DECLINED" in receipt.stdout and "EC BALANCE" not in receipt.stdout


def test_debit_sale_approves_online_with_the_in_process_host(tmp_path: Path) -> None:
    sale = _sale_json(tmp_path, "100.00", "--card", "unionpay-debit", "--currency", "156")
    assert sale["approved"] is True and sale["offline"] is False and sale["state"] == "approved"
    assert sale["response_code"] == "00" and sale["approval_code"]
    assert sale["masked_pan"] == "621483******0015" and sale["ec_balance"] is None


def test_credit_sale_approves_offline_by_qpboc_without_an_ec_line(tmp_path: Path) -> None:
    sale = _sale_json(tmp_path, "100.00", "--card", "unionpay-credit", "--currency", "156", "--host", "none")
    assert sale["approved"] is True and sale["offline"] is True and sale["ec_balance"] is None
    receipt = run(tmp_path, "receipt", str(sale["txn_id"]))
    assert "EC BALANCE" not in receipt.stdout and "TC" in receipt.stdout


def test_a_recorded_unionpay_tap_replays_to_the_same_outcome(tmp_path: Path) -> None:
    proc = run_emv(
        "emv", "tap", "--card", "unionpay-ec", "--amount", "100.00", "--currency", "156", "--un", "1A2B3C4D",
        "--date", "261121", "--record", "trace.json", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    live = json.loads(proc.stdout)
    assert live["kernel"] == 7 and live["outcome"] == "approved"
    assert live["electronic_cash"]["balance"] == 20000 and live["electronic_cash"]["balance_source"] == "read"
    again_proc = run_emv("emv", "replay", "trace.json", cwd=tmp_path)
    assert again_proc.returncode == 0, again_proc.stderr
    again = json.loads(again_proc.stdout)
    for key in ("outcome", "cryptogram_type", "cryptogram", "tvr", "oda", "commands", "electronic_cash"):
        assert again[key] == live[key], key


def test_online_pin_on_a_unionpay_card_only_with_a_pin_pad(tmp_path: Path) -> None:
    """Over the CVM limit the debit card's CTQ requires online PIN: with a PIN pad the issuer verifies it;
    without one the card is sent to the chip reader, and nothing is charged."""
    pad = ("--pin-pad", "sim:pin=1234")
    with_pad = _sale_json(tmp_path, "600.00", "--card", "unionpay-debit", "--currency", "156", *pad)
    assert with_pad["approved"] is True and with_pad["response_code"] == "00"
    assert "PIN verified by the issuer" in str(with_pad["message"])
    proc = run(tmp_path, "sale", "600.00", "--card", "unionpay-debit", "--currency", "156", "--pin-pad", "none",
               "--json")  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    without = json.loads(proc.stdout)
    assert without["approved"] is False and without["state"] == "cancelled"
    assert "requires online PIN and this reader has no PIN pad" in without["message"]
