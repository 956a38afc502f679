"""``posterm host serve --workers 2`` on SQLite and on PostgreSQL, and the host's health and metrics, over real TLS.

Which worker answered is in the ``Posterm-Worker`` header (1 or 2); their pids
are in ``workers/<index>.json`` and checked against ``/proc``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.card_data import card_emv_data
from simulator.host.service import ClientCredentials, HostService, start_host
from tests.integration.host_store import engine_store
from tests.integration.test_host_transport import metric
from tests.postgres_rig import ENGINES

TID, MID = "TERM0001", "POSTERM0000001"


def _context(host: HostService, terminal: ClientCredentials | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(host.ca_certificate_path))
    if terminal is not None:
        context.load_cert_chain(terminal.certificate, terminal.key)
    return context


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module", params=ENGINES)
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HostService, ClientCredentials]]:
    """Two workers on one port, sharing one store: host.db, or a PostgreSQL database (tests/conftest.py)."""
    base = tmp_path_factory.mktemp("fleet")
    with engine_store(request.param, request) as store, start_host(
        base / "host", workers=2, metrics=True, store=store
    ) as host:
        yield host, host.enrol(TID, MID, base / "terminal")


def test_every_worker_keeps_its_books_in_the_one_store(fleet: tuple[HostService, ClientCredentials]) -> None:
    host, _ = fleet
    assert (host.data_dir / "host.db").exists() is (host.store is None)
    if host.store is not None:  # the URL reaches the workers in their environment, not on a command line
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                line = cmdline.read_bytes()
                if str(host.data_dir).encode() in line:
                    assert b"postgresql://" not in line, line


def _worker_of(client: httpx.Client) -> str:
    answer = client.get("/v1/echo")
    assert answer.status_code == 200
    return answer.headers["posterm-worker"]


def _clients_on_each_worker(host: HostService, context: ssl.SSLContext) -> dict[str, httpx.Client]:
    """One kept-alive client connected to each worker (new connections until both are found)."""
    found: dict[str, httpx.Client] = {}
    for _ in range(200):  # the kernel picks a worker per connection: 200 tries miss one with odds 2**-199
        client = httpx.Client(base_url=host.url, verify=context, timeout=10.0)
        worker = _worker_of(client)
        if worker in found:
            client.close()
        else:
            found[worker] = client
        if len(found) == 2:
            return found
    raise AssertionError(f"only workers {sorted(found)} answered")


def test_concurrent_terminals_are_served_by_both_workers(fleet: tuple[HostService, ClientCredentials]) -> None:
    host, terminal = fleet
    pids = host.worker_pids()
    assert sorted(pids) == [1, 2] and len(set(pids.values())) == 2
    for pid in pids.values():
        assert _alive(pid) and _parent_of(pid) == host.pid  # worker processes of the supervisor
    seen: dict[str, int] = {}
    lock = threading.Lock()
    context = _context(host, terminal)

    def terminal_run() -> None:
        for _ in range(25):
            with httpx.Client(base_url=host.url, verify=context, timeout=10.0) as client:
                worker = _worker_of(client)
            with lock:
                seen[worker] = seen.get(worker, 0) + 1

    threads = [threading.Thread(target=terminal_run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(seen.values()) == 200
    assert sorted(seen) == ["1", "2"], seen


def _together(calls: list[Any]) -> list[httpx.Response]:
    """Run the calls at the same moment (a barrier), one thread each; their answers in order."""
    barrier = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait(10)
        answers[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_one_key_sent_to_both_workers_at_once_is_processed_once(fleet: tuple[HostService, ClientCredentials]) -> None:
    host, terminal = fleet
    clients = _clients_on_each_worker(host, _context(host, terminal))
    try:
        for round_ in range(15):
            key = f"both-{round_}"
            body = {"txn_id": f"never-seen-{round_}", "amount": 100, "currency": 978, "terminal_id": TID,
                    "reason": "no_answer"}
            answers = _together([
                lambda c=client, b=body, k=key: c.post("/v1/reversals", json=b, headers={"Idempotency-Key": k})
                for client in clients.values()
            ])
            assert sorted(a.headers["posterm-worker"] for a in answers) == ["1", "2"]
            assert answers[0].status_code == answers[1].status_code
            assert answers[0].content == answers[1].content  # the same answer, byte for byte
            assert sorted(a.headers.get("idempotent-replay", "") for a in answers) == ["", "true"]
            assert [r["idempotency_key"] for r in host.records()].count(key) == 1
            # the same key with two bodies at once: one is processed, the other is a conflict
            clash = _together([
                lambda c=client, v=version, k=f"clash-{round_}": c.post(
                    "/v1/sign-on", json={"terminal_id": TID, "merchant_id": MID, "software_version": v},
                    headers={"Idempotency-Key": k})
                for client, version in zip(clients.values(), ("a", "b"), strict=True)
            ])
            assert sorted(a.status_code for a in clash) == [200, 409]
    finally:
        for client in clients.values():
            client.close()


def test_faults_apply_to_every_worker(fleet: tuple[HostService, ClientCredentials]) -> None:
    host, terminal = fleet
    context = _context(host, terminal)
    host.set_faults(down=True)
    try:
        for _ in range(20):
            with pytest.raises(httpx.ConnectError):
                httpx.get(host.url + "/v1/echo", verify=context, timeout=5.0)
        host.set_faults(error_status=503)
        workers = set()
        for _ in range(200):
            answer = httpx.get(host.url + "/v1/echo", verify=context, timeout=5.0)
            assert answer.status_code == 503
            workers.add(answer.headers["posterm-worker"])
            if len(workers) == 2:
                break
        assert workers == {"1", "2"}
    finally:
        host.clear_faults()


def test_metrics_are_summed_over_the_workers(fleet: tuple[HostService, ClientCredentials]) -> None:
    host, terminal = fleet
    before = host.metrics_text()
    clients = _clients_on_each_worker(host, _context(host, terminal))
    try:
        for client in clients.values():
            client.get("/v1/echo")
        after = host.metrics_text()
    finally:
        for client in clients.values():
            client.close()
    echo = {"path": "/v1/echo", "method": "GET", "status": "200"}
    # _clients_on_each_worker asked at least twice, then one more each
    name = "posterm_host_requests_total"
    counted = metric(after, name, **echo) - metric(before, name, **echo)
    assert counted >= 4
    assert metric(after, "posterm_host_open_connections") >= 2  # the two kept-alive clients, one per worker
    assert metric(after, "posterm_host_workers") == 2


def test_host_status_names_the_workers_and_the_metrics_url(fleet: tuple[HostService, ClientCredentials]) -> None:
    host, _ = fleet
    argv = [sys.executable, "-m", "simulator.host", "status", "--data-dir", str(host.data_dir)]
    env = {**os.environ, **({"POSTERM_HOST_STORE": host.store} if host.store else {})}
    text = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    assert f"at {host.url}, 2 worker(s), metrics at {host.metrics_url}" in text.splitlines()[0]
    done = subprocess.run([*argv, "--json"], capture_output=True, text=True, env=env, timeout=60, check=True)
    status = json.loads(done.stdout)
    assert (status["workers"], status["metrics_url"]) == (2, host.metrics_url) and host.metrics_url


def test_a_worker_that_dies_is_restarted(fleet: tuple[HostService, ClientCredentials]) -> None:
    host, terminal = fleet
    first = host.worker_pids()
    os.kill(first[1], signal.SIGKILL)
    for _ in range(600):  # 0.5 s restart delay, then the new worker's start
        now = host.worker_pids()
        if now.get(1) not in (None, first[1]) and _alive(now[1]):
            break
        time.sleep(0.05)
    now = host.worker_pids()
    assert now[1] != first[1] and _alive(now[1]) and now[2] == first[2]
    assert _parent_of(now[1]) == host.pid
    clients = _clients_on_each_worker(host, _context(host, terminal))  # both answer again
    for client in clients.values():
        client.close()
    assert metric(host.metrics_text(), "posterm_host_worker_restarts_total") >= 1


def test_stopping_the_service_stops_every_worker(tmp_path: Path) -> None:
    host = start_host(tmp_path / "host", workers=2)
    pids = list(host.worker_pids().values())
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    assert host.stop() == 0
    for _ in range(200):
        if not any(_alive(pid) for pid in pids):
            break
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)
    assert not (tmp_path / "host" / "server.json").exists()


# ----------------------------------------------------------------------------- health and metrics, one process


def test_health_needs_no_certificate_and_tells_nothing(tmp_path: Path) -> None:
    with start_host(tmp_path / "host") as host, httpx.Client(base_url=host.url, verify=_context(host)) as probe:
        health = probe.get("/healthz")
        ready = probe.get("/readyz")
        assert (health.status_code, health.content) == (200, b'{"status":"ok"}')
        assert (ready.status_code, ready.content) == (200, b'{"status":"ready"}')
        assert probe.post("/readyz").status_code == 405
        assert probe.get("/v1/echo").status_code == 401  # the rest still wants a certificate
        host.set_faults(down=True)
        with pytest.raises(httpx.ConnectError):
            probe.get("/readyz")
        host.clear_faults()
        assert probe.get("/readyz").status_code == 200


def test_metrics_count_what_the_host_did(tmp_path: Path) -> None:
    import socket

    with start_host(tmp_path / "host", metrics=True) as host:
        assert host.metrics_url is not None and host.metrics_url.startswith("http://127.0.0.1:")
        terminal = host.enrol(TID, MID, tmp_path / "terminal")
        with httpx.Client(base_url=host.url, verify=_context(host, terminal)) as client:
            def post(path: str, body: dict[str, Any], key: str) -> httpx.Response:
                return client.post(path, json=body, headers={"Idempotency-Key": key})

            reversal = {"txn_id": "nothing", "amount": 1, "currency": 978, "terminal_id": TID, "reason": "no_answer"}
            assert post("/v1/reversals", reversal, "r1").status_code == 200
            assert post("/v1/reversals", reversal, "r1").headers["idempotent-replay"] == "true"
            assert post("/v1/reversals", {**reversal, "amount": 2}, "r1").status_code == 409
            sale = {"txn_id": "s1", "kind": "sale", "amount": 1234, "currency": 978, "terminal_id": TID,
                    "merchant_id": MID, "emv_data": card_emv_data(1234, 978).hex(), "pan_token": "tok"}
            outcome = post("/v1/authorisations", sale, "a1").json()
            foreign = {"txn_id": "f1", "idempotency_key": "fk1", "kind": "offline_approval", "amount": 5,
                       "currency": 978, "terminal_id": "OTHER", "merchant_id": MID, "emv_data": "", "pan_token": "t",
                       "created_at": "2025-03-01T10:00:00.000000+00:00", "retransmission": False}
            assert post("/v1/advices", {"advices": [foreign]}, "v1").json()["results"][0]["outcome"] == "rejected"
            line = {"scheme": "visa", "currency": 978, "kind": "sale", "count": 9, "amount": 99999}
            close = {"batch_id": 1, "terminal_id": TID, "lines": [line]}
            assert post("/v1/batches/close", close, "b1").json()["in_balance"] is False
        with socket.create_connection(("127.0.0.1", host.port)) as plain:  # plain HTTP to the TLS port
            plain.sendall(b"GET / HTTP/1.1\r\n\r\n")
            plain.settimeout(30)
            while plain.recv(4096):
                pass
        text = host.metrics_text()
    assert metric(text, "posterm_host_reversals_total", result="nothing_to_reverse") == 1
    assert metric(text, "posterm_host_replays_total", message="reversal") == 1
    assert metric(text, "posterm_host_duplicate_refusals_total", reason="idempotency_conflict") == 1
    kind_outcome = {"kind": "sale", "outcome": outcome["status"]}
    assert metric(text, "posterm_host_authorisations_total", **kind_outcome) == 1
    if outcome["status"] == "declined":
        code = {"message": "authorisation", "response_code": outcome["response_code"]}
        assert metric(text, "posterm_host_declines_total", **code) == 1
    assert metric(text, "posterm_host_advices_total", kind="offline_approval", outcome="rejected") == 1
    assert metric(text, "posterm_host_batch_closes_total", in_balance="false") == 1
    assert metric(text, "posterm_host_settlement_differences_total") >= 1
    assert metric(text, "posterm_host_handshake_failures_total", reason="tls_error") >= 1
    assert metric(text, "posterm_host_requests_total", path="/v1/reversals", method="POST", status="409") == 1
    assert metric(text, "posterm_host_request_duration_seconds_count", path="/v1/reversals") == 3


# ----------------------------------------------------------------------------- the serve command's options


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "simulator.host", "serve", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--workers", "0"], "--workers 0"),
        (["--header-timeout", "0"], "header-timeout"),
        (["--max-client-connections", "-1"], "max-per-client"),
        (["--metrics-port", "70000"], "--metrics-port 70000"),
    ],
)
def test_bad_serve_options_are_one_line_and_status_2(tmp_path: Path, args: list[str], said: str) -> None:
    done = _serve("--data-dir", str(tmp_path / "host"), "--port", "0", *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0] and "Traceback" not in done.stderr


def test_workers_do_not_share_a_port_with_another_host(fleet: tuple[HostService, ClientCredentials],
                                                       tmp_path: Path) -> None:
    host, _ = fleet
    done = _serve("--data-dir", str(tmp_path / "other"), "--port", str(host.port), "--workers", "2")
    assert done.returncode == 2 and "could not start" in done.stderr
    assert not (tmp_path / "other" / "server.json").exists()
