"""Scanners on a pty and printers on a TCP port, through the drivers, with their faults.

- the camera scanner on image files (``camera:file=``): order, repeats, unreadable frames, bad URLs;
- the serial scanner (``serial:`` over :class:`simulator.pty_scanner.VirtualScanner`):
  garbage lines, partial lines, over-long lines, prefix / suffix, AIM identifiers,
  noise in a stream at a rate, the port vanishing (DeviceGone), bad URLs;
- the ESC/POS printer (``escpos:net:`` over :class:`simulator.net_printer.VirtualNetworkPrinter`):
  paper out in the middle of a receipt, the connection cut mid-job, the states
  over the wire, a printer that never answers status, bad URLs;
- a real posterm receipt printed to the virtual printer and its PNG preview
  checked: the QR code in it decodes to the transaction id, the width is the
  paper's, the lines are where the layout puts them;
- ``posterm sim scanner`` / ``posterm sim printer`` started as processes and stopped with SIGTERM.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from pyzbar import pyzbar

from drivers.camera_scanner import CameraScanner
from drivers.escpos_printer import EscposPrinter, decode_status, parse_escpos_url
from drivers.serial_scanner import LineAssembler, ScannerOptions, SerialScanner, parse_serial_url
from simulator.net_printer import VirtualNetworkPrinter, parse_fault
from simulator.pty_scanner import VirtualScanner
from terminal import registry
from terminal.ports import DeviceError, DeviceGone, NoCodeError, PrinterError, PrinterStatus
from terminal.receipts import ReceiptData, render_escpos, render_text

ROOT = Path(__file__).resolve().parents[2]
QUIET = 0.15


def receipt(txn_id: str = "tx-2024-000042", **changes: object) -> ReceiptData:
    fields: dict[str, object] = {
        "merchant_name": "Corner Shop",
        "merchant_address": "1 Main Street\nSpringfield",
        "terminal_id": "T0000001",
        "merchant_id": "M000000000001",
        "txn_id": txn_id,
        "kind": "sale",
        "at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        "masked_pan": "476173******0028",
        "application_label": "VISA CREDIT",
        "aid": "A0000000031010",
        "amount": 1234,
        "currency": 978,
        "cryptogram_type": "TC",
        "cryptogram": "1A2B3C4D5E6F7081",
        "tvr": "0000000000",
        "tsi": "E800",
        "cvm": "no_cvm",
        "status": "APPROVED",
    }
    fields.update(changes)
    return ReceiptData(**fields)  # type: ignore[arg-type]


# -- the serial scanner ----------------------------------------------------------------------------------------------


@pytest.fixture
def pty_scanner() -> Iterator[tuple[VirtualScanner, SerialScanner]]:
    virtual = VirtualScanner(seed=7)
    scanner = SerialScanner.open(f"{virtual.url}&quiet={QUIET}")
    yield virtual, scanner
    scanner.close()
    virtual.close()


def test_garbage_lines_are_dropped_and_counted(pty_scanner: tuple[VirtualScanner, SerialScanner]) -> None:
    virtual, scanner = pty_scanner
    virtual.send_noise(24)
    virtual.send_raw(b"\xff\xfe\xfd invalid utf-8\r")
    virtual.send_raw(b"tab\tinside\r")
    virtual.send("GOOD-1")
    virtual.send_raw(b"\r\n\r\n")  # empty lines are no garbage, and no code
    virtual.send("GOOD-2")
    assert [scanner.read(timeout=5).text for _ in range(2)] == ["GOOD-1", "GOOD-2"]
    assert scanner.dropped["garbage"] == 3
    with pytest.raises(NoCodeError):
        scanner.read(timeout=0.2)


def test_partial_line_is_dropped_after_the_quiet_time(pty_scanner: tuple[VirtualScanner, SerialScanner]) -> None:
    virtual, scanner = pty_scanner
    virtual.send_partial("CUT-SHO")
    time.sleep(QUIET + 0.15)
    virtual.send("WHOLE")
    assert scanner.read(timeout=5).text == "WHOLE"
    assert scanner.dropped["partial"] == 1


def test_a_code_arriving_in_pieces_is_put_together() -> None:
    with VirtualScanner() as virtual, SerialScanner.open(f"{virtual.url}&quiet=0.8") as scanner:
        for piece in (b"POSTERM", b"-SLOW-", b"SERIAL\r"):
            virtual.send_raw(piece)
            time.sleep(0.1)  # slower than one write, well within the quiet time
        assert scanner.read(timeout=5).text == "POSTERM-SLOW-SERIAL"
        assert scanner.dropped["partial"] == 0


def test_overlong_line_is_dropped() -> None:
    with VirtualScanner() as virtual, SerialScanner.open(f"{virtual.url}&maxlen=32&quiet={QUIET}") as scanner:
        virtual.send("X" * 33)
        virtual.send("Y" * 500)  # longer than the buffer's bound: dropped while it arrives
        virtual.send("OK")
        assert scanner.read(timeout=5).text == "OK"
        assert scanner.dropped["overlong"] == 2


def test_prefix_and_suffix_are_stripped() -> None:
    with VirtualScanner(prefix=b"\x02", suffix=b"\x03") as virtual, SerialScanner.open(virtual.url) as scanner:
        assert "prefix=0x02" in virtual.url and "suffix=0x03" in virtual.url
        virtual.send("STX-ETX-CODE")
        virtual.send_raw(b"NO-PREFIX\x03")
        virtual.send_raw(b"\x13\x02AFTER-NOISE\x03")  # noise before the prefix is cut off
        assert scanner.read(timeout=5).text == "STX-ETX-CODE"
        assert scanner.read(timeout=5).text == "AFTER-NOISE"
        assert scanner.dropped["no_prefix"] == 1


@pytest.mark.parametrize(
    ("symbology", "text"),
    [("QRCODE", "posterm:pay?id=42"), ("EAN13", "4006381333931"), ("EAN8", "96385074"), ("CODE128", "ABC-123")],
)
def test_aim_identifiers_give_the_symbology(
    pty_scanner: tuple[VirtualScanner, SerialScanner], symbology: str, text: str
) -> None:
    virtual, scanner = pty_scanner
    virtual.send(text, symbology)
    code = scanner.read(timeout=5)
    assert (code.text, code.symbology) == (text, symbology)
    assert code.raw.startswith(b"]")


def test_aim_parsing_can_be_turned_off() -> None:
    with VirtualScanner() as virtual, SerialScanner.open(f"{virtual.url}&symbology=none") as scanner:
        virtual.send("HELLO", "QRCODE")
        code = scanner.read(timeout=5)
        assert (code.text, code.symbology) == ("]Q1HELLO", None)


def test_noise_at_a_rate_loses_no_code(pty_scanner: tuple[VirtualScanner, SerialScanner]) -> None:
    virtual, scanner = pty_scanner
    codes = [f"CODE-{i:03d}" for i in range(60)]
    virtual.stream(codes, rate=300, noise_every=1, symbology="QRCODE")
    got = [scanner.read(timeout=5) for _ in codes]
    assert [c.text for c in got] == codes
    assert {c.symbology for c in got} == {"QRCODE"}
    assert virtual.wait_stream(5)
    assert scanner.dropped["garbage"] == len(codes)


def test_port_vanishing_raises_device_gone_after_the_codes_already_read(
    pty_scanner: tuple[VirtualScanner, SerialScanner],
) -> None:
    virtual, scanner = pty_scanner
    virtual.send("LAST")
    time.sleep(0.2)
    virtual.unplug()
    assert scanner.read(timeout=5).text == "LAST"
    with pytest.raises(DeviceGone):
        scanner.read(timeout=5)
    with pytest.raises(DeviceGone):
        scanner.read(timeout=0)


def test_scanner_open_errors_are_clear() -> None:
    with pytest.raises(DeviceError, match="cannot open serial scanner"):
        registry.open_scanner("serial:/dev/posterm-no-such-port")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("serial:", "names no serial port"),
        ("serial:/dev/ttyACM0?baud=fast", "baud='fast' is not a number"),
        ("serial:/dev/ttyACM0?baud=9600&baud=19200", "given twice"),
        ("serial:/dev/ttyACM0?parity=X", "parity='X'"),
        ("serial:/dev/ttyACM0?stopbits=3", "stopbits='3'"),
        ("serial:/dev/ttyACM0?bytesize=9", "out of range"),
        ("serial:/dev/ttyACM0?suffix=", "suffix is empty"),
        ("serial:/dev/ttyACM0?suffix=0xZZ", "hex"),
        ("serial:/dev/ttyACM0?symbology=upc", "expected aim or none"),
        ("serial:/dev/ttyACM0?colour=red", "unknown serial option 'colour'"),
        ("serial:/dev/ttyACM0?encoding=klingon", "unknown encoding"),
    ],
)
def test_bad_serial_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        parse_serial_url(url)


def test_serial_url_options() -> None:
    path, opts = parse_serial_url("serial:/dev/ttyACM0?baud=115200&parity=even&stopbits=2&suffix=CRLF&prefix=%5D")
    assert path == "/dev/ttyACM0"
    assert (opts.baud, opts.parity, opts.stopbits, opts.suffix, opts.prefix) == (115200, "E", 2.0, b"\r\n", b"]")
    assert parse_serial_url("serial:COM3?suffix=0x0D0A")[1].suffix == b"\r\n"


def test_line_assembler_without_a_port() -> None:
    """The pure part: the time comes in, so quiet times need no sleeping."""
    assembler = LineAssembler(ScannerOptions(quiet=0.5), source="serial:test")
    assert assembler.feed(b"PART", now=0.0) == []
    assert assembler.tick(now=0.4) == []
    assert [c.text for c in assembler.feed(b"IAL\n", now=0.45)] == ["PARTIAL"]
    assembler.feed(b"LOST", now=1.0)
    assert [c.text for c in assembler.feed(b"NEW\r\n", now=2.0)] == ["NEW"]  # LOST dropped before NEW came
    assert assembler.dropped["partial"] == 1
    codes = assembler.feed(b"]C1\x1d0112345678901231\r", now=3.0)  # GS1 data keeps its group separator
    assert [(c.text, c.symbology) for c in codes] == [("\x1d0112345678901231", "CODE128")]


# -- the camera scanner on image files ------------------------------------------------------------------------------


def qr_png(text: str, *, frame: tuple[int, int] = (640, 480)) -> bytes:
    import qrcode

    code = qrcode.QRCode(box_size=4, border=4)
    code.add_data(text)
    code.make(fit=True)
    picture = Image.new("L", frame, 200)
    picture.paste(code.make_image().get_image().convert("L"), (40, 40))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def test_camera_frames_from_files_in_order(tmp_path: Path) -> None:
    frames = ["A", "A", None, "B", "garbage", "A"]  # the same code in view twice, no code, unreadable
    for i, what in enumerate(frames):
        if what == "garbage":
            data = b"not an image"
        elif what is None:
            data = _blank_png()
        else:
            data = qr_png(f"code-{what}")
        (tmp_path / f"frame-{i:03d}.png").write_bytes(data)
    scanner = CameraScanner.open(f"camera:file={tmp_path}/frame-*.png&symbologies=QRCODE")
    texts = [scanner.read(timeout=5).text for _ in range(3)]
    assert texts == ["code-A", "code-B", "code-A"]  # in name order; A reported once while it stays in view
    with pytest.raises(NoCodeError):
        scanner.read(timeout=0.2)  # the files are used up
    assert scanner.dropped == {"unreadable": 1, "no_code": 1, "repeated": 1}
    scanner.close()


def _blank_png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (320, 240), 255).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("camera:file=/posterm/none/*.png", "no such image file"),
        ("camera:dir=/posterm/none", "no such directory"),
        ("camera:file=a.png&dir=b", "exactly one of"),
        ("camera:file=a.png&zoom=2", "unknown camera option"),
        ("camera:dir=/tmp&symbologies=QRCODE,BLINKCODE", "unknown symbology 'BLINKCODE'"),
        ("camera:dir=/tmp&fps=fast", "not a number"),
    ],
)
def test_bad_camera_urls(url: str, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        CameraScanner.open(url)


# -- the ESC/POS printer on the network --------------------------------------------------------------------------------


@pytest.fixture
def net_printer(tmp_path: Path) -> Iterator[tuple[VirtualNetworkPrinter, EscposPrinter]]:
    virtual = VirtualNetworkPrinter(out_dir=tmp_path / "jobs").start()
    printer = EscposPrinter.open(f"{virtual.url}?status_timeout=0.5&confirm_timeout=5")
    yield virtual, printer
    printer.close()
    virtual.stop()


def test_paper_out_mid_receipt_is_an_error_and_nothing_is_reported_printed(
    net_printer: tuple[VirtualNetworkPrinter, EscposPrinter],
) -> None:
    virtual, printer = net_printer
    job = render_escpos(receipt(), "customer")
    virtual.paper_out_after(lines=6)
    with pytest.raises(PrinterError) as raised:
        printer.print_job(job)
    assert raised.value.status is PrinterStatus.PAPER_OUT
    assert "incomplete" in str(raised.value)
    virtual.wait_idle()
    assert virtual.jobs() == []
    [partial] = virtual.incomplete_jobs()
    assert partial.count(b"\n") == 6 and job.startswith(partial)
    assert printer.status() is PrinterStatus.PAPER_OUT
    with pytest.raises(PrinterError) as again:  # refused before sending now: nothing more is lost
        printer.print_job(job)
    assert again.value.status is PrinterStatus.PAPER_OUT
    virtual.set_status(PrinterStatus.READY)  # paper in
    printer.print_job(job)
    virtual.wait_idle()
    assert virtual.jobs() == [job]
    names = sorted(p.name for p in (virtual.engine.out_dir or Path()).glob("*.png"))
    assert names == ["job-0001-incomplete.png", "job-0002.png"]


def test_paper_out_after_bytes_mid_job(net_printer: tuple[VirtualNetworkPrinter, EscposPrinter]) -> None:
    virtual, printer = net_printer
    virtual.paper_out_after(bytes=100)
    with pytest.raises(PrinterError) as raised:
        printer.print_job(b"\x1b@" + b"line of text\n" * 20)
    assert raised.value.status is PrinterStatus.PAPER_OUT
    virtual.wait_idle()
    assert virtual.jobs() == [] and len(virtual.incomplete_jobs()[0]) == 100


def test_connection_cut_mid_job_is_an_offline_error(net_printer: tuple[VirtualNetworkPrinter, EscposPrinter]) -> None:
    virtual, printer = net_printer
    virtual.drop_after(1000)
    with pytest.raises(PrinterError) as raised:
        printer.print_job(b"\x1b@" + b"x" * 200_000 + b"\n")
    assert raised.value.status is PrinterStatus.OFFLINE
    virtual.wait_idle()
    assert virtual.jobs() == []
    printer.print_job(b"next job\n")  # a new connection for the next job
    virtual.wait_idle()
    assert virtual.jobs() == [b"next job\n"]


@pytest.mark.parametrize(
    "state", [PrinterStatus.READY, PrinterStatus.PAPER_LOW, PrinterStatus.PAPER_OUT, PrinterStatus.COVER_OPEN]
)
def test_status_over_the_wire(net_printer: tuple[VirtualNetworkPrinter, EscposPrinter], state: PrinterStatus) -> None:
    virtual, printer = net_printer
    virtual.set_status(state)
    assert printer.status() is state


def test_offline_printer_refuses_connections(net_printer: tuple[VirtualNetworkPrinter, EscposPrinter]) -> None:
    virtual, printer = net_printer
    virtual.set_status(PrinterStatus.OFFLINE)
    assert printer.status() is PrinterStatus.OFFLINE
    with pytest.raises(PrinterError, match="refused") as raised:
        printer.print_job(b"x\n")
    assert raised.value.status is PrinterStatus.OFFLINE
    virtual.set_status(PrinterStatus.READY)
    assert printer.status() is PrinterStatus.READY


def test_paper_low_still_prints(net_printer: tuple[VirtualNetworkPrinter, EscposPrinter]) -> None:
    virtual, printer = net_printer
    virtual.set_status(PrinterStatus.PAPER_LOW)
    printer.print_job(b"low\n")
    virtual.wait_idle()
    assert virtual.jobs() == [b"low\n"]


def test_a_printer_that_never_answers_status(net_printer: tuple[VirtualNetworkPrinter, EscposPrinter]) -> None:
    virtual, printer = net_printer
    virtual.set_status(PrinterStatus.UNKNOWN)
    assert printer.status() is PrinterStatus.UNKNOWN
    printer.print_job(b"handed over\n")  # nothing to check it against: sent is all that can be known
    virtual.wait_idle()
    assert virtual.jobs() == [b"handed over\n"]


def test_an_unconfirmed_job_is_not_reported_printed(tmp_path: Path) -> None:
    """A printer that answers DLE EOT but never GS r (here: stuck in PAPER_OUT for GS r only) fails the job."""
    with VirtualNetworkPrinter() as virtual:
        virtual.engine.transmit_answer = lambda n: b""  # type: ignore[method-assign]
        with EscposPrinter.open(f"{virtual.url}?status_timeout=0.3&confirm_timeout=0.5") as printer:
            with pytest.raises(PrinterError, match="did not confirm") as raised:
                printer.print_job(b"x\n")
            assert raised.value.status is PrinterStatus.UNKNOWN
        with EscposPrinter.open(f"{virtual.url}?status_timeout=0.3&confirm=0") as printer:
            printer.print_job(b"y\n")  # confirm=0: for such printers, by choice


def test_decode_status_bits() -> None:
    ok = {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x12}
    assert decode_status({}) is PrinterStatus.UNKNOWN
    assert decode_status(ok) is PrinterStatus.READY
    assert decode_status({**ok, 4: 0x1E}) is PrinterStatus.PAPER_LOW
    assert decode_status({**ok, 4: 0x72}) is PrinterStatus.PAPER_OUT
    assert decode_status({**ok, 1: 0x1A, 2: 0x32}) is PrinterStatus.PAPER_OUT
    assert decode_status({**ok, 1: 0x1A, 2: 0x16}) is PrinterStatus.COVER_OPEN
    assert decode_status({**ok, 1: 0x1A}) is PrinterStatus.OFFLINE
    assert decode_status({**ok, 3: 0x1A}) is PrinterStatus.OFFLINE  # autocutter error


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("escpos:lp:/dev/usb/lp0", "not an escpos URL"),
        ("escpos:net:", "names no host"),
        ("escpos:net:printer:99999", "out of range"),
        ("escpos:net:printer:9100?baud=9600", "unknown escpos:net option"),
        ("escpos:serial:?baud=9600", "names no serial port"),
        ("escpos:serial:/dev/ttyUSB0?parity=Q", "parity"),
        ("escpos:usb:04b8", "VID:PID"),
        ("escpos:usb:zz:0202", "VID:PID"),
        ("escpos:net:printer?status_timeout=soon", "not a number"),
        ("escpos:net:printer?confirm=yes", "expected 0 or 1"),
    ],
)
def test_bad_escpos_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        parse_escpos_url(url)


def test_escpos_urls() -> None:
    target = parse_escpos_url("escpos:net:192.0.2.10")
    assert (target.kind, target.host, target.port) == ("net", "192.0.2.10", 9100)
    target = parse_escpos_url("escpos:net:[::1]:9101?confirm=0")
    assert (target.host, target.port, target.confirm) == ("::1", 9101, False)
    target = parse_escpos_url("escpos:usb:04b8:0202?in_ep=0x81")
    assert (target.vendor, target.product, target.in_ep, target.out_ep) == (0x04B8, 0x0202, 0x81, 0x01)
    target = parse_escpos_url("escpos:serial:/dev/ttyUSB0?baud=19200&dsrdtr=0")
    assert target.serial_options == {"baudrate": 19200, "dsrdtr": False}


def test_unreachable_network_printer_is_offline_not_an_open_error() -> None:
    with VirtualNetworkPrinter() as virtual:
        url = virtual.url
    printer = registry.open_printer(url)  # opening does not connect: printers are off at night
    assert printer.status() is PrinterStatus.OFFLINE
    with pytest.raises(PrinterError) as raised:
        printer.print_job(b"x\n")
    assert raised.value.status is PrinterStatus.OFFLINE


def test_missing_serial_or_usb_printer_is_an_open_error() -> None:
    with pytest.raises(DeviceError, match="cannot open printer"):
        registry.open_printer("escpos:serial:/dev/posterm-no-such-port")


# -- a real receipt and its preview ---------------------------------------------------------------------------------


def dark_bands(image: Image.Image) -> list[tuple[int, int]]:
    """Runs of rows holding ink: (first row, last row + 1)."""
    width, height = image.size
    data = image.tobytes()
    bands: list[tuple[int, int]] = []
    start = None
    for y in range(height):
        inked = min(data[y * width : (y + 1) * width]) < 128
        if inked and start is None:
            start = y
        elif not inked and start is not None:
            bands.append((start, y))
            start = None
    if start is not None:
        bands.append((start, height))
    return bands


@pytest.mark.parametrize(("width_dots", "columns"), [(576, 42), (384, 32)])
def test_a_posterm_receipt_printed_and_previewed(tmp_path: Path, width_dots: int, columns: int) -> None:
    data = receipt(txn_id="tx-2024-000042", offline=True)
    job = render_escpos(data, "merchant", width=columns)
    with VirtualNetworkPrinter(out_dir=tmp_path, width_dots=width_dots) as virtual:
        with EscposPrinter.open(virtual.url) as printer:
            printer.print_job(job)
        virtual.wait_idle()
        assert virtual.jobs() == [job]
        [record] = virtual.records()
    assert record.preview == tmp_path / "job-0001.png"
    assert (tmp_path / "job-0001.bin").read_bytes() == job
    image = Image.open(io.BytesIO(record.preview.read_bytes())).convert("L")

    # the QR code holds the transaction id
    found = pyzbar.decode(image)
    assert [(f.type, f.data) for f in found] == [("QRCODE", b"tx-2024-000042")]
    qr = found[0].rect

    # the paper's width; a sane height (a receipt is not a metre long)
    assert image.width == width_dots
    text_lines = [line for line in render_text(data, "merchant", width=columns).splitlines() if line.strip()]
    assert 24 * len(text_lines) < image.height < 60 * len(text_lines) + 600

    # layout: one band of ink per printed line, then the QR code, then the cut, in that order
    bands = dark_bands(image)
    assert len(bands) == len(text_lines) + 2
    *line_bands, qr_band, cut_band = bands
    assert qr_band[0] <= qr.top and qr.top + qr.height <= qr_band[1]
    assert cut_band[1] - cut_band[0] <= 4  # the dashed cut line
    big = [b for b in line_bands if b[1] - b[0] > 24]  # text is at most 19 dots of ink, 24 with descenders
    assert len(big) == 1  # APPROVED, double height
    assert abs((qr.left + qr.width / 2) - width_dots / 2) <= 6  # centred

    # ink only inside the print area: nothing in the top and bottom margins, text within its columns
    assert bands[0][0] >= 16 and cut_band[1] <= image.height - 16
    text_area = image.crop((0, 0, width_dots, line_bands[-1][1]))
    left, _, right, _ = text_area.point(lambda v: 255 if v < 128 else 0).getbbox() or (0, 0, 0, 0)
    margin = (width_dots - columns * 12) // 2
    assert left < 4  # left-aligned lines start at the edge of the print area
    assert right <= width_dots - margin + 1  # the widest lines are 'columns' characters


# -- posterm sim scanner / printer as processes ------------------------------------------------------------------

_SIM = """
import argparse, sys
from simulator import sim_cli
parser = argparse.ArgumentParser(prog="posterm")
sim_cli.add_commands(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def start_sim(*argv: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", _SIM, "sim", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )


def line_with(process: subprocess.Popen[str], marker: str) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if marker in line:
            return line.strip()
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"no {marker!r} from the simulator; stderr: {process.stderr.read() if process.stderr else ''}")


def stop(process: subprocess.Popen[str]) -> int:
    """SIGTERM, as a service manager stops it; the exit status (killed after 10 s if it does not stop)."""
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
    return process.returncode


def test_sim_printer_command(tmp_path: Path) -> None:
    process = start_sim("printer", "--port", "0", "--out", str(tmp_path), "--fault", "paper-out-after=3")
    try:
        url = line_with(process, "escpos:net:").split()[-1]
        printer = registry.open_printer(url)
        with pytest.raises(PrinterError) as raised:
            printer.print_job(b"1\n2\n3\n4\n")
        assert raised.value.status is PrinterStatus.PAPER_OUT
        assert "INCOMPLETE" in line_with(process, "job 1:")
        assert process.stdin is not None
        process.stdin.write("ready\n")  # paper in, typed at the simulator
        process.stdin.flush()
        line_with(process, "printer: ready")
        printer.print_job(b"again\n")
        assert "printed" in line_with(process, "job 2:")
    finally:
        assert stop(process) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["job-0001-incomplete.png", "job-0002.png"]


def test_sim_scanner_command() -> None:
    process = start_sim("scanner", "--code", "SIM-CODE-1", "--rate", "20", "--noise", "--aim", "QRCODE")
    try:
        url = line_with(process, "open it as:").split()[-1]
        assert registry.kind_of(url) == "scanner"
        with SerialScanner.open(url) as scanner:
            codes = [scanner.read(timeout=10) for _ in range(2)]
        assert [(c.text, c.symbology) for c in codes] == [("SIM-CODE-1", "QRCODE")] * 2
        assert scanner.dropped["garbage"] >= 1  # the noise line sent after each code
    finally:
        assert stop(process) == 0


def test_sim_faults_parse() -> None:
    assert parse_fault("paper-out") == (PrinterStatus.PAPER_OUT, None, None)
    assert parse_fault("offline") == (PrinterStatus.OFFLINE, None, None)
    with pytest.raises(ValueError, match="unknown printer fault"):
        parse_fault("paper-out-after=many")
