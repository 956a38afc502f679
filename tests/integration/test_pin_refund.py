"""A PIN on refunds where the terminal is configured to ask for one (``pin_on_refund``), end to end.

One host process (HTTPS with mutual TLS on loopback, SQLite store); each test enrols a terminal of its own
and, where it asks for a PIN on refunds, gets ``pin_on_refund: online`` the way an acquirer gives it: in
the terminal's own part of the parameters (``posterm host params set-terminal``), downloaded and verified by
``posterm params download``. Then the real CLI in subprocesses, the simulated PIN pad named by URL. The
simulated issuer checks the refund's PIN block against the card's PIN (visa-online-pin: 1234, mc-cda-online:
4321) and counts wrong tries with the sales'. The books are checked at both ends: the terminal's report and
batch close, the host's records and what it holds refunded against each sale.
"""

from __future__ import annotations

import itertools
import json
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.host import admin
from simulator.host.service import HostService, start_host
from terminal.bootstrap import open_terminal
from terminal.devices import LazyPinPad
from terminal.ports import CancelToken, OfflinePin, OfflinePinRequest, PinEntry, PinOutcome, PinRequest
from tests.integration.cli_till import CliTill

MERCHANT = "POSTERM0000001"
EUR = 978
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    with start_host(tmp_path_factory.mktemp("host") / "data") as service:
        service.set_refund_allowance(MERCHANT, 100_000)  # unreferenced refunds: 1000.00 per 24 h
        yield service


class Till(CliTill):
    """An enrolled terminal's data directory, its parameters, and the CLI run on it."""

    def __init__(self, host: HostService, root: Path, pin_on_refund: str | None = "online") -> None:
        super().__init__(host, root, f"RFND{next(_ids):04d}", MERCHANT)
        if pin_on_refund is not None:
            host.set_terminal_parameters(self.terminal_id, {"pin_on_refund": pin_on_refund})
            done = self.run("params", "download")
            assert done.returncode == 0, done.stdout + done.stderr

    def payment(self, *args: str) -> tuple[int, dict[str, Any]]:
        done = self.run(*args, "--json")
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, json.loads(done.stdout)

    def sale(self, amount: str, card: str, pad: str = "none") -> dict[str, Any]:
        rc, out = self.payment("sale", amount, "--card", card, "--pin-pad", pad)
        assert rc == 0 and out["approved"], out
        return out

    def refund(self, amount: str, card: str, pad: str, *extra: str) -> tuple[int, dict[str, Any]]:
        return self.payment("refund", amount, "--card", card, "--pin-pad", pad, *extra)

    def receipt(self, txn_id: str) -> str:
        done = self.run("receipt", txn_id)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def host_records(self, txn_id: str) -> list[dict[str, Any]]:
        return [r for r in self.host.records() if r["txn_id"] == txn_id]

    def refunded_at_host(self, sale_txn: str) -> int:
        return self.host.sale_positions(self.terminal_id)[sale_txn].refunded

    def report_refunds(self) -> int:
        rc, report = self.payment("report", "x")
        assert rc == 0
        return sum(line["amount"] for line in report["lines"] if line["kind"] == "refund")


@pytest.fixture
def till(host: HostService, tmp_path: Path) -> Till:
    return Till(host, tmp_path)


def test_a_refund_with_the_right_pin_is_verified_by_the_issuer(till: Till) -> None:
    sale = till.sale("12.34", "visa-qvsdc-online")  # a sale without PIN: the refund asks one all the same
    rc, out = till.refund("5.00", "visa-qvsdc-online", "sim:pin=1234", "--original", sale["txn_id"])
    assert rc == 0 and out["approved"] and out["kind"] == "refund" and out["response_code"] == "00"
    assert out["pin"] == "verified" and out["cvm"] == "online_pin"
    assert out["message"] == "approved: PIN verified by the issuer"
    assert "PIN VERIFIED" in till.receipt(out["txn_id"])
    shown = till.run("journal", "show", out["txn_id"], "--json")
    assert shown.returncode == 0 and '"pin": "verified"' in shown.stdout
    assert till.refunded_at_host(sale["txn_id"]) == 500 and till.report_refunds() == 500
    # unreferenced, on a C-2 card whose PIN is 4321
    rc, out = till.refund("7.00", "mc-cda-online", "sim:pin=4321", "--unreferenced")
    assert rc == 0 and out["pin"] == "verified" and out["scheme"] == "mastercard"
    # the technician's support bundle says what the terminal does
    assert till.run("diag", "export", "--output", str(till.data_dir.parent / "bundle.zip")).returncode == 0
    with zipfile.ZipFile(till.data_dir.parent / "bundle.zip") as bundle:
        assert json.loads(bundle.read("configuration.json"))["settings"]["pin_on_refund"] == "online"


def test_a_wrong_pin_is_declined_55_in_words_and_nothing_is_refunded(till: Till) -> None:
    sale = till.sale("80.00", "visa-online-pin", "sim:pin=1234")
    rc, out = till.refund("80.00", "visa-online-pin", "sim:pin=0000", "--original", sale["txn_id"])
    assert rc == 1 and not out["approved"] and out["state"] == "declined"
    assert out["response_code"] == "55" and out["message"] == "declined: incorrect PIN (55)"
    assert out["pin"] == "incorrect"
    receipt = till.receipt(out["txn_id"])
    assert "PIN VERIFIED" not in receipt and "INCORRECT PIN" in receipt.upper()
    (record,) = till.host_records(out["txn_id"])
    assert record["kind"] == "refund" and not record["approved"] and record["note"] == "incorrect_pin"
    # the books: nothing refunded at the host or in the terminal's batch, and the batch closes in balance
    assert till.refunded_at_host(sale["txn_id"]) == 0 and till.report_refunds() == 0
    rc, settled = till.payment("settle")
    assert rc == 0 and settled["in_balance"] is True, settled
    # the whole sale is still refundable, once, with the right PIN (which sets the count back to 0)
    rc, out = till.refund("80.00", "visa-online-pin", "sim:pin=1234", "--original", sale["txn_id"])
    assert rc == 0 and out["pin"] == "verified"
    assert till.refunded_at_host(sale["txn_id"]) == 8000


def test_wrong_pins_on_sales_and_refunds_count_together_to_75(till: Till, host: HostService) -> None:
    try:
        rc, sale = till.payment("sale", "60.00", "--card", "mc-cda-online", "--pin-pad", "sim:pin=0000")
        assert rc == 1 and sale["response_code"] == "55"
        codes = [till.refund("6.00", "mc-cda-online", "sim:pin=0000", "--unreferenced")[1]["response_code"]
                 for _ in range(2)]  # fmt: skip
        assert codes == ["55", "75"]  # the 3rd wrong PIN of the card, the 2nd of them on a refund
        rc, out = till.refund("6.00", "mc-cda-online", "sim:pin=4321", "--unreferenced")  # at the limit
        assert rc == 1 and out["response_code"] == "75" and out["message"] == "declined: PIN tries exceeded (75)"
        assert out["pin"] == "tries_exceeded" and till.report_refunds() == 0
    finally:
        admin.reset_pin_tries(host.data_dir, "5413330089010012", store=host.store)  # mc-cda-online's PAN


@pytest.mark.parametrize(("action", "words"), [("cancel", "PIN entry cancelled"), ("timeout", "no PIN was entered")])
def test_cancel_and_timeout_send_nothing_and_refund_nothing(till: Till, action: str, words: str) -> None:
    rc, out = till.refund("5.00", "visa-qvsdc-online", f"sim:pin={action}", "--unreferenced")
    assert rc == 1 and not out["approved"] and out["state"] == "cancelled"
    assert out["message"] == f"not completed: {words}{' in time' if action == 'timeout' else ''}; nothing was refunded"
    assert out["response_code"] is None and out["pin"] == action.replace("cancel", "cancelled")
    assert till.host_records(out["txn_id"]) == []  # nothing was sent
    shown = till.run("journal", "show", out["txn_id"], "--json")
    assert shown.returncode == 0 and "authorising" not in shown.stdout
    assert till.report_refunds() == 0


def test_a_pin_the_pad_may_not_bypass_ends_the_refund_not_completed(till: Till) -> None:
    """The refund's PIN entry offers no bypass: the simulated pad then ignores Enter and times out."""
    rc, out = till.refund("5.00", "visa-qvsdc-online", "sim:pin=bypass", "--unreferenced")
    assert rc == 1 and out["state"] == "cancelled" and out["response_code"] is None
    assert till.host_records(out["txn_id"]) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_with_the_host_down_a_refund_with_a_pin_is_declined_and_nothing_is_stored(till: Till) -> None:
    sale = till.sale("20.00", "visa-qvsdc-online")
    rc, out = till.refund(
        "5.00", "visa-qvsdc-online", "sim:pin=1234", "--original", sale["txn_id"],
        "--host", f"https://127.0.0.1:{_closed_port()}",
    )  # fmt: skip
    assert rc == 1 and not out["approved"] and out["state"] == "declined" and not out["deferred"]
    assert "the host cannot be reached" in out["message"] and "only the issuer can check the PIN" in out["message"]
    assert out["response_code"] is None
    rc, saf = till.payment("saf", "status")
    assert rc == 0 and saf["queued"] == 0 and saf["reversals_queued"] == 0, saf
    assert till.host_records(out["txn_id"]) == [] and till.report_refunds() == 0
    assert till.run("saf", "forward").returncode == 0  # nothing goes later either
    assert till.host_records(out["txn_id"]) == [] and till.refunded_at_host(sale["txn_id"]) == 0


def test_force_offline_refund_with_a_pin_is_refused_before_the_card_is_read(till: Till) -> None:
    done = till.run("refund", "5.00", "--unreferenced", "--card", "visa-qvsdc-online", "--pin-pad", "sim:pin=1234",
                    "--offline-behavior", "force_offline")  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "cannot be stored offline" in line and "nothing was refunded" in line
    rc, journal = till.payment("journal", "list")
    assert rc == 0 and journal["transactions"] == [], journal


def test_no_pin_pad_while_refunds_ask_a_pin_is_one_line_before_the_card_is_read(till: Till) -> None:
    done = till.run("refund", "5.00", "--unreferenced", "--card", "visa-qvsdc-online", "--pin-pad", "none")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "no PIN pad is configured" in line and "nothing was refunded" in line
    assert "present card" not in done.stderr  # no card was asked for
    rc, out = till.payment("refund", "5.00", "--unreferenced", "--card", "visa-qvsdc-online", "--pin-pad", "none")
    assert rc == 1 and "no PIN pad is configured" in out["error"] and out["exit_status"] == 1
    rc, journal = till.payment("journal", "list")
    assert rc == 0 and journal["transactions"] == [], journal


def test_a_refund_against_a_sale_without_a_card_asks_no_pin(till: Till) -> None:
    sale = till.sale("20.00", "visa-qvsdc-online")
    rc, out = till.payment("refund", "5.00", "--original", sale["txn_id"], "--pin-pad", "none")
    assert rc == 0 and out["approved"] and out["pin"] is None  # to the sale's card; the host checks its cover


def test_never_asks_no_pin_even_with_a_pin_pad(host: HostService, tmp_path: Path) -> None:
    for setting, root in ((None, tmp_path / "default"), ("never", tmp_path / "never")):
        till = Till(host, root, setting)
        rc, out = till.refund("5.00", "visa-qvsdc-online", "sim:pin=cancel", "--unreferenced")  # would cancel
        assert rc == 0 and out["approved"] and out["pin"] is None, out
        receipt = till.receipt(out["txn_id"])
        assert "PIN VERIFIED" not in receipt and "PIN ENTERED" not in receipt


def test_a_refund_with_a_pin_never_refunds_more_than_the_sale(till: Till) -> None:
    sale = till.sale("30.00", "visa-qvsdc-online")
    refunds = []
    for amount in ("10.00", "15.00"):
        rc, out = till.refund(amount, "visa-qvsdc-online", "sim:pin=1234", "--original", sale["txn_id"])
        assert rc == 0 and out["pin"] == "verified"
        refunds.append(out)
    rc, out = till.refund("5.01", "visa-qvsdc-online", "sim:pin=1234", "--original", sale["txn_id"])
    assert rc != 0 and not out.get("approved")  # more than is left: refused, PIN or not
    rc, out = till.refund("5.00", "visa-qvsdc-online", "sim:pin=1234", "--original", sale["txn_id"])
    assert rc == 0 and out["pin"] == "verified"
    rc, out = till.refund("0.01", "visa-qvsdc-online", "sim:pin=1234", "--original", sale["txn_id"])
    assert rc != 0 and not out.get("approved")
    assert till.refunded_at_host(sale["txn_id"]) == 3000 == till.report_refunds()
    rc, settled = till.payment("settle")
    assert rc == 0 and settled["in_balance"] is True


def test_a_hostile_pin_on_refund_value_is_refused_in_one_line(host: HostService, till: Till) -> None:
    """The host's schema refuses to serve it; an applied parameters file altered on disk is refused at start."""
    for value in ("ONLINE", "", "online ", 1, True, ["online"], {"online": True}, "always\nnever", "x" * 5000):
        with pytest.raises(admin.AdminError) as refused:
            host.set_terminal_parameters(till.terminal_id, {"pin_on_refund": value})
        assert "pin_on_refund" in str(refused.value) and "\n" not in str(refused.value)
    pointer = json.loads((till.data_dir / "parameters" / "current.json").read_text())
    applied = till.data_dir / "parameters" / str(pointer["dir"]) / "terminal.json"
    for value in ("always", 2, "online\nrefund", "é" * 3000):
        doc = json.loads(applied.read_text())
        doc["pin_on_refund"] = value
        applied.write_text(json.dumps(doc))
        done = till.run("refund", "5.00", "--unreferenced", "--card", "visa-qvsdc-online", "--pin-pad", "sim:pin=1234")
        assert done.returncode == 2 and "Traceback" not in done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert "pin_on_refund" in line and len(line) < 400, line


# -- in process: which side of the PIN pad was asked -------------------------------------------------------------


class CountingPad:
    """The simulated PIN pad, counting the online and offline PINs it is asked for; ``answer`` overrides."""

    def __init__(self, url: str, answer: PinOutcome | None = None) -> None:
        self.pad = LazyPinPad(url)
        self.url = self.pad.url
        self.answer = answer
        self.online: list[PinRequest] = []
        self.offline = 0
        self.blocks: list[bytes] = []  # the PIN blocks it formed (to look for them afterwards)

    def enter_pin(self, request: PinRequest, timeout: float | None = None, cancel: CancelToken | None = None) -> Any:
        self.online.append(request)
        if self.answer is not None:
            return PinEntry(self.answer)
        entry: PinEntry = self.pad.enter_pin(request, timeout, cancel)
        if entry.pin is not None:
            self.blocks.append(entry.pin.block)
        return entry

    def enter_offline_pin(
        self, request: OfflinePinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> OfflinePin:
        self.offline += 1
        return self.pad.enter_offline_pin(request, timeout, cancel)

    def close(self) -> None:
        self.pad.close()


def test_in_process_what_the_pad_is_asked(till: Till, monkeypatch: pytest.MonkeyPatch) -> None:
    from terminal import registry

    monkeypatch.setenv("POSTERM_SIM_STATE", str(till.sim_state))
    terminal = open_terminal(till.data_dir, reader_url="none")
    try:
        assert terminal.settings.pin_on_refund == "online"
        # the online PIN: asked once, for the refund's amount, without bypass, with the card's PAN masked
        pad = CountingPad("sim:pin=1234")
        terminal.pin_pad = pad
        terminal.reader = registry.open_reader("sim:card=visa-qvsdc-online")
        result = terminal.refund(1234, EUR)
        assert result.approved and result.pin == "verified"
        (asked,) = pad.online
        assert asked.amount == 1234 and asked.currency == EUR and not asked.allow_bypass and asked.purpose == "refund"
        assert asked.masked_pan == result.masked_pan
        tvr = terminal.store.get(result.txn_id).details["tvr"]  # type: ignore[union-attr]
        assert int(tvr[4:6], 16) & 0x04  # "online PIN entered" in the journal's TVR
        # an inserted card that verified the PIN itself (offline PIN) is not asked again
        pad = CountingPad("sim:pin=1234")
        terminal.pin_pad = pad
        terminal.reader = registry.open_reader("sim:card=contact-offline-pin")
        result = terminal.refund(500, EUR)
        assert result.approved and result.pin == "offline_verified" and result.kernel == "contact"
        assert pad.offline == 1 and pad.online == []
        # a pad that answers "bypassed" although the request offered no bypass: not completed, nothing sent
        terminal.pin_pad = CountingPad("sim:pin=1234", PinOutcome.BYPASSED)
        terminal.reader = registry.open_reader("sim:card=visa-qvsdc-online")
        result = terminal.refund(500, EUR)
        assert not result.approved and result.state.value == "cancelled" and result.pin == "bypassed"
        assert "nothing was refunded" in result.message and result.response_code is None
        assert till.host_records(result.txn_id) == []
    finally:
        terminal.close()


WRONG = "97531864"  # a PIN no card has: what the scan looks for


def test_nothing_written_holds_a_refunds_pin_or_pin_block(
    host: HostService, till: Till, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from terminal import registry

    assert till.refund("5.00", "visa-qvsdc-online", f"sim:pin={WRONG}", "--unreferenced")[1]["response_code"] == "55"
    monkeypatch.setenv("POSTERM_SIM_STATE", str(till.sim_state))
    terminal = open_terminal(till.data_dir, reader_url="none")
    blocks: list[bytes] = []
    try:
        for pin in (WRONG, "1234"):
            pad = CountingPad(f"sim:pin={pin}")
            terminal.pin_pad = pad
            terminal.reader = registry.open_reader("sim:card=visa-qvsdc-online")
            assert terminal.refund(321, EUR).pin in ("incorrect", "verified")
            blocks += pad.blocks
        wal = till.data_dir / "journal.sqlite-wal"  # as it stands while the terminal is open
        (tmp_path / "wal-copy").write_bytes(wal.read_bytes())
    finally:
        terminal.close()
    assert len(blocks) == 2 and (tmp_path / "wal-copy").stat().st_size
    wanted = [WRONG.encode(), bytes.fromhex(WRONG)]
    for block in blocks:
        wanted += [block, block.hex().encode(), block.hex().upper().encode()]
    files = [p for folder in (till.data_dir, host.data_dir, tmp_path) for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "host.log" for p in files) and any(p.parent.name == "logs" for p in files)
    for path in files:
        data = path.read_bytes()
        assert not [w for w in wanted if w in data], f"{path} holds a PIN or a PIN block"
