"""Data at rest: a full disk, a read-only database, key trouble, no PAN in clear, SAD deleted."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from simulator.host.inprocess import memory_host_database
from terminal.bootstrap import open_terminal
from terminal.cli import main as posterm_main
from terminal.keystore import (
    MASTER_KEY_ENV,
    CorruptCiphertext,
    KeyFileCorrupt,
    KeyFileMissing,
    WrongMasterKey,
)
from terminal.lifecycle import State
from terminal.offline import PaymentRefused

if TYPE_CHECKING:
    from tests.integration.conftest import Rig

EUR = 978
ONLINE = "visa-qvsdc-online"
OFFLINE = "visa-qvsdc-offline"
POSTERM = str(Path(sys.executable).with_name("posterm"))


def snapshot(rig: Rig) -> dict[str, tuple[str, int, str | None, dict[str, object]]]:
    return {
        t.txn_id: (t.state.value, t.amount, t.masked_pan, t.details)
        for t in rig.terminal.store.list_transactions()
    }


def earlier_payments(rig: Rig) -> None:
    rig.card(ONLINE)
    assert rig.terminal.sale(2000, EUR).state is State.APPROVED
    rig.card(OFFLINE)
    assert rig.terminal.sale(1234, EUR).state is State.OFFLINE_APPROVED
    rig.card(ONLINE)
    rig.host.faults.down = True
    assert rig.terminal.sale(3000, EUR).state is State.DEFERRED_APPROVED
    rig.host.faults.down = False


def fill_up(rig: Rig) -> list[str]:
    """Cap the database at its current size, then take payments until one is refused for storage.

    Returns the messages of the refusals (the first payment that did not fit, then one more).
    """
    conn = sqlite3.connect(str(rig.db_path))
    try:
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
    finally:
        conn.close()
    rig.terminal.store.set_size_limit(int(pages))
    refusals: list[str] = []
    rig.card(ONLINE)
    for i in range(60):
        try:
            rig.terminal.sale(4000 + i, EUR)
        except PaymentRefused as exc:
            assert exc.reason == "storage", exc
            refusals.append(str(exc))
            if len(refusals) == 2:
                return refusals
    raise AssertionError("the database never filled up")


# -- a full disk -----------------------------------------------------------------------------------


def test_a_full_database_refuses_payments_and_keeps_what_it_had(rig: Rig) -> None:
    earlier_payments(rig)
    before = snapshot(rig)
    saf_before = rig.terminal.offline_status()
    refusals = fill_up(rig)
    assert all("storage full" in m and "\n" not in m for m in refusals), refusals

    # once full, a payment of either kind is refused and adds nothing
    count = len(rig.terminal.store.list_transactions())
    for profile in (ONLINE, OFFLINE):
        rig.card(profile)
        with pytest.raises(PaymentRefused) as err:
            rig.terminal.sale(1500, EUR)
        assert err.value.reason == "storage" and "storage full" in str(err.value)
    assert len(rig.terminal.store.list_transactions()) == count

    report = rig.terminal.store.verify()
    assert report.ok, report.problems
    after = snapshot(rig)
    assert {k: after[k] for k in before} == before
    assert rig.terminal.offline_status().totals == saf_before.totals
    # and the file is still a sound SQLite database
    conn = sqlite3.connect(str(rig.db_path))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()

    # room again: payments go on
    rig.terminal.store.set_size_limit(1_000_000)
    rig.card(ONLINE)
    assert rig.terminal.sale(1500, EUR).state is State.APPROVED


def test_a_payment_refused_for_storage_is_not_left_approved_at_the_host(
    make_rig: Callable[..., Rig],
) -> None:
    """The customer hears "payment refused ... nothing was stored": the host must not keep an
    approved, unreversed authorisation for it, and the restart resolves what was half-done.

    Where the database fills up depends on how the pages fall, so the same fill is tried
    after 0 to 7 earlier payments: in some of these the write that no longer fits is the one
    after the host's answer.  That write cannot happen while the disk is full, so the payment
    stays ``authorising`` until start-up recovery (with room again) queues its reversal; the
    host's approval is reversed at once, best effort.
    """
    problems: list[str] = []
    for earlier in range(8):
        rig = make_rig(name=f"after-{earlier}")
        rig.card(ONLINE)
        for i in range(earlier):
            rig.terminal.sale(2000 + i, EUR)
        before = set(snapshot(rig))
        fill_up(rig)
        refused = [t for t in rig.terminal.store.list_transactions()
                   if t.txn_id not in before and t.state is not State.APPROVED]
        for t in refused:
            if rig.host.accepted_count(t.txn_id) and not rig.host.is_reversed(t.txn_id):
                problems.append(f"after {earlier} payments: {t.txn_id} refused to the customer but approved "
                                f"at the host and not reversed (terminal state {t.state.value})")
        rig.terminal.store.set_size_limit(1_000_000)
        rig.reopen()
        rig.terminal.forward_now()
        for t in refused:
            row = rig.terminal.get(t.txn_id)
            assert row is not None
            if row.state in (State.STARTED, State.AUTHORISING, State.REVERSAL_PENDING):
                problems.append(f"after {earlier} payments: {t.txn_id} still {row.state.value} after a restart "
                                "with room and forwarding")
        assert rig.terminal.store.verify().ok
        rig.close()
    assert problems == []


# -- a read-only database --------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _unshare_works() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    proc = subprocess.run(["unshare", "-m", "true"], check=False, capture_output=True)
    return proc.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs root and unshare -m (mount namespaces)")
def test_a_read_only_file_system_refuses_the_payment_clearly(rig: Rig) -> None:
    # A real read-only file system: the data directory bind-mounted read-only in a private
    # mount namespace (os.chmod does not stop root; this does).
    earlier_payments(rig)
    before = snapshot(rig)
    rig.close()  # checkpoints the WAL: only journal.sqlite is left
    digests = {p.name: _sha(p) for p in rig.data_dir.rglob("*") if p.is_file()}
    d = str(rig.data_dir)
    script = (
        f"mount --bind {d} {d} && mount -o remount,ro,bind {d} && "
        f"{{ touch {d}/probe 2>/dev/null && echo WRITABLE; "
        f"{POSTERM} sale 20.00 --card {ONLINE} --data-dir {d} --json; }}"
    )
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert "WRITABLE" not in proc.stdout
    assert proc.returncode == 3, (proc.stdout, proc.stderr)  # the storage cannot be used
    # the log that cannot be written says so once, quietly; then the one error line
    notes = [line for line in proc.stderr.strip().splitlines() if line.startswith("posterm: note: ")]
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("posterm: note: ")]
    assert len(notes) <= 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("posterm: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert "read-only" in lines[0].lower() or "readonly" in lines[0].lower(), lines[0]
    # nothing was damaged
    assert {p.name: _sha(p) for p in rig.data_dir.rglob("*") if p.is_file()} == digests
    rig.terminal = open_terminal(rig.data_dir, host="memory", clock=rig.clock, settings=rig.settings)
    assert rig.terminal.store.verify().ok
    assert snapshot(rig) == before


@pytest.fixture
def immutable() -> Iterator[Callable[[list[Path]], None]]:
    marked: list[Path] = []

    def mark(paths: list[Path]) -> None:
        for path in paths:
            proc = subprocess.run(["chattr", "+i", str(path)], check=False, capture_output=True)
            if proc.returncode != 0:
                pytest.skip(f"chattr +i is not supported here: {proc.stderr.decode().strip()}")
            marked.append(path)

    yield mark
    for path in marked:
        subprocess.run(["chattr", "-i", str(path)], check=False, capture_output=True)


@pytest.mark.skipif(shutil.which("chattr") is None or os.geteuid() != 0, reason="needs root and chattr")
def test_a_database_made_immutable_while_open_refuses_the_payment(
    rig: Rig, immutable: Callable[[list[Path]], None]
) -> None:
    # The files the open connection writes (database, -wal, -shm) become immutable: every
    # write fails at the operating system, as on a volume that turned read-only under us.
    earlier_payments(rig)
    before = snapshot(rig)
    calls = len(rig.host.calls)
    immutable(sorted(rig.data_dir.glob("journal.sqlite*")))
    for profile in (ONLINE, OFFLINE):
        rig.card(profile)
        with pytest.raises(PaymentRefused) as err:
            rig.terminal.sale(1500, EUR)
        assert err.value.reason == "storage"
        assert "nothing was stored" in str(err.value) and "\n" not in str(err.value)
    assert len(rig.host.calls) == calls  # refused before anything was sent
    for path in rig.data_dir.glob("journal.sqlite*"):
        subprocess.run(["chattr", "-i", str(path)], check=True)
    rig.reopen()
    assert rig.terminal.store.verify().ok
    assert snapshot(rig) == before


# -- keys --------------------------------------------------------------------------------------------


def _prepared(rig: Rig) -> Path:
    earlier_payments(rig)
    rig.close()
    return rig.data_dir / "keys"


def _open(rig: Rig) -> None:
    open_terminal(rig.data_dir, host="memory", clock=rig.clock, settings=rig.settings)


def test_a_wrong_master_key_is_a_clear_error(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    _prepared(rig)
    other = "ab" * 32
    monkeypatch.setenv(MASTER_KEY_ENV, other)
    with pytest.raises(WrongMasterKey) as err:
        _open(rig)
    message = str(err.value)
    assert MASTER_KEY_ENV in message and "KCV" in message and other not in message
    monkeypatch.setenv(MASTER_KEY_ENV, "not a key")
    with pytest.raises(KeyFileCorrupt, match=MASTER_KEY_ENV):
        _open(rig)


def test_a_missing_master_key_file_is_a_clear_error(rig: Rig) -> None:
    keys = _prepared(rig)
    (keys / "master.key").unlink()
    with pytest.raises(KeyFileMissing, match=r"master\.key is missing.*restore"):
        _open(rig)
    assert (keys / "data.key").exists()  # never replaced by a fresh key
    assert not (keys / "master.key").exists()


@pytest.mark.parametrize("damage", ["garbage", "wrapped", "truncated"])
def test_a_corrupted_data_key_is_a_clear_error(rig: Rig, damage: str) -> None:
    keys = _prepared(rig)
    path = keys / "data.key"
    if damage == "garbage":
        path.write_bytes(b"\x00\xffnot json")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    else:
        doc = json.loads(path.read_text())
        doc["wrapped"] = ("0" if doc["wrapped"][0] != "0" else "1") + doc["wrapped"][1:]
        path.write_text(json.dumps(doc))
    with pytest.raises(KeyFileCorrupt, match=r"data\.key"):
        _open(rig)


def test_the_commands_report_key_trouble_in_one_line(rig: Rig, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _prepared(rig)
    monkeypatch.setenv(MASTER_KEY_ENV, "cd" * 32)
    assert posterm_main(["saf", "status", "--data-dir", str(rig.data_dir)]) == 3  # the keys cannot be used
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("posterm: error: ") and "cd" * 32 not in err


def test_a_corrupted_card_ciphertext_in_the_database_is_a_clear_error(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    rig.card(ONLINE)
    rig.host.faults.down = True
    txn_id = rig.terminal.sale(3000, EUR).txn_id
    rig.host.faults.down = False
    row = rig.terminal.get(txn_id)
    assert row is not None and row.card_blob is not None
    # the card record decrypts to the card's PAN, bound to its own row only
    card = json.loads(rig.terminal.keystore.decrypt(row.card_blob, b"card:" + txn_id.encode()))
    assert card["pan"] == "4761739001010010"
    with pytest.raises(CorruptCiphertext):
        rig.terminal.keystore.decrypt(row.card_blob, b"card:another-txn")
    flipped = bytearray(row.card_blob)
    flipped[-1] ^= 1
    with pytest.raises(CorruptCiphertext):
        rig.terminal.keystore.decrypt(bytes(flipped), b"card:" + txn_id.encode())

    # the sensitive data the forwarder must send, damaged on disk
    conn = sqlite3.connect(str(rig.db_path))
    try:
        (blob,) = conn.execute("SELECT blob FROM sensitive WHERE txn_id=?", (txn_id,)).fetchone()
        damaged = bytearray(blob)
        damaged[30] ^= 0x40
        conn.execute("UPDATE transactions SET sad_blob=? WHERE txn_id=?", (bytes(damaged), txn_id))
        conn.commit()
    finally:
        conn.close()
    report = rig.terminal.forward_now()  # does not raise: the entry is set aside for a technician
    assert report.failed == 1 and report.accepted == 0
    status = rig.terminal.offline_status()
    assert status.queued == 1  # not lost, not sent
    assert status.last_error is not None and "card data unreadable" in status.last_error
    assert "\n" not in status.last_error
    assert not any(c.method == "advise" for c in rig.host.calls)
    assert rig.terminal.store.verify().ok
    rig.close()
    assert posterm_main(["saf", "forward", "--data-dir", str(rig.data_dir)]) == 1
    out = capsys.readouterr()
    assert "1 failed" in out.out and "card data unreadable" in out.out and "Traceback" not in out.err


# -- no PAN in clear anywhere ----------------------------------------------------------------------


def _pan_forms(pan: str) -> list[bytes]:
    forms = [pan.encode(), pan.encode("utf-16-le")]
    digits = pan if len(pan) % 2 == 0 else pan + "F"
    forms.append(bytes.fromhex(digits))  # packed BCD, as in tag 5A
    return forms


def _leaks(data: bytes, pans: dict[str, str]) -> list[str]:
    return [name for name, pan in pans.items() if any(form in data for form in _pan_forms(pan))]


def _payments_on_every_card(rig: Rig, pans: dict[str, str]) -> list[str]:
    """Sales on every profile: offline, online, declined, deferred, a refund with the card, a void."""
    ids: list[str] = []
    for profile in sorted(pans):
        rig.card(profile)
        for amount in (1234, 2000, 6000, 1251):
            ids.append(rig.terminal.sale(amount, EUR).txn_id)
            rig.clock.advance(1)
        rig.host.faults.down = True
        with contextlib.suppress(PaymentRefused):  # some cards decline or cannot be read
            ids.append(rig.terminal.sale(2100, EUR).txn_id)
        rig.host.faults.down = False
    rig.card(ONLINE)
    ids.append(rig.terminal.refund(500, EUR).txn_id)
    approved = [t for t in ids if rig.terminal.get(t).state is State.APPROVED]  # type: ignore[union-attr]
    rig.terminal.void(approved[0])
    rig.terminal.refund(100, EUR, original_txn_id=approved[1])
    rig.host.faults.only = {"authorise"}
    rig.host.faults.no_answer = 1
    ids.append(rig.terminal.sale(2200, EUR).txn_id)  # reversed
    rig.host.faults.clear()
    deferred_forward = rig.terminal.forward_now()
    assert deferred_forward.accepted > 0
    return ids


@pytest.fixture
def busy_rig(rig: Rig, pans: dict[str, str], caplog: pytest.LogCaptureFixture) -> Rig:
    caplog.set_level(logging.DEBUG)
    _payments_on_every_card(rig, pans)
    return rig


def test_the_simulated_cards_have_pans(pans: dict[str, str]) -> None:
    assert len(pans) >= 13 and all(len(p) >= 12 and p.isdigit() for p in pans.values())


def test_no_pan_in_the_database_or_its_wal(busy_rig: Rig, pans: dict[str, str]) -> None:
    files = sorted(busy_rig.data_dir.glob("journal.sqlite*"))
    assert any(p.name.endswith("-wal") for p in files)  # read while the terminal has it open
    for path in files:
        assert _leaks(path.read_bytes(), pans) == [], path.name
    busy_rig.close()  # and after the checkpoint
    for path in sorted(busy_rig.data_dir.glob("journal.sqlite*")):
        assert _leaks(path.read_bytes(), pans) == [], path.name


def test_no_pan_in_the_memory_hosts_database(busy_rig: Rig, pans: dict[str, str]) -> None:
    database = memory_host_database(busy_rig.data_dir)
    files = sorted(database.parent.glob(database.name + "*"))
    assert database in files
    for path in files:  # the database and its WAL, while the host has them open
        assert _leaks(path.read_bytes(), pans) == [], path.name


def test_no_pan_in_the_key_files(busy_rig: Rig, pans: dict[str, str]) -> None:
    for path in (busy_rig.data_dir / "keys").iterdir():
        assert _leaks(path.read_bytes(), pans) == [], path.name


def test_no_pan_in_logs_or_command_outputs(
    busy_rig: Rig,
    pans: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    d = str(busy_rig.data_dir)
    ids = [t.txn_id for t in busy_rig.terminal.store.list_transactions()]
    busy_rig.close()
    outputs: list[bytes] = []
    commands = [
        ["journal", "list", "--json"],
        ["journal", "list"],
        ["journal", "verify"],
        ["journal", "export"],
        ["saf", "status", "--json"],
        ["report", "x", "--json"],
    ]
    for txn_id in ids:
        commands += [["journal", "show", txn_id, "--json"], ["receipt", txn_id, "--copy", "merchant"]]
    for argv in commands:
        code = posterm_main([*argv, "--data-dir", d])
        captured = capsys.readouterr()
        assert code == 0, (argv, captured.err)
        outputs.append((captured.out + captured.err).encode())
    export = tmp_path / "export.csv"
    argv = ["journal", "export", "--since", "2000-01-01", "--output", str(export), "--data-dir", d]
    assert posterm_main(argv) == 0
    outputs.append(export.read_bytes())
    for txn_id in ids[:10]:
        out = tmp_path / f"{txn_id}.bin"
        argv = ["receipt", txn_id, "--format", "escpos", "--output", str(out), "--data-dir", d]
        assert posterm_main(argv) == 0
        outputs.append(out.read_bytes())
    outputs.append(capsys.readouterr().out.encode())
    assert _leaks(b"\n".join(outputs), pans) == []
    assert _leaks(caplog.text.encode(), pans) == []
    assert _leaks(str([r.__dict__ for r in caplog.records]).encode(), pans) == []


# -- sensitive authentication data -----------------------------------------------------------------


def test_sensitive_data_is_deleted_once_each_authorisation_completes(rig: Rig) -> None:
    def sensitive() -> set[str]:
        return {r[0] for r in rig.sql("SELECT txn_id FROM sensitive")}

    def sale(profile: str, amount: int) -> str:
        rig.card(profile)
        return rig.terminal.sale(amount, EUR).txn_id

    approved = sale(ONLINE, 2000)
    declined = sale(ONLINE, 1251)
    card_declined = sale("visa-expired", 1234)
    assert sensitive() == set()
    rig.host.faults.only = {"authorise"}
    rig.host.faults.no_answer = 1
    sale(ONLINE, 2200)
    rig.host.faults.clear()
    assert sensitive() == set()

    offline_tc = sale(OFFLINE, 1234)
    rig.host.faults.down = True
    deferred_ok = sale(ONLINE, 3000)
    deferred_no = sale(ONLINE, 1251)
    rig.host.faults.down = False
    assert sensitive() == {offline_tc, deferred_ok, deferred_no}
    # what is kept is encrypted, bound to its row
    for txn_id in (offline_tc, deferred_ok):
        blob = rig.terminal.store.read_sensitive(txn_id)
        assert blob is not None and b"\x5a\x08\x47\x61" not in blob
        assert rig.terminal.keystore.decrypt(blob, b"sad:" + txn_id.encode())

    rig.host.faults.only = {"advise"}
    rig.host.faults.down = True
    rig.terminal.forward_now()
    assert sensitive() == {offline_tc, deferred_ok, deferred_no}  # kept until forwarded
    rig.host.faults.clear()
    report = rig.terminal.forward_now()
    assert (report.accepted, report.declined) == (2, 1)
    assert rig.terminal.get(deferred_no).state is State.DECLINED_AFTER_FORWARDING  # type: ignore[union-attr]
    assert sensitive() == set()
    for txn_id in (approved, declined, card_declined):
        assert rig.terminal.store.read_sensitive(txn_id) is None
    assert rig.terminal.store.counts()["sensitive_rows"] == 0

