"""``python -m bench``: run the benchmarks and write docs/benchmarks.md.

Each benchmark owns one section of the page, between markers, so that one can
be re-run without touching the figures of the others.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench import cbdc_terminal, emv_tap, speed, terminal_core
from bench import host_speed as bench_host_speed

PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Figures written by `make bench` (`python -m bench`); each section comes from one
run on one machine, with medians and ratios from that run. They are
measurements, not tests: nothing fails when a figure moves.
"""


def _machine() -> str:
    cpus = os.cpu_count() or 0
    return f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}, {cpus} cores"


def write_section(key: str, title: str, body: str) -> None:
    text = PAGE.read_text(encoding="utf-8") if PAGE.exists() else HEADER
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"<!-- bench:{key} -->\n## {title}\n\nRun {stamp} on {_machine()}.\n\n{body}\n<!-- /bench:{key} -->"
    pattern = re.compile(rf"<!-- bench:{key} -->.*?<!-- /bench:{key} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    PAGE.write_text(text, encoding="utf-8")


EMV_INTRO = """For each simulated card: the median terminal-side time of one transaction
(Entry Point through outcome: PPSE, selection, the kernel, ODA with its RSA
recoveries; the time the simulated card spends computing is measured inside
the card and subtracted), next to the ISO/IEC 14443 airtime of the same bytes
at 106 kbit/s (9 bit times a byte, PCB and CRC per block, ~86 µs frame delay;
start/end-of-frame bits and the card's own time not counted, so the airtime is
a floor). Target: terminal-side at most 5% of the airtime.
"""


CORE_INTRO = """In one run on the same disk, seven interleaved rounds (the disk's speed drifts
from minute to minute; more rounds steady the medians), medians:

- durable offline approvals through the terminal: the terminal's step after the
  card gave its TC, as a sale runs it (a new transaction, its journal rows, the
  PAN encrypted, the EMV data for the host encrypted, the SAF entry: one
  SQLite commit), timed by the terminal's own events (from the card reading's
  last message to the payment's first state change), 1,000 a round, against
- the raw rate of single-row committed INSERTs (2,000 a round) with the store's
  settings: WAL, synchronous=FULL, its page size. Target: at least half.
- For scale, whole sales on a simulated offline card: the same plus Entry
  Point and kernel C-3 with fDDA (terminal time: the card's own computing,
  measured inside the card, is subtracted), and the wall clock with the
  simulated card's RSA signing.

Then the time to forward 10,000 queued entries to the in-memory host.
"""


DEVICES_INTRO = """A full transaction (Entry Point through outcome, 12.34 EUR, the card's own
computing included in both columns) read through the real stacks next to the
same transaction in-process: through pcscd and vsmartcard's vpcd driver
(pyscard, pcscd's socket, the virtual card's TCP connection), and through
nfcpy's udp transport (polling, anticollision, RATS/ATS, ISO-DEP blocks over
loopback datagrams). The virtual cards answer from threads of the same process.
Then the time zbar takes to decode one 1280x720 camera frame holding a QR code.
"""


def devices_section(runs: int = 50, frames: int = 50) -> None:
    from bench import nfc_stack, pcsc_stack, qr_decode

    profiles = ["visa-qvsdc-online", "visa-qvsdc-offline", "mc-cda-online", "mc-cda-offline"]
    pcsc = pcsc_stack.markdown(pcsc_stack.measure(profiles, runs))
    nfc = nfc_stack.markdown(nfc_stack.measure(profiles, runs))
    qr = qr_decode.markdown(frames, qr_decode.run(frames))
    body = (
        DEVICES_INTRO
        + f"\n{runs} transactions per profile and stack.\n\n### Through pcscd + vpcd\n\n{pcsc}\n\n"
        + f"### Through nfcpy udp\n\n{nfc}\n\n### QR decoding per camera frame\n\n{qr}"
    )
    print(body)
    write_section("devices", "Devices: transactions through the real reader stacks, QR decoding (issue 5)", body)


SPEED_INTRO = """Issue 9's targets, all from this one run on one machine (the simulated host is
a real process on loopback: uvicorn, TLS 1.3 with client certificates, its
SQLite database with synchronous=FULL; the terminal is enrolled with it as a
real one is, and every figure is taken through public calls):

- forward 10,000 queued payments (offline approvals, queued by whole sales on
  a simulated offline card) to the host as batched advices, until the queue
  is empty: each chunk marked "being sent" in one commit before it goes out,
  the host's answers to a chunk recorded durably before the next is sent;
- online authorisation, terminal plus host: whole sales on a simulated online
  card, approved by the host, each less the time the simulated card spent
  computing (measured inside the card);
- cold start of the CLI: whole `posterm` processes, wall clock, interleaved.

The earlier figures follow, measured in the same run (their own sections below
hold the details).
"""


def speed_section(runs: int) -> None:
    """Issue 9's figures, with the earlier ones (tap ratio, approvals against raw inserts) from the same run."""
    with tempfile.TemporaryDirectory(dir=PAGE.parent.parent) as tmp:
        figures = speed.run(Path(tmp))
    core = terminal_core.run()
    taps = emv_tap.run(runs)
    worst = max(taps, key=lambda r: r.ratio)
    earlier = "\n".join(
        [
            "| earlier figure (same run) | figure | target |",
            "| --- | ---: | --- |",
            f"| EMV tap: worst terminal-side time against airtime ({worst.profile}) | {worst.ratio:.1%} | "
            f"at most {emv_tap.TARGET_RATIO:.0%}: {'met' if worst.ratio <= emv_tap.TARGET_RATIO else 'NOT met'} |",
            f"| durable offline approvals against raw committed inserts ({core.approvals_per_second:,.0f} /s "
            f"against {core.raw_inserts_per_second:,.0f} /s) | {core.ratio:.0%} | at least "
            f"{terminal_core.TARGET_RATIO:.0%}: {'met' if core.ratio >= terminal_core.TARGET_RATIO else 'NOT met'} |",
            f"| forward {core.forward_entries:,} queued entries to the in-process host | "
            f"{core.forward_seconds:.2f} s | |",
        ]
    )
    body = SPEED_INTRO + "\n" + speed.markdown(figures) + "\n\n" + earlier
    print(body)
    write_section("speed", "Speed: forwarding over HTTPS, online authorisation, cold start (issue 9)", body)
    _write_core(core)
    _write_taps(taps, runs)


def _write_core(core: terminal_core.CoreFigures) -> None:
    print(terminal_core.markdown(core))
    write_section(
        "terminal-core",
        "Terminal core: durable offline approvals and SAF forwarding (issue 3)",
        CORE_INTRO + "\n" + terminal_core.markdown(core),
    )


def _write_taps(rows: list[emv_tap.TapFigures], runs: int) -> None:
    table = emv_tap.markdown(rows)
    print(table)
    write_section(
        "emv-tap",
        "EMV contactless tap: terminal-side time vs airtime (issue 2)",
        EMV_INTRO + f"\n{runs} transactions per profile at 12.34 EUR.\n\n" + table,
    )


CBDC_TERMINAL_INTRO = """A digital-currency hard wallet (the simulator's `cbdc-verified`, CBDC-SPEC)
paying 1.00 CNY offline, whole sales through the terminal facade: Entry Point
selects the wallet beside the EMV applications, the terminal's kernel reads
the wallet's identity, certificates and counter, checks the chain and its
offline limits, journals the intent durably before PAY (write-ahead), verifies
the signed record and journals the approval with its advice and the wallet's
counter in one durable commit. The wallet's own computing (its SM2 signature,
its state file) is measured inside the card and taken out. A wallet first
seen costs three SM2 verifications (its operator's and its own certificate,
the record); `cbdc` remembers the certificates it verified, so a wallet seen
before costs one: both are shown, the target on the first. The airtime is the
ISO/IEC 14443 one of the same bytes at 106 kbit/s, as for the EMV taps (a
floor). Then the durable approvals per second (the same taps, terminal-side)
against raw single-row inserts on the same disk.
"""


def cbdc_terminal_section(runs: int) -> None:
    figures = cbdc_terminal.run(runs)
    table = cbdc_terminal.markdown(figures)
    print(table)
    write_section(
        "cbdc-tap",
        "Digital-currency hard-wallet tap at the terminal: terminal-side time vs airtime, durable approvals (issue 12)",
        CBDC_TERMINAL_INTRO + "\n" + table,
    )


UI_INTRO = """The application, offscreen (SDL's offscreen driver on Mesa's llvmpipe), on the
simulator's card and the in-process host:

- from `posterm ui` to the first frame: whole processes, from the start of the
  command until the window reports its first frame flipped;
- the longest gap between two frames on the UI thread (a clock callback every
  frame) while the terminal works: every facade call runs on the worker
  thread, and its result comes back between two frames.
"""


def ui_section() -> None:
    from bench import ui_speed

    body = UI_INTRO + "\n" + ui_speed.markdown(ui_speed.run())
    print(body)
    write_section("ui", "The application: first frame, frames while the terminal works (issue 10)", body)


ECR_INTRO = """A real ECR server (uvicorn on a loopback port, on a thread of the benchmark's
process) over a real terminal (its SQLite journal on disk, the simulator's
in-process host), driven by httpx as a register drives it: each sale started
with `POST /v1/payments` and followed by long poll to its result before the
next. The reader is the simulator's online card behind a wrapper that notes
when `wait_for_card` is called. The first figure runs from just before the
request is sent to that moment: the HTTP round trip, the body checked against
the OpenAPI document, the journal looked up for the key, the hand-over to the
worker thread and the facade's own checks before it polls.
"""


def ecr_section(runs: int) -> None:
    from bench import ecr

    body = ECR_INTRO + "\n" + ecr.markdown(ecr.run(runs))
    print(body)
    write_section("ecr", "The ECR interface: from a start request to the reader polling (issue 10)", body)


HOST_INTRO = """Authorisations per second of the host (issue 11), against a bare TLS echo server
on the same machine in the same run (bench/tls_echo.py: the host's TLS settings
and certificates, TLS 1.3, client certificates verified against the host CA,
asyncio's TLS transport as uvicorn uses it, no HTTP framework, no database: it
answers each request with its body). The same client drives both: {connections}
terminals enrolled with the host, each on its own mutual-TLS connection kept
alive, sending `POST /v1/authorisations` one after the other, each with its own
ARQC from a simulated card (made before the clock starts). {rounds} rounds of
{seconds:g} s alternate echo and host; rates are the medians of the rounds,
latencies over every round. The server's CPU per request is its processes'
user + system time over a round divided by the requests answered (for the
host on PostgreSQL, the private cluster's processes too; on a URL given, the
host's only); the client
(one process) shares the machine's two cores with the server, so the echo's
rate is the client's limit as much as the echo's (its CPU column says so).
"""


FLEET_INTRO = """`posterm host load` with its defaults (issue 11): {terminals:,} simulated terminals in one
asyncio process against a host it starts (uvicorn, TLS 1.3, mutual TLS,
{store}), each terminal with its own client certificate (enrolled in
bulk through the host's CA and store) and its own client address (127.0.0.x), paying
with real ARQCs from simulated cards (offline approvals with TCs made before the
run), a pause of {think:g} s on average between a terminal's payments (a
connection idle for 4 s is not reused, as the terminal's own client does, so
most payments make a TLS handshake), refunds and voids among them, the faults
below switched on the host during the run, then every batch closed and the
terminals' books compared with the host's records. Latencies are of answered
exchanges (from writing the request to the end of the answer).
"""


FLEET_SQLITE = "one worker, SQLite with\nsynchronous=FULL"
FLEET_POSTGRESQL = "{workers} workers, PostgreSQL on a\nprivate cluster with fsync and synchronous commit on"


def _load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"Load average when it started: {one:.2f} (1 min), {five:.2f} (5 min), on {os.cpu_count()} cores."


def host_section(workers: list[int], pg: str | None, *, seconds: float = 5.0, rounds: int = 3) -> None:
    """SQLite and PostgreSQL (``pg``: a URL, ``auto`` for a private durable cluster, None to leave it out), each
    with ``workers`` processes; what cannot run says why."""
    from bench import host_speed

    load = _load_average()
    results: list[host_speed.PairFigures | tuple[host_speed.Combination, str]] = []
    with tempfile.TemporaryDirectory(dir=PAGE.parent.parent) as tmp:
        for n in workers:
            results.append(host_speed.measure(Path(tmp) / f"sqlite-{n}", host_speed.Combination(None, n),
                                              seconds=seconds, rounds=rounds))  # fmt: skip
        results += _postgresql(Path(tmp) / "postgresql", workers, pg, seconds=seconds, rounds=rounds)
    intro = HOST_INTRO.format(connections=32, rounds=rounds, seconds=seconds)
    body = intro + "\n" + load + "\n\n" + host_speed.rate_markdown(results)
    print(body)
    write_section("host-speed", "The host: authorisations per second against a bare TLS echo (issue 11)", body)


def _postgresql(
    folder: Path, workers: list[int], pg: str | None, *, seconds: float, rounds: int
) -> list[bench_host_speed.PairFigures | tuple[bench_host_speed.Combination, str]]:
    """The PostgreSQL rows: one data directory for them all (the database checks the host's keys/ against it)."""
    from bench import host_speed

    if not pg:
        why = "no PostgreSQL (--pg URL, or --pg auto for a private cluster)"
        return [(host_speed.Combination("postgresql", n), why) for n in workers]
    cluster = None
    if pg == "auto":
        from bench.pg_cluster import ClusterError, durable_cluster

        try:
            cluster = durable_cluster()
        except ClusterError as exc:
            return [(host_speed.Combination("postgresql", n), f"PostgreSQL did not start: {exc}") for n in workers]
    out: list[host_speed.PairFigures | tuple[host_speed.Combination, str]] = []
    try:
        for n in workers:
            url = pg if cluster is None else cluster.url(cluster.create_database())
            database = None if cluster is None else cluster.pid
            combination = host_speed.Combination(url, n)
            out.append(host_speed.measure(folder, combination, seconds=seconds, rounds=rounds, database_pid=database))
    finally:
        if cluster is not None:
            cluster.stop()
    return out


def fleet_section(args: list[str], pg: str | None, pg_workers: int = 2) -> None:
    """The fleet on SQLite (one worker); then, with ``pg`` (a URL or ``auto``), on PostgreSQL with ``pg_workers``."""
    from bench import host_speed

    load = _load_average()
    report = host_speed.fleet_run(args)
    intro = FLEET_INTRO.format(terminals=report["terminals"], think=report["think_seconds"], store=FLEET_SQLITE)
    body = intro + "\n" + load + "\n\n" + host_speed.fleet_markdown(report)
    print(body)
    write_section("host-fleet", "A fleet: 1,000 terminals for five minutes with faults (issue 11)", body)
    if not pg:
        return
    cluster = None
    if pg == "auto":
        from bench.pg_cluster import ClusterError, durable_cluster

        try:
            cluster = durable_cluster()
        except ClusterError as exc:
            print(f"the fleet on PostgreSQL left out: {exc}")
            return
    try:
        url = pg if cluster is None else cluster.url(cluster.create_database())
        load = _load_average()
        with tempfile.TemporaryDirectory(dir=PAGE.parent.parent) as tmp:
            report = host_speed.fleet_run([*args, "--workers", str(pg_workers), "--store", url], scratch=Path(tmp))
    finally:
        if cluster is not None:
            cluster.stop()
    store = FLEET_POSTGRESQL.format(workers=pg_workers)
    intro = FLEET_INTRO.format(terminals=report["terminals"], think=report["think_seconds"], store=store)
    body = intro + "\n" + load + "\n\n" + host_speed.fleet_markdown(report)
    print(body)
    write_section("host-fleet-postgresql", "The same fleet, the host on PostgreSQL with two workers (issue 11)", body)


CBDC_INTRO = """Issue 12's speed figures for hard-wallet taps (bench/cbdc_tap.py). SM2
verification per signature: ours (cbdc.sm2, Python integers) against gmssl's
(pure Python on hex strings), the same signatures, each made by gmssl with a key
of its own. Then whole payments through `cbdc.kernel.pay` against an in-memory
wallet: SELECT, GET WALLET INFO, the two certificates, the checks, PAY and the
record's checks, with the wallet's own time in PAY (its checks and its gmssl
signature) measured inside the wallet and subtracted; the airtime is that of
the same bytes at 106 kbit/s (bench/airtime.py: 9 bit times a byte, PCB and
CRC per block, ~86 µs frame delay; a floor). Target: terminal-side at most 10%
of the airtime. The machine is shared: the load average says how busy it was.
"""


def cbdc_section(runs: int) -> None:
    from bench import cbdc_tap

    load = _load_average()
    figures = cbdc_tap.run(runs)
    body = CBDC_INTRO + "\n" + load + "\n\n" + cbdc_tap.markdown(*figures)
    print(body)
    write_section("cbdc", "Digital-currency taps: SM2 verification, terminal-side time vs airtime (issue 12)", body)


QR_INTRO = """Issue 13's targets, one run on one machine, in-process (no device, no host):
a sale's merchant-presented code built from the shipped configuration (a new
amount and reference each time: the payload with its CRC, checked by decoding
it again) and drawn as text with qrcode; consumer-presented payloads parsed
as the POI does (base64, BER-TLV, the application chosen, POI and transparent
data split); QR codes in 1280x720 camera frames (bench/qr_decode.py's frames:
a code at a random scale, place and tilt, blurred, with sensor noise) read
through the camera driver looking for QR codes only, which reads a frame at
half size first and at full size only when that finds nothing.
"""


def qr_section(runs: int = 300, frames: int = 50) -> None:
    from bench import qr

    body = QR_INTRO + "\n" + qr.markdown(qr.run(runs, frames))
    print(body)
    write_section("qr", "QR codes: a sale's MPM code, CPM payloads, camera frames (issue 13)", body)


def contact_section(runs: int) -> None:
    from bench import contact

    intro = (contact.__doc__ or "").split("\n\n", 1)[1].strip()
    body = intro + "\n\n" + contact.markdown(contact.run(runs))
    print(body)
    write_section("contact", "Contact EMV: terminal-side time vs T=1 airtime at 9600 and 115200 baud (issue 14)", body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--runs", type=int, default=200, help="transactions per profile")
    parser.add_argument(
        "--only",
        choices=[
            "emv",
            "core",
            "devices",
            "speed",
            "ui",
            "ecr",
            "host",
            "fleet",
            "qr",
            "cbdc",
            "cbdc-terminal",
            "contact",
        ],
        help="run one benchmark (speed: issue 9's figures, and the core and tap figures of the same run)",
    )
    parser.add_argument(
        "--pg",
        metavar="URL",
        default=os.environ.get("POSTERM_BENCH_PG", "auto"),
        help="host: the host on PostgreSQL too, on this database URL, or 'auto': a private durable cluster "
        "(default $POSTERM_BENCH_PG, else auto), or 'none'",
    )
    parser.add_argument("--workers", default="1,2,4", help="host: worker counts to measure (default 1,2,4)")
    parser.add_argument("--fleet-args", default="", help="fleet: extra options of 'posterm host load'")
    args = parser.parse_args(argv)
    if args.only in (None, "devices"):
        devices_section()
    if args.only in (None, "speed"):
        speed_section(args.runs)
    if args.only in (None, "ui"):
        ui_section()
    if args.only in (None, "ecr"):
        ecr_section(args.runs)
    if args.only in (None, "qr"):
        qr_section()
    if args.only in (None, "host"):
        pg = None if args.pg in ("", "none") else args.pg
        host_section([int(n) for n in args.workers.split(",") if n.strip()], pg)
    if args.only in (None, "fleet"):
        fleet_section(args.fleet_args.split(), None if args.pg in ("", "none") else args.pg)
    if args.only in (None, "cbdc"):
        cbdc_section(args.runs)
    if args.only in (None, "cbdc-terminal"):
        cbdc_terminal_section(args.runs)
    if args.only in (None, "contact"):
        contact_section(min(args.runs, 100))
    if args.only == "core":
        _write_core(terminal_core.run())
    if args.only == "emv":
        _write_taps(emv_tap.run(args.runs), args.runs)
    print(f"\nwritten to {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
