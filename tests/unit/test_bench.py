"""The benchmark code runs and its arithmetic holds (no timing is asserted)."""

from __future__ import annotations

from pathlib import Path

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


def test_percentile_is_the_nearest_rank() -> None:
    from bench.speed import percentile

    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 95) == 95.0
    assert percentile(samples, 50) == 50.0
    assert percentile([3.0], 95) == 3.0


def test_speed_figures_come_from_a_real_host(tmp_path: Path) -> None:
    from bench import speed

    figures = speed.run(tmp_path, entries=40, rounds=1, auth_runs=5, cold_runs=1)
    assert figures.forward_entries == 40 and len(figures.forward_seconds) == 1
    assert len(figures.auth_ms) == 5 and all(ms > 0 for ms in figures.auth_ms)
    assert set(figures.cold_seconds) == {"posterm --help", "posterm saf status"}
    assert "online authorisation: p95" in speed.markdown(figures)


def test_host_speed_figures_come_from_a_real_host_and_a_tls_echo(tmp_path: Path) -> None:
    from bench import host_speed

    combination = host_speed.Combination(None, 1)
    figures = host_speed.measure(tmp_path, combination, connections=4, seconds=0.5, rounds=1, per_terminal=20)
    assert figures.host.rates[0] > 0 and figures.echo.rates[0] > 0
    assert figures.host.failures == 0 and figures.echo.failures == 0
    assert figures.host.server_cpu_per_request and figures.echo.server_cpu_per_request and figures.ratio > 0
    table = host_speed.rate_markdown([figures, (host_speed.Combination("postgresql://x", 2), "no URL")])
    assert "| SQLite, 1 worker |" in table and "| PostgreSQL, 2 workers | skipped: no URL |" in table


def test_fleet_figures_come_from_a_load_run(tmp_path: Path) -> None:
    from bench import host_speed

    args = ["--terminals", "5", "--duration", "2", "--think", "0.3", "--faults", "none"]
    report = host_speed.fleet_run(args, scratch=tmp_path)
    assert report["ok"] is True and report["terminals"] == 5
    table = host_speed.fleet_markdown(report)
    assert "books match, every batch in balance" in table and "| batches closed in balance | 5 of 5 |" in table


def test_host_speed_on_a_durable_postgresql_counts_the_database_cpu(tmp_path: Path) -> None:
    from bench import host_speed
    from bench.pg_cluster import durable_cluster

    cluster = durable_cluster()
    try:
        combination = host_speed.Combination(cluster.url(cluster.create_database()), 2)
        before = process_seconds(cluster.pid)
        figures = host_speed.measure(
            tmp_path, combination, connections=4, seconds=0.5, rounds=1, per_terminal=20, database_pid=cluster.pid
        )
        assert process_seconds(cluster.pid) > before  # the database worked, and its time is counted
    finally:
        cluster.stop()
    assert figures.host.rates[0] > 0 and figures.host.failures == 0
    assert "| PostgreSQL, 2 workers |" in host_speed.rate_markdown([figures])


def process_seconds(pid: int) -> float:
    from simulator.loadgen.run import process_cpu_seconds

    seconds = process_cpu_seconds(pid)
    assert seconds is not None
    return seconds


def test_qr_figures_come_from_real_codes_and_frames() -> None:
    from bench import qr

    figures = qr.run(runs=3, frames=2)  # every frame's code must be found, or run() raises
    assert figures.frames == 2 and figures.mpm_build_render_ms > 0 and figures.cpm_unionpay_ms > 0
    assert "1280x720 camera frame" in qr.markdown(figures)


def test_a_unionpay_card_is_measured_in_its_own_currency() -> None:
    """The electronic cash card pays CNY only: measured in EUR it would decline, a tap nobody makes."""
    figures = measure_profile("unionpay-ec", runs=3)
    assert figures.outcome == "approved"
    assert figures.apdus == 7  # PPSE, SELECT, GPO, three records, GET DATA 9F79


def test_the_contact_bench_completes_an_arpc_method_2_card_online() -> None:
    # contact-arpc2 goes online for every payment; the bench's issuer once answered it a method-1 ARPC and crashed.
    from bench import contact

    figures = contact.measure("contact-arpc2", runs=2)
    assert figures.outcome == "approved"
    assert figures.apdus >= 10 and figures.terminal_ms > 0
    assert figures.airtime_ms[9600] > figures.airtime_ms[115200] > 0
