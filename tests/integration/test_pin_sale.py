"""PIN and the chip in a sale, end to end: `posterm sale` subprocesses against the simulated host over mutual TLS.

One host process (HTTPS with mutual TLS on loopback, SQLite store); each test enrols a terminal of its
own (a data directory) and runs the real CLI in a subprocess, with the simulated PIN pad named by URL
(``--pin-pad sim:pin=...``) and its DUKPT counters in the test's own state folder. The issuer checks
the online PIN against the card profile's (visa-online-pin: 1234, mc-cda-online: 4321, contact-online-pin:
1234). Then, in process with a recording PIN pad, the PIN blocks actually sent are known, and nothing
written (journal + WAL, logs, the support bundle, the APDU trace, the host's database and log) holds a
PIN entered or a PIN block sent.
"""

from __future__ import annotations

import itertools
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emv.recorder import Exchange
from simulator.host.service import HostService, start_host
from terminal import registry
from terminal.apdu_trace import ApduTrace, observe
from terminal.bootstrap import open_terminal
from terminal.devices import LazyPinPad
from terminal.ports import CancelToken, OfflinePin, OfflinePinRequest, PinEntry, PinRequest
from tests.integration.cli_till import CliTill

EUR = 978
WRONG = "97531864"  # a PIN no card has: what the scan looks for
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    with start_host(tmp_path_factory.mktemp("host") / "data") as service:
        yield service


class Till(CliTill):
    """An enrolled terminal's data directory and the CLI run on it."""

    def __init__(self, host: HostService, root: Path) -> None:
        super().__init__(host, root, f"PINS{next(_ids):04d}")

    def sale(self, amount: str, card: str, pad: str | None, *extra: str) -> tuple[int, dict[str, Any]]:
        args = ["sale", amount, "--card", card, "--json", *extra]
        if pad is not None:
            args += ["--pin-pad", pad]
        done = self.run(*args)
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, json.loads(done.stdout)

    def receipt(self, txn_id: str) -> str:
        done = self.run("receipt", txn_id)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def till(host: HostService, tmp_path: Path) -> Till:
    return Till(host, tmp_path)


def test_the_right_online_pin_is_verified_by_the_issuer(till: Till) -> None:
    rc, out = till.sale("80.00", "visa-online-pin", "sim:pin=1234")
    assert rc == 0 and out["approved"] and out["response_code"] == "00"
    assert out["cvm"] == "online_pin" and out["pin"] == "verified"
    assert out["message"] == "approved: PIN verified by the issuer"
    assert "PIN VERIFIED" in till.receipt(out["txn_id"])


def test_under_the_cvm_required_limit_no_pin_is_asked(till: Till) -> None:
    rc, out = till.sale("12.34", "visa-online-pin", "sim:pin=cancel")  # a pad that would cancel: not asked
    assert rc == 0 and out["approved"] and out["pin"] is None


def test_a_wrong_online_pin_is_declined_55_in_words(till: Till) -> None:
    rc, out = till.sale("80.00", "visa-online-pin", "sim:pin=0000")
    assert rc == 1 and not out["approved"] and out["state"] == "declined"
    assert out["response_code"] == "55" and out["message"] == "declined: incorrect PIN (55)"
    assert out["pin"] == "incorrect"
    receipt = till.receipt(out["txn_id"])
    assert "PIN VERIFIED" not in receipt and "INCORRECT PIN" in receipt.upper()
    assert till.sale("80.00", "visa-online-pin", "sim:pin=1234")[1]["pin"] == "verified"  # the count goes back


def test_pin_tries_exceeded_is_75_on_a_c2_card(till: Till) -> None:
    """mc-cda-online (kernel C-2): its CVM list asks for online PIN once the terminal has a PIN pad."""
    codes = [till.sale("60.00", "mc-cda-online", f"sim:pin={WRONG}")[1]["response_code"] for _ in range(3)]
    assert codes == ["55", "55", "75"]
    rc, out = till.sale("60.00", "mc-cda-online", "sim:pin=4321")  # at the limit, right PIN or not
    assert rc == 1 and out["response_code"] == "75" and out["message"] == "declined: PIN tries exceeded (75)"
    assert out["pin"] == "tries_exceeded"


@pytest.mark.parametrize(("action", "words"), [("cancel", "PIN entry cancelled"), ("timeout", "no PIN was entered")])
def test_cancel_and_timeout_complete_nothing_and_charge_nothing(till: Till, action: str, words: str) -> None:
    rc, out = till.sale("80.00", "visa-online-pin", f"sim:pin={action}")
    assert rc == 1 and not out["approved"] and out["state"] == "cancelled"
    assert words in out["message"] and "nothing was charged" in out["message"]
    assert out["response_code"] is None  # nothing was sent to the host
    report = till.run("journal", "show", out["txn_id"], "--json")
    assert report.returncode == 0 and "authorising" not in report.stdout


def test_a_bypassed_pin_goes_online_without_one_and_says_so(till: Till) -> None:
    rc, out = till.sale("80.00", "visa-online-pin", "sim:pin=bypass")
    assert rc == 0 and out["approved"] and out["pin"] == "bypassed"
    assert out["message"] == "approved (PIN bypassed)"
    assert "PIN VERIFIED" not in till.receipt(out["txn_id"])


def test_contact_offline_pin_sale_names_the_contact_kernel(till: Till) -> None:
    rc, out = till.sale("12.34", "contact-offline-pin", "sim:pin=1234")
    assert rc == 0 and out["approved"] and out["kernel"] == "contact"
    assert out["cvm"] == "offline_pin" and out["pin"] == "offline_verified"
    assert "PIN VERIFIED" in till.receipt(out["txn_id"])


def test_contact_offline_pin_wrong_three_times_is_not_verified(till: Till) -> None:
    rc, out = till.sale("12.34", "contact-offline-pin", f"sim:pin={WRONG}")
    # the card's CVM list goes on to signature; its PIN try limit exceeded sends the payment online
    assert rc == 0 and out["kernel"] == "contact" and out["cvm"] == "signature" and out["pin"] is None
    assert not out["offline"] and out["response_code"] == "00"
    assert "PIN VERIFIED" not in till.receipt(out["txn_id"])


def test_contact_online_pin_goes_to_the_issuer_and_completes_with_the_arpc(till: Till) -> None:
    rc, out = till.sale("60.00", "contact-online-pin", "sim:pin=1234")
    assert rc == 0 and out["approved"] and out["kernel"] == "contact" and out["pin"] == "verified"
    rc, out = till.sale("60.00", "contact-online-pin", f"sim:pin={WRONG}")
    assert rc == 1 and out["response_code"] == "55" and out["kernel"] == "contact"


def test_try_another_interface_reads_the_inserted_chip(till: Till) -> None:
    """No PIN pad: the tap ends "insert card", the simulated reader's contact slot reads the chip."""
    rc, out = till.sale("80.00", "visa-online-pin", "none", "--insert", "contact-offline-pin")
    assert rc == 0 and out["approved"] and out["kernel"] == "contact"
    rc, out = till.sale("80.00", "visa-online-pin", "none")  # no contact slot: the cashier is told
    assert rc == 1 and out["state"] == "cancelled" and "insert" in out["message"]


def test_a_bad_pin_pad_url_is_one_line_and_exit_2(till: Till) -> None:
    done = till.run("sale", "80.00", "--card", "visa-online-pin", "--pin-pad", "sim:pin=12")
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


# -- in process: the blocks sent are known, and nothing written holds them ----------------------------------


class RecordingPad:
    """The simulated PIN pad, keeping the blocks it formed (to look for them afterwards)."""

    def __init__(self, url: str) -> None:
        self.pad = LazyPinPad(url)
        self.url = self.pad.url  # masked
        self.blocks: list[bytes] = []

    def enter_pin(self, request: PinRequest, timeout: float | None = None, cancel: CancelToken | None = None) -> Any:
        entry: PinEntry = self.pad.enter_pin(request, timeout, cancel)
        if entry.pin is not None:
            self.blocks.append(entry.pin.block)
        return entry

    def enter_offline_pin(
        self, request: OfflinePinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> OfflinePin:
        return self.pad.enter_offline_pin(request, timeout, cancel)

    def close(self) -> None:
        self.pad.close()


def test_nothing_written_holds_a_pin_or_a_pin_block(
    host: HostService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    till = Till(host, tmp_path)
    blocks: list[bytes] = []
    traces: list[bytes] = []
    apdu_trace = ApduTrace()  # the diagnostics' APDU trace of every exchange (terminal.apdu_trace)
    observed: list[bytes] = []  # and what any observer is handed, before it masks anything

    class Raw:
        def on_exchange(self, exchange: Exchange) -> None:
            observed.append(exchange.command + (exchange.response or b""))

    # the command line first (its log file, its journal rows), with a wrong PIN and the right one
    assert till.sale("80.00", "visa-online-pin", f"sim:pin={WRONG}")[1]["response_code"] == "55"
    assert till.sale("12.34", "contact-offline-pin", "sim:pin=1234")[1]["pin"] == "offline_verified"
    monkeypatch.setenv("POSTERM_SIM_STATE", str(till.sim_state))
    terminal = open_terminal(till.data_dir, reader_url="none")
    try:
        for pin, card, amount in (
            (WRONG, "visa-online-pin", 8000), ("1234", "visa-online-pin", 8000),
            (WRONG, "contact-online-pin", 6000), ("1234", "contact-offline-pin", 1234),
            (WRONG, "contact-enciphered-pin", 1234),
        ):  # fmt: skip
            pad = RecordingPad(f"sim:pin={pin}")
            terminal.pin_pad = pad
            terminal.reader = observe(registry.open_reader(f"sim:card={card}"), apdu_trace, Raw())
            result = terminal.sale(amount, EUR)
            assert result.card_result is not None
            traces.append(b"".join(result.card_result.commands))
            blocks += pad.blocks
        # the write-ahead log as it stands while the terminal is open (closing checkpoints it away)
        wal = till.data_dir / "journal.sqlite-wal"
        (tmp_path / "wal-copy").write_bytes(wal.read_bytes())
    finally:
        terminal.close()
    assert len(blocks) == 3  # visa-online-pin twice, contact-online-pin once
    bundle = till.run("diag", "export", "--output", str(tmp_path / "bundle.zip"))
    assert (tmp_path / "bundle.zip").exists(), bundle.stderr
    (tmp_path / "trace.bin").write_bytes(b"".join(traces) + b"".join(observed))
    assert any(line["command"].startswith("0020") for line in apdu_trace.to_json())  # the VERIFYs are in it
    (tmp_path / "apdu-trace.json").write_text(json.dumps(apdu_trace.to_json()) + "\n".join(apdu_trace.lines()))
    wanted = [WRONG.encode(), bytes.fromhex(WRONG), ("28" + WRONG).encode(), bytes.fromhex("28" + WRONG)]
    wanted += [bytes.fromhex("241234FFFFFFFFFF"), b"241234FFFFFFFFFF"]  # the offline plaintext PIN block (format 2)
    for block in blocks:
        wanted += [block, block.hex().encode(), block.hex().upper().encode()]
    files = [p for folder in (till.data_dir, host.data_dir, tmp_path) for p in folder.rglob("*") if p.is_file()]
    assert {"journal.sqlite", "wal-copy"} <= {p.name for p in files} and (tmp_path / "wal-copy").stat().st_size
    assert any(p.name == "host.log" for p in files)
    assert any(p.parent.name == "logs" for p in files)  # the terminal's log
    contents: list[tuple[str, bytes]] = []
    for path in files:
        contents.append((str(path), path.read_bytes()))
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                contents += [(f"{path}:{name}", archive.read(name)) for name in archive.namelist()]
    assert any(":" in where for where, _ in contents)  # the bundle's files were read
    for where, data in contents:
        found = [w for w in wanted if w in data]
        assert not found, f"{where} holds a PIN or a PIN block"


def test_the_configured_pin_pad_is_used_and_none_overrides_it(till: Till) -> None:
    done = till.run("devices", "set", "pin-pad", "sim:pin=1234")
    assert done.returncode == 0 and "1234" not in done.stdout, done.stderr
    rc, out = till.sale("80.00", "visa-online-pin", None)
    assert rc == 0 and out["pin"] == "verified"
    rc, out = till.sale("80.00", "visa-online-pin", "none")  # no PIN pad: the kernels advertise no PIN
    assert rc == 1 and out["state"] == "cancelled" and "no PIN pad" in out["message"]


def test_a_refund_takes_the_pin_pad_option(till: Till) -> None:
    """A refund against a chip sale, the same card inserted again: read by the contact kernel, refunded online."""
    rc, sale = till.sale("60.00", "contact-offline-pin", "sim:pin=1234")
    assert rc == 0 and sale["approved"]
    done = till.run(
        "refund", "5.00", "--original", sale["txn_id"], "--card", "contact-offline-pin", "--pin-pad", "sim:pin=1234",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["approved"] and out["kind"] == "refund" and out["kernel"] == "contact"


def test_issuer_scripts_travel_over_tls_to_the_inserted_card(till: Till) -> None:
    rc, out = till.sale("12.34", "contact-scripts", None)
    assert rc == 0 and out["approved"] and out["kernel"] == "contact"
    shown = till.run("journal", "show", out["txn_id"], "--json")
    assert shown.returncode == 0 and "20000000712000000072" in shown.stdout, shown.stdout
