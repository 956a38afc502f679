"""What a terminal writes in its data directory is its owner's only: files 0600 in folders 0700.

The journal (masked PANs, amounts, approval codes), its ``-wal`` and
``-shm``, the logs, the keys, the device configuration, the in-process
host's database and a support bundle, made by real ``posterm`` processes
started with the usual umask 022; and a data directory an older posterm left
with 0644 files in 0755 folders is put right by the next command, without
touching a file of someone else's that happens to be in the folder.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

POSTERM = str(Path(sys.executable).with_name("posterm"))
ROOT = Path(__file__).resolve().parents[2]


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTERM_MASTER_KEY", "POSTERM_DATA_DIR")}
    done = subprocess.run(
        [POSTERM, *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, env=env, check=False, cwd=ROOT, umask=0o022,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done


def modes(root: Path) -> dict[str, int]:
    """Every file and folder under ``root`` (itself included) and its permission bits."""
    found = {".": stat.S_IMODE(root.lstat().st_mode)}
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(folder) / name
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def wide(found: dict[str, int]) -> dict[str, str]:
    return {name: oct(mode) for name, mode in found.items() if mode & 0o077}


def use(data_dir: Path) -> None:
    """What a terminal does in a day: pay, configure a device, forward, keep logs, export a bundle."""
    run(data_dir, "sale", "12.34", "--card", "visa-qvsdc-online", "--host", "memory")
    run(data_dir, "devices", "set", "printer", "none")
    run(data_dir, "saf", "forward", "--host", "memory")
    run(data_dir, "diag", "export", "--reader", "none", "--host", "memory", "--card-timeout", "0.1")


def test_everything_a_terminal_writes_is_its_owners_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "terminal"
    use(data_dir)
    found = modes(data_dir)
    for expected in ("journal.sqlite", "logs/posterm.log", "keys/data.key", "devices.json", "memory-host/host.db"):
        assert expected in found, sorted(found)
    assert any(name.startswith("support/posterm-support-") for name in found)
    assert wide(found) == {}
    assert found["."] == 0o700 and found["logs"] == 0o700 and found["memory-host"] == 0o700


def test_the_journals_wal_files_are_private_while_a_terminal_runs(tmp_path: Path) -> None:
    from terminal.bootstrap import open_terminal

    data_dir = tmp_path / "terminal"
    before = os.umask(0o022)
    try:
        terminal = open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-online", host="memory")
        try:
            terminal.sale(500, 978)
            found = modes(data_dir)
            assert {"journal.sqlite-wal", "journal.sqlite-shm", "memory-host/host.db-wal"} <= set(found)
            assert wide(found) == {}
        finally:
            terminal.close()
    finally:
        os.umask(before)


def test_a_data_directory_an_older_posterm_left_readable_is_put_right_by_the_next_command(tmp_path: Path) -> None:
    data_dir = tmp_path / "terminal"
    use(data_dir)
    for name in modes(data_dir):  # as an older posterm left it: 0644 files in 0755 folders
        path = data_dir / name
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    theirs = data_dir / "notes.txt"  # not posterm's: it stays as its owner made it
    theirs.write_text("the shop's own notes\n")
    os.chmod(theirs, 0o644)
    assert len(wide(modes(data_dir))) > 8

    run(data_dir, "journal", "list")

    left = wide(modes(data_dir))
    assert left == {"notes.txt": "0o644"}
    assert stat.S_IMODE((data_dir / "journal.sqlite").stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "keys").stat().st_mode) == 0o700
