"""Digital-currency wallets through the real stacks: pcscd with vpcd (``pcsc:``) and nfcpy's udp transport.

Each wallet pays through the terminal facade over the real stack and in
process, each from a fresh wallet state of its own (the simulator keeps a
wallet's counter and balance): the outcomes are the same, state and named
refusal.  And the command line: ``posterm sim card cbdc-anon --via vpcd``
served in one process, ``posterm sale --reader pcsc: --currency CNY`` in
another.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from simulator.cbdc.wallet import WalletCard
from simulator.nfc_udp import VirtualNfcField
from terminal.bootstrap import open_terminal
from tests.integration.pcscd_rig import PcscdRig, pcscd, vpcd  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
POSTERM = Path(sys.executable).with_name("posterm")
CNY = 156
WALLETS = [
    "cbdc-anon",
    "cbdc-verified",
    "cbdc-low-balance",
    "cbdc-expired",
    "cbdc-untrusted-operator",
    "cbdc-blocked",
    "cbdc-tampered",
    "cbdc-garbage",
    "cbdc-locked",
]


def _outcome(reader_url: str, data_dir: Path, card: Any = None) -> tuple[str, str | None, bool]:
    terminal = open_terminal(data_dir, reader_url=reader_url, host="none")
    try:
        if card is not None:
            terminal.reader = card
        result = terminal.sale(1234, CNY)
    finally:
        terminal.store.close()
        close = getattr(terminal.reader, "close", None)
        if callable(close):
            close()
    return result.state.value, result.refusal, result.approved


def _in_process(profile: str, tmp_path: Path) -> tuple[str, str | None, bool]:
    state = tmp_path / "here-wallets"
    return _outcome(f"sim:card={profile}?state-dir={state}", tmp_path / "here")


@pytest.mark.parametrize("profile", WALLETS)
def test_a_wallet_through_pcscd_pays_as_in_process(vpcd: PcscdRig, tmp_path: Path, profile: str) -> None:  # noqa: F811
    expected = _in_process(profile, tmp_path)
    vpcd.card(WalletCard(profile, state_dir=tmp_path / "vpcd-wallets"))
    assert _outcome("pcsc:", tmp_path / "vpcd") == expected


@pytest.mark.parametrize("profile", WALLETS)
def test_a_wallet_through_nfcpy_udp_pays_as_in_process(tmp_path: Path, profile: str) -> None:
    expected = _in_process(profile, tmp_path)
    with VirtualNfcField() as field:
        field.insert(WalletCard(profile, state_dir=tmp_path / "nfc-wallets"))
        assert _outcome(field.url, tmp_path / "nfc") == expected


def test_a_torn_payment_through_pcscd_completes_when_the_wallet_is_presented_again(
    vpcd: PcscdRig,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The torn wallet debits and goes quiet at PAY; the customer takes it away and presents it again (the card
    leaves pcscd's reader and comes back): the re-tap fetches its record, the same payment completes."""
    expected = _in_process("cbdc-torn", tmp_path)
    assert expected == ("wallet_approved", None, True)
    card = vpcd.card(WalletCard("cbdc-torn", state_dir=tmp_path / "vpcd-wallets"))
    done = threading.Event()

    def customer() -> None:
        while not done.is_set():
            if card.muted:
                card.remove()
                card.insert()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=customer, daemon=True)
    thread.start()
    try:
        assert _outcome("pcsc:", tmp_path / "vpcd") == expected
    finally:
        done.set()
        thread.join(5)


def test_a_torn_payment_through_nfcpy_udp_completes_on_the_re_tap(tmp_path: Path) -> None:
    expected = _in_process("cbdc-torn", tmp_path)
    with VirtualNfcField() as field:
        field.insert(WalletCard("cbdc-torn", state_dir=tmp_path / "nfc-wallets"))
        assert _outcome(field.url, tmp_path / "nfc") == expected == ("wallet_approved", None, True)


def test_posterm_sim_card_via_vpcd_and_posterm_sale_on_pcsc(vpcd: PcscdRig, tmp_path: Path) -> None:  # noqa: F811
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "POSTERM_SIM_STATE": str(tmp_path / "wallets")}
    server = subprocess.Popen(
        [str(POSTERM), "sim", "card", "cbdc-anon", "--via", "vpcd", "--port", str(vpcd.port)],
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
        assert "serving cbdc-anon" in line, why
        vpcd.wait_present(True)
        sale = subprocess.run(
            [str(POSTERM), "sale", "12.34", "--currency", "CNY", "--reader", "pcsc:", "--host", "none",
             "--data-dir", str(tmp_path / "terminal"), "--json"],
            capture_output=True, text=True, timeout=60, check=False, env=env,
        )  # fmt: skip
        assert sale.returncode == 0, sale.stderr
        result = json.loads(sale.stdout)
        assert (result["approved"], result["kernel"], result["wallet_id"]) == (True, "cbdc", "D1A0********0001")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert code == 0



def test_posterm_sim_card_via_nfc_udp_and_posterm_sale_on_nfc(tmp_path: Path) -> None:
    """Each wallet's outcome through two processes: the wallet served by ``posterm sim card --via nfc-udp``, the
    sale by ``posterm sale --reader nfc:udp:...``; a good wallet approves (exit 0), a bad one is refused by name
    (exit 1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "POSTERM_SIM_STATE": str(tmp_path / "wallets"),
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}  # fmt: skip
    for profile, code, refusal in (("cbdc-anon", 0, None), ("cbdc-blocked", 1, "wallet_blocked")):
        server = subprocess.Popen(
            [str(POSTERM), "sim", "card", profile, "--via", "nfc-udp", "--port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            url = f"nfc:udp:127.0.0.1:{port}"
            assert url in line, (line, server.stderr.read() if server.poll() is not None and server.stderr else "")
            sale = subprocess.run(
                [str(POSTERM), "sale", "12.34", "--currency", "CNY", "--reader", url, "--host", "none",
                 "--data-dir", str(tmp_path / "terminal"), "--json"],
                capture_output=True, text=True, timeout=60, check=False, env=env,
            )  # fmt: skip
            assert sale.returncode == code, sale.stderr
            result = json.loads(sale.stdout)
            assert (result["kernel"], result["refusal"], result["approved"]) == ("cbdc", refusal, code == 0)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                raise
