"""What a rendered kiosk test does inside the application's process (``{"call": "tests.ui.kiosk_rig:..."}``).

The scripted application runs in a child process (Kivy owns its process):
the simulated network printer that the kiosk watches is started and stopped
there; a device that only the test's own process can move (the tests'
pcscd) is asked for through files, :func:`ask`, and the test answers.
Nothing happens at import time.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["ask", "ecr_payment", "ecr_sale", "start_printer", "stop_printer"]

_printers: list[Any] = []


def start_printer(port: int) -> None:
    """The simulated network printer on ``port`` (switched on)."""
    from simulator.net_printer import VirtualNetworkPrinter

    _printers.append(VirtualNetworkPrinter(port=port).start())


def stop_printer() -> None:
    """Every printer started here switched off."""
    while _printers:
        _printers.pop().stop()


def ask(folder: str, name: str, timeout: float = 30.0) -> None:
    """Ask the test for ``name`` (``FOLDER/NAME.request``) and wait until it is done (``FOLDER/NAME.done``)."""
    base = Path(folder)
    (base / f"{name}.request").write_text("", encoding="utf-8")
    deadline = time.monotonic() + timeout
    while not (base / f"{name}.done").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test did not do {name!r}")
        time.sleep(0.05)


def _ecr(port: int, method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # a register's plain HTTP client
        return json.loads(answer.read())


def ecr_sale(port: int, amount: int, key: str) -> None:
    """What the kiosk's software does when its customer has chosen: a sale through the ECR interface."""
    answer = _ecr(port, "POST", "/v1/payments", {"kind": "sale", "amount": amount, "currency": "EUR"}, key)
    assert answer["status"] in ("starting", "waiting_for_card"), answer


def ecr_payment(port: int, key: str, status: str) -> None:
    """The register reads the payment back: it must have ``status``."""
    answer = _ecr(port, "GET", f"/v1/payments/{key}")
    assert answer["status"] == status, answer
