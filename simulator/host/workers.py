"""``posterm host serve --workers N``: N host processes serving one port, under a supervisor.

Design (measured and explained in docs/operations.md): each worker is a full
host process (``python -m simulator.host serve --worker I``) with its own
listening socket bound to the same address and port with ``SO_REUSEPORT``, its
own event loop and its own store connection (opened from the data directory or
the ``--store`` it is given, so SQLite and PostgreSQL alike). The kernel
spreads new connections over the workers' sockets. Each worker applies the
faults itself (it polls ``faults.json``; ``down`` closes its socket and
aborts its connections, ``up`` binds again), so no process holds a socket
that accepts while the host is down.

The supervisor (this module, the process ``server.json`` names):

- prepares what the workers share before starting them: the CA and server
  certificates, the store's first parameters, no faults, a private directory
  for prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, 0700,
  removed at exit);
- reserves the port: with port 0 it binds a socket (``SO_REUSEPORT``, never
  listening, so it takes no connection) to learn a free port, and keeps it
  bound while it runs so that no other program takes the port while every
  worker is down or restarting;
- starts the workers, waits until each reports that it listens
  (``workers/<index>.json``), then writes ``server.json`` with its own pid;
- writes ``faults-applied.json`` once every live worker applied a generation;
- restarts a worker that dies (after 0.5 s, doubling up to 10 s while it keeps
  dying within 10 s of its start), marking it dead for the metrics;
- serves ``/metrics`` (the workers' sum) when asked to;
- on SIGTERM / SIGINT (or its parent's exit) stops every worker (SIGTERM, then
  SIGKILL after 10 s) and removes ``server.json``. Workers watch the
  supervisor's pid and stop by themselves if it is killed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from simulator.host.faults import (
    SERVER_FILE,
    WORKERS_DIR,
    Faults,
    acknowledge,
    atomic_write_json,
    read_worker_status,
    write_faults,
)

if TYPE_CHECKING:
    from prometheus_client import Metric

    from simulator.host.metrics import MetricsEndpoint
    from simulator.host.server import ServeOptions

__all__ = ["supervise"]

_log = logging.getLogger("posterm.host")
_TICK = 0.02
_START_SECONDS = 30.0
_STOP_SECONDS = 10.0
_STABLE_SECONDS = 10.0


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None


def _reserve_port(bind: str, port: int) -> socket.socket:
    """A bound, never listening ``SO_REUSEPORT`` socket on ``bind:port`` (port 0: a free one).

    The port is first bound without ``SO_REUSEPORT``, which fails if any
    socket holds it (another host's workers included): without that probe a
    second supervisor of the same user would silently share the port.
    """
    infos = socket.getaddrinfo(bind or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        address = probe.getsockname()
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class _Supervisor:
    def __init__(self, data_dir: Path, options: ServeOptions, parent_pid: int | None) -> None:
        self.data_dir = data_dir
        self.options = options
        self.parent_pid = parent_pid
        self.workers = [_Worker(i) for i in range(1, options.workers + 1)]
        self.stopping = False
        self.port = 0
        self.metrics_dir = ""
        self.restarts = 0
        self.endpoint: MetricsEndpoint | None = None
        self._applied = 0

    # ------------------------------------------------------------------ workers

    def _spawn(self, worker: _Worker) -> None:
        env = {**self.options.worker_env(os.environ), "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir}
        argv = self.options.worker_argv(self.data_dir, worker.index, self.port, os.getpid())
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / WORKERS_DIR / f"{worker.index}.json").unlink()
        worker.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)
        worker.started = time.monotonic()
        worker.restart_at = None
        _log.info("worker %d started (pid %d)", worker.index, worker.process.pid)

    def _reported(self, worker: _Worker) -> dict[str, object] | None:
        """The worker's report, if it comes from its current process."""
        status = read_worker_status(self.data_dir, worker.index)
        if status is None or worker.process is None or status.get("pid") != worker.process.pid:
            return None
        return status

    def _reap(self) -> None:
        """Notice dead workers; restart them when their time comes."""
        from prometheus_client import multiprocess

        now = time.monotonic()
        for worker in self.workers:
            process = worker.process
            if process is not None and process.poll() is not None:
                multiprocess.mark_process_dead(process.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
                lived = now - worker.started
                worker.failures = worker.failures + 1 if lived < _STABLE_SECONDS else 1
                delay = min(10.0, 0.5 * 2 ** (worker.failures - 1))
                _log.error(
                    "worker %d (pid %d) exited with status %s after %.1f s: restarting in %.1f s",
                    worker.index, process.pid, process.returncode, lived, delay,
                )  # fmt: skip
                worker.process = None
                worker.restart_at = now + delay
                self.restarts += 1
            if worker.process is None and worker.restart_at is not None and now >= worker.restart_at:
                self._spawn(worker)

    def _acknowledge(self) -> None:
        """``faults-applied.json``: the lowest generation every live worker reported."""
        generations = []
        for worker in self.workers:
            status = self._reported(worker)
            if status is None:
                if worker.process is not None:
                    return  # starting: it reads the faults before it listens, but has not said so yet
                continue  # dead: it takes the faults in force when it comes back
            applied = status.get("applied")
            generations.append(applied if isinstance(applied, int) else 0)
        if generations and min(generations) > self._applied:
            self._applied = min(generations)
            acknowledge(self.data_dir, self._applied)

    def _stop_workers(self) -> None:
        alive = [w.process for w in self.workers if w.process is not None and w.process.poll() is None]
        for process in alive:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_SECONDS
        for process in alive:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # ------------------------------------------------------------------ run

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _parent_gone(self) -> bool:
        return self.parent_pid is not None and os.getppid() != self.parent_pid

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + _START_SECONDS
        while not self.stopping and not self._parent_gone():
            if all(self._reported(w) is not None for w in self.workers):
                return True
            for worker in self.workers:
                if worker.process is not None and worker.process.poll() is not None:
                    _log.error("worker %d exited at start (status %s)", worker.index, worker.process.returncode)
                    return False
            if time.monotonic() > deadline:
                _log.error("the workers did not listen within %g s", _START_SECONDS)
                return False
            time.sleep(_TICK)
        return False

    def _prepare(self) -> None:
        from simulator.host.ca import load_or_create_ca, write_server_certificates
        from simulator.host.params import ensure_initial
        from simulator.host.server import open_host_store

        tls_dir = self.data_dir / "tls"
        write_server_certificates(load_or_create_ca(tls_dir), tls_dir, [self.options.bind])
        store = open_host_store(self.data_dir, self.options.store)
        try:
            ensure_initial(store)
        finally:
            store.close()
        generation = write_faults(self.data_dir, Faults())  # faults do not survive a restart
        acknowledge(self.data_dir, generation)
        self._applied = generation
        (self.data_dir / WORKERS_DIR).mkdir(mode=0o700, exist_ok=True)

    def _write_server_file(self) -> None:
        from simulator.host.server import _url

        info: dict[str, object] = {
            "pid": os.getpid(),
            "bind": self.options.bind,
            "port": self.port,
            "url": _url(self.options.bind, self.port),
            "started_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "workers": len(self.workers),
        }
        if self.endpoint is not None:
            info["metrics_url"] = self.endpoint.url
        atomic_write_json(self.data_dir / SERVER_FILE, info)

    def _start_metrics(self) -> None:
        if self.options.metrics_port is None:
            return
        from prometheus_client import CollectorRegistry
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        from prometheus_client.registry import Collector

        from simulator.host.metrics import multiprocess_registry, start_metrics_endpoint

        supervisor = self

        class _Own(Collector):
            def collect(self) -> Iterator[Metric]:
                alive = sum(1 for w in supervisor.workers if w.process is not None and w.process.poll() is None)
                yield GaugeMetricFamily("posterm_host_workers", "Worker processes running now", value=alive)
                yield CounterMetricFamily(
                    "posterm_host_worker_restarts", "Worker processes restarted after they died",
                    value=supervisor.restarts,
                )  # fmt: skip

        own = CollectorRegistry(auto_describe=False)
        own.register(_Own())
        self.endpoint = start_metrics_endpoint(
            [multiprocess_registry(self.metrics_dir), own], self.options.metrics_bind, self.options.metrics_port
        )

    def run(self) -> int:
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        reservation: socket.socket | None = None
        self.metrics_dir = tempfile.mkdtemp(prefix="posterm-host-metrics-")
        try:
            self._prepare()
            try:
                reservation = _reserve_port(self.options.bind, self.options.port)
            except OSError as exc:
                _log.error("cannot bind %s port %d: %s", self.options.bind, self.options.port, exc)
                raise SystemExit(1) from None
            self.port = int(reservation.getsockname()[1])
            self._start_metrics()
            for worker in self.workers:
                self._spawn(worker)
            if not self._wait_listening():
                raise SystemExit(1)
            self._write_server_file()
            _log.info("posterm host: %d workers listening on port %d", len(self.workers), self.port)
            while not self.stopping:
                if self._parent_gone():
                    _log.warning("parent process %d is gone: stopping", self.parent_pid)
                    break
                self._reap()
                self._acknowledge()
                time.sleep(_TICK)
            return 0
        finally:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / SERVER_FILE).unlink()
            self._stop_workers()
            if self.endpoint is not None:
                self.endpoint.close()
            if reservation is not None:
                reservation.close()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)


def supervise(data_dir: Path, options: ServeOptions, *, parent_pid: int | None = None) -> int:
    """Run ``options.workers`` worker processes on one port until SIGTERM / SIGINT; 0 after a clean stop."""
    from simulator.host.server import configure_logging

    configure_logging(options.log_level)
    return _Supervisor(Path(data_dir), options, parent_pid).run()
