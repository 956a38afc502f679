<<<<<<< HEAD
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
=======
"""Digital-currency taps: SM2 verification per signature (ours against gmssl's), and a whole kernel payment.

- SM2: the same signatures (made by gmssl with fresh keys) verified by
  ``cbdc.sm2.verify`` (integers, Jacobian coordinates, a fixed-base table of G)
  and by gmssl's ``verify_with_sm3`` (hex-string arithmetic); medians.
- a payment: ``cbdc.kernel.pay`` against an in-memory wallet (the test fake
  wallet, tests/unit/cbdc/wallet.py), SELECT through the record's checks:
  three SM2 verifications cold (operator certificate, wallet certificate,
  record) or one (the certificates' verifications memoised, as on a terminal
  that has seen the wallet's operator before); the wallet's own time in PAY
  (its checks and gmssl signing) is measured inside it and subtracted.
- the APDU bytes of one payment, for the ISO 14443 airtime (bench/airtime.py).
>>>>>>> cbdc-core
"""

from __future__ import annotations

<<<<<<< HEAD
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
from cbdc.checks import TrustStore
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
    terminal_ms: float  # median terminal-side time of a whole tap (card computing excluded)
    commits_ms: float  # of which the two durable journal commits (the intent before PAY, the approval), median
    airtime_ms: float
    approvals_per_second: float  # durable, terminal-side
    raw_inserts_per_second: float
    sm2_verify_ms: float
=======
import statistics
import time
from dataclasses import dataclass

from gmssl import sm2 as gm_sm2

from bench.airtime import exchange_seconds
from cbdc import kernel, sm2
from cbdc.checks import clear_certificate_cache
from cbdc.kernel import Exchange, OfflineState
from tests.unit.cbdc.wallet import NOW, FakeWallet, Key, gmssl_signer, request, trust, wallet_certificate

TARGET_RATIO = 0.10


@dataclass(frozen=True)
class Sm2Figures:
    ours_ms: float
    gmssl_ms: float
>>>>>>> cbdc-core
    runs: int

    @property
    def ratio(self) -> float:
<<<<<<< HEAD
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
                             settings=_roomy(load_default_settings(), runs + 10))  # fmt: skip
    terminal.reader = reader  # type: ignore[assignment]
    samples: list[float] = []
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

    def tap() -> tuple[float, float]:
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
            f"| terminal-side time of a whole tap, median of {f.runs} (card computing excluded) | "
            f"{f.terminal_ms:.2f} ms |",
            f"| of which the two durable journal commits (intent before PAY, approval) | {f.commits_ms:.2f} ms |",
            f"| of which three SM2 verifications (operator and wallet certificates, record) | "
            f"{3 * f.sm2_verify_ms:.2f} ms |",
            f"| ratio to the airtime (target at most {TARGET_RATIO * 100:.0f}%: {met}) | {f.ratio * 100:.1f}% |",
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
=======
        return self.gmssl_ms / self.ours_ms


@dataclass(frozen=True)
class PaymentFigures:
    apdus: int
    command_bytes: int
    response_bytes: int
    fastest_ms: tuple[float, float, float]  # the fastest of each row (cold, new wallet, warm): the unloaded floor
    cold_ms: float  # both certificates verified too (the terminal's first wallet of that operator)
    new_wallet_ms: float  # the operator's certificate seen before: the wallet's certificate and the record
    warm_ms: float  # both certificates seen before (the same wallet again): the record only
    airtime_ms: float
    runs: int

    @property
    def ratio(self) -> float:
        return self.cold_ms / self.airtime_ms


def sm2_figures(runs: int = 200) -> Sm2Figures:
    samples: list[tuple[bytes, bytes, bytes, gm_sm2.CryptSM2, str]] = []
    for i in range(max(runs // 10, 5)):
        key = Key.from_seed(f"bench {i}")
        message = f"payment record {i}".encode() * 8
        signature = key.sign(message)
        signer = gmssl_signer(key.private, key.public)  # (not the constructor's key: see gmssl_signer)
        samples.append((key.public, message, signature, signer, signature.hex()))
    sm2.verify(samples[0][0], samples[0][1], samples[0][2])  # the table of G, built once, outside the clock
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(runs):
        public, message, signature, signer, hex_signature = samples[i % len(samples)]
        started = time.perf_counter()
        ok = sm2.verify(public, message, signature)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        ok_gm = signer.verify_with_sm3(hex_signature, message)
        theirs.append(time.perf_counter() - started)
        assert ok and ok_gm
    return Sm2Figures(statistics.median(ours) * 1000, statistics.median(theirs) * 1000, runs)


def payment_exchanges() -> list[Exchange]:
    """The APDUs (commands and responses) of one approved hard-wallet payment."""
    out = kernel.pay(FakeWallet(), request(), trust(), OfflineState(), NOW, lambda intent: None)
    assert out.approved, out.detail
    return list(out.exchanges)


def byte_counts(exchanges: list[Exchange]) -> list[tuple[int, int]]:
    """(command bytes, response bytes) of each exchange: what airtime is computed from."""
    return [(len(e.command), len(e.response or b"")) for e in exchanges]


def airtime_seconds(exchanges: list[Exchange]) -> float:
    return sum(exchange_seconds(e.command, e.response or b"") for e in exchanges)


def _wallets(n: int) -> list[FakeWallet]:
    """``n`` wallets of the same operator, each with a key and a certificate of its own (made by gmssl)."""
    out = []
    for i in range(n):
        key = Key.from_seed(f"bench wallet {i}")
        wallet_id = bytes.fromhex("D1B0") + i.to_bytes(6, "big")
        out.append(FakeWallet(key=key, wallet_id=wallet_id, certificate=wallet_certificate(subject=wallet_id, key=key)))
    return out


def _one_payment(wallet: FakeWallet, i: int, *, cold: bool) -> float:
    store = trust()
    if cold:
        clear_certificate_cache()
    before = wallet.compute_seconds
    started = time.perf_counter()
    out = kernel.pay(wallet, request(challenge=i.to_bytes(16, "big")), store, OfflineState(), NOW, lambda _: None)
    elapsed = time.perf_counter() - started - (wallet.compute_seconds - before)
    assert out.approved, out.detail
    return elapsed


def payment_figures(runs: int = 200) -> PaymentFigures:
    wallets = _wallets(runs)
    regular = FakeWallet()
    for i in range(3):  # warm-up: the table of G, first calls
        _one_payment(FakeWallet(), i, cold=True)
    cold: list[float] = []
    new_wallet: list[float] = []
    warm: list[float] = []
    for i, wallet in enumerate(wallets):  # interleaved, so that the machine's load weighs on all three alike
        cold.append(_one_payment(FakeWallet(), i, cold=True))
        new_wallet.append(_one_payment(wallet, i, cold=False))
        warm.append(_one_payment(regular, i, cold=False))
    exchanges = payment_exchanges()
    return PaymentFigures(
        apdus=len(exchanges),
        command_bytes=sum(c for c, _ in byte_counts(exchanges)),
        response_bytes=sum(r for _, r in byte_counts(exchanges)),
        fastest_ms=(min(cold) * 1000, min(new_wallet) * 1000, min(warm) * 1000),
        cold_ms=statistics.median(cold) * 1000,
        new_wallet_ms=statistics.median(new_wallet) * 1000,
        warm_ms=statistics.median(warm) * 1000,
        airtime_ms=airtime_seconds(exchanges) * 1000,
        runs=runs,
    )


def markdown(sig: Sm2Figures, payment: PaymentFigures) -> str:
    met = "met" if payment.ratio <= TARGET_RATIO else "NOT met"
    size = f"{payment.command_bytes} + {payment.response_bytes}"
    rows = [
        ("the first wallet of an operator (3 verifications)", payment.cold_ms, payment.fastest_ms[0]),
        ("a new wallet of an operator seen before (2 verifications)", payment.new_wallet_ms, payment.fastest_ms[1]),
        ("a wallet seen before (1 verification)", payment.warm_ms, payment.fastest_ms[2]),
    ]
    return "\n".join(
        [
            f"SM2 verification, median of {sig.runs} signatures:",
            "",
            "| implementation | median (ms) |",
            "| --- | ---: |",
            f"| cbdc.sm2.verify (Python integers, Jacobian, fixed-base table of G, width-5 NAF) | {sig.ours_ms:.3f} |",
            f"| gmssl 3.2.2 CryptSM2.verify_with_sm3 (hex-string arithmetic) | {sig.gmssl_ms:.3f} |",
            "",
            f"gmssl takes {sig.ratio:.1f} times as long.",
            "",
            f"A whole payment through `cbdc.kernel.pay`, median of {payment.runs} each (interleaved; the wallet's "
            "time in PAY subtracted):",
            "",
            "| payment | APDUs | bytes (commands + responses) | terminal-side median (ms) | fastest (ms) | "
            "airtime at 106 kbit/s (ms) | median / airtime |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *(
                f"| {name} | {payment.apdus} | {size} | {median:.3f} | {fastest:.3f} | {payment.airtime_ms:.2f} | "
                f"{median / payment.airtime_ms:.1%} |"
                for name, median, fastest in rows
            ),
            "",
            f"Target: terminal-side at most {TARGET_RATIO:.0%} of the airtime, for the worst row: {met}.",
        ]
    )


def run(runs: int = 200) -> tuple[Sm2Figures, PaymentFigures]:
    return sm2_figures(runs), payment_figures(runs)
>>>>>>> cbdc-core
