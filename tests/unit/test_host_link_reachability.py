"""host_link.reachability: the window after a connect failure, the single probe, recovery; and the doctests."""

from __future__ import annotations

import doctest
import importlib
import threading

import pytest

from host_link.reachability import Reachability
from terminal.host import HostUnreachable


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_unknown_counts_as_reachable() -> None:
    r = Reachability()
    assert r.reachable and r.last_error is None
    r.admit()
    r.admit()


def test_window_then_one_probe_then_recovery() -> None:
    clock = Clock()
    r = Reachability(retry_after_seconds=20, clock=clock)
    r.failed("refused")
    assert not r.reachable and r.status().retry_in_seconds == 20
    clock.t = 19.9
    with pytest.raises(HostUnreachable, match="refused"):
        r.admit()
    clock.t = 20
    r.admit()  # the probe
    with pytest.raises(HostUnreachable, match="another attempt is under way"):
        r.admit()
    r.succeeded()
    assert r.reachable and r.status().failures == 0
    assert r.last_error == "refused"  # kept for diagnostics
    r.admit()


def test_a_failed_probe_opens_a_new_window() -> None:
    clock = Clock()
    r = Reachability(retry_after_seconds=5, clock=clock)
    r.failed("refused")
    clock.t = 6
    r.admit()
    r.failed("timeout")
    assert r.status().failures == 2 and r.last_error == "timeout"
    with pytest.raises(HostUnreachable, match="next attempt in 5 s"):
        r.admit()


def test_a_released_probe_lets_the_next_call_try() -> None:
    clock = Clock()
    r = Reachability(retry_after_seconds=5, clock=clock)
    r.failed("refused")
    clock.t = 6
    r.admit()
    r.release()
    r.admit()


def test_force_always_tries() -> None:
    r = Reachability(retry_after_seconds=1000, clock=Clock())
    r.failed("refused")
    r.admit(force=True)


def test_only_one_of_many_threads_is_the_probe() -> None:
    clock = Clock()
    r = Reachability(retry_after_seconds=1, clock=clock)
    r.failed("refused")
    clock.t = 2
    admitted: list[int] = []
    barrier = threading.Barrier(8)

    def call(i: int) -> None:
        barrier.wait()
        try:
            r.admit()
            admitted.append(i)
        except HostUnreachable:
            pass

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 1


def test_negative_window_is_refused() -> None:
    with pytest.raises(ValueError):
        Reachability(retry_after_seconds=-1)


@pytest.mark.parametrize(
    "module",
    [
        "host_link.reachability",
        "host_link.wire",
        "host_link.client",
        "host_link.parameters",
        "host_link.tls",
        "host_link.forwarder",
        "host_link.enrolment",
        "host_link.cli",
    ],
)
def test_doctests(module: str) -> None:
    failures, _ = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert failures == 0
