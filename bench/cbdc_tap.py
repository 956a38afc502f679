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
"""

from __future__ import annotations

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
    runs: int

    @property
    def ratio(self) -> float:
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
