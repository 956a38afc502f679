"""QR sales at the terminal, end to end: the terminal's journal, the real host over mutual TLS on loopback.

One host process (two workers, SQLite books) serves the module; each test
enrols a terminal of its own.  The wallet apps act through the host's data
directory (``HostService.wallet_*``: what ``posterm sim wallet code|pay`` and
``posterm host wallet confirm`` do).  After every test the money invariant is
checked: every order the host reports paid for the test's terminal is a sale
the terminal recorded as paid (with the same reference and amount), every
refund the host made is one the terminal recorded, and nothing else moved
any wallet account.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from host_link.client import HttpsHostLink, IdempotentRetry
from host_link.qr import QrLink
from host_link.tls import client_context
from simulator.host.admin import AdminRefused
from simulator.host.service import HostService, start_host
from simulator.pty_scanner import VirtualScanner
from terminal.bootstrap import open_terminal
from terminal.devices import LazyScanner
from terminal.facade import Terminal, TerminalEvent
from terminal.lifecycle import APPROVED_STATES, State
from terminal.offline import PaymentRefused
from terminal.ports import NoCodeError
from terminal.qr_payment import QrOptions

EUR = 978
MID = "POSTERM0000001"
_ids = itertools.count(1)
POSTERM = [sys.executable, "-m", "terminal.cli"]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    service = start_host(tmp_path_factory.mktemp("host"), workers=2)
    try:
        yield service
    finally:
        service.stop()


class Rig:
    """Terminals of one test: data directories enrolled at the host, opened with links of short time-outs."""

    def __init__(self, host: HostService, folder: Path) -> None:
        self.host = host
        self.folder = folder
        self.terminals: list[Terminal] = []
        self.ids: set[str] = set()
        self.cli_data: list[Path] = []  # terminals driven by subprocesses: their journals opened at the end

    def enrol(self) -> tuple[str, Path]:
        terminal_id = f"QS{next(_ids):06d}"
        data = self.folder / terminal_id
        bundle = self.folder / f"{terminal_id}.json"
        bundle.write_text(json.dumps(self.host.credential_bundle(terminal_id, MID)), encoding="utf-8")
        done = posterm("enrol", str(bundle), "--data-dir", str(data))
        assert done.returncode == 0, done.stderr
        self.ids.add(terminal_id)
        return terminal_id, data

    def terminal(self, *, read_timeout: float = 3.0) -> Terminal:
        terminal_id, data = self.enrol()
        terminal = open_terminal(data, host="none", reader_url="none")
        creds = data / "host-link"
        link = HttpsHostLink(
            self.host.url, terminal_id=terminal_id, merchant_id=MID,
            ssl_context=client_context(ca_file=_one(creds, "ca"), cert_file=_one(creds, "client-cert"),
                                       key_file=_one(creds, "client-key")),
            connect_timeout=1.0, read_timeout=read_timeout,
            retry=IdempotentRetry(attempts=2, backoff_seconds=0.05, total_seconds=2.0),
        )  # fmt: skip
        terminal.host = link
        terminal.config = replace(terminal.config, terminal_id=terminal_id, merchant_id=MID)
        self.terminals.append(terminal)
        return terminal


def _one(folder: Path, stem: str) -> Path:
    found = [p for p in folder.rglob(f"{stem}.pem")]
    assert found, f"no {stem}.pem under {folder}: {sorted(p.name for p in folder.rglob('*'))}"
    return found[0]


def posterm(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.run([*POSTERM, *argv], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def recorded(terminal: Terminal) -> dict[str, Any]:
    return {r.details.get("qr_reference"): r for r in terminal.transactions() if r.details.get("qr_mode")}


@pytest.fixture
def rig(host: HostService, tmp_path: Path) -> Iterator[Rig]:
    made = Rig(host, tmp_path)
    balances = host.wallet_balances()
    try:
        yield made
    finally:
        host.clear_faults()
        host.set_wallet_mode("normal")
    # The money invariant: nobody is charged without a sale the terminal recorded, nobody paid back more.
    made.terminals += [open_terminal(d, host="none", reader_url="none") for d in made.cli_data]
    mine = [o for o in host.qr_orders() if o["terminal_id"] in made.ids]
    rows = {}
    for terminal in made.terminals:
        rows.update(recorded(terminal))
    taken: dict[tuple[str, int], int] = {}
    for order in mine:
        if order["state"] != "paid":
            continue
        row = rows.get(order["reference"])
        assert row is not None and row.state in APPROVED_STATES and row.amount == order["amount"], (order, row)
        refunds = [r for r in made.terminals[0].transactions(original_txn_id=row.txn_id)] if made.terminals else []
        assert order["refunded"] == sum(r.amount for r in refunds if r.state in APPROVED_STATES), order
        key = (order["account"], order["currency"])
        taken[key] = taken.get(key, 0) + order["amount"] - order["refunded"]
    for row in rows.values():  # and no sale recorded paid that the host does not hold paid
        if row.kind == "sale" and row.state is State.QR_PAID:
            assert any(o["reference"] == row.details["qr_reference"] and o["state"] == "paid" for o in mine), row
    after = host.wallet_balances()
    for key, before in balances.items():
        assert after[key] == before - taken.get(key, 0), (key, before, after[key], taken)
    for terminal in made.terminals:
        terminal.close()


class Shown:
    """What the terminal showed: the payloads of its codes, and its QR messages."""

    def __init__(self, terminal: Terminal) -> None:
        self.payloads: list[str] = []
        self.messages: list[str] = []
        terminal.subscribe(self.event)

    def show(self, txn_id: str, payload: str) -> None:
        self.payloads.append(payload)

    def event(self, event: TerminalEvent) -> None:
        if event.kind == "qr_status":
            self.messages.append(str(event.data.get("message")))


def in_background(action: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def until(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("the condition never held")


# ----------------------------------------------------------------------------- merchant-presented


def test_cli_qr_show_is_paid_by_the_simulated_app(host: HostService, rig: Rig, tmp_path: Path) -> None:
    """``posterm sale 12.34 --qr-show`` (a real process) shows a code that ``posterm sim wallet pay`` pays."""
    terminal_id, data = rig.enrol()
    rig.cli_data.append(data)
    png = tmp_path / "code.png"
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[2])}
    sale = subprocess.Popen(
        [*POSTERM, "sale", "12.34", "--qr-show", "--png", str(png), "--data-dir", str(data), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert sale.stderr is not None
        payload = ""
        for line in sale.stderr:
            if line.startswith("QR payload: "):
                payload = line.removeprefix("QR payload: ").strip()
                break
        assert payload.startswith("000201010212"), payload  # a dynamic code (point of initiation 12)
        decoded = json.loads(posterm("qr", "decode", payload).stdout)
        assert decoded["transaction_amount"] == "12.34"
        assert decoded["additional_data"]["terminal_label"] == terminal_id
        assert decoded["merchant_account_templates"]["26"]["fields"]["02"]  # the host's order id
        paid = posterm("sim", "wallet", "pay", payload, "--account", "alice", "--data-dir", str(host.data_dir),
                       "--json")  # fmt: skip
        assert paid.returncode == 0, paid.stderr
        out, err = sale.communicate(timeout=60)
    finally:
        sale.kill()
        sale.wait()
    assert sale.returncode == 0, err
    result = json.loads(out)
    assert (result["approved"], result["scheme"], result["amount"], result["state"]) == (
        True, "qr-simpay", 1234, "qr_paid")  # fmt: skip
    assert png.read_bytes().startswith(b"\x89PNG")


def test_cli_ctrl_c_closes_the_order(host: HostService, rig: Rig) -> None:
    """Ctrl-C while ``posterm sale --qr-show`` waits: the order is closed at the host, the app refused after."""
    _, data = rig.enrol()
    rig.cli_data.append(data)
    sale = subprocess.Popen(
        [*POSTERM, "sale", "3.00", "--qr-show", "--data-dir", str(data)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    try:
        assert sale.stderr is not None
        payload = next(line.removeprefix("QR payload: ").strip() for line in sale.stderr if line.startswith("QR"))
        next(line for line in sale.stderr if line.startswith("waiting for the customer"))
        sale.send_signal(signal.SIGINT)
        out, err = sale.communicate(timeout=60)
    finally:
        sale.kill()
        sale.wait()
    assert sale.returncode == 1, err
    assert "the order is closed at the host, nothing is charged" in out and "state cancelled" in out
    with pytest.raises(AdminRefused):
        host.wallet_pay(payload, "alice")


def test_a_code_not_paid_in_time_is_closed_and_the_late_app_refused(host: HostService, rig: Rig) -> None:
    terminal = rig.terminal()
    shown = Shown(terminal)
    result = terminal.qr_sale(500, EUR, show=shown.show, options=QrOptions(timeout=1.5, poll=1))
    assert (result.approved, result.state) == (False, State.CANCELLED)
    assert "closed at the host" in result.message and "waiting for the customer" in shown.messages
    with pytest.raises(AdminRefused):
        host.wallet_pay(shown.payloads[0], "alice")  # closed: never charged afterwards


class RaceAtClose:
    """The host link, but the app pays the order just before the terminal's close reaches the host."""

    def __init__(self, qr: QrLink, host: HostService, payloads: list[str], *, then_down: bool = False) -> None:
        self.qr, self.host, self.payloads, self.then_down = qr, host, payloads, then_down

    def __getattr__(self, name: str) -> Any:
        return getattr(self.qr, name)

    def close_order(self, order_id: str) -> Any:
        if self.payloads:  # once
            self.host.wallet_pay(self.payloads.pop(), "bob")
            if self.then_down:
                self.host.set_faults(down=True)
        return self.qr.close_order(order_id)


def _racing(terminal: Terminal, host: HostService, shown: Shown, *, then_down: bool = False) -> None:
    link = terminal.host
    assert isinstance(link, HttpsHostLink)

    class Racing:
        def __getattr__(self, name: str) -> Any:
            return getattr(link, name)

        def qr_link(self, *_: Any) -> Any:
            return RaceAtClose(QrLink(link), host, shown.payloads, then_down=then_down)

    terminal.host = Racing()  # type: ignore[assignment]


def test_the_app_paying_just_before_the_close_is_recorded_as_a_sale(host: HostService, rig: Rig) -> None:
    terminal = rig.terminal()
    shown = Shown(terminal)
    _racing(terminal, host, shown)
    result = terminal.qr_sale(750, EUR, show=shown.show, options=QrOptions(timeout=1.0, poll=1))
    assert (result.approved, result.state, result.scheme) == (True, State.QR_PAID, "qr-simchat")
    assert "paid just before the order was closed" in result.message


def test_an_order_paid_while_the_terminal_gave_up_is_learnt_at_the_check(host: HostService, rig: Rig) -> None:
    terminal = rig.terminal()
    shown = Shown(terminal)
    _racing(terminal, host, shown, then_down=True)  # paid, then the host is away for the close
    result = terminal.qr_sale(640, EUR, show=shown.show, options=QrOptions(timeout=1.0, poll=1))
    assert (result.approved, result.state) == (False, State.QR_IN_DOUBT)
    assert "posterm qr orders --check" in result.message
    host.clear_faults()
    link = terminal.host
    link.echo(force=True)  # type: ignore[union-attr]
    checked = terminal.qr_check()
    assert [(c.txn_id, c.state, c.in_doubt) for c in checked] == [(result.txn_id, State.QR_PAID, False)]
    assert terminal.result(result.txn_id).approved


def test_host_down_when_the_order_is_made_nothing_is_taken(host: HostService, rig: Rig) -> None:
    terminal = rig.terminal()
    host.set_faults(down=True)
    shown = Shown(terminal)
    result = terminal.qr_sale(300, EUR, show=shown.show, options=QrOptions(timeout=5, poll=1))
    assert (result.approved, result.state) == (False, State.DECLINED)
    assert "QR payments need the host: not taken" in result.message and shown.payloads == []


@pytest.mark.parametrize("fault", ["drop", "slow"])
def test_an_order_whose_answer_is_lost_is_cancelled_by_its_reference(
    host: HostService, rig: Rig, fault: str
) -> None:
    terminal = rig.terminal(read_timeout=0.5)
    faults = {"drop": {"drop_after_request": True}, "slow": {"slow_ms": 1500}}[fault]
    host.set_faults(**faults, only=["/v1/qr/orders"])  # (the cancel, /v1/qr/payments/cancel, gets through)
    shown = Shown(terminal)
    result = terminal.qr_sale(300, EUR, show=shown.show, options=QrOptions(timeout=5, poll=1))
    assert (result.approved, result.state) == (False, State.CANCELLED) and shown.payloads == []
    ref = terminal.transaction(result.txn_id).details["qr_reference"]  # type: ignore[union-attr]
    states = {o["state"] for o in host.qr_orders() if o["reference"] == ref}
    assert states <= {"cancelled"}, states  # the order, if the host made it, can never be paid


def test_the_host_away_while_waiting_is_polled_again_with_backoff(host: HostService, rig: Rig) -> None:
    terminal = rig.terminal(read_timeout=0.5)
    shown = Shown(terminal)

    def app() -> None:
        until(lambda: shown.payloads)
        host.set_faults(drop_after_request=True, only=["/v1/qr/orders/"])  # the polls are lost for a while
        time.sleep(1.5)
        host.wallet_pay(shown.payloads[0], "alice")
        host.clear_faults()

    thread = in_background(app)
    result = terminal.qr_sale(880, EUR, show=shown.show, options=QrOptions(timeout=30, poll=2))
    thread.join()
    assert (result.approved, result.state) == (True, State.QR_PAID)


# ----------------------------------------------------------------------------- consumer-presented


@pytest.fixture
def scanner() -> Iterator[VirtualScanner]:
    virtual = VirtualScanner(rate=4.0)
    try:
        yield virtual
    finally:
        virtual.close()


def _send_when_open(scanner: VirtualScanner, codes: list[str]) -> threading.Thread:
    """Send the codes one by one, each again until the terminal has read it (pyserial drops what came
    before the port was opened): a scanner that keeps scanning, as a cashier does."""
    stop = threading.Event()

    def run() -> None:
        for code in codes:
            for _ in range(40):
                scanner.send(code)
                if stop.wait(0.25):
                    return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.stop = stop  # type: ignore[attr-defined]
    return thread


def scanning(terminal: Terminal, scanner: VirtualScanner, codes: list[str]) -> None:
    """Open the terminal's scanner (pyserial drops what came before), then scan ``codes`` in order.

    The port is opened once: two readers of one pty would each take part of a line."""
    if not isinstance(terminal.scanner, LazyScanner) or terminal.scanner.url != scanner.url:
        terminal.scanner = LazyScanner(scanner.url)
    with contextlib.suppress(NoCodeError):
        terminal.scanner.read(timeout=0.05)
    for code in codes:
        scanner.send(code)


def test_cli_wallet_code_through_the_pty_scanner_with_in_app_confirmation(
    host: HostService, rig: Rig, scanner: VirtualScanner
) -> None:
    """``posterm sale 9.90 --qr-scan --scanner serial:...`` (a real process); the customer confirms in the app."""
    _, data = rig.enrol()
    rig.cli_data.append(data)
    host.set_wallet_mode("confirm")
    code = host.wallet_code("bob")
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[2])}
    sale = subprocess.Popen(
        [*POSTERM, "sale", "9.90", "--qr-scan", "--scanner", scanner.url, "--data-dir", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        sending = _send_when_open(scanner, [code])
        assert sale.stderr is not None
        for line in sale.stderr:
            if "customer is confirming in the app" in line:
                break
        sending.stop.set()  # type: ignore[attr-defined]
        order = until(lambda: [o for o in host.qr_orders() if o["state"] == "user_paying" and o["amount"] == 990])
        host.wallet_confirm(order[0]["order_id"])
        out, err = sale.communicate(timeout=60)
    finally:
        sale.kill()
        sale.wait()
    assert sale.returncode == 0, err
    assert "approved: paid with simchat" in out and "state qr_paid" in out


def test_garbage_truncated_used_and_twice_read_codes_charge_nothing(
    host: HostService, rig: Rig, scanner: VirtualScanner
) -> None:
    terminal = rig.terminal()
    shown = Shown(terminal)
    code = host.wallet_code("alice")
    scanning(terminal, scanner, [code])
    first = terminal.qr_sale(120, EUR)
    assert (first.approved, first.scheme) == (True, "qr-simpay")
    # the same code again, twice (a second sale), then garbage: declined for the code, nothing charged
    scanning(terminal, scanner, [code, code, "hello there", "91234567"])
    second = terminal.qr_sale(340, EUR, attempts=4)
    assert (second.approved, second.state, second.refusal) == (False, State.DECLINED, "code_used")
    text = " | ".join(shown.messages)
    assert "this code was used already" in text
    assert "read already for this sale" in text
    assert "not a payment code" in text and "truncated (8 of 18 digits)" in text


def test_an_unknown_code_is_declined_in_words(host: HostService, rig: Rig, scanner: VirtualScanner) -> None:
    terminal = rig.terminal()
    scanning(terminal, scanner, ["919999999999999999"])
    result = terminal.qr_sale(100, EUR, attempts=1)
    assert (result.approved, result.refusal) == (False, "unknown_code")
    assert "ask the customer to show a new one" in result.message


def test_an_emv_cpm_code_through_the_pty_scanner_is_authorised_online(
    host: HostService, rig: Rig, scanner: VirtualScanner
) -> None:
    """A CPM code (``posterm sim wallet cpm``: a simulated card's ARQC) becomes an online authorisation."""
    from simulator.cpm_code import cpm_payload

    terminal = rig.terminal()
    scanning(terminal, scanner, [cpm_payload("visa-qvsdc-online", 990, EUR)])
    paid = terminal.qr_sale(990, EUR, attempts=1)
    assert (paid.approved, paid.state, paid.scheme, paid.response_code) == (True, State.APPROVED, "visa", "00")
    assert paid.masked_pan == "476173******0010"
    # a code made for another amount: the card signed 9.90, the sale is 19.90 (13), nothing charged
    scanning(terminal, scanner, [cpm_payload("visa-qvsdc-online", 990, EUR)])
    other = terminal.qr_sale(1990, EUR, attempts=1)
    assert (other.approved, other.state, other.response_code) == (False, State.DECLINED, "13")
    # no offline approval for QR: the host down, nothing is stored as approved
    host.set_faults(down=True)
    scanning(terminal, scanner, [cpm_payload("visa-qvsdc-online", 500, EUR)])
    down = terminal.qr_sale(500, EUR, attempts=1)
    assert (down.approved, down.state, down.message) == (False, State.DECLINED,
                                                         "declined: QR payments need the host: not taken")  # fmt: skip
    assert terminal.offline_status().queued == 0


FAULTS = {"down": {"down": True}, "drop": {"drop_after_request": True}, "slow": {"slow_ms": 1500}}


@pytest.mark.parametrize("fault", ["down", "drop", "slow"])
@pytest.mark.parametrize("step", ["payment", "cancel"])
def test_each_host_fault_at_each_step_of_a_code_payment(
    host: HostService, rig: Rig, scanner: VirtualScanner, fault: str, step: str
) -> None:
    """Whatever fails, the customer is charged only for a recorded sale; a check settles what is in doubt.

    ``payment``: the payment, its query and its cancel all fail; ``cancel``: the customer is confirming in
    the app past the limit, and the cancel fails.
    """
    terminal = rig.terminal(read_timeout=0.5)
    code = host.wallet_code("alice")
    if step == "cancel":
        host.set_wallet_mode("confirm")
    path = {"payment": "/v1/qr/payments", "cancel": "/v1/qr/payments/cancel"}[step]
    if fault == "down" and step == "payment":
        host.set_faults(down=True)
    elif fault != "down":
        host.set_faults(**FAULTS[fault], only=[path])
    scanning(terminal, scanner, [code])
    if fault == "down" and step == "cancel":
        shown = Shown(terminal)
        in_background(lambda: until(lambda: shown.messages) and host.set_faults(down=True))
    result = terminal.qr_sale(210, EUR, attempts=1, options=QrOptions(confirm_limit=2, confirm_poll=1))
    assert not result.approved
    if fault == "down" and step == "payment":
        assert "QR payments need the host: not taken" in result.message and result.state is State.DECLINED
    else:
        assert result.state is State.QR_IN_DOUBT, result
    host.clear_faults()
    terminal.host.echo(force=True)  # type: ignore[union-attr]
    terminal.qr_check()
    assert terminal.transaction(result.txn_id).state in {  # type: ignore[union-attr]
        State.DECLINED, State.CANCELLED, State.REVERSED}  # fmt: skip


# ----------------------------------------------------------------------------- refunds, voids, settlement


def test_refund_void_and_settlement_in_balance(host: HostService, rig: Rig, scanner: VirtualScanner) -> None:
    terminal = rig.terminal()
    shown = Shown(terminal)
    in_background(lambda: host.wallet_pay(until(lambda: shown.payloads)[0], "alice"))
    sale = terminal.qr_sale(1000, EUR, show=shown.show, options=QrOptions(timeout=30, poll=2))
    assert sale.approved
    refund = terminal.refund(400, EUR, original_txn_id=sale.txn_id)
    assert (refund.approved, refund.state, refund.scheme) == (True, State.QR_PAID, "qr-simpay")
    with pytest.raises(PaymentRefused, match="left"):
        terminal.refund(700, EUR, original_txn_id=sale.txn_id)  # never more than was paid
    scanning(terminal, scanner, [host.wallet_code("bob")])
    other = terminal.qr_sale(250, EUR)
    assert other.approved
    voided = terminal.void(other.txn_id)
    assert (voided.state, voided.approved) == (State.VOIDED, False)
    with pytest.raises(PaymentRefused, match="cannot be voided"):
        terminal.void(refund.txn_id)  # a refund went back to the wallet at once
    _, lines = terminal.batch_lines()
    assert {(line.scheme, line.kind, line.count, line.amount) for line in lines} == {
        ("qr-simpay", "sale", 1, 1000), ("qr-simpay", "refund", 1, 400)}  # fmt: skip
    settled = terminal.settle()
    assert settled.in_balance, settled.differences


@pytest.mark.parametrize("fault", ["down", "drop"])
def test_a_refund_whose_answer_is_lost_is_sent_again_once(host: HostService, rig: Rig, fault: str) -> None:
    terminal = rig.terminal(read_timeout=0.5)
    shown = Shown(terminal)
    in_background(lambda: host.wallet_pay(until(lambda: shown.payloads)[0], "alice"))
    sale = terminal.qr_sale(900, EUR, show=shown.show, options=QrOptions(timeout=30, poll=2))
    assert sale.approved
    host.set_faults(**FAULTS[fault]) if fault == "down" else host.set_faults(**FAULTS[fault], only=["/v1/qr/refunds"])
    refund = terminal.refund(300, EUR, original_txn_id=sale.txn_id)
    assert not refund.approved
    if fault == "down":  # nothing sent: declined in words, nothing refunded
        assert refund.state is State.DECLINED and "QR payments need the host" in refund.message
    else:  # sent, answer lost: in doubt, and it counts against the sale meanwhile (never refunded twice)
        assert refund.state is State.QR_IN_DOUBT
        with pytest.raises(PaymentRefused, match="left"):
            terminal.refund(700, EUR, original_txn_id=sale.txn_id)
    host.clear_faults()
    terminal.host.echo(force=True)  # type: ignore[union-attr]
    terminal.qr_check()
    after = terminal.transaction(refund.txn_id)
    assert after is not None and after.state is (State.DECLINED if fault == "down" else State.QR_PAID)
    order = next(o for o in host.qr_orders() if o["reference"] == sale_reference(terminal, sale.txn_id))
    assert order["refunded"] == (0 if fault == "down" else 300)


def sale_reference(terminal: Terminal, txn_id: str) -> str:
    row = terminal.transaction(txn_id)
    assert row is not None
    return str(row.details["qr_reference"])


def test_cli_refund_and_check_of_a_qr_sale(host: HostService, rig: Rig) -> None:
    """``posterm refund --original`` of a QR sale goes back to the wallet; ``posterm qr orders --check``."""
    _, data = rig.enrol()
    rig.cli_data.append(data)
    sale = subprocess.Popen(
        [*POSTERM, "sale", "20.00", "--qr-show", "--data-dir", str(data), "--json"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    try:
        assert sale.stderr is not None
        payload = next(line.removeprefix("QR payload: ").strip() for line in sale.stderr if line.startswith("QR"))
        host.wallet_pay(payload, "dora")
        out, _ = sale.communicate(timeout=60)
    finally:
        sale.kill()
        sale.wait()
    txn_id = json.loads(out)["txn_id"]
    refund = posterm("refund", "5.00", "--original", txn_id, "--data-dir", str(data), "--json")
    assert refund.returncode == 0, refund.stderr
    assert (json.loads(refund.stdout)["state"], json.loads(refund.stdout)["scheme"]) == ("qr_paid", "qr-simdc")
    too_much = posterm("refund", "15.01", "--original", txn_id, "--data-dir", str(data))
    assert too_much.returncode == 2 and "15.00 EUR left" in too_much.stderr  # (an amount refused: bad input)
    check = posterm("qr", "orders", "--check", "--data-dir", str(data), "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["in_doubt"] == []
    settle = posterm("settle", "--data-dir", str(data))
    assert settle.returncode == 0 and "in balance" in settle.stdout, settle.stdout + settle.stderr


def test_no_host_link_no_qr_payment(rig: Rig) -> None:
    terminal = rig.terminal()
    terminal.host = None
    with pytest.raises(PaymentRefused, match="QR payments need the host"):
        terminal.qr_sale(100, EUR, show=lambda *_: None)
    assert terminal.transactions() == []
