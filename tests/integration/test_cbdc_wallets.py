"""The simulated hard wallets as users and the other helpers meet them: the CLI, state across processes, and
the real reader stacks (pcscd + vpcd through pyscard, nfcpy's udp transport).

The terminal's own verification over these stacks is the terminal's tests; here the wallet must answer
SELECT, GET WALLET INFO, READ CERTIFICATE, PAY and GET RECORD through each stack as it does in process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.pcsc import PcscReader
from emv.apdu import CardCommunicationError
from simulator.cbdc import pki
from simulator.cbdc.wallet import WalletCard
from simulator.nfc_udp import VirtualNfcField
from terminal import registry
from terminal.ports import CardReader
from tests.integration.pcscd_rig import PcscdRig, pcscd, vpcd  # noqa: F401
from tests.unit.cbdc_wallet_helpers import signed_part, sm3, template, verify
from tests.unit.test_cbdc_wallet import INFO, SELECT_AID, SELECT_PPSE, get_record, ok, pay_apdu, request

POSTERM = str(Path(sys.executable).with_name("posterm"))
ROOT = Path(__file__).resolve().parents[2]


def _env(state: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning", PYTHONUNBUFFERED="1")
    if state is not None:
        env["POSTERM_SIM_STATE"] = str(state)
    return env


def posterm(*args: str, state: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [POSTERM, *args], capture_output=True, text=True, timeout=60, env=_env(state), cwd=ROOT, check=False
    )


def _show(name: str, state: Path) -> dict[str, Any]:
    proc = posterm("sim", "wallet", "show", name, "--json", state=state)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def _pay_session(exchange: Any, challenge: bytes = b"C" * 16, amount: int = 1234) -> bytes:
    """Everything a terminal sends to a wallet, checked; the record returned."""
    ok(exchange(SELECT_PPSE))
    ok(exchange(SELECT_AID))
    info = template(ok(exchange(INFO)), 0xE1)
    wallet_cert = ok(exchange(bytes.fromhex("80B2010000")))
    operator_cert = ok(exchange(bytes.fromhex("80B2020000")))
    keys = pki.wallet("anon")
    assert wallet_cert == keys.certificate and operator_cert == pki.operator("00000101").certificate
    record = ok(exchange(pay_apdu(request(amount, challenge=challenge))))
    fields = template(record, 0xE4)
    assert int.from_bytes(fields[0xDF42], "big") == int.from_bytes(info[0xDF42], "big") + 1
    assert fields[0xDF43] == info[0xDF43] and fields[0xDF53] == challenge
    assert verify(keys.public_key, *signed_part(record))
    assert ok(exchange(get_record(int.from_bytes(fields[0xDF42], "big")))) == record
    return record


# -- the CLI and state across processes ----------------------------------------------------------------------


def test_state_persists_across_processes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    before = _show("cbdc-anon", state)
    assert before["counter"] == 0 and before["balance"] == 500_000 and before["used"] is False
    assert not (state / "wallets.sqlite").exists()  # show only reads
    card = WalletCard("cbdc-anon", state_dir=state)
    first = _pay_session(card.exchange, b"1" * 16, 1234)
    after = _show("cbdc-anon", state)  # another process reads what this one's wallet did
    assert after["counter"] == 1 and after["balance"] == 500_000 - 1234 and after["used"] is True
    assert after["last_record_hash"] == sm3(first).hex().upper()
    records = posterm("sim", "wallet", "records", "cbdc-anon", "--json", state=state)
    assert records.returncode == 0, records.stderr
    assert json.loads(records.stdout)["records"] == [{"counter": 1, "record": first.hex().upper()}]
    text = posterm("sim", "wallet", "records", "cbdc-anon", state=state)
    assert text.stdout.split() == [first.hex().upper()]
    # for an operator that has not verified the wallet yet: its certificate and its operator's follow
    signed = posterm("sim", "wallet", "records", "cbdc-anon", "--with-certificates", state=state).stdout.split()
    anon = pki.wallet("anon")
    assert signed == [first.hex().upper(), anon.certificate.hex().upper(),
                      pki.operator(anon.operator_id.hex()).certificate.hex().upper()]  # fmt: skip
    # a new card object (a later process) continues the chain
    second = _pay_session(WalletCard("cbdc-anon", state_dir=state).exchange, b"2" * 16, 100)
    assert template(second, 0xE4)[0xDF43] == sm3(first)
    listed = posterm("sim", "wallet", "list", "--json", state=state)
    rows = {r["name"]: r for r in json.loads(listed.stdout)["wallets"]}
    assert rows["cbdc-anon"]["counter"] == 2 and rows["cbdc-verified"]["used"] is False
    assert json.loads(listed.stdout)["state_file"] == str(state / "wallets.sqlite")
    reset = posterm("sim", "wallet", "reset", "cbdc-anon", state=state)
    assert reset.returncode == 0 and "forgotten" in reset.stdout
    assert _show("cbdc-anon", state)["counter"] == 0
    again = posterm("sim", "wallet", "reset", "cbdc-anon", state=state)
    assert again.returncode == 0 and "no state" in again.stdout


def test_state_dir_option_beats_the_environment(tmp_path: Path) -> None:
    WalletCard("cbdc-verified", state_dir=tmp_path / "mine").exchange(SELECT_AID)
    card = WalletCard("cbdc-verified", state_dir=tmp_path / "mine")
    ok(card.exchange(SELECT_AID))
    ok(card.exchange(pay_apdu(request())))
    proc = posterm(
        "sim", "wallet", "show", "cbdc-verified", "--json", "--state-dir", str(tmp_path / "mine"),
        state=tmp_path / "other",
    )
    assert proc.returncode == 0 and json.loads(proc.stdout)["counter"] == 1


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (("show", "cbdc-nope"), "unknown wallet profile 'cbdc-nope'"),
        (("records", "visa-qvsdc-offline"), "not a digital-currency wallet"),
        (("reset", "nothing"), "not a digital-currency wallet"),
    ],
)
def test_wallet_commands_refuse_unknown_names_in_one_line(tmp_path: Path, args: tuple[str, ...], wanted: str) -> None:
    proc = posterm("sim", "wallet", *args, state=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and wanted in proc.stderr and "cbdc-anon" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_state_dir_that_is_a_file_is_unavailable_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = posterm("sim", "wallet", "records", "cbdc-anon", "--state-dir", str(blocker / "sub"))
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.count("\n") == 1 and "wallet state" in proc.stderr


def test_emv_cards_lists_the_wallets_with_the_others() -> None:
    proc = posterm("emv", "cards", "--json")
    names = json.loads(proc.stdout)["cards"]
    assert {"cbdc-anon", "cbdc-torn", "visa-qvsdc-offline"} <= set(names)


def test_sim_card_refuses_an_unknown_wallet_before_starting() -> None:
    proc = posterm("sim", "card", "cbdc-nope", "--via", "nfc-udp", "--port", str(_free_udp_port()))
    assert proc.returncode == 2 and "cbdc-nope" in proc.stderr and proc.stderr.count("\n") == 1


# -- nfcpy's udp transport -------------------------------------------------------------------------------------


@pytest.fixture
def field() -> Iterator[VirtualNfcField]:
    with VirtualNfcField() as f:
        yield f


@pytest.fixture
def nfc_reader(field: VirtualNfcField) -> Iterator[CardReader]:
    r = registry.open_reader(field.url)
    yield r
    r.close()


def test_a_wallet_answers_through_nfcpy_udp(field: VirtualNfcField, nfc_reader: CardReader, tmp_path: Path) -> None:
    field.insert(WalletCard("cbdc-anon", state_dir=tmp_path))
    session = nfc_reader.wait_for_card(timeout=5)
    try:
        _pay_session(session.exchange)
    finally:
        session.close()
    assert WalletCard("cbdc-anon", state_dir=tmp_path).store.used()["cbdc-anon"].counter == 1


def _torn_then_resumed(exchange_before: Any, present_again: Any) -> None:
    """PAY gets no answer (the reader raises); presented again the wallet shows it debited and gives the record."""
    ok(exchange_before(SELECT_AID))
    with pytest.raises(CardCommunicationError):  # what every reader raises for a card that does not answer
        exchange_before(pay_apdu(request(1234, challenge=b"T" * 16)))
    exchange = present_again()
    ok(exchange(SELECT_AID))
    fields = template(ok(exchange(INFO)), 0xE1)
    assert int.from_bytes(fields[0xDF42], "big") == 1 and int(fields[0xDF45].hex()) == 500_000 - 1234
    record = ok(exchange(get_record(1)))
    assert template(record, 0xE4)[0xDF53] == b"T" * 16 and sm3(record) == fields[0xDF43]
    assert verify(pki.wallet("torn").public_key, *signed_part(record))


def test_a_torn_wallet_through_nfcpy_udp_answers_get_record_when_presented_again(
    field: VirtualNfcField, nfc_reader: CardReader, tmp_path: Path
) -> None:
    wallet = WalletCard("cbdc-torn", state_dir=tmp_path)
    field.insert(wallet)
    first = nfc_reader.wait_for_card(timeout=5)

    def again() -> Any:
        first.close()
        field.remove()
        field.insert(wallet)
        return nfc_reader.wait_for_card(timeout=5).exchange

    _torn_then_resumed(first.exchange, again)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_posterm_sim_card_serves_a_wallet_via_nfc_udp(tmp_path: Path) -> None:
    port = _free_udp_port()
    server = subprocess.Popen(
        [POSTERM, "sim", "card", "cbdc-anon", "--via", "nfc-udp", "--port", str(port), "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path / "not-this"), cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = f"nfc:udp:127.0.0.1:{port}"
        assert url in line, (line, server.stderr.read() if server.poll() is not None and server.stderr else "")
        assert f"wallet state {tmp_path / 'wallets.sqlite'}" in line
        reader = registry.open_reader(url)
        try:
            session = reader.wait_for_card(timeout=5)
            try:
                record = _pay_session(session.exchange)
            finally:
                session.close()
        finally:
            reader.close()
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=10)
    assert code == 0
    shown = _show("cbdc-anon", tmp_path)  # the serving process kept the state where it was told
    assert shown["counter"] == 1 and shown["last_record_hash"] == sm3(record).hex().upper()


# -- pcscd + vpcd through pyscard --------------------------------------------------------------------------------


def test_a_wallet_answers_through_pcscd(vpcd: PcscdRig, tmp_path: Path) -> None:  # noqa: F811
    vpcd.card(WalletCard("cbdc-anon", state_dir=tmp_path))
    reader = PcscReader.open(vpcd.url)
    try:
        session = reader.wait_for_card(timeout=5)
        try:
            _pay_session(session.exchange)
        finally:
            session.close()
    finally:
        reader.close()
        vpcd.remove_all()


def test_posterm_sim_card_serves_a_wallet_via_vpcd(vpcd: PcscdRig, tmp_path: Path) -> None:  # noqa: F811
    server = subprocess.Popen(
        [POSTERM, "sim", "card", "cbdc-anon", "--via", "vpcd", "--port", str(vpcd.port), "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path / "not-this"), cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        why = server.stderr.read() if server.stderr and not line else line
        assert "serving cbdc-anon" in line and f"wallet state {tmp_path / 'wallets.sqlite'}" in line, why
        vpcd.wait_present(True)
        reader = PcscReader.open(vpcd.url)
        try:
            session = reader.wait_for_card(timeout=5)
            try:
                _pay_session(session.exchange)
            finally:
                session.close()
        finally:
            reader.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert code == 0
    assert _show("cbdc-anon", tmp_path)["counter"] == 1


def test_a_torn_wallet_through_pcscd_answers_get_record_when_presented_again(
    vpcd: PcscdRig, tmp_path: Path  # noqa: F811
) -> None:
    wallet = WalletCard("cbdc-torn", state_dir=tmp_path)
    vpcd.card(wallet)
    reader = PcscReader.open(f"{vpcd.url}?answer-timeout=1")
    sessions = [reader.wait_for_card(timeout=5)]

    def again() -> Any:
        sessions[0].close()
        vpcd.remove_all()
        vpcd.card(wallet)
        sessions.append(reader.wait_for_card(timeout=5))
        return sessions[-1].exchange

    try:
        _torn_then_resumed(sessions[0].exchange, again)
    finally:
        sessions[-1].close()
        reader.close()
        vpcd.remove_all()


_PAYER = """
import sys
from simulator.cbdc.wallet import WalletCard
from tests.unit.test_cbdc_wallet import SELECT_AID, ok, pay_apdu, request

card = WalletCard("cbdc-verified", state_dir=sys.argv[1])
ok(card.exchange(SELECT_AID))
for i in range(int(sys.argv[3])):
    ok(card.exchange(pay_apdu(request(100 + i, challenge=(sys.argv[2] * 16).encode()[:16]))))
"""


def test_two_processes_paying_from_one_wallet_share_one_counter_and_one_chain(tmp_path: Path) -> None:
    """One wallet served by two processes at once (two readers): each counter is used once, the chain holds."""
    count = 6
    payers = [
        subprocess.Popen([sys.executable, "-c", _PAYER, str(tmp_path), tag, str(count)], cwd=ROOT, env=_env(),
                         stderr=subprocess.PIPE, text=True)
        for tag in ("A", "B")
    ]
    for payer in payers:
        _, err = payer.communicate(timeout=120)
        assert payer.returncode == 0, err
    proc = posterm("sim", "wallet", "records", "cbdc-verified", "--json", state=tmp_path)
    kept = [bytes.fromhex(r["record"]) for r in json.loads(proc.stdout)["records"]]
    assert [template(r, 0xE4)[0xDF42] for r in kept] == [n.to_bytes(4, "big") for n in range(1, 2 * count + 1)]
    previous = bytes(32)
    for record in kept:
        assert template(record, 0xE4)[0xDF43] == previous
        previous = sm3(record)
    spent = sum(int(template(r, 0xE4)[0xDF51].hex()) for r in kept)
    assert spent == 2 * sum(100 + i for i in range(count))
    shown = _show("cbdc-verified", tmp_path)
    assert shown["balance"] == 2_000_000 - spent and shown["last_record_hash"] == previous.hex().upper()
