"""``posterm sim card``: a card server that cannot run fails by the command line's one error contract.

A card, trace, fault or address that cannot be used is unusable input (2); a
pcscd that cannot be started or reached, or a port in use, leaves the card
server unavailable (3).  Each is an error that :mod:`terminal.cli` prints as
one ``posterm: error:`` line (see tests/integration/test_bad_inputs.py for
the whole command).
"""

from __future__ import annotations

import argparse
import errno
import socket

import pytest

from simulator import pcscd, vpcd
from simulator.nfc_udp import _bind_error
from terminal.cli_output import CommandError, Unavailable
from terminal.exit_status import status_for


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        (OSError(errno.EADDRINUSE, "Address already in use"), Unavailable, "the port is in use"),
        (OSError(errno.EACCES, "Permission denied"), Unavailable, "Permission denied"),
        (OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), CommandError, "not an address"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), CommandError, "--bind"),
    ],
)
def test_a_field_that_cannot_listen(error: OSError, kind: type[Exception], words: str) -> None:
    raised = _bind_error(error, "127.0.0.1", 54329)
    assert type(raised) is kind and words in str(raised) and "\n" not in str(raised)
    assert status_for(raised) == (3 if kind is Unavailable else 2)


def _vpcd_args(**changes: object) -> argparse.Namespace:
    values: dict[str, object] = {"card": "visa-qvsdc-online", "bind": "127.0.0.1", "port": None, "fault": []}
    return argparse.Namespace(**(values | changes))


def test_a_pcscd_that_cannot_start_is_unavailable_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def cannot(timeout: float = 10.0) -> pcscd.Pcscd:
        raise pcscd.PcscdError("pcscd exited at once (status 1):\nstarting\nanother pcscd holds /run/pcscd")

    monkeypatch.setattr(pcscd, "ensure_pcscd", cannot)
    with pytest.raises(Unavailable) as raised:
        vpcd.serve_card_cli(_vpcd_args())
    assert str(raised.value) == "pcscd exited at once (status 1): another pcscd holds /run/pcscd"
    assert status_for(raised.value) == 3


def test_a_bad_fault_for_vpcd_is_unusable_input() -> None:
    with pytest.raises(CommandError, match="sideways") as raised:
        vpcd.serve_card_cli(_vpcd_args(fault=["sideways=1"]))
    assert status_for(raised.value) == 2
