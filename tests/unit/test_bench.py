"""The benchmark code runs and its arithmetic holds (no timing is asserted)."""

from __future__ import annotations

from bench.airtime import BYTE_SECONDS, FRAME_DELAY_SECONDS, exchange_seconds
from bench.emv_tap import markdown, measure_profile


def test_airtime_counts_bytes_blocks_and_frame_delay() -> None:
    one = exchange_seconds(b"\x00" * 10, b"\x90\x00")
    assert abs(one - ((10 + 3 + 2 + 3) * BYTE_SECONDS + FRAME_DELAY_SECONDS)) < 1e-12
    assert abs(BYTE_SECONDS - 9 * 128 / 13.56e6) < 1e-15


def test_measure_profile_reports_figures_for_a_real_tap() -> None:
    figures = measure_profile("visa-qvsdc-offline", runs=3)
    assert figures.outcome == "approved"
    assert figures.apdus >= 5 and figures.bytes_exchanged > 500
    assert figures.terminal_ms > 0 and figures.airtime_ms > 10
    assert "visa-qvsdc-offline" in markdown([figures])
