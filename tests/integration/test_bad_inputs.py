"""Bad input to every ``posterm`` command ends in one line and the exit status of the contract.

Each case runs the installed console script as a user would, in a data
directory of its own, and checks (see :mod:`terminal.exit_status`):

- the exit status is the contract's (2 unusable input, 1 refused or not
  completed, 3 unavailable, 130 interrupted);
- standard error holds exactly one ``posterm: error:`` line, at most one
  ``posterm: note:`` line (a log that cannot be written), and nothing else;
- no ``Traceback`` anywhere;
- with ``--json``, standard output is one JSON object ``{"error", "exit_status"}``.

The cases run in parallel (a thread pool over subprocesses) from one
module-scoped fixture; each case is then its own test.  Read-only data
directories are made for real: as root, mode bits do not stop writes, so the
directory is bind-mounted read-only in a mount namespace of the command's own
(``unshare -m`` + ``mount --bind -o ro``); where that is not possible those
cases skip, saying why.  Two more tests send a real SIGINT to ``sale`` (while
it waits for a card) and to ``saf forward`` (while the host does not answer).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTERM = str(Path(sys.executable).with_name("posterm"))
WORKERS = 4
TIMEOUT = 90


@dataclass(frozen=True)
class Bad:
    """One bad input: the command line and what must come of it.

    ``argv`` may hold ``{d}`` (the case's terminal data directory), ``{h}``
    (its simulated host's), ``{t}`` (its private folder), ``{f}`` (the shared
    folder of prepared files), ``{tx}`` (a settled sale of the prepared data
    directory), ``{p}`` (a UDP port on 127.0.0.1 that the tests hold bound
    while the cases run, and on which nothing listens over TCP on 127.0.0.2).
    ``setup``: ``""`` (a fresh data directory), ``"settled"`` (a
    copy of one with a sale in a settled batch and a host with its records),
    ``"file"`` (``{d}`` is a file).  ``says``: words the error line must hold.
    """

    id: str
    argv: tuple[str, ...]
    status: int
    says: str = ""
    setup: str = ""
    readonly: bool = False


def _b(id: str, argv: str, status: int, says: str = "", setup: str = "", readonly: bool = False) -> Bad:
    return Bad(id, tuple(argv.split()), status, says, setup, readonly)


D = "--data-dir {d}"
H = "--data-dir {h}"
CARD = "--card visa-qvsdc-online"
TOKEN = "0123456789abcdef0123456789abcdef"

CASES: tuple[Bad, ...] = (
    # --- amounts, currencies, cards, readers -----------------------------------------------------------
    _b("sale-exponent", f"sale 1e3 {CARD} {D}", 2, "1e3"),
    _b("sale-underscore", f"sale 1_000 {CARD} {D}", 2, "1_000"),
    _b("sale-plus-sign", f"sale +3.00 {CARD} {D}", 2, "+3.00"),
    _b("sale-negative", f"sale -5.00 {CARD} {D}", 2),
    _b("sale-words", f"sale five {CARD} {D}", 2, "five"),
    _b("sale-zero", f"sale 0.00 {CARD} {D}", 2),
    _b("sale-three-decimals", f"sale 1.234 {CARD} {D}", 2, "1.234"),
    _b("sale-huge", f"sale 99999999999999.00 {CARD} {D}", 2),
    _b("sale-unknown-currency", f"sale 5.00 --currency XYZ {CARD} {D}", 2, "XYZ"),
    _b("sale-unknown-card", f"sale 5.00 --card nosuch {D}", 2, "nosuch"),
    _b("sale-card-and-reader", f"sale 5.00 {CARD} --reader pcsc: {D}", 2, "not both"),
    _b("sale-unknown-scheme", f"sale 5.00 --reader bogus:x {D}", 2, "bogus"),
    _b("sale-url-without-scheme", f"sale 5.00 --reader visa {D}", 2, "scheme"),
    _b("sale-bad-reader-option", f"sale 5.00 --reader sim:card=visa-qvsdc-online?mute-after=x {D}", 2, "mute-after"),
    _b("sale-unknown-behaviour", f"sale 5.00 {CARD} --offline-behavior sometimes {D}", 2, "sometimes"),
    _b("sale-unknown-host", f"sale 5.00 {CARD} --host nowhere {D}", 2, "nowhere"),
    _b("sale-https-not-enrolled", f"sale 5.00 {CARD} --host https {D}", 2, "not enrolled"),
    _b("sale-json-bad-amount", f"sale 1e3 {CARD} {D} --json", 2),
    _b("sale-json-unknown-option", f"sale 5.00 --colour red {D} --json", 2, "--colour"),
    # --- ids, refunds, voids, receipts, reports -------------------------------------------------------
    _b("refund-says-nothing", f"refund 1.00 {D}", 2, "--original"),
    _b("refund-unknown-original", f"refund 1.00 --original NOSUCH {D}", 2, "NOSUCH"),
    _b("void-unknown", f"void NOSUCH {D}", 2, "NOSUCH"),
    _b("void-json-unknown", f"void NOSUCH {D} --json", 2, "NOSUCH"),
    _b("receipt-unknown", f"receipt NOSUCH {D}", 2, "NOSUCH"),
    _b("receipt-output-missing-folder", f"receipt {{tx}} --output {{t}}/no/r.txt {D}", 2, "not exist", "settled"),
    _b("receipt-output-is-a-folder", f"receipt {{tx}} --output {{t}} {D}", 2, "is a folder", "settled"),
    _b("journal-show-unknown", f"journal show NOSUCH {D}", 2, "NOSUCH"),
    _b("journal-since-garbage", f"journal export --since garbage {D}", 2, "garbage"),
    _b("journal-until-bad-date", f"journal export --until 2026-13-45 {D}", 2, "2026-13-45"),
    _b("journal-since-after-until", f"journal export --since 2026-02-01 --until 2026-01-01 {D}", 2, "not before"),
    _b("journal-export-missing-folder", f"journal export --output {{t}}/nofolder/j.csv {D}", 2, "does not exist"),
    _b("journal-limit-negative", f"journal list --limit -1 {D}", 2, "at least 1"),
    _b("journal-limit-words", f"journal list --limit many {D}", 2, "many"),
    _b("journal-limit-json", f"journal list --limit -1 {D} --json", 2, "at least 1"),
    _b("report-z-unknown-batch", f"report z --batch 99 {D}", 2, "99", "settled"),
    _b("report-z-nothing-settled", f"report z {D}", 2, "no batch"),
    _b("report-x-settled-batch", f"report x --batch 1 {D}", 2, "settled", "settled"),
    _b("report-batch-zero", f"report x --batch 0 {D}", 2, "at least 1"),
    _b("report-unknown-kind", f"report q {D}", 2, "'q'"),
    # --- data directories ------------------------------------------------------------------------------
    _b("data-dir-is-a-file", "saf status --data-dir {f}/notes.txt", 2, "is a file"),
    _b("data-dir-is-a-file-json", "journal list --data-dir {f}/notes.txt --json", 2, "is a file"),
    _b("data-dir-is-a-file-sale", f"sale 5.00 {CARD} --data-dir {{f}}/notes.txt", 2, "is a file"),
    _b("read-only-sale", f"sale 5.00 {CARD} {D}", 3, "read-only", "settled", True),
    _b("read-only-saf-status", f"saf status {D}", 3, "read-only", "settled", True),
    _b("read-only-journal-json", f"journal list {D} --json", 3, "read-only", "settled", True),
    _b("read-only-fresh-directory", f"saf status {D}", 3, "read-only", "empty", True),
    _b("read-only-diag-export", f"diag export --host none --reader none {D}", 3, "read-only", "settled", True),
    _b("read-only-devices-set", f"devices set reader none {D}", 3, "read-only", "settled", True),
    _b("read-only-enrol", f"enrol {{f}}/bundle-ftp.json {D}", 2, "https://", "settled", True),
    # --- EMV: taps, overrides, traces ------------------------------------------------------------------
    _b("tap-no-card", "emv tap --amount 1.00", 2, "--card"),
    _b("tap-unknown-card", "emv tap --card nosuch --amount 1.00", 2, "nosuch"),
    _b("tap-bad-amount", f"emv tap {CARD} --amount 1e3", 2, "1e3"),
    _b("tap-set-too-long", f"emv tap {CARD} --amount 1.00 --set 9F1A=08400000", 2, "2 bytes"),
    _b("tap-set-not-hex", f"emv tap {CARD} --amount 1.00 --set 9F1A=zz", 2, "not hex"),
    _b("tap-set-no-value", f"emv tap {CARD} --amount 1.00 --set 9F1A", 2, "TAG=HEX"),
    _b("tap-set-not-a-tag", f"emv tap {CARD} --amount 1.00 --set 1A9F=00", 2, "not an EMV tag"),
    _b("tap-set-not-bcd", f"emv tap {CARD} --amount 1.00 --set 9F02=00000000AB00", 2, "numeric"),
    _b("tap-set-card-tag", f"emv tap {CARD} --amount 1.00 --set 5A=4761739001010010", 2, "from the card"),
    # Book C-2 configuration objects: an unknown tag is refused, a value of the wrong length or format named
    _b("tap-set-unknown-tag", f"emv tap {CARD} --amount 1.00 --set DF8F01=00", 2, "unknown tag DF8F01"),
    _b("tap-set-c2-length", f"emv tap {CARD} --amount 1.00 --set DF8124=0100", 2, "DF8124"),
    _b("tap-set-c2-format", f"emv tap {CARD} --amount 1.00 --set DF8126=00000000500A", 2, "DF8126"),
    _b("tap-set-c2-rr-length", f"emv tap {CARD} --amount 1.00 --set DF8137=0032", 2, "DF8137"),
    _b("tap-un-short", f"emv tap {CARD} --amount 1.00 --un 0102", 2, "--un"),
    _b("tap-date-impossible", f"emv tap {CARD} --amount 1.00 --date 261399", 2, "date"),
    _b("tap-record-missing-folder", f"emv tap {CARD} --amount 1.00 --record {{t}}/no/t.json", 2, "not exist"),
    _b("replay-dev-zero", "emv replay /dev/zero", 2, "not a regular file"),
    _b("replay-missing", "emv replay {t}/missing.json", 2, "not found"),
    _b("replay-folder", "emv replay {f}", 2, "folder"),
    _b("replay-not-utf8", "emv replay {f}/latin1.json", 2, "UTF-8"),
    _b("replay-huge", "emv replay {f}/huge.json", 2, "larger than"),
    _b("replay-not-json", "emv replay {f}/notes.txt", 2, "not JSON"),
    _b("replay-empty", "emv replay {f}/empty.json", 2, "empty"),
    _b("replay-no-exchanges", "emv replay {f}/object.json", 2, "exchanges"),
    _b("replay-bad-hex", "emv replay {f}/bad-hex-trace.json", 2, "hex"),
    _b("replay-deep-json", "emv replay {f}/deep.json", 2, "JSON"),
    _b("replay-set-too-long", "emv replay {f}/trace.json --set 9F1A=08400000", 2, "2 bytes"),
    _b("replay-set-unknown-tag", "emv replay {f}/trace.json --set DF8F01=00", 2, "unknown tag DF8F01"),
    _b("replay-set-c2-length", "emv replay {f}/trace.json --set DF811B=3000", 2, "Kernel Configuration (DF811B)"),
    # --- devices and diagnostics -----------------------------------------------------------------------
    _b("devices-set-unknown-profile", f"devices set reader sim:card=nosuch {D}", 2, "nosuch"),
    _b("devices-set-unknown-scheme", f"devices set reader bogus:x {D}", 2, "bogus"),
    _b("devices-set-wrong-kind", f"devices set printer sim:card=visa-qvsdc-online {D}", 2, "not a printer"),
    _b("devices-set-bad-option", f"devices set reader sim:card=visa-mute?remove-after=x {D}", 2, "remove-after"),
    _b("devices-set-missing-trace", f"devices set reader sim:replay={{t}}/missing.json {D}", 2, "not found"),
    _b("devices-set-unknown-kind", f"devices set modem pcsc: {D}", 2, "modem"),
    _b("devices-set-json", f"devices set reader sim:card=nosuch {D} --json", 2, "nosuch"),
    _b("diag-timeout-zero", f"diag --card-timeout 0 {D}", 2, "0"),
    _b("diag-export-missing-folder", f"diag export --output {{t}}/nofolder/b.zip {D}", 2, "does not exist"),
    _b("diag-export-is-a-folder", f"diag export --output {{t}} {D}", 2, "is a folder"),
    # --- the host link ---------------------------------------------------------------------------------
    _b("enrol-missing-bundle", f"enrol {{t}}/missing.json {D}", 2, "not found"),
    _b("enrol-folder", f"enrol {{f}} {D}", 2, "folder"),
    _b("enrol-not-utf8", f"enrol {{f}}/latin1.json {D}", 2, "UTF-8"),
    _b("enrol-huge", f"enrol {{f}}/huge.json {D}", 2, "larger than"),
    _b("enrol-device", f"enrol /dev/urandom {D}", 2, "not a regular file"),
    _b("enrol-incomplete-bundle", f"enrol {{f}}/object.json {D}", 2, "missing"),
    _b("enrol-ftp-url", f"enrol {{f}}/bundle-ftp.json {D}", 2, "https://"),
    _b("enrol-json", f"enrol {{t}}/missing.json {D} --json", 2, "not found"),
    _b("echo-not-enrolled", f"echo {D}", 2, "not enrolled"),
    _b("params-download-not-enrolled", f"params download {D}", 2, "not enrolled"),
    _b("params-rollback-nothing", f"params rollback {D}", 2, "nothing to roll back"),
    # --- the simulated host ----------------------------------------------------------------------------
    _b("host-block-nonsense", f"host issuer block nonsense {H}", 2, "32 hex digits"),
    _b("host-block-bad-code", f"host issuer block {TOKEN} --code 7 {H}", 2, "response code"),
    _b("host-unblock-no-host", f"host issuer unblock {TOKEN} {H}", 2, "no simulated host"),
    _b("host-status-no-host", f"host status {H}", 2, "no simulated host"),
    _b("host-status-json-no-host", f"host status {H} --json", 2, "no simulated host"),
    _b("host-records-no-host", f"host records {H}", 2, "no simulated host"),
    _b("host-show-no-host", f"host issuer show {H}", 2, "no simulated host"),
    _b("host-params-show-no-host", f"host params show {H}", 2, "no simulated host"),
    _b("host-velocity-negative", f"host issuer velocity -1 10 {H}", 2, "-1"),
    _b("host-block-short-number", f"host issuer block 12345678 {H}", 2, "PAN (12 to 19 digits)"),
    _b("host-allowance-negative", f"host issuer refund-allowance M1 -5 {H}", 2, "-5"),
    _b("host-allowance-bad-merchant", f"host issuer refund-allowance M!1 5 {H}", 2, "merchant id"),
    _b("host-set-terminal-unknown", f"host params set-terminal T9 {{f}}/object.json {H}", 2, "not enrolled"),
    _b("host-params-show-merchant-alone", f"host params show --merchant-id M1 {H}", 2, "--terminal-id"),
    _b("host-fault-not-running", f"host fault down {H}", 3, "no host is running"),
    _b("host-fault-unknown", f"host fault sideways {H}", 2, "sideways"),
    _b("host-serve-bad-port", f"host serve --port 99999 {H}", 2, "99999"),
    _b("host-publish-missing", f"host params publish {{t}}/missing.json {H}", 2, "not found"),
    _b("host-publish-device", f"host params publish /dev/zero {H}", 2, "not a regular file"),
    _b("host-publish-not-json", f"host params publish {{f}}/notes.txt {H}", 2, "not JSON"),
    _b("host-enrol-code-no-url", f"host enrol-code --terminal-id T1 --merchant-id M1 {H}", 2, "--url"),
    _b("host-terminal-list-no-host", f"host terminal list {H}", 2, "no simulated host"),
    _b("host-terminal-revoke-no-host", f"host terminal revoke T1 {H} --json", 2, "no simulated host"),
    _b("host-terminal-revoke-bad-id", f"host terminal revoke T.1 {H}", 2, "terminal id"),
    _b("host-enrol-rate-zero", f"host enrol-rate 0 10 {H}", 2, "at least 1"),
    _b("host-enrol-rate-delay", f"host enrol-rate 10 10 --failure-delay 99 {H}", 2, "0 to 60 seconds"),
    _b("renew-not-enrolled", f"renew {D}", 2, "not enrolled"),
    _b("host-data-dir-is-a-file", "host status --data-dir {f}/notes.txt", 2, "is a file"),
    # --- simulated devices, the demo, the command line itself -------------------------------------------
    _b("sim-card-bad-port", "sim card visa-qvsdc-online --via vpcd --port 99999", 2, "99999"),
    _b("sim-card-unknown-profile", "sim card nosuch --via nfc-udp", 2, "nosuch"),
    _b("sim-card-bad-fault", "sim card visa-qvsdc-online --via nfc-udp --fault sideways=1", 2, "sideways"),
    _b("sim-card-no-via", "sim card visa-qvsdc-online", 2, "--via"),
    _b("sim-card-nfc-port-in-use", "sim card visa-qvsdc-online --via nfc-udp --port {p}", 3, "in use"),
    _b("sim-printer-port-in-use", "sim printer --port {p}", 3, "cannot listen"),
    _b("sim-card-vpcd-unreachable", "sim card visa-qvsdc-online --via vpcd --bind 127.0.0.2 --port {p}", 3, "pcscd"),
    _b("demo-out-is-a-file", "demo --out {f}/notes.txt", 2, "is a file"),
    _b("demo-out-not-the-demos", "demo --out {f}", 2, "not empty"),
    _b("unknown-command", "frobnicate", 2, "frobnicate"),
    _b("no-command", "", 2, "COMMAND"),
    _b("json-before-command", "--json saf status", 2, "--json"),
    _b("emv-unknown-subcommand", "emv wave", 2, "wave"),
)


# ----------------------------------------------------------------------------------------------- running


def _can_mount_read_only(scratch: Path) -> str | None:
    """None when a read-only bind mount in a private mount namespace works here, else why not."""
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    probe = scratch / "ro-probe"
    probe.mkdir()
    script = 'mount --bind -o ro "$0" "$0" && ! touch "$0/x" 2>/dev/null'
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, str(probe)], capture_output=True, check=False)
    if proc.returncode != 0:
        return f"no read-only bind mount in a mount namespace here (needs root): {proc.stderr.decode().strip()}"
    return None


def _prepare_files(folder: Path) -> None:
    """The shared bad files: not UTF-8, huge (sparse), not JSON, empty, nested too deeply, a trace..."""
    folder.mkdir()
    (folder / "latin1.json").write_bytes(b'{"exchanges": [], "note": "caf\xe9"}')
    with open(folder / "huge.json", "wb") as handle:  # 64 MiB, sparse: refused from its size, never read
        handle.truncate(64 << 20)
    (folder / "notes.txt").write_text("these are not the bytes you are looking for\n", encoding="utf-8")
    (folder / "empty.json").write_bytes(b"")
    (folder / "object.json").write_text('{"hello": "world"}', encoding="utf-8")
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    bad_hex = {"exchanges": [{"command": "00A4ZZ", "response": "9000"}]}
    (folder / "bad-hex-trace.json").write_text(json.dumps(bad_hex), encoding="utf-8")
    bundle = {
        "url": "ftp://acquirer.example",
        "ca_certificate_pem": "x",
        "enrolment_code": "AAAA",
        "terminal_id": "T1",
        "merchant_id": "M1",
    }
    (folder / "bundle-ftp.json").write_text(json.dumps(bundle), encoding="utf-8")


def _env(case_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTERM_")}
    env.update(
        POSTERM_DATA_DIR=str(case_dir / "default-data"),
        POSTERM_HOST_DIR=str(case_dir / "default-host"),
        HOME=str(case_dir / "home"),
        XDG_DATA_HOME=str(case_dir / "home" / "data"),
        PYTHONWARNINGS="ignore::DeprecationWarning",
    )
    return env


def _posterm(args: list[str], env: dict[str, str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([POSTERM, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


@dataclass(frozen=True)
class Prepared:
    files: Path
    settled: Path  # a data directory with a sale in a settled batch (the memory host's records inside)
    txn_id: str
    read_only: str | None  # why read-only cases cannot run here, or None


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    base = tmp_path_factory.mktemp("bad-inputs")
    files = base / "files"
    _prepare_files(files)
    env = _env(base)
    settled = base / "settled"
    sale = _posterm(["sale", "5.00", "--card", "visa-qvsdc-online", "--data-dir", str(settled), "--json"], env)
    assert sale.returncode == 0, sale.stderr
    txn_id = json.loads(sale.stdout)["txn_id"]
    settle = _posterm(["settle", "--data-dir", str(settled)], env)
    assert settle.returncode == 0, settle.stderr
    record = ["emv", "tap", "--card", "mc-cda-offline", "--amount", "12.34", "--record", str(files / "trace.json")]
    trace = _posterm(record, env)
    assert trace.returncode == 0, trace.stderr
    return Prepared(files, settled, txn_id, _can_mount_read_only(base))


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 held while the cases run, for UDP and TCP (a card server, a printer already there)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            port = int(taken.getsockname()[1])
            try:
                listening = socket.create_server(("127.0.0.1", port))
            except OSError:
                continue  # that number is taken for TCP by something else: another one
            with listening:
                yield port
                return
    raise RuntimeError("no port free for both UDP and TCP")


def _run_case(case: Bad, prepared: Prepared, root: Path, busy_port: int) -> subprocess.CompletedProcess[str]:
    case_dir = root / case.id
    case_dir.mkdir()
    data_dir = case_dir / "data"
    if case.setup == "settled":
        shutil.copytree(prepared.settled, data_dir, symlinks=True)
    elif case.setup == "empty":
        data_dir.mkdir()
    values = {
        "d": str(data_dir),
        "h": str(case_dir / "host"),
        "t": str(case_dir),
        "f": str(prepared.files),
        "tx": prepared.txn_id,
        "p": str(busy_port),
    }
    args = [word.format(**values) for word in case.argv]
    if not case.readonly:
        return _posterm(args, _env(case_dir))
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    command = ["unshare", "-m", "sh", "-c", script, str(data_dir), POSTERM, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=_env(case_dir), check=False)


@pytest.fixture(scope="module")
def results(
    prepared: Prepared, busy_port: int, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("cases")
    runnable = [c for c in CASES if not (c.readonly and prepared.read_only)]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        done = pool.map(lambda case: _run_case(case, prepared, root, busy_port), runnable)
        return {case.id: proc for case, proc in zip(runnable, done, strict=True)}


def check_one_line_error(proc: subprocess.CompletedProcess[str], status: int, *, json_wanted: bool) -> str:
    """The contract for a command that failed; returns its error line."""
    shown = f"exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"
    assert "Traceback" not in proc.stdout + proc.stderr, shown
    assert proc.returncode == status, shown
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if line.startswith("posterm: error: ")]
    notes = [line for line in lines if line.startswith("posterm: note: ")]
    assert len(errors) == 1, shown
    assert len(notes) <= 1, shown
    assert len(lines) == len(errors) + len(notes), shown
    if json_wanted:
        doc = json.loads(proc.stdout)
        assert doc == {"error": errors[0].removeprefix("posterm: error: "), "exit_status": status}, shown
    else:
        assert proc.stdout == "", shown
    return errors[0]


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case: Bad, prepared: Prepared, results: dict[str, subprocess.CompletedProcess[str]]) -> None:
    if case.readonly and prepared.read_only:
        pytest.skip(prepared.read_only)
    line = check_one_line_error(results[case.id], case.status, json_wanted="--json" in case.argv)
    assert case.says.lower() in line.lower(), line


def test_a_read_only_data_directory_is_left_as_it_was(
    prepared: Prepared, results: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    """The note about the log comes once, and the data survived (the settled sale is still there)."""
    if prepared.read_only:
        pytest.skip(prepared.read_only)
    proc = results["read-only-sale"]
    assert proc.stderr.count("posterm: note: ") == 1, proc.stderr
    listing = _posterm(["journal", "list", "--data-dir", str(prepared.settled), "--json"], _env(prepared.files.parent))
    assert [t["txn_id"] for t in json.loads(listing.stdout)["transactions"]] == [prepared.txn_id]


def test_host_status_and_records_create_no_host(
    prepared: Prepared, results: dict[str, subprocess.CompletedProcess[str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.getbasetemp()
    for case_id in ("host-status-no-host", "host-records-no-host", "host-show-no-host", "host-params-show-no-host"):
        assert results[case_id].returncode == 2
        assert not list(root.glob(f"cases*/{case_id}/host/*")), case_id


# ----------------------------------------------------------------------------------------------- Ctrl-C


# SIGINT back to its default before posterm starts: a shell's background job (where these tests
# may run) ignores it, and an ignored SIGINT stays ignored across exec.
_DEFAULT_SIGINT_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """A posterm process that takes SIGINT as a person's Ctrl-C does."""
    command = [sys.executable, "-c", _DEFAULT_SIGINT_EXEC, POSTERM, *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_ctrl_c_while_a_sale_waits_for_the_card(tmp_path: Path) -> None:
    env = _env(tmp_path)
    reader = "sim:card=visa-qvsdc-online?present-after=30"
    proc = _start(["sale", "5.00", "--reader", reader, "--data-dir", str(tmp_path / "d")], env)
    assert proc.stderr is not None
    prompt = proc.stderr.readline()  # "5.00 EUR: present card": the sale waits for the card now
    assert "present card" in prompt.lower(), prompt
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    line = check_one_line_error(
        subprocess.CompletedProcess(proc.args, proc.returncode, out, err), 130, json_wanted=False
    )
    # Before the card was read: "no payment was made" (or, when the signal lands just as the payment
    # is opened, that payment named with its state); either way nothing was approved.
    assert line.startswith("posterm: error: interrupted"), line
    listing = _posterm(["journal", "list", "--data-dir", str(tmp_path / "d"), "--json"], env)
    assert listing.returncode == 0, listing.stderr
    states = [t["state"] for t in json.loads(listing.stdout)["transactions"]]
    assert "no payment was made" in line or states, line
    assert not [s for s in states if "approved" in s], states


@pytest.fixture
def silent_host() -> Iterator[tuple[int, threading.Event]]:
    """A TCP port that accepts connections and never says a word (a host that hangs in the handshake)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = threading.Event()
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)
            accepted.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def _fake_enrolment(data_dir: Path, url: str) -> None:
    """Credentials as enrolment leaves them, issued by a CA of the test's own (the host never answers anyway)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from host_link.enrolment import make_csr
    from simulator.host.ca import CertificateAuthority

    ca = CertificateAuthority.generate()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = make_csr(key, "TERM0001", "POSTERM0000001").public_bytes(serialization.Encoding.PEM)
    creds = data_dir / "host-link"
    creds.mkdir(parents=True)
    (creds / "client-key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (creds / "client-cert.pem").write_bytes(ca.sign_csr(csr, "TERM0001", "POSTERM0000001"))
    (creds / "ca.pem").write_bytes(ca.certificate_pem)
    doc = {
        "url": url,
        "terminal_id": "TERM0001",
        "merchant_id": "POSTERM0000001",
        "enrolled_at": "2026-01-01T00:00:00+00:00",
        "certificate_not_after": "2036-01-01T00:00:00+00:00",
    }
    (creds / "enrolment.json").write_text(json.dumps(doc), encoding="utf-8")


def test_ctrl_c_while_saf_forward_waits_for_the_host(tmp_path: Path, silent_host: tuple[int, threading.Event]) -> None:
    port, accepted = silent_host
    env = _env(tmp_path)
    data_dir = tmp_path / "d"
    for amount in ("5.00", "6.00"):  # the host cannot be reached: deferred authorisations, queued
        sale = _posterm(
            ["sale", amount, "--card", "visa-qvsdc-online", "--host", "none", "--data-dir", str(data_dir)], env
        )
        assert sale.returncode == 0, sale.stderr
    _fake_enrolment(data_dir, f"https://127.0.0.1:{port}")
    proc = _start(["saf", "forward", "--data-dir", str(data_dir)], env)
    assert accepted.wait(30), "saf forward never connected to the host"
    time.sleep(0.2)  # in the TLS handshake now, waiting for the host's first bytes
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    line = check_one_line_error(
        subprocess.CompletedProcess(proc.args, proc.returncode, out, err), 130, json_wanted=False
    )
    assert "2 payment(s)" in line and "nothing was lost" in line, line
    status = _posterm(["saf", "status", "--host", "none", "--data-dir", str(data_dir), "--json"], env)
    assert json.loads(status.stdout)["queued"] == 2, status.stdout
