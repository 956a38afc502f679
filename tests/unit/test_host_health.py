"""/readyz's checks and the Content-Type rule, in process (the real server's side is in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.host.app import create_app, media_type_error
from simulator.host.ca import load_or_create_ca
from simulator.host.faults import Faults, FaultSwitch
from simulator.host.health import Readiness
from simulator.host.store import DB_NAME, HostStore
from tests.unit.test_host_app import AppClient


def test_readyz_is_503_without_a_reason_while_the_store_does_not_answer(tmp_path: Path) -> None:
    store = HostStore(tmp_path / DB_NAME)
    faults = FaultSwitch()
    listening = [True]
    client = AppClient(create_app(store, load_or_create_ca(tmp_path / "tls"), faults,
                                  readiness=Readiness(store, faults, lambda: listening[0])))
    assert client.get("/readyz").json() == {"status": "ready"}
    listening[0] = False
    assert (client.get("/readyz").status_code, client.get("/readyz").json()) == (503, {"status": "not_ready"})
    listening[0] = True
    faults.current = Faults(down=True)
    assert client.get("/readyz").status_code == 503
    faults.current = Faults()
    store.close()  # the store no longer answers
    answer = client.get("/readyz")
    assert (answer.status_code, answer.content) == (503, b'{"status":"not_ready"}')
    assert client.get("/healthz").status_code == 200  # alive all the same


@pytest.mark.parametrize(
    ("content_type", "start", "refused"),
    [
        ("application/json", b"{", False),
        ("application/json; charset=utf-8", b"{", False),
        ('APPLICATION/JSON ; Charset="UTF-8"', b"{", False),
        (None, b"{", True),
        ("text/json", b"{", True),
        ("application/json; charset=utf-16", b"{", True),
        ("application/json; boundary=x", b"{", True),
        ("application/json", b"\xef\xbb\xbf{", True),
        ("application/json", b"\xff\xfe{\x00", True),
        ("application/json", b"{\x00\"\x00", True),
        ("application/x-www-form-urlencoded", b"a=1", True),
    ],
)
def test_media_types(content_type: str | None, start: bytes, refused: bool) -> None:
    assert (media_type_error(content_type, start) is not None) == refused
