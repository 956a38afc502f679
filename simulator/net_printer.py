"""A virtual ESC/POS network printer on a TCP port (the raw "port 9100" protocol).

Each connection is one job, as on a real port-9100 printer.  The printer
reads the stream command by command (:func:`drivers.preview.iter_commands`):

- DLE EOT 1..4 (real-time status) are answered at once, per its state, with
  the bits an Epson printer sets (offline, cover open, paper end stop, paper
  near end / end);
- GS r 1 (paper sensor) and GS r 2 are answered in order, once everything
  before them has been printed; a printer that cannot print does not get to
  them, so they go unanswered (the driver's way to know a job went through);
- everything else is printed: the job's bytes, minus those status requests,
  are what :meth:`VirtualNetworkPrinter.jobs` returns, and, with an output
  directory, each job is saved as ``job-NNNN.bin`` and drawn as
  ``job-NNNN.png`` by :mod:`drivers.preview`.

States (:meth:`~VirtualNetworkPrinter.set_status`): ``READY``, ``PAPER_LOW``
(prints, reports near end), ``PAPER_OUT`` and ``COVER_OPEN`` (answers status,
prints nothing), ``OFFLINE`` (off the network: the listening socket is closed,
so connections are *refused*, and open connections are dropped; it listens on
the same port again when it comes back), ``UNKNOWN`` (prints but never answers
a status request, like a printer without a back channel).

Faults: :meth:`~VirtualNetworkPrinter.paper_out_after` runs out of paper after
so many more printed lines or bytes, in the middle of a receipt if you like:
the rest of that job is not printed, the job is kept apart
(:meth:`~VirtualNetworkPrinter.incomplete_jobs`, ``job-NNNN-incomplete.png``),
and the printer stays out of paper until set ready.
:meth:`~VirtualNetworkPrinter.drop_after` resets the next job's connection
after so many bytes (a network cut mid-job).
"""

from __future__ import annotations

import argparse
import contextlib
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from drivers import preview
from simulator.sim_cli import background_reads_fail, console_note, stdin_fd, typed_lines
from terminal.ports import PrinterStatus

__all__ = [
    "JobRecord",
    "JobStream",
    "PrinterEngine",
    "VirtualNetworkPrinter",
    "add_printer_arguments",
    "parse_fault",
    "run_until_signalled",
    "serve_printer_cli",
]

_CAN_PRINT = (PrinterStatus.READY, PrinterStatus.PAPER_LOW, PrinterStatus.UNKNOWN)
_POLL_SECONDS = 0.05


@dataclass
class JobRecord:
    number: int
    data: bytes  # what was printed
    complete: bool
    preview: Path | None = None


class JobStream:
    """One job's bytes as they arrive: prints them through the engine, returns the answers to send back."""

    def __init__(self, engine: PrinterEngine) -> None:
        self._engine = engine
        self._pending = bytearray()
        self._printed = bytearray()
        self._incomplete = False
        self._received = 0
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        self._pending += data
        replies = bytearray()
        consumed = 0
        for start, end in preview.iter_commands(self._pending):
            replies += self._command(bytes(self._pending[start:end]))
            consumed = end
        del self._pending[:consumed]
        return bytes(replies)

    def _command(self, cmd: bytes) -> bytes:
        engine = self._engine
        if cmd[:2] == b"\x10\x04" and len(cmd) >= 3:
            return engine.status_answer(cmd[2])
        if cmd[:2] == b"\x1dr" and len(cmd) == 3:
            return engine.transmit_answer(cmd[2]) if not self._incomplete else b""
        self._received += len(cmd)
        if self._incomplete:
            return b""
        printed, all_printed = engine.print_command(cmd)
        self._printed += printed
        if not all_printed:
            self._incomplete = True
        return b""

    @property
    def job_bytes(self) -> int:
        """Bytes of the job received so far (status requests not counted)."""
        return self._received

    def finish(self, *, dropped: bool = False) -> JobRecord | None:
        """The connection ended: record the job (a job cut short by a drop or paper out is incomplete)."""
        if self.finished:
            return None
        self.finished = True
        if self._pending:  # a command cut short by the end of the connection: a printer would have printed it
            if not self._incomplete:
                printed, all_printed = self._engine.print_command(bytes(self._pending))
                self._printed += printed
                self._incomplete = not all_printed
            self._received += len(self._pending)
        if not self._received:
            return None  # a connection that only asked for status is no job
        return self._engine.record(bytes(self._printed), complete=not (self._incomplete or dropped))


class PrinterEngine:
    """The printer itself, without its network: state, faults, the jobs it printed and their previews."""

    def __init__(self, *, out_dir: str | Path | None = None, width_dots: int = preview.PAPER_80MM_DOTS) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.width_dots = width_dots
        self._lock = threading.Lock()
        self._status = PrinterStatus.READY
        self._lines_left: int | None = None
        self._bytes_left: int | None = None
        self._records: list[JobRecord] = []
        self._numbers = 0

    @property
    def status(self) -> PrinterStatus:
        return self._status

    def set_status(self, status: PrinterStatus) -> None:
        with self._lock:
            self._status = status
            if status is not PrinterStatus.READY and status is not PrinterStatus.PAPER_LOW:
                self._lines_left = self._bytes_left = None

    def paper_out_after(self, *, lines: int | None = None, bytes: int | None = None) -> None:
        """Run out of paper after ``lines`` more line feeds or ``bytes`` more printed bytes."""
        if (lines is None) == (bytes is None):
            raise ValueError("give lines or bytes, one of them")
        if (lines or 0) < 0 or (bytes or 0) < 0:
            raise ValueError("lines / bytes must not be negative")
        with self._lock:
            self._lines_left, self._bytes_left = lines, bytes
            if lines == 0 or bytes == 0:
                self._run_out()

    def _run_out(self) -> None:
        self._status = PrinterStatus.PAPER_OUT
        self._lines_left = self._bytes_left = None

    def print_command(self, cmd: bytes) -> tuple[bytes, bool]:
        """Print one command: (what was printed of it, whether all of it was)."""
        with self._lock:
            if self._status not in _CAN_PRINT:
                return b"", False
            if self._bytes_left is not None:
                if len(cmd) > self._bytes_left:
                    part = cmd[: self._bytes_left]
                    self._run_out()
                    return part, False
                self._bytes_left -= len(cmd)
            if self._lines_left is not None:
                feeds = 0
                if cmd == b"\n":
                    feeds = 1
                elif cmd[:2] == b"\x1bd" and len(cmd) == 3:
                    feeds = max(1, cmd[2])
                if feeds:
                    if feeds >= self._lines_left:
                        self._run_out()  # after this line: what follows is not printed
                    else:
                        self._lines_left -= feeds
            return cmd, True

    def status_answer(self, n: int) -> bytes:
        """The answer to DLE EOT n (nothing when the printer does not answer status)."""
        status = self._status
        if status is PrinterStatus.UNKNOWN or n not in (1, 2, 3, 4):
            return b""
        byte = 0x12
        paper_out = status is PrinterStatus.PAPER_OUT
        cover_open = status is PrinterStatus.COVER_OPEN
        if n == 1 and status in (PrinterStatus.PAPER_OUT, PrinterStatus.COVER_OPEN, PrinterStatus.OFFLINE):
            byte |= 0x08  # offline (seen only off the network, e.g. on a serial line: on TCP it refuses)
        elif n == 2:
            byte |= (0x04 if cover_open else 0) | (0x20 if paper_out else 0)
        elif n == 4:
            byte |= 0x6C if paper_out else 0x0C if status is PrinterStatus.PAPER_LOW else 0
        return bytes([byte])

    def transmit_answer(self, n: int) -> bytes:
        """The answer to GS r n, given once what came before it was printed (so never while it cannot print)."""
        status = self._status
        if status not in (PrinterStatus.READY, PrinterStatus.PAPER_LOW):
            return b""
        if n in (1, 49):
            return b"\x03" if status is PrinterStatus.PAPER_LOW else b"\x00"
        if n in (2, 50):
            return b"\x00"
        return b""

    def new_job(self) -> JobStream:
        return JobStream(self)

    def record(self, data: bytes, *, complete: bool) -> JobRecord:
        with self._lock:
            self._numbers += 1
            record = JobRecord(self._numbers, data, complete)
            self._records.append(record)
        if self.out_dir is not None:
            stem = f"job-{record.number:04d}" + ("" if complete else "-incomplete")
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / f"{stem}.bin").write_bytes(data)
            png = self.out_dir / f"{stem}.png"
            try:
                png.write_bytes(preview.render_png(data, width_dots=self.width_dots))
            except Exception as exc:  # a preview bug must not lose the job: it is recorded without its picture
                print(f"virtual printer: no preview for job {record.number}: {exc!r}", file=sys.stderr)
            else:
                record.preview = png
        return record

    def records(self) -> list[JobRecord]:
        with self._lock:
            return list(self._records)

    def jobs(self) -> list[bytes]:
        """The jobs printed completely, in order."""
        return [r.data for r in self.records() if r.complete]

    def incomplete_jobs(self) -> list[bytes]:
        """What was printed of the jobs cut short (paper out mid-job, connection dropped)."""
        return [r.data for r in self.records() if not r.complete]


class VirtualNetworkPrinter:
    """A :class:`PrinterEngine` behind a TCP port; ``url`` is what ``escpos:`` opens."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        out_dir: str | Path | None = None,
        width_dots: int = preview.PAPER_80MM_DOTS,
    ) -> None:
        self.host = host
        self.port = port
        self.engine = PrinterEngine(out_dir=out_dir, width_dots=width_dots)
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._sessions: set[threading.Thread] = set()
        self._sessions_lock = threading.Condition()
        self._offline_generation = 0  # bumped when the printer goes offline: sessions of older ones drop
        self._drop_after: int | None = None

    # -- life cycle --

    def start(self) -> VirtualNetworkPrinter:
        if self._accept_thread is not None:
            return self
        self._listen()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="posterm-sim-printer", daemon=True)
        self._accept_thread.start()
        return self

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError:
            listener.close()
            raise
        listener.listen(8)
        self.port = listener.getsockname()[1]
        self._listener = listener

    def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown first: it takes the socket out of LISTEN at once (new connections are refused), where
            # close() alone would leave it listening until the accept thread's select() lets go of it
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def stop(self) -> None:
        """Stop listening, drop the connections, wait for the threads."""
        self._stop.set()
        thread, self._accept_thread = self._accept_thread, None
        if thread is not None:
            thread.join(timeout=5.0)
        self._unlisten()
        for session in list(self._sessions):
            session.join(timeout=5.0)

    def __enter__(self) -> VirtualNetworkPrinter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"escpos:net:{host}:{self.port}"

    # -- state and faults --

    @property
    def status(self) -> PrinterStatus:
        return self.engine.status

    def set_status(self, status: PrinterStatus) -> None:
        was = self.engine.status
        self.engine.set_status(status)
        if status is PrinterStatus.OFFLINE and was is not PrinterStatus.OFFLINE:
            self._offline_generation += 1
            self._unlisten()  # connections are refused from now on
        elif status is not PrinterStatus.OFFLINE and was is PrinterStatus.OFFLINE and self._accept_thread:
            self._listen()  # back on the network, on the same port

    def paper_out_after(self, *, lines: int | None = None, bytes: int | None = None) -> None:
        """Run out of paper after ``lines`` more line feeds or ``bytes`` more printed bytes (mid-receipt)."""
        self.engine.paper_out_after(lines=lines, bytes=bytes)

    def drop_after(self, bytes: int) -> None:
        """Reset the next job's connection once it has sent ``bytes`` bytes of job (status requests not counted)."""
        self._drop_after = bytes

    # -- what it printed --

    def jobs(self) -> list[bytes]:
        """The jobs printed completely, in order (call :meth:`wait_idle` first if a job may still be arriving)."""
        return self.engine.jobs()

    def incomplete_jobs(self) -> list[bytes]:
        return self.engine.incomplete_jobs()

    def records(self) -> list[JobRecord]:
        return self.engine.records()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no connection is open (its job is then recorded); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._sessions_lock:
            while self._sessions:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._sessions_lock.wait(remaining)
        return True

    # -- the network --

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            listener = self._listener
            if listener is None:
                self._stop.wait(_POLL_SECONDS)
                continue
            try:
                readable, _, _ = select.select([listener], [], [], _POLL_SECONDS)
                if not readable:
                    continue
                conn, _ = listener.accept()
            except (OSError, ValueError):  # closed under us (offline): look again
                continue
            thread = threading.Thread(target=self._session, args=(conn,), name="posterm-sim-printer-job", daemon=True)
            with self._sessions_lock:
                self._sessions.add(thread)
            thread.start()

    @staticmethod
    def _ended(conn: socket.socket, stream: JobStream) -> bool:
        """Whether the client had already sent its whole job (and closed) when the printer went offline."""
        conn.setblocking(False)
        while True:
            try:
                data = conn.recv(65536)
            except OSError:  # nothing more yet (BlockingIOError), or reset: the job was cut
                return False
            if not data:
                return True
            stream.feed(data)  # arrived before the printer went offline: now it is not printed

    def _session(self, conn: socket.socket) -> None:
        generation = self._offline_generation
        stream = self.engine.new_job()
        dropped = False
        try:
            conn.settimeout(_POLL_SECONDS)
            while not self._stop.is_set():
                if generation != self._offline_generation:
                    dropped = not self._ended(conn, stream)
                    break
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    dropped = True
                    break
                if not data:
                    break
                replies = stream.feed(data)
                drop_after = self._drop_after
                if drop_after is not None and stream.job_bytes >= drop_after:
                    self._drop_after = None
                    dropped = True
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
                    break
                if replies:
                    conn.sendall(replies)
        except OSError:
            dropped = True
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            stream.finish(dropped=dropped)
            with self._sessions_lock:
                self._sessions.discard(threading.current_thread())
                self._sessions_lock.notify_all()


# -- the command line (posterm sim printer) ------------------------------------------------------------------------


def parse_fault(text: str) -> tuple[PrinterStatus | None, int | None, int | None]:
    """``paper-out`` / ``paper-low`` / ``cover-open`` / ``offline`` / ``mute``, or ``paper-out-after=N`` (N lines,
    or ``Nbytes``) -> (state, lines, bytes).

    >>> parse_fault("paper-out-after=12")
    (None, 12, None)
    >>> parse_fault("paper-out-after=300bytes")
    (None, None, 300)
    """
    states = {
        "paper-out": PrinterStatus.PAPER_OUT,
        "paper-low": PrinterStatus.PAPER_LOW,
        "cover-open": PrinterStatus.COVER_OPEN,
        "offline": PrinterStatus.OFFLINE,
        "mute": PrinterStatus.UNKNOWN,
    }
    if text in states:
        return states[text], None, None
    name, sep, value = text.partition("=")
    if name == "paper-out-after" and sep:
        count = value.removesuffix("bytes").removesuffix("lines")
        if count.isdigit():
            return (None, None, int(count)) if value.endswith("bytes") else (None, int(count), None)
    raise ValueError(
        f"unknown printer fault {text!r}: paper-out, paper-out-after=N (lines) or =Nbytes, paper-low, cover-open, "
        "offline, mute"
    )


def add_printer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9100, help="TCP port (default 9100; 0 picks a free one)")
    parser.add_argument("--out", metavar="DIR", help="save each job as DIR/job-NNNN.bin and its preview .png")
    parser.add_argument(
        "--width", type=int, default=preview.PAPER_80MM_DOTS, help="print width in dots: 576 (80 mm) or 384 (58 mm)"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="FAULT",
        help="paper-out, paper-out-after=N (runs out after N more lines; =Nbytes for bytes), cover-open, "
        "offline, paper-low, mute (never answers status); repeatable",
    )


def run_until_signalled(stop: threading.Event) -> None:
    """Wait for SIGINT / SIGTERM (or ``stop``), with the previous handlers put back afterwards."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: rely on ``stop`` alone
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def serve_printer_cli(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    try:
        faults = [parse_fault(f) for f in args.fault]
    except ValueError as exc:
        print(f"posterm: error: {exc}", file=sys.stderr)
        return 2
    printer = VirtualNetworkPrinter(args.host, args.port, out_dir=args.out, width_dots=args.width)
    try:
        printer.start()
    except OSError as exc:
        print(f"posterm: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 3  # the port is taken or not ours: a device that cannot be had now, not a wrong option
    for state, lines, count in faults:
        if state is not None:
            printer.set_status(state)
        else:
            printer.paper_out_after(lines=lines, bytes=count)
    print(f"virtual printer listening: {printer.url}", flush=True)
    if args.out:
        print(f"jobs and previews go to {args.out}", flush=True)
    stdin = stdin_fd()
    hint = "type a fault (paper-out, paper-out-after=N, paper-low, cover-open, offline, mute) or ready"
    print(console_note(stdin) + hint, flush=True)  # a job in the background leaves the terminal to the shell
    stop = stop or threading.Event()
    reporter = threading.Thread(target=_report_jobs, args=(printer, stop), daemon=True)
    reporter.start()
    try:
        with background_reads_fail():
            if stdin is not None:
                typed = typed_lines(stdin, stop)
                threading.Thread(target=_faults_from_stdin, args=(printer, stop, typed), daemon=True).start()
            run_until_signalled(stop)
    finally:
        stop.set()
        reporter.join(timeout=2.0)
        printer.stop()
    print("virtual printer stopped", flush=True)
    return 0


def _faults_from_stdin(printer: VirtualNetworkPrinter, stop: threading.Event, typed: Iterator[str]) -> None:
    """Faults typed while it runs, one a line (``ready`` puts it back); a terminal only in the foreground."""
    for line in typed:
        if stop.is_set():
            return
        text = line.strip()
        if not text:
            continue
        try:
            state, lines, count = (PrinterStatus.READY, None, None) if text == "ready" else parse_fault(text)
        except ValueError as exc:
            print(exc, flush=True)
            continue
        if state is not None:
            printer.set_status(state)
        else:
            printer.paper_out_after(lines=lines, bytes=count)
        print(f"printer: {text}", flush=True)


def _report_jobs(printer: VirtualNetworkPrinter, stop: threading.Event) -> None:
    shown = 0
    while not stop.wait(0.2):
        records = printer.records()
        for record in records[shown:]:
            where = f" -> {record.preview}" if record.preview else ""
            state = "printed" if record.complete else "INCOMPLETE"
            print(f"job {record.number}: {len(record.data)} bytes {state}{where}", flush=True)
        shown = len(records)
