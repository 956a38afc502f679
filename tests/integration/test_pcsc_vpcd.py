"""Cards read through the real stacks: a vpcd virtual card served to pcscd, read back through pyscard (``pcsc:``).

The same transaction read through pcscd and in-process must end the same
way, byte for byte; a card taken away at any command, or one that stops
answering, ends in the card-removed outcome; the Terminal facade, the replay
card and the command line work through pcscd too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.pcsc import PcscReader
from emv.outcome import Message, Outcome, TransactionResult
from emv.transaction import TransactionData
from simulator import profiles
from simulator.card import SimulatedCard
from simulator.pcscd import SOCKET_ENV, reader_has_card
from simulator.replay import ReplayCard
from simulator.transport import as_transport
from simulator.vpcd import CONTACTLESS_ATR, VirtualCard, VpcdError
from terminal.bootstrap import open_terminal
from terminal.emv_session import TapInputs, TapReport, build_transaction, run_tap, trace_header
from terminal.settings import load_default_config
from terminal.trace import to_trace
from tests.integration.pcscd_rig import PcscdRig, pcscd, vpcd  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
POSTERM = Path(sys.executable).with_name("posterm")
INPUTS = TapInputs(
    amount=1234,
    currency=978,
    unpredictable_number=bytes.fromhex("1A2B3C4D"),
    date=bytes.fromhex("261121"),
    time=bytes.fromhex("101500"),
)
# Every profile but the mute one (which has its own test: it takes the answer timeout).
PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
# mc-torn (it stops answering at GENERATE AC) ends as in process too, but its reason reads as each stack sees
# it: in process the card "left the field", through pcscd no answer came in time; it has its own test below.
PROFILES = [name for name in profiles.list_names() if name not in ("visa-mute", "mc-torn")]
SWEPT = ["visa-qvsdc-offline", "mc-cda-offline"]  # one card of each kernel, every command position


def _txn(inputs: TapInputs = INPUTS) -> TransactionData:
    return build_transaction(inputs, random_bytes=lambda n: bytes([7]) * n)  # fixed random selection too


def _in_process(card: Any, txn: TransactionData | None = None) -> TapReport:
    return run_tap(as_transport(card), load_default_config(), txn or _txn())


def _through_pcscd(reader: PcscReader, txn: TransactionData | None = None, *, before: Any = None) -> TapReport:
    session = reader.wait_for_card(timeout=5)
    try:
        if before is not None:
            before()
        return run_tap(session, load_default_config(), txn or _txn())
    finally:
        session.close()


def _exchanges(report: TapReport) -> list[tuple[bytes, bytes | None]]:
    return [(e.command, e.response) for e in report.recorder.exchanges]


def _assert_card_removed(result: TransactionResult) -> None:
    assert result.outcome is Outcome.TRY_AGAIN, result.error
    assert [m.message for m in result.messages] == [Message.PRESENT_CARD_AGAIN]
    assert result.error is not None and "card communication" in result.error


def _frame(payload: bytes) -> bytes:
    return struct.pack(">H", len(payload)) + payload


def _read_frame(conn: socket.socket) -> bytes:
    head = conn.recv(2, socket.MSG_WAITALL)
    if len(head) < 2:
        raise EOFError
    return conn.recv(struct.unpack(">H", head)[0], socket.MSG_WAITALL)


def test_virtual_card_speaks_the_vpcd_protocol() -> None:
    """Against a stand-in for pcscd's vpcd driver (no pcscd needed): framing, control codes, faults."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        server.settimeout(5)
        card = VirtualCard("visa-qvsdc-online", port=port)
        try:
            card.insert()
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                conn.sendall(_frame(b"\x04"))  # get ATR
                assert _read_frame(conn) == CONTACTLESS_ATR
                conn.sendall(_frame(b"\x01") + _frame(PPSE))  # power on (no answer), then a command
                assert _read_frame(conn)[-2:] == b"\x90\x00"
                card.mute_after(0)
                conn.sendall(_frame(PPSE) + _frame(b"\x04"))
                conn.settimeout(0.3)
                with pytest.raises(TimeoutError):  # mute: no answer to anything, still connected
                    _read_frame(conn)
                card.remove()
                conn.settimeout(5)
                assert conn.recv(1) == b""  # removed: the connection is closed
            assert card.commands == 1 and not card.inserted
            card.remove_after(1)
            card.insert()
            conn, _ = server.accept()
            with conn:
                conn.sendall(_frame(PPSE))
                assert _read_frame(conn)[-2:] == b"\x90\x00"
                assert conn.recv(1) == b""  # left by itself after one answer
            assert card.wait_removed(2)
        finally:
            card.close()
    nobody = VirtualCard("visa-qvsdc-online", port=port)
    with pytest.raises(VpcdError, match="is pcscd running"):
        nobody.insert(timeout=0.3)  # nothing listens there now
    nobody.close()


@pytest.fixture
def reader(vpcd: PcscdRig) -> Iterator[PcscReader]:  # noqa: F811
    opened = PcscReader.open(vpcd.url)
    yield opened
    opened.close()


@pytest.mark.parametrize("profile", PROFILES)
def test_transaction_through_pcscd_is_the_one_in_process(
    vpcd: PcscdRig,  # noqa: F811
    reader: PcscReader,
    profile: str,
) -> None:
    here = _in_process(SimulatedCard(profile, seed=1))
    vpcd.card(SimulatedCard(profile, seed=1))
    there = _through_pcscd(reader)
    assert there.result.to_json() == here.result.to_json()  # outcome, cryptogram, TVR, ODA, CVM, messages
    assert there.result.cryptogram == here.result.cryptogram
    assert _exchanges(there) == _exchanges(here)


def test_a_card_torn_at_generate_ac_through_pcscd_ends_as_in_process(
    vpcd: PcscdRig,  # noqa: F811
    reader: PcscReader,
) -> None:
    here = _in_process(SimulatedCard("mc-torn", seed=1))
    vpcd.card(SimulatedCard("mc-torn", seed=1))
    there = _through_pcscd(reader)
    in_process, through_pcscd = here.result.to_json(), there.result.to_json()
    assert "left the field before answering GENERATE AC" in in_process.pop("error")
    assert "80AE" in through_pcscd.pop("error")  # the stack names the command that got no answer
    assert through_pcscd == in_process  # outcome, messages, TVR: the same torn tap
    assert _exchanges(there) == _exchanges(here)


@pytest.mark.parametrize("profile", SWEPT)
def test_card_removed_at_every_command(vpcd: PcscdRig, reader: PcscReader, profile: str) -> None:  # noqa: F811
    commands = len(_in_process(SimulatedCard(profile, seed=1)).recorder.exchanges)
    assert commands >= 5
    for answered in range(commands):  # the card leaves instead of answering command number answered + 1
        card = vpcd.card(SimulatedCard(profile, seed=1))
        report = _through_pcscd(reader, before=lambda card=card, n=answered: card.remove_after(n))
        _assert_card_removed(report.result)
        assert len(report.recorder.exchanges) == answered + 1
        assert report.recorder.exchanges[-1].response is None
        card.close()
        vpcd.wait_present(False)


class _UnplugAt:
    """A card that unplugs the reader (stops pcscd) instead of answering command number ``at``."""

    def __init__(self, rig: PcscdRig, card: SimulatedCard, at: int) -> None:
        self.rig, self.card, self.at, self.seen = rig, card, at, 0

    def reset(self) -> None:
        self.card.reset()

    def exchange(self, command: bytes) -> bytes:
        self.seen += 1
        if self.seen == self.at:
            self.rig.daemon.stop()  # pcscd dies while it waits for this answer
            self.rig.unplugged = True  # the fixture starts it again
        return self.card.exchange(command)


def test_reader_unplugged_mid_transaction(vpcd: PcscdRig, reader: PcscReader) -> None:  # noqa: F811
    vpcd.card(_UnplugAt(vpcd, SimulatedCard("mc-cda-offline", seed=1), at=3))
    report = _through_pcscd(reader)
    _assert_card_removed(report.result)
    assert "pcscd" in (report.result.error or "")
    assert len(report.recorder.exchanges) == 3


def test_mute_card_ends_in_a_defined_outcome_in_bounded_time(vpcd: PcscdRig) -> None:  # noqa: F811
    reader = PcscReader.open(f"{vpcd.url}?answer-timeout=1")
    vpcd.card("visa-mute")  # stops answering after SELECT of the application
    started = time.monotonic()
    report = _through_pcscd(reader)
    assert time.monotonic() - started < 5
    _assert_card_removed(report.result)
    assert "stopped answering" in (report.result.error or "")
    # the same card fault on a good card, injected by the virtual card
    vpcd.remove_all()
    card = vpcd.card("mc-cda-offline")
    card.mute_after(3)
    started = time.monotonic()
    report = _through_pcscd(reader)
    assert time.monotonic() - started < 5
    _assert_card_removed(report.result)
    assert len(report.recorder.exchanges) == 4


def test_sale_through_the_terminal_facade_approves(vpcd: PcscdRig, tmp_path: Path) -> None:  # noqa: F811
    vpcd.card("visa-qvsdc-online")
    terminal = open_terminal(tmp_path / "terminal", reader_url="pcsc:", host="memory")
    try:
        payment = terminal.sale(500, 978)
    finally:
        terminal.store.close()
    assert payment.approved, payment.message
    assert payment.card_result is not None and payment.card_result.cryptogram_type == "ARQC"
    assert not payment.offline


def test_replay_card_through_pcscd_replays_the_recorded_trace(
    vpcd: PcscdRig,  # noqa: F811
    reader: PcscReader,
    tmp_path: Path,
) -> None:
    recorded = _in_process(SimulatedCard("mc-cda-offline", seed=1))
    trace_file = tmp_path / "mc.json"
    trace_file.write_text(json.dumps(to_trace(trace_header(recorded.transaction), recorded.recorder.exchanges)))
    card = vpcd.card(str(trace_file))
    assert isinstance(card.card, ReplayCard)
    replayed = _through_pcscd(reader)
    assert replayed.result.to_json() == recorded.result.to_json()
    assert card.card.unused == []


def test_sim_card_command_then_emv_tap_and_sale_on_pcsc(vpcd: PcscdRig, tmp_path: Path) -> None:  # noqa: F811
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [str(POSTERM), "sim", "card", "visa-qvsdc-online", "--via", "vpcd", "--port", str(vpcd.port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        why = server.stderr.read() if server.stderr and not line else line
        assert "serving visa-qvsdc-online" in line and f":{vpcd.port} " in line, why
        tap = subprocess.run(
            [str(POSTERM), "emv", "tap", "--reader", "pcsc:", "--amount", "5.00"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert tap.returncode == 0, tap.stderr
        result = json.loads(tap.stdout)
        assert result["outcome"] == "online_request" and result["cryptogram_type"] == "ARQC"
        vpcd.wait_present(True)
        sale_command = [str(POSTERM), "sale", "--reader", "pcsc:", "--host", "memory", "--data-dir", str(tmp_path)]
        sale = subprocess.run(
            [*sale_command, "--json", "5.00"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert sale.returncode == 0, sale.stderr
        assert json.loads(sale.stdout)["approved"] is True
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert code == 0


_SYSTEM_VIEW = """
import sys
from simulator.pcscd import wait_for_reader_state
sys.exit(0 if wait_for_reader_state("Virtual PCD 00 00", True, 5.0) else 1)
"""


def test_a_card_left_serving_on_the_default_port_stays_out_of_the_tests_reader(
    vpcd: PcscdRig,  # noqa: F811
    reader: PcscReader,
) -> None:
    """A ``posterm sim card --via vpcd`` started in another shell (port 35963, the system pcscd it starts or finds).

    The tests' pcscd reads its own configuration (another port) and runs in a
    mount namespace of its own, so that card and that pcscd do not show in the
    tests' readers, and the tests' transactions read the tests' card.
    """
    if not vpcd.isolated:
        pytest.skip("the tests' pcscd runs on the machine's /run/pcscd here (no mount namespace): none runs beside it")
    elsewhere = {name: value for name, value in os.environ.items() if name != SOCKET_ENV}  # another shell's
    disturber = subprocess.Popen(
        [str(POSTERM), "sim", "card", "visa-qvsdc-online", "--via", "vpcd"],
        cwd=ROOT,
        env={**elsewhere, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert disturber.stdout is not None and disturber.stderr is not None
        line = disturber.stdout.readline()
        if "serving visa-qvsdc-online" not in line:
            disturber.wait(10)
            pytest.skip(f"no card could be left serving on the default port here: {disturber.stderr.read().strip()}")
        seen_elsewhere = subprocess.run(
            [sys.executable, "-c", _SYSTEM_VIEW], cwd=ROOT, env=elsewhere, capture_output=True, timeout=30, check=False
        )
        assert seen_elsewhere.returncode == 0, "the other pcscd should see the card left serving on 35963"
        assert PcscReader.discover() == [f"pcsc:Virtual PCD 00 0{slot}" for slot in (0, 1)]
        ours = vpcd.daemon.vpcd_readers()
        assert ours and not any(reader_has_card(name) for name in ours), "the card on 35963 shows in the tests' reader"
        here = _in_process(SimulatedCard("mc-cda-offline", seed=1))
        vpcd.card(SimulatedCard("mc-cda-offline", seed=1))
        there = _through_pcscd(reader)
        assert there.result.to_json() == here.result.to_json()
        assert _exchanges(there) == _exchanges(here)
    finally:
        disturber.send_signal(signal.SIGTERM)
        try:
            disturber.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            disturber.kill()
            disturber.communicate()
