"""``posterm ecr serve`` as a process: a plain HTTP client takes a payment, the same key charges once.

The command is run as an operator runs it (``--port 0`` picks a free port,
``--json`` announces it on one line); SIGTERM and SIGINT stop it cleanly
(exit status 0, the terminal closed, the payment in the journal); its
errors follow the command line's contract (a port in use: 3; bad options: 2).
"""

from __future__ import annotations

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

import httpx
import pytest

from simulator.host.inprocess import InProcessHost, memory_host_database

POSTERM = [sys.executable, "-m", "terminal.cli"]


class Served:
    """A ``posterm ecr serve`` process and the address it announced."""

    def __init__(self, data_dir: Path, *options: str) -> None:
        env = {**os.environ, "POSTERM_DATA_DIR": str(data_dir)}
        self.process = subprocess.Popen(
            [*POSTERM, "ecr", "serve", "--port", "0", "--json", "--data-dir", str(data_dir), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, self.process.stderr.read() if self.process.stderr else "no output"
        self.announced: dict[str, Any] = json.loads(line)
        self.url = str(self.announced["url"])

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path / "data", "--card", "visa-qvsdc-online", "--host-link", "memory")
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def _follow(url: str, key: str) -> dict[str, Any]:
    payment: dict[str, Any] = {"final": False, "version": 0}
    deadline = time.monotonic() + 30
    while not payment["final"]:
        assert time.monotonic() < deadline
        answer = httpx.get(f"{url}/v1/payments/{key}", params={"wait": 10, "after": payment["version"]})
        assert answer.status_code == 200, answer.text
        payment = answer.json()
    return payment


def test_a_plain_http_client_takes_a_payment_and_the_same_key_charges_once(served: Served, tmp_path: Path) -> None:
    url = served.url
    assert served.announced["port"] > 0 and url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{url}/v1/openapi.json").json()["info"]["title"] == "posterm ECR interface"
    body = {"kind": "sale", "amount": 1999, "currency": "EUR", "reference": "POS-42"}
    first = httpx.post(f"{url}/v1/payments", json=body, headers={"Idempotency-Key": "pos42-1"})
    assert first.status_code == 202
    done = _follow(url, "pos42-1")
    assert done["status"] == "approved" and done["message"].startswith("approved")
    again = httpx.post(f"{url}/v1/payments", json=body, headers={"Idempotency-Key": "pos42-1"})
    assert again.status_code == 200 and again.json()["txn_id"] == done["txn_id"]
    status, _, err = served.stop(signal.SIGTERM)
    assert status == 0, err
    assert err == ""
    # Charged once: the host's records and the journal.
    with InProcessHost(memory_host_database(tmp_path / "data")) as host:
        assert [r.txn_id for r in host.records] == [done["txn_id"]]
        assert host.accepted_count(done["txn_id"]) == 1
    journal = subprocess.run(
        [*POSTERM, "journal", "list", "--json", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    listed = json.loads(journal.stdout)
    rows = listed["transactions"] if isinstance(listed, dict) else listed
    assert [row["txn_id"] for row in rows] == [done["txn_id"]]


def test_ctrl_c_cancels_a_card_wait_and_stops_cleanly(tmp_path: Path) -> None:
    served = Served(tmp_path / "data", "--reader", "sim:card=visa-qvsdc-online?present-after=60", "--host-link", "none")
    try:
        answer = httpx.post(
            f"{served.url}/v1/payments",
            json={"kind": "sale", "amount": 500, "currency": "EUR"},
            headers={"Idempotency-Key": "ctrl-c"},
        )
        assert answer.status_code == 202
        deadline = time.monotonic() + 10
        while httpx.get(f"{served.url}/v1/payments/ctrl-c").json()["status"] != "waiting_for_card":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        began = time.monotonic()
        status, _, err = served.stop(signal.SIGINT)
        assert status == 0, err
        assert time.monotonic() - began < 10  # the card wait was cancelled, not waited out
    finally:
        if served.process.poll() is None:
            served.process.kill()


def _posterm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSTERM, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


def test_a_port_in_use_is_exit_status_3_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _posterm("ecr", "serve", "--port", str(port), "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.startswith("posterm: error: port ") and "in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "journal.sqlite").exists()  # the terminal was not even opened


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--host", "0.0.0.0"], "not a loopback address"),
        (["--card", "visa-qvsdc-online", "--reader", "sim:card=mc-cda-online"], "either --card or --reader"),
        (["--port", "70000"], "not a port number"),
        (["--port", "eighty"], "not a port number"),
        (["--card", "no-such-card"], "no-such-card"),
        (["--host-link", "carrier-pigeon"], "unknown host"),
        (["--host", "no.such.host.invalid", "--allow-remote"], "not an address to listen on"),
    ],
)
def test_bad_options_are_exit_status_2_in_one_line(tmp_path: Path, options: list[str], says: str) -> None:
    result = _posterm("ecr", "serve", "--port", "0", "--data-dir", str(tmp_path / "d"), *options, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and result.stderr.startswith("posterm: error: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_errors_are_json_with_json(tmp_path: Path) -> None:
    result = _posterm("ecr", "serve", "--json", "--host", "192.0.2.1", "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert result.returncode == 2
    assert json.loads(result.stdout)["exit_status"] == 2


def test_the_command_line_loads_the_web_stack_only_when_it_serves(tmp_path: Path) -> None:
    probe = (
        "import sys; from terminal.cli import main\n"
        "try:\n    main(['ecr', 'serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'jsonschema', 'httpx')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
