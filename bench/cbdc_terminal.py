"""Digital-currency hard-wallet taps at the terminal: terminal-side time vs airtime, and durable approvals per second.

- **A tap**: whole sales (``Terminal.sale``) from the simulator's wallet
  through Entry Point, the digital-currency kernel (three SM2 verifications:
  the operator's and the wallet's certificates, the record), the intent
  journalled before PAY and the approval after, both durable.  The wallet's
  own computing (its SM2 signature, its state file) is measured inside the
  card and taken out; what is left is the terminal's.  Compared with the
  ISO/IEC 14443 airtime of the bytes exchanged at 106 kbit/s (as for EMV,
  :mod:`bench.emv_tap`).  Target: at most 10% of the airtime.
- **Durable approvals per second**: the same sales, ``count`` over the sum of
  the terminal-side times, against raw single-row inserts with the store's
  settings (:func:`bench.terminal_core.raw_insert_rate`).
- **SM2**: one signature verification (:func:`cbdc.sm2.verify`), the median
  over many.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.airtime import exchange_seconds
from bench.terminal_core import raw_insert_rate
from cbdc import sm2
from cbdc.checks import TrustStore, clear_certificate_cache
from cbdc.protocol import Certificate
from emv.recorder import ApduRecorder
from simulator.cbdc.wallet import WalletCard
from simulator.transport import as_transport
from terminal.bootstrap import open_terminal
from terminal.ports import CancelToken, CardSession
from terminal.settings import load_default_settings

__all__ = ["TARGET_RATIO", "CbdcFigures", "markdown", "run"]

TARGET_RATIO = 0.10
CNY = 156


@dataclass(frozen=True)
class CbdcFigures:
    apdus: int
    bytes_exchanged: int
    terminal_ms: float  # median terminal-side time of a whole tap of a wallet first seen (card computing excluded)
    known_ms: float  # the same for a wallet whose certificates cbdc has verified before (its memo)
    commits_ms: float  # of which the two durable journal commits (the intent before PAY, the approval), median
    airtime_ms: float
    approvals_per_second: float  # durable, terminal-side
    raw_inserts_per_second: float
    sm2_verify_ms: float
    runs: int

    @property
    def ratio(self) -> float:
        return self.terminal_ms / self.airtime_ms

    @property
    def insert_ratio(self) -> float:
        return self.approvals_per_second / self.raw_inserts_per_second


class _Reader:
    """The wallet in the field for every tap, its exchanges recorded (for the airtime)."""

    kind = "reader"

    def __init__(self, card: WalletCard) -> None:
        self.card = card
        self.recorder: ApduRecorder | None = None

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        self.card.reset()
        recorder = ApduRecorder(as_transport(self.card))
        self.recorder = recorder

        class Session:
            atr = bytes.fromhex("3B80800101")

            def exchange(self, command: bytes) -> bytes:
                return recorder.exchange(command)

            def close(self) -> None:
                pass

        return Session()


def _roomy(settings: Any, count: int) -> Any:
    """The shipped settings with digital-currency offline limits that ``count`` payments stay under."""
    section = settings.cbdc.to_parameters()
    section["limits"]["156"] = {"per_payment": 200000, "max_count": count + 10, "max_total": 10**9,
                                "max_unsent_age_s": 10**9}  # fmt: skip
    return replace(settings, cbdc=TrustStore.from_parameters(section))


def _sm2_ms(runs: int = 50) -> float:
    from simulator.cbdc import pki

    keys = pki.operator("00000101")
    cert = Certificate.parse(keys.certificate)
    root = bytes.fromhex(pki.trust_roots()[0]["public_key"])
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        if not sm2.verify(root, cert.signed_bytes, cert.signature):
            raise RuntimeError("the operator's certificate does not verify")
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def run(runs: int = 200, raw: int = 2000, rounds: int = 5, directory: Path | None = None) -> CbdcFigures:
    """``rounds`` interleaved rounds of taps and raw inserts (the disk's speed drifts): medians over all."""
    base = Path(directory or tempfile.mkdtemp(prefix="posterm-bench-cbdc-"))
    card = WalletCard("cbdc-verified", state_dir=base / "wallets")
    reader = _Reader(card)
    terminal = open_terminal(base / "terminal", host="none", reader_url="none",
                             settings=_roomy(load_default_settings(), 2 * runs + 50))  # fmt: skip
    terminal.reader = reader  # type: ignore[assignment]
    samples: list[float] = []
    known: list[float] = []
    commits: list[float] = []
    inserts: list[float] = []
    approvals: list[float] = []
    store = terminal.store
    record, atomic = store.record, store.atomic
    in_commits = [0.0]
    depth = [0]

    def timed_record(*args: Any, **kwargs: Any) -> Any:  # the intent's commit (the approval's: below)
        started = time.perf_counter()
        try:
            return record(*args, **kwargs)
        finally:
            if not depth[0]:
                in_commits[0] += time.perf_counter() - started

    @contextlib.contextmanager
    def timed_atomic() -> Iterator[None]:  # the approval, its advice and the wallet's counter: one commit
        started = time.perf_counter()
        depth[0] += 1
        try:
            with atomic():
                yield
        finally:
            depth[0] -= 1
            in_commits[0] += time.perf_counter() - started

    def tap(cold: bool = True) -> tuple[float, float]:
        if cold:  # a wallet never seen: its two certificates are verified (three SM2 verifications in all)
            clear_certificate_cache()
        before = card.compute_seconds
        in_commits[0] = 0.0
        started = time.perf_counter()
        result = terminal.sale(100, CNY)
        elapsed = time.perf_counter() - started
        if not result.approved:
            raise RuntimeError(f"benchmark wallet payment not approved: {result.message}")
        return elapsed - (card.compute_seconds - before), in_commits[0]

    store.record = timed_record  # type: ignore[method-assign]
    store.atomic = timed_atomic  # type: ignore[method-assign]
    try:
        for _ in range(10):  # warm-up taps are not counted
            tap()
        for n in range(rounds):
            these = [tap() for _ in range(max(1, runs // rounds))]
            known += [tap(cold=False)[0] for _ in range(max(1, runs // rounds // 2))]
            samples += [t for t, _ in these]
            commits += [c for _, c in these]
            approvals.append(len(these) / sum(t for t, _ in these))
            (base / f"raw-{n}").mkdir()
            inserts.append(raw_insert_rate(base / f"raw-{n}", max(1, raw // rounds)))
    finally:
        terminal.close()
    assert reader.recorder is not None
    airtime = sum(exchange_seconds(e.command, e.response or b"") for e in reader.recorder.exchanges)
    nbytes = sum(len(e.command) + len(e.response or b"") for e in reader.recorder.exchanges)
    return CbdcFigures(
        apdus=len(reader.recorder.exchanges),
        bytes_exchanged=nbytes,
        terminal_ms=statistics.median(samples) * 1000,
        known_ms=statistics.median(known) * 1000,
        commits_ms=statistics.median(commits) * 1000,
        airtime_ms=airtime * 1000,
        approvals_per_second=statistics.median(approvals),
        raw_inserts_per_second=statistics.median(inserts),
        sm2_verify_ms=_sm2_ms(),
        runs=len(samples),
    )


def markdown(f: CbdcFigures) -> str:
    met = "met" if f.ratio <= TARGET_RATIO else "NOT met"
    note = (
        f"\nThe three SM2 verifications alone are {3 * f.sm2_verify_ms / f.airtime_ms * 100:.1f}% of the airtime; "
        "the durable commits follow the disk's fsync."
    )
    return "\n".join(
        [
            "| figure | value |",
            "| --- | ---: |",
            f"| APDUs of a tap (PPSE, SELECT, GET WALLET INFO, 2 x READ CERTIFICATE, PAY) | {f.apdus} |",
            f"| bytes exchanged | {f.bytes_exchanged} |",
            f"| airtime at 106 kbit/s | {f.airtime_ms:.2f} ms |",
            f"| terminal-side time of a whole tap of a wallet first seen, median of {f.runs} (card computing "
            f"excluded) | {f.terminal_ms:.2f} ms |",
            f"| of which the two durable journal commits (intent before PAY, approval) | {f.commits_ms:.2f} ms |",
            f"| of which three SM2 verifications (operator and wallet certificates, record) | "
            f"{3 * f.sm2_verify_ms:.2f} ms |",
            f"| ratio to the airtime (target at most {TARGET_RATIO * 100:.0f}%: {met}) | {f.ratio * 100:.1f}% |",
            f"| the same tap of a wallet whose certificates were verified before (one SM2 verification) | "
            f"{f.known_ms:.2f} ms ({f.known_ms / f.airtime_ms * 100:.1f}%) |",
            f"| SM2 signature verification (cbdc.sm2, median) | {f.sm2_verify_ms:.2f} ms |",
            f"| durable offline digital-currency approvals per second (terminal-side) | "
            f"{f.approvals_per_second:.0f} |",
            f"| the same counting only their two durable commits | {1000 / f.commits_ms:.0f} |",
            f"| raw single-row inserts per second (WAL, synchronous=FULL) | {f.raw_inserts_per_second:.0f} |",
            f"| whole taps against raw inserts | {f.insert_ratio * 100:.0f}% |",
            f"| the durable commits against raw inserts (two commits a payment: 50% is the most) | "
            f"{1000 / f.commits_ms / f.raw_inserts_per_second * 100:.0f}% |",
            note,
        ]
    )
