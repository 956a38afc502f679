"""The ECR interface under test over its real transport: uvicorn on a free loopback port, httpx as the register.

Each :class:`Ecr` is a terminal opened as ``posterm ecr serve`` opens it
(:func:`terminal.bootstrap.open_terminal`, a real SQLite journal, the
simulator's in-process ``memory`` host with its database in the data
directory), served by :class:`ui.ecr.server.EcrServer` on a thread, and a
client.  Helpers wait for a payment's status by long poll, as a register does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.host.inprocess import InProcessHost
from terminal.bootstrap import open_terminal
from terminal.facade import Terminal, TerminalSettings
from ui.ecr.desk import Worker
from ui.ecr.server import EcrServer

ONLINE = "sim:card=visa-qvsdc-online"


def sale(amount: int = 1234, currency: Any = "EUR", **more: Any) -> dict[str, Any]:
    return {"kind": "sale", "amount": amount, "currency": currency, **more}


class Ecr:
    """A terminal on ``data_dir``, its ECR server, and a client (``http``)."""

    def __init__(
        self,
        data_dir: Path,
        reader: str | None,
        *,
        host: str = "memory",
        settings: TerminalSettings | None = None,
        worker: Worker | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.reader = reader
        self.terminal: Terminal = open_terminal(data_dir, reader_url=reader or "none", host=host, settings=settings)
        self.server = EcrServer(self.terminal, worker, port=0)
        self.server.start()
        self.http = httpx.Client(base_url=self.server.url, timeout=30)

    def start(self, key: str, body: Any, **headers: str) -> httpx.Response:
        """POST /v1/payments with ``body`` as JSON (``None`` too: the JSON ``null``)."""
        sent = {"Idempotency-Key": key, "Content-Type": "application/json", **headers}
        return self.http.post("/v1/payments", content=json.dumps(body).encode(), headers=sent)

    def get(self, payment_id: str, **params: Any) -> dict[str, Any]:
        answer = self.http.get(f"/v1/payments/{payment_id}", params=params)
        assert answer.status_code == 200, answer.text
        payment: dict[str, Any] = answer.json()
        return payment

    def wait_for(
        self, payment_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        """Long-poll the payment until ``predicate`` holds for it (as a register follows a payment)."""
        deadline = time.monotonic() + timeout
        payment = self.get(payment_id)
        while not predicate(payment):
            left = deadline - time.monotonic()
            assert left > 0, f"payment {payment_id} stayed {payment['status']}: {payment['message']}"
            payment = self.get(payment_id, wait=min(left, 5), after=payment["version"])
        return payment

    def final(self, payment_id: str, timeout: float = 20) -> dict[str, Any]:
        return self.wait_for(payment_id, lambda p: bool(p["final"]), timeout)

    @property
    def host(self) -> InProcessHost:
        link = self.terminal.host
        assert isinstance(link, InProcessHost)
        return link

    def close(self) -> None:
        self.http.close()
        self.server.stop(timeout=30)
        self.terminal.close()


@pytest.fixture
def make_ecr(tmp_path: Path) -> Iterator[Callable[..., Ecr]]:
    made: list[Ecr] = []

    def make(reader: str | None = ONLINE, name: str = "terminal", **kw: Any) -> Ecr:
        ecr = Ecr(tmp_path / name, reader, **kw)
        made.append(ecr)
        return ecr

    yield make
    for ecr in made:
        ecr.close()


@pytest.fixture
def ecr(make_ecr: Callable[..., Ecr]) -> Ecr:
    """A terminal whose simulated online card is in the field at once."""
    return make_ecr()


class GatedWorker:
    """A worker that holds every job until :meth:`release`: the stage before a payment begins."""

    def __init__(self) -> None:
        from ui.worker import Worker as UiWorker

        self.gate = threading.Event()
        self._worker = UiWorker(lambda fn: fn())

    def submit(self, call: Callable[[], Any], on_done: Callable[[Any], None], /) -> Any:
        def gated() -> Any:
            self.gate.wait(30)
            return call()

        return self._worker.submit(gated, on_done)

    def release(self) -> None:
        self.gate.set()

    def stop(self) -> None:
        self.gate.set()
        self._worker.stop()
