"""A handle on a real host server process, for tests and the demo.

Use::

    with start_host(tmp_path / "host") as host:
        bundle = host.credential_bundle("TERM0001", "POSTERM0000001")
        host.set_faults(down=True)  # connections are refused from now on
        host.clear_faults()

:func:`start_host` runs ``python -m simulator.host serve`` as a child process
(its output goes to ``<data dir>/host.log``), waits until it listens and
returns a :class:`HostService`. Port 0 asks for a free port: the child writes
the one it got to ``server.json``. The child also watches this process and
stops when it goes away, so a killed test run leaves no server behind; a
normal stop is SIGTERM, then SIGKILL after ``timeout`` seconds.

Everything else works on the data directory like the ``posterm host``
commands (:mod:`simulator.host.admin`): card blocks, velocity and parameters
take effect on the next request; :meth:`HostService.set_faults` returns only
once the server has applied the faults.

``start_host(dir, store="postgresql://...")`` runs the host on PostgreSQL (the
URL reaches the child through ``POSTERM_HOST_STORE``, not its command line,
which any user can read); the service's own calls use the same store.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from simulator.host import admin
from simulator.host.ca import load_or_create_ca
from simulator.host.faults import SERVER_FILE, Faults, request_faults, running_server
from simulator.host.files import private_dir

if TYPE_CHECKING:
    from simulator.host.acquirer import SalePosition

__all__ = ["ClientCredentials", "HostService", "HostStartError", "start_host"]

LOG_FILE = "host.log"
_LIVE: weakref.WeakSet[HostService] = weakref.WeakSet()
_ATEXIT: list[bool] = []  # non-empty once the atexit handler is registered (on the first start, not at import)


class HostStartError(RuntimeError):
    """The host process did not come up (the message ends with the tail of its log)."""


@dataclass(frozen=True)
class ClientCredentials:
    """Files of an enrolled terminal: its certificate, its key and the host CA."""

    terminal_id: str
    merchant_id: str
    certificate: Path
    key: Path
    ca_certificate: Path


def _stop_all() -> None:
    for service in list(_LIVE):
        with contextlib.suppress(Exception):
            service.stop()


class HostService:
    """A running host server process (a context manager: leaving it stops the server).

    Attributes: ``url`` (``https://127.0.0.1:PORT``), ``port``, ``data_dir``,
    ``ca_certificate_pem`` (the host CA in PEM, the terminal's only trust root),
    ``pid`` (the server's, or with workers the supervisor's), ``workers`` and
    ``metrics_url`` (``http://127.0.0.1:PORT/metrics``, or None).
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        data_dir: Path,
        url: str,
        port: int,
        *,
        workers: int = 1,
        metrics_url: str | None = None,
        store: str | None = None,
    ) -> None:
        self._process = process
        self.data_dir = data_dir
        #: The host's database when it is not ``host.db`` in ``data_dir`` (a PostgreSQL URL).
        self.store = store
        self.url = url
        self.port = port
        self.pid = process.pid
        self.workers = workers
        self.metrics_url = metrics_url
        self.ca_certificate_pem: bytes = load_or_create_ca(data_dir / "tls").certificate_pem

    @property
    def ca_certificate_path(self) -> Path:
        """The host CA certificate file (for ``verify=`` of an HTTP client)."""
        return self.data_dir / "tls" / "ca" / "cert.pem"

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    def running(self) -> bool:
        return self._process.poll() is None

    def worker_pids(self) -> dict[int, int]:
        """Worker index -> pid of the worker processes running now (empty with one process)."""
        from simulator.host.faults import read_worker_status

        out: dict[int, int] = {}
        for index in range(1, self.workers + 1 if self.workers > 1 else 1):
            status = read_worker_status(self.data_dir, index)
            pid = status.get("pid") if status else None
            if isinstance(pid, int):
                out[index] = pid
        return out

    def metrics_text(self) -> str:
        """What ``/metrics`` shows now (the host must run with ``metrics=True``)."""
        import httpx

        if self.metrics_url is None:
            raise RuntimeError("the host runs without a metrics endpoint (start_host(..., metrics=True))")
        answer = httpx.get(self.metrics_url, timeout=10.0)
        answer.raise_for_status()
        return answer.text

    # ------------------------------------------------------------------ enrolment

    def credential_bundle(self, terminal_id: str, merchant_id: str) -> dict[str, str]:
        """``{url, ca_certificate_pem, enrolment_code, terminal_id, merchant_id}`` with a fresh one-time code."""
        return admin.credential_bundle(self.data_dir, terminal_id, merchant_id, url=self.url, store=self.store)

    def enrol(self, terminal_id: str, merchant_id: str, directory: Path) -> ClientCredentials:
        """Enrol a terminal over the network (``POST /v1/enrol``) and write its files to ``directory``.

        A convenience for tests and the demo that do not exercise the
        terminal's own enrolment: it makes an EC P-256 key and a CSR, presents
        a fresh code and saves ``client.pem``, ``client-key.pem`` and ``ca.pem``.
        """
        import httpx
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        bundle = self.credential_bundle(terminal_id, merchant_id)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, terminal_id)]))
            .sign(key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        ca_path = directory / "ca.pem"
        ca_path.write_text(bundle["ca_certificate_pem"], encoding="ascii")
        context = ssl.create_default_context(cafile=str(ca_path))
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=self.url, verify=context, timeout=10.0) as client:
            while True:
                answer = client.post(
                    "/v1/enrol",
                    json={
                        "enrolment_code": bundle["enrolment_code"],
                        "csr_pem": csr.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                    },
                )
                pause = answer.headers.get("retry-after", "")
                if answer.status_code != 429 or not pause.isdigit() or time.monotonic() + int(pause) > deadline:
                    break
                time.sleep(int(pause))  # enrolment is rate-limited (simulator.host.ratelimit): wait as told
        if answer.status_code != 201:
            raise RuntimeError(f"enrolment refused: {answer.status_code} {answer.text}")
        cert_path = directory / "client.pem"
        key_path = directory / "client-key.pem"
        cert_path.write_text(answer.json()["certificate_pem"], encoding="ascii")
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        return ClientCredentials(terminal_id, merchant_id, cert_path, key_path, ca_path)

    # ------------------------------------------------------------------ faults

    def set_faults(
        self,
        *,
        down: bool = False,
        slow_ms: int = 0,
        error_status: int | None = None,
        drop_after_request: bool = False,
        certificate: str = "good",
        only: Sequence[str] | None = None,
    ) -> None:
        """Replace the faults in force; returns once the server applied them.

        ``down``: connections refused (the listening socket is closed);
        ``slow_ms``: delay before answering; ``error_status``: answer 5xx;
        ``drop_after_request``: read the request, close without answering;
        ``certificate``: ``"expired"`` or ``"wrong"`` server certificate;
        ``only``: limit slow / error / drop to these paths.
        """
        faults = Faults(
            down=down,
            slow_ms=slow_ms,
            error_status=error_status,
            drop_after_request=drop_after_request,
            certificate=certificate,
            only=tuple(only) if only else None,
        )
        if not self.running():
            raise RuntimeError("the host process is not running")
        if not request_faults(self.data_dir, faults):
            raise RuntimeError("the host process is not running")

    def clear_faults(self) -> None:
        """No faults any more (returns once the server applied it)."""
        self.set_faults()

    # ------------------------------------------------------------------ issuer

    def block_card(self, card: str, code: str = "62") -> None:
        """Decline authorisations of this card (its PAN, or the host's card token) with ``code``."""
        admin.block_card(self.data_dir, card, code, store=self.store)

    def unblock_card(self, card: str) -> None:
        admin.unblock_card(self.data_dir, card, store=self.store)

    def set_refund_allowance(self, merchant_id: str, daily_amount: int) -> None:
        """Let ``merchant_id`` refund what no sale covers, up to ``daily_amount`` per currency per 24 h (0: none)."""
        admin.set_refund_allowance(self.data_dir, merchant_id, daily_amount, store=self.store)

    def set_terminal_parameters(
        self, terminal_id: str, update: Mapping[str, Any], *, merchant_id: str | None = None, checked: bool = True
    ) -> dict[str, Any]:
        """Merge ``update`` over the terminal's own part of its parameters; the own part now."""
        return admin.set_terminal_parameters(
            self.data_dir, terminal_id, update, merchant_id=merchant_id, checked=checked, store=self.store
        )[1]

    def set_velocity(self, max_approvals: int, window_seconds: int) -> None:
        """At most ``max_approvals`` per card within ``window_seconds`` (then ``65``); 0 = off."""
        admin.set_velocity(self.data_dir, max_approvals, window_seconds, store=self.store)

    def publish_parameters(self, overrides: Mapping[str, Any], *, checked: bool = True) -> int:
        """Publish a new parameters version (merged over the current config, or a full document)."""
        return admin.publish_parameters(self.data_dir, overrides, checked=checked, store=self.store)

    def records(self) -> list[dict[str, Any]]:
        """What the host processed: authorisations, advices and reversals with their status (no PAN).

        Each: ``seq, method, txn_id, idempotency_key, kind, terminal_id, merchant_id, amount,
        currency, pan_token, response_code, approved, reversed, batch, host_reference,
        approval_code, original_txn_id, note, created_at``.
        """
        return admin.records(self.data_dir, store=self.store)

    def sale_positions(self, terminal_id: str | None = None) -> dict[str, SalePosition]:
        """Per sale ``txn_id``: charged and refunded against it, approved and not reversed (money checks)."""
        return admin.sale_positions(self.data_dir, terminal_id, store=self.store)

    def status(self) -> dict[str, Any]:
        return admin.host_status(self.data_dir, store=self.store)

    # ------------------------------------------------------------------ wallets (simulator.host.wallet_admin)

    def wallet_code(self, account: str) -> str:
        """A single-use payment code of ``account``'s wallet app (valid 60 s)."""
        from simulator.host.wallet_admin import make_code

        return make_code(self.data_dir, account, store=self.store)["code"]

    def wallet_pay(self, payload: str, account: str) -> dict[str, Any]:
        """A wallet app pays the order of a scanned MPM code (or an order id): the order (AdminRefused if not)."""
        from simulator.host.wallet_admin import pay_payload

        return pay_payload(self.data_dir, payload, account, store=self.store)

    def wallet_confirm(self, order_id: str, *, accept: bool = True) -> dict[str, Any]:
        """The customer confirms (or declines) late in the app a payment that is ``user_paying``."""
        from simulator.host.wallet_admin import confirm_order

        return confirm_order(self.data_dir, order_id, accept=accept, store=self.store)

    def set_wallet_mode(self, mode: str) -> None:
        """``normal``, ``confirm`` or ``decline``: how the wallets answer a code payment from now on."""
        from simulator.host.wallet_admin import set_mode

        set_mode(self.data_dir, mode, store=self.store)

    def wallet_balances(self) -> dict[tuple[str, int], int]:
        """(account, currency) -> balance in minor units."""
        from simulator.host.wallet_admin import accounts

        return {(a["account"], b["currency"]): b["balance"] for a in accounts(self.data_dir, store=self.store)
                for b in a["balances"]}  # fmt: skip

    def qr_orders(self) -> list[dict[str, Any]]:
        from simulator.host.wallet_admin import orders

        return orders(self.data_dir, store=self.store)

    # ------------------------------------------------------------------ lifetime

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL; the exit status (idempotent)."""
        process = self._process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _LIVE.discard(self)
        return int(process.returncode)

    def __enter__(self) -> HostService:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"HostService(url={self.url!r}, pid={self.pid}, data_dir={str(self.data_dir)!r})"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def start_host(
    data_dir: Path,
    *,
    port: int = 0,
    bind: str = "127.0.0.1",
    startup_timeout: float = 20.0,
    log_level: str = "info",
    workers: int = 1,
    metrics: bool = False,
    extra_args: Sequence[str] = (),
    store: str | None = None,
) -> HostService:
    """Start ``python -m simulator.host serve`` on ``data_dir`` and wait until it listens.

    ``workers``: worker processes on the port (``--workers``); ``metrics``:
    serve ``/metrics`` on a free loopback port (:attr:`HostService.metrics_url`);
    ``extra_args``: more ``serve`` options (timeouts, caps); ``store``: the host's database if not
    ``host.db`` in ``data_dir`` (a ``postgresql://`` URL, passed in ``POSTERM_HOST_STORE``, not on the
    command line).
    """
    data_dir = private_dir(Path(data_dir).resolve())
    if running_server(data_dir) is not None:
        raise HostStartError(f"a host is already running on {data_dir}")
    with contextlib.suppress(FileNotFoundError):
        (data_dir / SERVER_FILE).unlink()
    command = [
        sys.executable,
        "-m",
        "simulator.host",
        "serve",
        "--data-dir",
        str(data_dir),
        "--bind",
        bind,
        "--port",
        str(port),
        "--exit-with-parent",
        str(os.getpid()),
        "--log-level",
        log_level,
        "--workers",
        str(workers),
        *(["--metrics-port", "0"] if metrics else []),
        *extra_args,
    ]
    from simulator.host.store import STORE_ENV

    env = {k: v for k, v in os.environ.items() if k != STORE_ENV}
    if store:
        env[STORE_ENV] = store
    log = os.fdopen(os.open(data_dir / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    finally:
        log.close()
    if not _ATEXIT:
        atexit.register(_stop_all)
        _ATEXIT.append(True)
    deadline = time.monotonic() + startup_timeout
    try:
        while True:
            info = running_server(data_dir)
            if info is not None and info.pid == process.pid:
                service = HostService(
                    process,
                    data_dir,
                    info.url,
                    info.port,
                    workers=info.workers,
                    metrics_url=info.metrics_url,
                    store=store,
                )
                _LIVE.add(service)
                return service
            if process.poll() is not None:
                raise HostStartError(
                    f"the host exited with status {process.returncode}:\n{_tail(data_dir / LOG_FILE)}"
                )
            if time.monotonic() > deadline:
                tail = _tail(data_dir / LOG_FILE)
                raise HostStartError(f"the host did not listen within {startup_timeout:g} s:\n{tail}")
            time.sleep(0.05)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
