"""The ECR interface inside the application: how the kiosk's own software asks it for payments.

A kiosk (a vending machine, a self-checkout) has its own software that knows
what the customer is buying; it asks the terminal for the payment through the
ECR interface (:mod:`ui.ecr`), as a cash register does.  The interface must
run in the application's process: the terminal has one reader and one
journal, and the kiosk's screens follow the payments by the terminal's events
(:mod:`ui.screens.kiosk_payment`).  So ``posterm ui --kiosk`` serves it on
loopback (port 8780 unless ``--ecr-port`` says otherwise, ``--no-ecr`` not
at all), its payments running on the application's worker, one at a time with
the screens' own.  Its ``GET /metrics`` reports the devices as the kiosk's
device watch sees them.
"""

from __future__ import annotations

from typing import Any

from terminal.metrics import DeviceState
from ui.session import Session

__all__ = ["serve_ecr", "watched_devices"]


def watched_devices(session: Session) -> dict[str, DeviceState]:
    """The devices as the kiosk's watch last saw them (:mod:`ui.screens.kiosk_devices`), for ``GET /metrics``."""
    watch = getattr(session.screens.get("idle"), "watch", None)
    states: dict[str, Any] = dict(getattr(watch, "states", None) or {})
    return {
        kind: DeviceState(
            kind, seen.url, "not_configured" if seen.url is None else "up" if seen.present else "down", seen.reason
        )
        for kind, seen in states.items()
    }


def serve_ecr(session: Session, port: int) -> Any:
    """Serve the ECR interface for ``session``'s terminal on 127.0.0.1:``port`` (0: a free one) until it stops.

    Returns the running :class:`ui.ecr.EcrServer` (its ``url`` says where);
    raises :class:`ui.ecr.server.EcrBindError` when the port cannot be had.
    The server stops with the session (a card wait is cancelled, a payment
    past it finishes, within 10 s).
    """
    from ui.ecr.server import EcrServer

    server = EcrServer(session.terminal, session.worker, port=port, devices=lambda: watched_devices(session))
    server.start()
    session.on_stop(lambda: server.stop(timeout=10.0))
    return server
