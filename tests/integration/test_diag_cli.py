"""``posterm devices``, ``posterm diag`` and ``posterm diag export`` as a technician runs them (the console script).

Real data directories, the simulator's ``sim:`` reader and the memory host;
the host-link test enrols with the simulated acquiring host over HTTPS with
mutual TLS; the scanner and printer tests use the real ``serial:`` and
``escpos:`` adapters against the simulator's pty scanner and port-9100
printer when those are installed (skipped, saying so, when they are not).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import profile_pans

POSTERM = str(Path(sys.executable).with_name("posterm"))
PANS = profile_pans()
TESTS = ["reader", "scanner", "printer", "host_link", "saf_queue", "journal", "configuration", "keys"]


def run(data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTERM_MASTER_KEY", "POSTERM_DATA_DIR")}
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    return subprocess.run(
        [POSTERM, *args, "--data-dir", str(data_dir)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def no_pan(text: str) -> None:
    for name, pan in PANS.items():
        assert pan not in text, name


def diag_json(data_dir: Path, *args: str, code: int = 0) -> dict[str, Any]:
    proc = run(data_dir, "diag", "--json", *args)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr == "", proc.stderr
    no_pan(proc.stdout)
    out: dict[str, Any] = json.loads(proc.stdout)  # one JSON object
    assert [t["name"] for t in out["tests"]] == TESTS
    for test in out["tests"]:
        assert test["status"] in ("pass", "fail", "skip") and test["passed"] in (True, False, None)
        assert {"pass": True, "fail": False, "skip": None}[test["status"]] is test["passed"]
        assert isinstance(test["reason"], str) and test["reason"], test
    assert out["passed"] is (code == 0)
    return out


def by_name(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in out["tests"]}


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("posterm: error: "), proc.stderr
    return lines[0]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_diag_json_names_every_test_with_a_verdict_and_a_reason(data_dir: Path) -> None:
    out = diag_json(data_dir)
    tests = by_name(out)
    assert tests["reader"]["status"] == "pass" and "sim:card=visa-qvsdc-online" in tests["reader"]["reason"]
    assert tests["reader"]["details"]["applications"][0]["aid"] == "A0000000031010"
    assert tests["scanner"]["status"] == "skip" and tests["printer"]["status"] == "skip"
    assert tests["host_link"]["status"] == "pass" and "in-process" in tests["host_link"]["reason"]
    assert tests["configuration"]["status"] == "pass" and tests["keys"]["status"] == "skip"
    assert tests["journal"]["status"] == "skip"  # no payment yet
    assert out["counts"] == {"pass": 4, "fail": 0, "skip": 4} and out["failed"] == []

    text = run(data_dir, "diag")
    assert text.returncode == 0 and "PASS  reader" in text.stdout and "all tests passed" in text.stdout


def test_diag_after_payments(data_dir: Path) -> None:
    assert run(data_dir, "sale", "20.00").returncode == 0
    assert run(data_dir, "sale", "12.34", "--card", "visa-qvsdc-offline").returncode == 0
    tests = by_name(diag_json(data_dir, "--reader", "sim:card=mc-cda-online"))
    assert tests["reader"]["details"]["applications"][0]["aid"] == "A0000000041010"
    assert tests["saf_queue"]["status"] == "pass" and tests["saf_queue"]["details"]["queued"] == 1
    keys = tests["keys"]
    assert keys["status"] == "pass" and set(keys["details"]["key_check_values"]) == {
        "data:aes-256-gcm",
        "data:sm4-gcm",
        "master",
        "mac:journal",
        "mac:pan-token",
    }
    master = (data_dir / "keys" / "master.key").read_text().strip().lower()
    assert master not in json.dumps(keys).lower()


def test_failures_exit_1_with_their_reasons(data_dir: Path) -> None:
    tests = by_name(diag_json(data_dir, "--reader", "sim:card=no-such-card", "--host", "none", code=1))
    assert tests["reader"]["status"] == "fail" and "unknown card profile" in tests["reader"]["reason"]
    assert tests["host_link"]["status"] == "fail" and "no host link" in tests["host_link"]["reason"]

    assert run(data_dir, "sale", "12.51", "--host", "none").returncode == 0  # deferred; declined (51) later
    assert run(data_dir, "saf", "forward").returncode == 0
    saf = by_name(diag_json(data_dir, code=1))["saf_queue"]
    assert saf["status"] == "fail" and "declined or rejected after forwarding" in saf["reason"]
    text = run(data_dir, "diag")
    assert text.returncode == 1 and "FAIL  saf_queue" in text.stdout and "FAILED: saf_queue" in text.stdout


def test_devices_set_list_and_refuse(data_dir: Path) -> None:
    listing = json.loads(run(data_dir, "devices", "--json").stdout)
    assert listing["configured"]["reader"] == {
        "url": "sim:card=visa-qvsdc-online",
        "source": "default",
        "status": "ok",
        "reason": "opened",
    }
    assert listing["configured"]["printer"]["status"] == "none"
    assert listing["drivers"]["sim"]["kind"] == "reader"
    assert (
        "sim:card=visa-qvsdc-offline"
        in json.loads(run(data_dir, "devices", "--json", "--discover-sim").stdout)["discovered"]["reader"]
    )

    proc = run(data_dir, "devices", "set", "reader", "sim:card=mc-cda-online", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["check"]["status"] == "ok"
    assert json.loads((data_dir / "devices.json").read_text()) == {"reader": "sim:card=mc-cda-online"}
    sale = json.loads(run(data_dir, "sale", "5.00", "--json").stdout)
    assert sale["scheme"] == "mastercard" and sale["approved"]  # the configured reader
    sale = json.loads(run(data_dir, "sale", "5.00", "--json", "--reader", "sim:card=visa-qvsdc-online").stdout)
    assert sale["scheme"] == "visa"  # --reader wins

    assert "no driver for scheme 'nosuch'" in one_line_error(run(data_dir, "devices", "set", "reader", "nosuch:x"))
    assert "names a reader, not a printer" in one_line_error(
        run(data_dir, "devices", "set", "printer", "sim:card=visa-qvsdc-online")
    )
    assert "invalid choice" in run(data_dir, "devices", "set", "modem", "x:").stderr
    assert "either --card or --reader" in one_line_error(
        run(data_dir, "sale", "1.00", "--card", "mc-cda-online", "--reader", "sim:card=mc-cda-online")
    )
    assert "no driver for scheme 'nosuch'" in one_line_error(run(data_dir, "sale", "1.00", "--reader", "nosuch:"))

    assert run(data_dir, "devices", "set", "reader", "none").returncode == 0
    assert "no card reader is configured" in one_line_error(run(data_dir, "sale", "1.00"))
    assert run(data_dir, "saf", "status").returncode == 0  # other commands do not need a reader
    assert by_name(diag_json(data_dir))["reader"]["status"] == "skip"
    assert run(data_dir, "devices", "set", "reader", "default").returncode == 0
    assert json.loads(run(data_dir, "sale", "5.00", "--json").stdout)["scheme"] == "visa"


def test_a_damaged_devices_file_is_one_line(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "devices.json").write_text("{oops")
    message = one_line_error(run(data_dir, "devices"))
    assert "devices.json" in message and "cannot be read" in message
    assert "devices.json" in one_line_error(run(data_dir, "sale", "1.00"))
    assert run(data_dir, "saf", "status").returncode == 0  # the queue does not depend on the devices
    assert run(data_dir, "sale", "1.00", "--card", "visa-qvsdc-online").returncode == 0
    tests = by_name(diag_json(data_dir, code=1))
    assert tests["configuration"]["status"] == "fail" and "devices.json" in tests["configuration"]["reason"]


def _bcd(pan: str) -> bytes:
    return bytes.fromhex(pan + ("F" if len(pan) % 2 else ""))


def test_support_bundle_has_no_card_numbers(data_dir: Path, tmp_path: Path) -> None:
    for card in PANS:
        run(data_dir, "sale", "3.00", "--card", card)  # some decline or fail: all are logged and journaled
    output = tmp_path / "bundle.zip"
    proc = run(data_dir, "diag", "export", "--output", str(output), "--json")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    info = json.loads(proc.stdout)
    assert info["output"] == str(output) and "logs/posterm.log" in info["members"]
    raw = output.read_bytes()
    with zipfile.ZipFile(output) as bundle:
        members = {name: bundle.read(name) for name in bundle.namelist()}
    assert set(members) == set(info["members"])
    for where, data in [("zip", raw), *members.items()]:
        for name, pan in PANS.items():
            assert pan.encode() not in data, (where, name)
            assert _bcd(pan) not in data, (where, name)
    log = members["logs/posterm.log"].decode()
    assert "posterm sale: start" in log and "posterm diag export: start" in log
    assert members["apdu-trace.txt"].startswith(b"sim:card=visa-qvsdc-online  > 00A404000E")
    assert json.loads(members["saf.json"])["name"] == "saf_queue"

    text = run(data_dir, "diag", "export")
    assert text.returncode == 0 and "support bundle written to" in text.stdout
    assert len(list((data_dir / "support").glob("posterm-support-*.zip"))) == 1


def test_the_log_file_masks_card_numbers(data_dir: Path) -> None:
    for card in PANS:
        run(data_dir, "sale", "3.00", "--card", card)
    log = data_dir / "logs" / "posterm.log"
    text = log.read_text()
    assert "posterm sale: start" in text and "exit status" in text
    no_pan(text)


# ----------------------------------------------------------------------------- scanner and printer


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _registered(scheme: str) -> bool:
    from terminal import registry

    return scheme in registry.schemes()


needs_serial = pytest.mark.skipif(
    not (_registered("serial") and _have("simulator.pty_scanner") and hasattr(os, "openpty")),
    reason="the serial: adapter or the simulator's pty scanner is not installed",
)
needs_escpos = pytest.mark.skipif(
    not (_registered("escpos") and _have("simulator.net_printer")),
    reason="the escpos: adapter or the simulator's network printer is not installed",
)


@pytest.fixture
def net_printer() -> Iterator[Any]:
    from simulator.net_printer import VirtualNetworkPrinter

    printer = VirtualNetworkPrinter().start()
    yield printer
    printer.stop()


@pytest.fixture
def pty_scanner() -> Iterator[Any]:
    """A pty scanner that sends a code every 0.1 s (codes sent before the port is opened are lost)."""
    from simulator.pty_scanner import VirtualScanner

    scanner = VirtualScanner()
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            try:
                scanner.send("https://pay.example/q/7", "QRCODE")
            except Exception:
                return
            time.sleep(0.1)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    yield scanner
    stop.set()
    thread.join(2)
    scanner.close()


@needs_escpos
def test_diag_prints_a_test_page_on_the_network_printer(data_dir: Path, net_printer: Any) -> None:
    from terminal.ports import PrinterStatus

    assert run(data_dir, "devices", "set", "printer", net_printer.url).returncode == 0
    printer = by_name(diag_json(data_dir))["printer"]
    assert printer["status"] == "pass" and "test page printed" in printer["reason"]
    assert net_printer.wait_idle()
    assert b"TEST PAGE" in net_printer.jobs()[-1]

    jobs = len(net_printer.jobs())
    assert by_name(diag_json(data_dir, "--no-print"))["printer"]["details"]["test_page"] is False
    net_printer.set_status(PrinterStatus.PAPER_OUT)
    failed = by_name(diag_json(data_dir, code=1))["printer"]
    assert failed["status"] == "fail" and "paper out" in failed["reason"]
    assert net_printer.wait_idle() and len(net_printer.jobs()) == jobs
    listing = json.loads(run(data_dir, "devices", "--json").stdout)
    assert listing["configured"]["printer"]["status"] == "error"


@needs_serial
def test_diag_reads_a_code_from_the_serial_scanner(data_dir: Path, pty_scanner: Any) -> None:
    assert run(data_dir, "devices", "set", "scanner", pty_scanner.url).returncode == 0
    scanner = by_name(diag_json(data_dir, "--scan-timeout", "5"))["scanner"]
    assert scanner["status"] == "pass" and scanner["details"]["text"] == "https://pay.example/q/7"


@needs_serial
def test_a_silent_scanner_fails(data_dir: Path) -> None:
    from simulator.pty_scanner import VirtualScanner

    scanner = VirtualScanner()
    try:
        tests = by_name(diag_json(data_dir, "--scanner", scanner.url, "--scan-timeout", "0.3", code=1))
    finally:
        scanner.close()
    assert tests["scanner"]["status"] == "fail" and "no code was scanned within 0.3 s" in tests["scanner"]["reason"]


# ----------------------------------------------------------------------------- the host link


@pytest.fixture
def enrolled(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """A data directory enrolled with the simulated host (HTTPS, mutual TLS, loopback), and the host."""
    from host_link.enrolment import CredentialBundle, enrol
    from simulator.host.service import start_host

    service = start_host(tmp_path / "host")
    try:
        data_dir = tmp_path / "terminal"
        enrol(CredentialBundle.from_json(service.credential_bundle("DIAG0001", "POSTERM0000001")), data_dir)
        yield data_dir, service
    finally:
        service.stop()


def test_host_link_echo_over_https_and_down(enrolled: tuple[Path, Any], tmp_path: Path) -> None:
    data_dir, service = enrolled
    host = by_name(diag_json(data_dir))["host_link"]  # --host auto: the enrolled host
    assert host["status"] == "pass" and "echo answered in" in host["reason"]
    assert host["details"]["terminal_id"] == "DIAG0001" and host["details"]["round_trip_ms"] > 0
    assert host["details"]["host"].startswith("https://")

    service.set_faults(down=True)
    try:
        down = by_name(diag_json(data_dir, code=1))["host_link"]
    finally:
        service.clear_faults()
    assert down["status"] == "fail" and "unreachable" in down["reason"], down

    output = tmp_path / "bundle.zip"
    assert run(data_dir, "diag", "export", "--output", str(output)).returncode == 0
    secrets = [(data_dir / "host-link" / name).read_bytes().strip() for name in ("client-key.pem",)]
    with zipfile.ZipFile(output) as bundle:
        members = {name: bundle.read(name) for name in bundle.namelist()}
    key_body = secrets[0].splitlines()[1]  # a line of the private key's base64
    assert all(key_body not in data for data in members.values())
    config = json.loads(members["configuration.json"])
    assert config["host_link"]["enrolled"] is True and config["host_link"]["terminal_id"] == "DIAG0001"
    assert set(config["host_link"]) <= {
        "enrolled",
        "url",
        "terminal_id",
        "merchant_id",
        "enrolled_at",
        "certificate_not_after",
    }
