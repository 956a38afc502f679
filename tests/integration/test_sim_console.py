"""``posterm sim printer`` and the terminal it was started from: it reads typed faults only in the foreground.

Started with ``&`` from an interactive shell, a process shares the shell's
terminal but is not its foreground job: reading it would stop the process
(SIGTTIN) or take keystrokes meant for the shell.  Here a small stand-in for
the shell owns a pty as its controlling terminal and starts the printer as a
background job on it, the way ``posterm sim printer --port 9100 &`` does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from drivers.escpos_printer import EscposPrinter
from simulator.sim_cli import console_note, in_foreground, typed_lines
from terminal.ports import PrinterStatus

ROOT = Path(__file__).resolve().parents[2]

_SIM = """
import argparse, sys
from simulator import sim_cli
parser = argparse.ArgumentParser(prog="posterm")
sim_cli.add_commands(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""

# The shell: a session of its own whose controlling terminal is the pty (argv[1]); the printer (argv[2:]) is
# started as a background job on it; the shell reads the first line typed, then puts the printer in the foreground.
_SHELL = """
import fcntl, os, subprocess, sys, termios
tty = int(sys.argv[1])
os.setsid()
fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
printer = subprocess.Popen(sys.argv[2:], stdin=tty, process_group=0)
print(f"printer pid {printer.pid}", flush=True)
typed = b""
while not typed.endswith(b"\\n"):
    typed += os.read(tty, 1024)
print(f"shell read {typed.decode().strip()}", flush=True)
os.tcsetpgrp(tty, printer.pid)
print("printer in the foreground", flush=True)
sys.exit(printer.wait())
"""


def _lines(process: subprocess.Popen[str]) -> Iterator[str]:
    assert process.stdout is not None
    for line in process.stdout:
        yield line.strip()


def _until(lines: Iterator[str], marker: str, seen: list[str]) -> str:
    """The next line with ``marker`` (the lines read on the way are kept in ``seen``)."""
    for line in lines:
        seen.append(line)
        if marker in line:
            return line
    raise AssertionError(f"no {marker!r} from the simulator; it said: {seen}")


def _state(pid: int) -> str:
    """The process's state letter from /proc: T when stopped (by SIGTTIN, for one)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_sim_printer_in_the_background_leaves_the_terminal_to_the_shell() -> None:
    master, tty = os.openpty()
    printer_command = [sys.executable, "-c", _SIM, "sim", "printer", "--port", "0"]
    shell = subprocess.Popen(
        [sys.executable, "-c", _SHELL, str(tty), *printer_command],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        pass_fds=(tty,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    os.close(tty)
    lines = _lines(shell)
    seen: list[str] = []
    pid = 0
    try:
        pid = int(_until(lines, "printer pid", seen).split()[-1])
        url = _until(lines, "escpos:net:", seen).split()[-1]
        assert _until(lines, "type a fault", seen).startswith("in the foreground (fg), ")
        time.sleep(0.5)  # time enough for a read of the terminal from the background to stop it (SIGTTIN)
        assert _state(pid) != "T", "the printer read the terminal from the background and was stopped"
        os.write(master, b"paper-out\n")  # typed at the shell while the printer runs in the background
        assert _until(lines, "shell read", seen) == "shell read paper-out"
        with EscposPrinter.open(f"{url}?status_timeout=2") as printer:
            assert printer.status() is PrinterStatus.READY  # it never took the shell's line
            _until(lines, "printer in the foreground", seen)
            os.write(master, b"cover-open\n")  # typed to the printer, now the foreground job
            _until(lines, "printer: cover-open", seen)
            assert printer.status() is PrinterStatus.COVER_OPEN
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)  # a printer stopped by SIGTTIN (the defect) ends too
        try:
            shell.wait(10)
        except subprocess.TimeoutExpired:
            shell.kill()
            shell.wait()
        os.close(master)
    assert shell.returncode == 0, seen
    assert not any("printer: paper-out" in line for line in seen)


def test_typed_lines_reads_pipes_but_not_a_terminal_it_is_not_the_foreground_of() -> None:
    reader, writer = os.pipe()
    os.write(writer, b"paper-out\nready\nmute")
    os.close(writer)
    stop = threading.Event()
    assert list(typed_lines(reader, stop)) == ["paper-out", "ready", "mute"]  # a pipe is read to its end
    os.close(reader)
    master, tty = os.openpty()  # a terminal, but not this process's: never the foreground job on it
    try:
        os.write(master, b"cover-open\n")
        assert not in_foreground(tty)
        assert console_note(tty) == "in the foreground (fg), "
        lines = typed_lines(tty, stop)
        got: list[str] = []
        thread = threading.Thread(target=lambda: got.extend(lines), daemon=True)
        thread.start()
        time.sleep(0.5)
        stop.set()
        thread.join(2)
        assert not thread.is_alive() and got == []
    finally:
        os.close(master)
        os.close(tty)
    assert console_note(None) == ""
