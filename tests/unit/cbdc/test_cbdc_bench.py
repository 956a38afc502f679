"""The digital-currency benchmark runs and its arithmetic holds (no timing is asserted)."""

from __future__ import annotations

from bench import cbdc_tap
from bench.airtime import exchange_seconds


def test_the_payment_exchanges_and_their_byte_counts() -> None:
    exchanges = cbdc_tap.payment_exchanges()
    assert [e.command[:2].hex().upper() for e in exchanges] == ["00A4", "80CA", "80B2", "80B2", "8054"]
    counts = cbdc_tap.byte_counts(exchanges)
    assert counts[0] == (17, 36) and all(r >= 2 for _, r in counts)
    expected = sum(exchange_seconds(bytes(c), bytes(r)) for c, r in counts)
    assert abs(cbdc_tap.airtime_seconds(exchanges) - expected) < 1e-12


def test_the_figures_and_their_table() -> None:
    sig, payment = cbdc_tap.run(runs=3)
    assert sig.ours_ms > 0 and sig.gmssl_ms > 0 and sig.runs == 3
    assert payment.apdus == 5 and payment.command_bytes + payment.response_bytes > 700
    text = cbdc_tap.markdown(sig, payment)
    assert "cbdc.sm2.verify" in text and f"{payment.airtime_ms:.2f}" in text
