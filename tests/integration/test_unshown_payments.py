"""A payment committed by a ``posterm sale`` killed before it printed anything is told at the next start.

The child is a real ``posterm sale`` process whose standard output is a pipe
filled to the brim beforehand: its first write (the result) blocks, after the
payment was committed and before anything was shown, the moment a crash
would lose it.  Nothing is timed: the test waits until the journal holds the
payment approved (the child can go no further than its blocked write) and
kills it with SIGKILL.  Then the next command tells the payment on standard
error before anything else (reprinting its receipt on the configured
printer, a DUPLICATE since the first was printed before the kill) and
``posterm last`` shows it, not shown before, shown now.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from simulator.net_printer import VirtualNetworkPrinter
from terminal.bootstrap import open_terminal

POSTERM = str(Path(sys.executable).with_name("posterm"))
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("POSTERM_MASTER_KEY", "POSTERM_DATA_DIR")}


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [POSTERM, *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, env=_env(), check=False, cwd=ROOT,
    )  # fmt: skip


@contextlib.contextmanager
def full_pipe() -> Iterator[int]:
    """The write end of a pipe with no room left: whoever writes to it blocks (until the read end is read)."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(BlockingIOError):
                while True:
                    os.write(write_end, b"x" * size)
        os.set_blocking(write_end, True)
        yield write_end
    finally:
        os.close(write_end)
        os.close(read_end)


def _approved(data_dir: Path) -> set[str]:
    path = data_dir / "journal.sqlite"
    if not path.exists():
        return set()
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return {str(r[0]) for r in db.execute("SELECT txn_id FROM transactions WHERE state='approved'")}
        finally:
            db.close()
    except sqlite3.OperationalError:  # the journal is being made
        return set()


def kill_after_commit(data_dir: Path, amount: str, also: Callable[[], bool] = lambda: True) -> str:
    """Run ``posterm sale AMOUNT``, let it commit, kill it before it shows anything; the payment's id.

    ``also``: what else must have happened before the kill (the receipt printed).
    """
    before = _approved(data_dir)
    with full_pipe() as stdout:
        child = subprocess.Popen(
            [POSTERM, "sale", amount, "--card", "visa-qvsdc-online", "--host", "memory", "--data-dir", str(data_dir)],
            stdout=stdout, stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120  # a bound for a stuck child, not a timing of the test
            while not (_approved(data_dir) - before and also()):
                assert child.poll() is None, f"posterm sale ended ({child.returncode}): its write should block"
                assert time.monotonic() < deadline, "the sale was never committed"
                time.sleep(0.02)
            assert child.poll() is None, "posterm sale finished: it wrote its result into a full pipe?"
            os.kill(child.pid, signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    (txn_id,) = _approved(data_dir) - before
    return txn_id


def test_a_sale_killed_before_it_printed_is_told_by_the_next_command_with_its_receipt_reprinted(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "terminal"
    with VirtualNetworkPrinter(out_dir=tmp_path / "jobs") as printer:
        assert run(data_dir, "devices", "set", "printer", f"{printer.url}?status_timeout=2").returncode == 0
        # The receipt prints before the result is written: killed once it is out, at the blocked write.
        txn_id = kill_after_commit(data_dir, "12.34", also=lambda: len(printer.jobs()) == 1)

        told = run(data_dir, "report", "x")
        assert told.returncode == 0, told.stderr
        first = told.stderr.splitlines()[0]
        assert first.startswith("posterm: note: last payment 12.34 EUR approved at "), told.stderr
        assert "was not shown: receipt reprinted" in first and txn_id in first, first
        printer.wait_idle()
        jobs = printer.jobs()
        assert len(jobs) == 2 and b"DUPLICATE" in jobs[1] and txn_id.encode() in jobs[1]

        again = run(data_dir, "report", "x")
        assert "not shown" not in again.stderr, "a payment told once is not told again"

    last = run(data_dir, "last", "--json")
    assert last.returncode == 0, last.stderr
    payment = json.loads(last.stdout)["last_payment"]
    assert payment["txn_id"] == txn_id and payment["approved"] and payment["amount"] == 1234
    assert payment["shown"] is True and payment["shown_by"] == "notice"


def test_posterm_last_shows_a_payment_nobody_was_shown_and_counts_as_showing_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "terminal"
    shown = run(data_dir, "sale", "5.00", "--card", "visa-qvsdc-online", "--host", "memory")
    assert shown.returncode == 0, shown.stderr
    txn_id = kill_after_commit(data_dir, "20.00")

    first = run(data_dir, "last")
    assert first.returncode == 0, first.stderr
    assert "last sale: 20.00 EUR visa 476173******0010: approved" in first.stdout
    assert txn_id in first.stdout and "NOT SHOWN before now" in first.stdout
    assert "not shown" not in first.stderr  # the last payment is told once, on standard output

    second = json.loads(run(data_dir, "last", "--json").stdout)
    assert second["shown_now"] is False
    assert second["last_payment"]["shown"] and second["last_payment"]["shown_by"] == "cli"
    assert run(data_dir, "journal", "list").stderr == ""


def test_a_payment_shown_by_its_command_is_not_told_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "terminal"
    for amount in ("1.00", "10.51"):  # approved, declined: both were shown
        run(data_dir, "sale", amount, "--card", "visa-qvsdc-online", "--host", "memory")
    listed = run(data_dir, "journal", "list")
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    last = json.loads(run(data_dir, "last", "--json").stdout)["last_payment"]
    assert last["amount"] == 1051 and last["outcome"] == "declined" and last["shown_by"] == "cli"


def test_a_payment_made_but_not_shown_in_process_is_told_once_and_then_marked(tmp_path: Path) -> None:
    """The facade alone does not mark: what a program made and did not mark is told, oldest first, each once."""
    data_dir = tmp_path / "terminal"
    terminal = open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-online", host="memory")
    try:
        made = [terminal.sale(amount, 978) for amount in (700, 1051)]
        assert [u.result.txn_id for u in terminal.unshown_payments()] == [r.txn_id for r in made]
    finally:
        terminal.close()
    told = run(data_dir, "saf", "status")
    notes = [line for line in told.stderr.splitlines() if "was not shown" in line]
    assert len(notes) == 2, told.stderr
    assert notes[0].startswith("posterm: note: payment 7.00 EUR approved at ") and made[0].txn_id in notes[0]
    assert notes[1].startswith("posterm: note: last payment 10.51 EUR declined at ")
    assert "(insufficient funds (51))" in notes[1] and f"run `posterm receipt {made[1].txn_id}`" in notes[1]
    assert run(data_dir, "saf", "status").stderr == ""


def test_a_reader_beside_the_process_that_pays_tells_nothing(tmp_path: Path) -> None:
    """A command opened to read only (another process holds the terminal) neither tells nor marks."""
    data_dir = tmp_path / "terminal"
    terminal = open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-online", host="memory")
    try:
        made = terminal.sale(900, 978)
        beside = run(data_dir, "journal", "list")
        assert beside.returncode == 0 and "not shown" not in beside.stderr
        last = json.loads(run(data_dir, "last", "--json").stdout)
        assert last["last_payment"]["txn_id"] == made.txn_id and not last["last_payment"]["shown"]
        assert last["shown_now"] is False
        assert [u.result.txn_id for u in terminal.unshown_payments()] == [made.txn_id]
    finally:
        terminal.close()
