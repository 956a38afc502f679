"""EMV through the real nfcpy stack: the ``nfc:udp:`` reader against the simulator's virtual field.

Every byte goes ContactlessFrontend -> nfcpy's udp driver -> loopback UDP ->
:class:`simulator.nfc_udp.VirtualNfcField` (ISO 14443-3 activation, ISO-DEP
blocks) -> the simulated card, and back through nfcpy's Type4Tag.  The
in-process transport (``as_transport(SimulatedCard(...))``) is the reference.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emv.outcome import Message, Outcome, TransactionResult
from emv.transaction import TransactionData
from simulator import profiles
from simulator.card import SimulatedCard
from simulator.nfc_udp import NO_ANSWER, VirtualNfcField
from simulator.transport import as_transport
from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.emv_session import TapInputs, build_transaction, run_tap
from terminal.offline import PaymentRefused
from terminal.ports import CardReader, CardRemovedError, CollisionDetected, DeviceError, DeviceGone, NoCardError
from terminal.settings import load_default_config

POSTERM = str(Path(sys.executable).with_name("posterm"))
ROOT = Path(__file__).resolve().parents[2]
# The well-behaved cards of docs/card-profiles.md (the others are there to fail in named ways).
GOOD = ["visa-qvsdc-online", "visa-qvsdc-offline", "visa-mobile-cdcvm", "mc-cda-online", "mc-cda-offline"]
READ_RECORD = bytes.fromhex("00B2010C00")


def _txn(amount: int) -> TransactionData:
    inputs = TapInputs(
        amount=amount,
        currency=978,
        unpredictable_number=bytes.fromhex("1A2B3C4D"),
        date=bytes.fromhex("261121"),
        time=bytes.fromhex("101500"),
    )
    return build_transaction(inputs, now=lambda: datetime.datetime(2026, 11, 21, 10, 15), random_bytes=bytes)


def _card(profile: str) -> SimulatedCard:
    return SimulatedCard(profile, seed=7)


def _in_process(profile: str, amount: int) -> TransactionResult:
    return run_tap(as_transport(_card(profile)), load_default_config(), _txn(amount)).result


def _through_nfc(reader: CardReader, amount: int) -> TransactionResult:
    session = reader.wait_for_card(timeout=5)
    try:
        return run_tap(session, load_default_config(), _txn(amount)).result
    finally:
        session.close()


def _essentials(result: TransactionResult) -> dict[str, Any]:
    return {
        "outcome": result.outcome,
        "cryptogram_type": result.cryptogram_type,
        "cryptogram": result.cryptogram,
        "tvr": result.tvr.hex(),
        "oda": result.oda.to_json(),
        "cvm": result.cvm,
        "commands": [c.hex() for c in result.commands],
    }


@pytest.fixture
def field() -> Iterator[VirtualNfcField]:
    with VirtualNfcField() as f:
        yield f


@pytest.fixture
def reader(field: VirtualNfcField) -> Iterator[CardReader]:
    r = registry.open_reader(field.url)
    yield r
    r.close()


# -- the same transaction, in process and through nfcpy ------------------------------------------


@pytest.mark.parametrize("profile", [p for p in profiles.list_names() if profiles.load(p).fault != "mute"])
def test_a_transaction_through_nfcpy_udp_ends_as_in_process(
    profile: str, field: VirtualNfcField, reader: CardReader
) -> None:
    for amount in (1234, 6000):
        expected = _in_process(profile, amount)
        field.insert(_card(profile))
        got = _through_nfc(reader, amount)
        assert _essentials(got) == _essentials(expected), (profile, amount)
    if profile in GOOD:
        assert expected.cryptogram_type in ("TC", "ARQC")


def test_the_mute_card_ends_in_try_again_by_the_readers_own_timeout(field: VirtualNfcField, reader: CardReader) -> None:
    """visa-mute stops answering after SELECT: nothing is sent, nfcpy waits out the card's FWT (~1.24 s)."""
    expected = _in_process("visa-mute", 1234)
    field.insert(_card("visa-mute"))
    started = time.monotonic()
    got = _through_nfc(reader, 1234)
    assert got.outcome is expected.outcome is Outcome.TRY_AGAIN
    assert [m.message for m in got.messages] == [Message.PRESENT_CARD_AGAIN]
    assert 1.0 < time.monotonic() - started < 10


@pytest.mark.parametrize(("frame_size", "commands_chained"), [(16, True), (64, False)])
def test_small_frames_chain_and_change_nothing(frame_size: int, commands_chained: bool) -> None:
    with VirtualNfcField(frame_size=frame_size) as field:
        reader = registry.open_reader(field.url)
        try:
            card = field.insert(_card("mc-cda-online"))
            got = _through_nfc(reader, 1234)
        finally:
            reader.close()
    assert _essentials(got) == _essentials(_in_process("mc-cda-online", 1234))
    assert card.chained_out > 0 and (card.chained_in > 0) is commands_chained  # no command of C-2 is over 61 bytes


# -- long answers -----------------------------------------------------------------------------------


class LongRecordCard:
    """READ RECORD answers ``size`` bytes; anything else is echoed back with 9000."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.commands: list[bytes] = []

    def exchange(self, command: bytes) -> bytes:
        self.commands.append(command)
        if command[1:2] == b"\xb2":
            return bytes(i % 251 for i in range(self.size)) + b"\x90\x00"
        return command + b"\x90\x00"


@pytest.mark.parametrize(("size", "frame_size", "chained"), [(250, 64, True), (250, 256, False), (256, 256, True)])
def test_long_answers_go_through_iso_dep_chaining(size: int, frame_size: int, chained: bool) -> None:
    app = LongRecordCard(size)
    with VirtualNfcField(frame_size=frame_size) as field:
        card = field.insert(app)
        reader = registry.open_reader(field.url)
        try:
            session = reader.wait_for_card(timeout=5)
            answer = session.exchange(READ_RECORD)
            long_command = bytes.fromhex("80DA0000C8") + bytes(range(200))
            echo = session.exchange(long_command)
            session.close()
        finally:
            reader.close()
    assert answer == bytes(i % 251 for i in range(size)) + b"\x90\x00"
    assert (card.chained_out > 0) is chained
    assert echo == long_command + b"\x90\x00" and app.commands[-1] == long_command
    assert card.chained_in == (200 + 5 - 1) // (frame_size - 3)  # every full frame but the last is chained


# -- what the driver reports ------------------------------------------------------------------------


def _with_tck(atr: bytes) -> bytes:
    tck = 0
    for byte in atr[1:]:
        tck ^= byte
    return atr + bytes([tck])


def test_the_atr_is_a_pcsc_atr_built_from_the_ats_or_the_atqb(field: VirtualNfcField, reader: CardReader) -> None:
    card = field.insert("visa-qvsdc-online")
    session = reader.wait_for_card(timeout=5)
    assert getattr(session, "ats", None) == card.ats
    assert session.atr == _with_tck(bytes.fromhex("3B878001") + b"POSTERM")
    assert getattr(session, "identifier", None) == card.uid
    session.close()
    card = field.insert("visa-qvsdc-online", technology="B")
    session = reader.wait_for_card(timeout=5)
    assert session.atr == _with_tck(bytes.fromhex("3B888001") + card.atqb[5:12] + b"\x00")
    session.close()


def test_a_closed_reader_is_a_reader_gone(field: VirtualNfcField) -> None:
    reader = registry.open_reader(field.url)
    field.insert("visa-qvsdc-online")
    session = reader.wait_for_card(timeout=5)
    reader.close()
    with pytest.raises(DeviceGone):
        session.exchange(bytes.fromhex("00A404000E325041592E5359532E444446303100"))
    session.close()
    with pytest.raises(DeviceGone):
        reader.wait_for_card(timeout=1)


def test_what_cannot_be_opened_is_a_device_error_and_discovery_is_bounded() -> None:
    from drivers.nfc import NfcReader

    with pytest.raises(DeviceError):
        registry.open_reader("nfc:udp:no-such-host.invalid:54329")
    started = time.monotonic()
    found = NfcReader.discover()
    assert isinstance(found, list) and all(url.startswith("nfc:usb:") for url in found)
    assert time.monotonic() - started < 5


# -- removal ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", GOOD)
def test_removal_at_every_apdu_ends_in_try_again_with_present_card_again(
    profile: str, field: VirtualNfcField, reader: CardReader
) -> None:
    reference = _in_process(profile, 1234)
    count = len(reference.commands)
    assert count >= 4
    for position in range(count):
        card = field.insert(_card(profile))
        session = reader.wait_for_card(timeout=5)
        try:
            field.remove_after(position)
            result = run_tap(session, load_default_config(), _txn(1234)).result
        finally:
            session.close()
        assert result.outcome is Outcome.TRY_AGAIN, (profile, position, result.error)
        assert [m.message for m in result.messages] == [Message.PRESENT_CARD_AGAIN], (profile, position)
        assert result.error and result.error.startswith("card communication"), (profile, position, result.error)
        assert card.apdus == position and card.left
        assert field.cards == []
    with pytest.raises(NoCardError):
        reader.wait_for_card(timeout=0.2)


def test_removal_is_reported_as_card_removed_at_once(field: VirtualNfcField, reader: CardReader) -> None:
    field.insert(_card("visa-qvsdc-online"))
    session = reader.wait_for_card(timeout=5)
    field.remove()
    started = time.monotonic()
    with pytest.raises(CardRemovedError):
        session.exchange(bytes.fromhex("00A404000E325041592E5359532E444446303100"))
    assert time.monotonic() - started < 0.5
    session.close()


def test_a_card_going_mute_mid_transaction_is_found_out_by_timeout(field: VirtualNfcField, reader: CardReader) -> None:
    field.insert(_card("visa-qvsdc-offline"))
    session = reader.wait_for_card(timeout=5)
    field.mute_after(2)
    try:
        result = run_tap(session, load_default_config(), _txn(1234)).result
    finally:
        session.close()
    assert result.outcome is Outcome.TRY_AGAIN and len(result.commands) == 3
    # The reader's field off (RFOFF) power-cycles the card: no longer mute (its count is spent, though:
    # the next command mutes it again).
    card = field.cards[0]
    deadline = time.monotonic() + 2
    while card.muted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not card.muted


def test_without_the_silence_announcement_nfcpy_times_out_by_itself() -> None:
    with VirtualNfcField(announce_silence=False) as field:
        reader = registry.open_reader(field.url)
        try:
            started = time.monotonic()
            with pytest.raises(NoCardError):
                reader.wait_for_card(timeout=0.1)  # one round: 1 s per technology in nfcpy's udp driver
            assert time.monotonic() - started < 5
            field.insert(_card("visa-qvsdc-online"))
            assert _through_nfc(reader, 1234).outcome is Outcome.ONLINE_REQUEST
        finally:
            reader.close()


# -- two cards --------------------------------------------------------------------------------------


@pytest.mark.parametrize("technologies", [("A", "A"), ("A", "B"), ("B", "A")])
def test_two_cards_are_a_collision(technologies: tuple[str, str], field: VirtualNfcField, reader: CardReader) -> None:
    field.insert_two("visa-qvsdc-online", "mc-cda-online", technologies=technologies)
    with pytest.raises(CollisionDetected):
        reader.wait_for_card(timeout=5)
    field.insert("visa-qvsdc-online")  # the second card taken away: the first one reads
    assert _through_nfc(reader, 1234).outcome is Outcome.ONLINE_REQUEST


def test_the_field_merges_answers_like_the_air(field: VirtualNfcField) -> None:
    one, two = field.insert_two("visa-qvsdc-online", "mc-cda-online")
    assert one.atqa != two.atqa
    collided = field.answer(b"106A 26")
    assert collided is not None and collided.endswith(b" COLLISION")
    field.remove()
    assert field.cards == [] and field.answer(b"106A 26") == NO_ANSWER
    field.insert("visa-qvsdc-online")
    assert field.answer(b"106A 26") == b"106A 0400"
    assert field.answer(b"106B 050010") == NO_ANSWER


# -- the terminal ----------------------------------------------------------------------------------


def test_a_sale_through_the_facade_approves(field: VirtualNfcField, tmp_path: Path) -> None:
    field.insert("visa-qvsdc-online")
    terminal = open_terminal(tmp_path, reader_url=field.url, host="memory")
    try:
        payment = terminal.sale(1234, 978)
    finally:
        terminal.store.close()
        if terminal.reader is not None:
            terminal.reader.close()
    assert payment.approved, payment.message
    assert payment.card_result is not None and payment.card_result.cryptogram_type == "ARQC"


def test_two_cards_at_the_facade_are_one_card_only(field: VirtualNfcField, tmp_path: Path) -> None:
    field.insert_two("visa-qvsdc-online", "mc-cda-online")
    terminal = open_terminal(tmp_path, reader_url=field.url, host="memory")
    try:
        with pytest.raises(PaymentRefused) as refused:
            terminal.sale(1234, 978)
    finally:
        terminal.store.close()
        if terminal.reader is not None:
            terminal.reader.close()
    assert refused.value.reason == "one_card_only"


# -- the command line -------------------------------------------------------------------------------


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning", PYTHONUNBUFFERED="1")


def _serve_and_tap(command: list[str], port: int, tmp_path: Path) -> None:
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = f"nfc:udp:127.0.0.1:{port}"
        assert url in line, (line, server.stderr.read() if server.poll() is not None and server.stderr else "")
        tap = subprocess.run(
            [POSTERM, "emv", "tap", "--reader", url, "--amount", "5.00"],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
            cwd=tmp_path,
            check=False,
        )
        assert tap.returncode == 0, tap.stderr
        assert json.loads(tap.stdout)["outcome"] == "online_request"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise
    assert code == 0


def test_serve_card_cli_in_a_process_and_posterm_emv_tap(tmp_path: Path) -> None:
    port = _free_udp_port()
    runner = (
        "import argparse, sys; from simulator.nfc_udp import serve_card_cli; "
        f"sys.exit(serve_card_cli(argparse.Namespace(card='visa-qvsdc-online', second_card=None, "
        f"bind='127.0.0.1', port={port}, fault=[])))"
    )
    _serve_and_tap([sys.executable, "-c", runner], port, tmp_path)


def test_posterm_sim_card_via_nfc_udp_and_posterm_emv_tap(tmp_path: Path) -> None:
    probe = subprocess.run([POSTERM, "sim", "card", "--help"], capture_output=True, text=True, env=_env(), check=False)
    assert probe.returncode == 0, probe.stderr  # 'posterm sim' is registered (posterm.commands)
    port = _free_udp_port()
    command = [POSTERM, "sim", "card", "visa-qvsdc-online", "--via", "nfc-udp", "--port", str(port)]
    _serve_and_tap(command, port, tmp_path)


def test_serve_card_cli_refuses_a_bad_fault_and_an_unknown_card() -> None:
    from argparse import Namespace

    from simulator.nfc_udp import serve_card_cli
    from terminal.cli_output import CommandError
    from terminal.exit_status import status_for

    base = {"second_card": None, "bind": "127.0.0.1", "port": 0}
    with pytest.raises(CommandError, match="explode") as bad_fault:
        serve_card_cli(Namespace(card="visa-qvsdc-online", fault=["explode=1"], **base))
    with pytest.raises(CommandError, match="no-such-card") as unknown:
        serve_card_cli(Namespace(card="no-such-card", fault=[], **base))
    assert status_for(bad_fault.value) == status_for(unknown.value) == 2


def test_serve_card_cli_on_a_port_in_use_is_unavailable() -> None:
    from argparse import Namespace

    from simulator.nfc_udp import serve_card_cli
    from terminal.cli_output import Unavailable
    from terminal.exit_status import status_for

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        args = Namespace(card="visa-qvsdc-online", second_card=None, bind="127.0.0.1", port=port, fault=[])
        with pytest.raises(Unavailable, match=f"127.0.0.1:{port}: the port is in use") as raised:
            serve_card_cli(args)
    assert status_for(raised.value) == 3


def test_cli_faults_remove_and_reinsert_the_card() -> None:
    from simulator.nfc_udp import FieldFaults

    with VirtualNfcField(["visa-qvsdc-online"], faults=FieldFaults(remove_after=1, reinsert_after=0.3)) as field:
        nfc_reader = registry.open_reader(field.url)
        try:
            session = nfc_reader.wait_for_card(timeout=5)
            result = run_tap(session, load_default_config(), _txn(1234)).result
            session.close()
            assert result.outcome is Outcome.TRY_AGAIN and len(result.commands) == 2
            started = time.monotonic()
            session = nfc_reader.wait_for_card(timeout=5)  # back after 0.3 s
            assert time.monotonic() - started > 0.2
            assert session.exchange(bytes.fromhex("00A404000E325041592E5359532E444446303100"))[-2:] == b"\x90\x00"
            session.close()
        finally:
            nfc_reader.close()


def test_the_benchmark_measures_both_paths() -> None:
    from bench.nfc_stack import markdown, measure

    rows = measure(["visa-qvsdc-online"], runs=2)
    assert len(rows) == 1 and rows[0][0] == "visa-qvsdc-online" and rows[0][1] > 0 and rows[0][2] > 0
    assert "visa-qvsdc-online" in markdown(rows, 2)
