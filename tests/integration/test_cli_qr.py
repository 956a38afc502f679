"""``posterm qr decode`` and ``posterm qr mpm`` as a user runs them: real processes, a real data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from emv.qr_cpm import EXAMPLE_1, EXAMPLE_2
from emv.qr_mpm import ANNEX_B, decode

ROOT = Path(__file__).resolve().parents[2]


def posterm(*args: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTERM_")}
    env.update(PYTHONPATH=str(ROOT), HOME=str(home), XDG_DATA_HOME=str(home / "data"),
               POSTERM_DATA_DIR=str(home / "terminal"))  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "terminal.cli", *args], input=stdin, capture_output=True, text=True, env=env,
        timeout=60, check=False,
    )  # fmt: skip


def one_line_error(proc: subprocess.CompletedProcess[str], status: int = 2) -> str:
    assert proc.returncode == status, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posterm: error: ") and "Traceback" not in proc.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------ decode


def test_decode_mpm_prints_every_field(tmp_path: Path) -> None:
    proc = posterm("qr", "decode", ANNEX_B, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["format"] == "emv-mpm" and obj["crc"] == "A13A" and obj["point_of_initiation_method"] == "dynamic"
    assert obj["merchant_name"] == "BEST TRANSPORT" and obj["transaction_amount"] == "23.72"
    assert obj["merchant_account_templates"]["29"] == {"gui": "D15600000000", "fields": {"05": "A93FO3230Q"}}
    assert obj["language_template"]["merchant_name"] == "最佳运输"
    assert obj["additional_data"]["consumer_data_request"] == "ME"


def test_decode_reads_standard_input(tmp_path: Path) -> None:
    proc = posterm("qr", "decode", "-", home=tmp_path, stdin=ANNEX_B + "\r\n")
    assert proc.returncode == 0 and json.loads(proc.stdout)["merchant_city"] == "BEIJING"


def test_decode_cpm_masks_the_pan(tmp_path: Path) -> None:
    for payload in (EXAMPLE_1, EXAMPLE_2):
        proc = posterm("qr", "decode", payload, home=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "1234567890123458" not in proc.stdout and "CARDHOLDER" not in proc.stdout
        obj = json.loads(proc.stdout)
        assert obj["format"] == "emv-cpm" and obj["applications"][0]["pan"] == "123456******3458"
    apps = obj["applications"]
    assert [a["aid"] for a in apps] == ["A0000000555555", "A0000000666666"]
    assert {o["tag"]: o.get("text") for o in apps[1]["objects"]}["50"] == "Product2"
    assert obj["common_data"]["transparent"].startswith("9F100706010A03000000")


def test_decode_cpm_with_terminal_aids_shows_the_poi_processing(tmp_path: Path) -> None:
    proc = posterm("qr", "decode", EXAMPLE_2, "--aid", "A000000333", "--aid", "A000000066", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    poi = json.loads(proc.stdout)["poi"]
    assert poi["aid"] == "A0000000666666" and poi["pan"] == "123456******3458" and poi["data_format"] == "0010"
    assert [o["tag"] for o in poi["objects"]] == ["4F", "50", "5A", "5F20", "5F2D"]
    refused = posterm("qr", "decode", EXAMPLE_2, "--aid", "A000000333", home=tmp_path)
    assert "NoApplication: no application of the code is one the terminal accepts" in one_line_error(refused)


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (ANNEX_B[:-4] + "A13B", "CrcError: CRC A13B is wrong, the payload's is A13A (ID 63, character 240)"),
        (ANNEX_B[:-8], "CrcError: the payload has no CRC (ID 63, character 240)"),
        ("0002010102120102116304ABCD", "DuplicateObject: ID 01 is given twice in the payload (ID 01, character 12)"),
        ("hQVDUFYwMWE!", "MalformedCode: the payload is not base64"),
        ("hQVDUFYwMg==", "UnsupportedVersion: payload format indicator 'CPV02' is not 'CPV01' (tag 85 at byte 0)"),
        ("https://example.com/pay", "not an EMV QR payload"),
    ],
)
def test_decode_errors_are_named_in_one_line(tmp_path: Path, payload: str, named: str) -> None:
    assert named in one_line_error(posterm("qr", "decode", payload, home=tmp_path))


def test_a_card_number_quoted_by_an_error_is_masked(tmp_path: Path) -> None:
    from emv.qr_mpm import with_crc

    payload = with_crc("000201" + "0204ABCD" + "52164761739001010010" + "53039785802DE5901S6001B")
    line = one_line_error(posterm("qr", "decode", payload, home=tmp_path))
    assert "InvalidValue" in line and "(ID 52, character 14)" in line
    assert "4761739001010010" not in line and "476173******0010" in line


def test_decode_error_as_json(tmp_path: Path) -> None:
    proc = posterm("qr", "decode", ANNEX_B[:-1] + "0", "--json", home=tmp_path)
    one_line_error(proc)
    obj = json.loads(proc.stdout)
    assert obj["exit_status"] == 2 and "CrcError" in obj["error"]


# --------------------------------------------------------------------------------------------- mpm


def test_mpm_prints_a_valid_dynamic_code_and_writes_its_png(tmp_path: Path) -> None:
    from pyzbar import pyzbar

    png = tmp_path / "code.png"
    proc = posterm("qr", "mpm", "--amount", "12.34", "--png", str(png), home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    payload, reference = lines[-2], lines[-1].removeprefix("reference ")
    assert any("█" in line for line in lines[:-2])  # the drawing
    code = decode(payload)
    assert (code.point_of_initiation, code.amount, code.currency, code.country) == ("12", "12.34", "978", "DE")
    assert (code.merchant_category_code, code.merchant_name, code.merchant_city) == ("5411", "posterm test shop",
                                                                                      "Berlin")  # fmt: skip
    assert code.additional_data is not None
    assert code.additional_data.reference_label == reference and code.additional_data.terminal_label == "TERM0001"
    wallet = code.template("26")
    assert wallet is not None and wallet.gui == "org.posterm.wallet" and wallet.field("01") == "POSTERM0000001"
    (found,) = pyzbar.decode(Image.open(png))
    assert found.data.decode("utf-8") == payload and found.type == "QRCODE"


def test_mpm_json_and_options(tmp_path: Path) -> None:
    proc = posterm("qr", "mpm", "--amount", "8", "--currency", "156", "--reference", "ORDER-42", "--json",
                   home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["transaction_currency"] == "156" and obj["transaction_amount"] == "8.00"
    assert obj["reference"] == "ORDER-42" and obj["additional_data"]["reference_label"] == "ORDER-42"
    assert decode(obj["payload"]).amount == "8.00"


def test_mpm_static_code_has_no_amount_nor_reference(tmp_path: Path) -> None:
    proc = posterm("qr", "mpm", "--static", "--json", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    code = decode(json.loads(proc.stdout)["payload"])
    assert code.point_of_initiation == "11" and code.amount is None
    assert code.additional_data is not None and code.additional_data.reference_label is None


def test_mpm_takes_the_enrolled_identity_and_the_qr_settings(tmp_path: Path) -> None:
    data = tmp_path / "terminal"
    (data / "host-link").mkdir(parents=True)
    (data / "host-link" / "enrolment.json").write_text(json.dumps({"terminal_id": "T0000042", "merchant_id": "M42"}))
    parameters = data / "parameters" / "v000001"
    parameters.mkdir(parents=True)
    doc = json.loads((ROOT / "terminal" / "data" / "terminal.json").read_text(encoding="utf-8"))
    doc["qr"] = {"merchant_name": "上海测试商店", "merchant_city": "SHANGHAI", "country": "CN",
                 "accounts": {"15": "2551000000520446104540000000123"}}  # fmt: skip
    doc["capk_files"] = [str(ROOT / "terminal" / "data" / name) for name in doc["capk_files"]]
    (parameters / "terminal.json").write_text(json.dumps(doc), encoding="utf-8")
    (data / "parameters" / "current.json").write_text(json.dumps({"version": 1, "dir": "v000001"}))
    proc = posterm("qr", "mpm", "--amount", "1", "--json", "--data-dir", str(data), home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    code = decode(json.loads(proc.stdout)["payload"])
    assert code.merchant_name == "上海测试商店" and code.country == "CN" and code.templates == ()
    assert code.account("15") == "2551000000520446104540000000123"
    assert code.additional_data is not None and code.additional_data.terminal_label == "T0000042"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ((), "needs --amount"),
        (("--amount", "0"), "more than zero"),
        (("--amount", "1.234"), "more than 2 decimals"),
        (("--amount", "12,34"), "is not an amount"),
        (("--amount", "1", "--currency", "XYZ"), "unknown currency"),
        (("--amount", "1", "--reference", "R" * 26), "(ID 62.05"),
        (("--amount", "1", "--png", "/nonexistent-folder/x.png"), "does not exist"),
    ],
)
def test_mpm_bad_input(tmp_path: Path, args: tuple[str, ...], named: str) -> None:
    assert named in one_line_error(posterm("qr", "mpm", *args, home=tmp_path))


# ------------------------------------------------------------------------------------------ print


def test_the_stores_static_code_is_printed_for_the_counter_and_reads_back(tmp_path: Path) -> None:
    """``qr mpm --static --print URL``: the printed code (PNG of the job, as the paper shows it) decodes with zbar."""
    from pyzbar.pyzbar import decode as zbar_decode

    from simulator.net_printer import VirtualNetworkPrinter

    printer = VirtualNetworkPrinter(out_dir=tmp_path / "jobs").start()
    try:
        proc = posterm("qr", "mpm", "--static", "--print", printer.url, "--json", home=tmp_path)
        assert proc.returncode == 0, proc.stderr
        shown = json.loads(proc.stdout)
        assert shown["point_of_initiation"] == "11" and shown["printed_on"] == printer.url
        pictures = sorted((tmp_path / "jobs").glob("*.png"))
        assert len(pictures) == 1
        read = [symbol.data.decode() for symbol in zbar_decode(Image.open(pictures[0]))]
        assert read == [shown["payload"]]
    finally:
        printer.stop()


def test_printing_a_code_with_no_printer_or_a_dead_one_is_one_line(tmp_path: Path) -> None:
    unconfigured = one_line_error(posterm("qr", "mpm", "--static", "--print", home=tmp_path))
    assert "no receipt printer is configured" in unconfigured
    assert "--print" in one_line_error(posterm("qr", "mpm", "--static", "--print", "bogus:x", home=tmp_path))
    dead = one_line_error(posterm("qr", "mpm", "--static", "--print", "escpos:net:127.0.0.1:1", home=tmp_path), 3)
    assert "the code was not printed" in dead
