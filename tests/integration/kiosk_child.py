"""The application that tests/integration/test_kiosk_supervisor.py supervises: a kiosk reduced to one payment.

Run as ``python kiosk_child.py DATA_DIR MODE REPORT``.  Each run opens the
terminal in DATA_DIR with :func:`terminal.bootstrap.open_terminal`, as the
kiosk application does (its recovery runs there, before anything else),
appends one JSON line to REPORT with what it found, then starts a sale of
5.00 and appends a second line once the payment is under way:

- MODE ``card``: the card comes only after 30 s, so the sale waits for the
  card (nothing is journalled yet);
- MODE ``host``: on the first run the card is there at once and the host
  never answers, so the sale waits for the host with its authorisation
  journalled (state ``authorising``); later runs wait for the card.

Lines: ``{"pid": N, "run": K, "transactions": [[txn_id, state, [events]]...]}``
then ``{"pid": N, "waiting": "card" | "host"}``; each written with one
``os.write`` and fsynced, so that the test reads whole lines only.

Nothing is done at import time (pytest imports this file for doctests).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

WAITING_READER = "sim:card=visa-qvsdc-online?present-after=30"
READY_READER = "sim:card=visa-qvsdc-online"


def report(path: Path, doc: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(doc) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class SilentHost:
    """A host link that never answers an authorisation (the link hangs in the middle of the request)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def authorise(self, request: Any) -> Any:
        report(self.path, {"pid": os.getpid(), "waiting": "host"})
        time.sleep(3600)
        raise AssertionError("killed before this")

    def advise(self, advice: Any) -> Any:
        raise AssertionError("not in this test")

    def reverse(self, reversal: Any) -> Any:
        raise AssertionError("not in this test")

    def close_batch(self, totals: Any) -> Any:
        raise AssertionError("not in this test")


def main(argv: list[str]) -> int:
    from terminal.bootstrap import open_terminal

    data_dir, mode, path = Path(argv[1]), argv[2], Path(argv[3])
    runs = path.read_text().count('"run"') if path.exists() else 0
    first_host_run = mode == "host" and runs == 0
    terminal = open_terminal(data_dir, reader_url=READY_READER if first_host_run else WAITING_READER, host="none")
    found = [
        [t.txn_id, t.state.value, [row["event"] for row in terminal.history(t.txn_id)]] for t in terminal.transactions()
    ]
    report(path, {"pid": os.getpid(), "run": runs + 1, "transactions": found})
    if first_host_run:
        terminal.host = SilentHost(path)  # type: ignore[assignment]
    else:

        def on_event(event: Any) -> None:
            if event.kind == "card_prompt":
                report(path, {"pid": os.getpid(), "waiting": "card"})

        terminal.subscribe(on_event)
    terminal.sale(500, 978)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
