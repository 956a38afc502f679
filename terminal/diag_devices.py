"""The device self-tests of ``posterm diag`` (reader, scanner, printer and its test page) and ``posterm devices``.

Each test opens the device from its URL, does one thing a cashier's work
needs (read a card's PPSE, scan a code, print a test page) and closes it
again; whatever the device does ends in a :class:`~terminal.diag_result.DiagResult`
(see :mod:`terminal.diagnostics` for what each test checks).
:func:`list_devices` is ``posterm devices``: what is configured, opened and
closed again for a quick status, and what is attached.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from emv import apdu
from emv.apdu import ApduError, CardCommunicationError, CollisionDetected
from emv.config import TerminalConfig
from emv.entry_point import PPSE_NAME, parse_ppse
from emv.pan import mask_text
from terminal import registry
from terminal.apdu_trace import ApduTrace, observe
from terminal.devices import CONFIG_KINDS, load_devices, shown_url
from terminal.diag_result import DiagResult, error_text, make_result, posterm_version
from terminal.ports import (
    CancelToken,
    CardReader,
    DeviceError,
    NoCardError,
    NoCodeError,
    PrinterError,
    PrinterStatus,
    ReceiptPrinter,
    WaitCancelled,
)

__all__ = ["list_devices", "printer_test", "reader_test", "render_test_page", "scanner_test"]

_log = logging.getLogger(__name__)

_PAGE_WIDTH: Final = 42
_UNHEALTHY = (PrinterStatus.PAPER_OUT, PrinterStatus.COVER_OPEN, PrinterStatus.OFFLINE)


# ----------------------------------------------------------------------------- reader


def reader_test(
    url: str | None,
    *,
    timeout: float,
    trace: ApduTrace,
    config: TerminalConfig | None,
    cancel: CancelToken | None,
    prompt: Callable[[str], None],
) -> DiagResult:
    if url is None:
        return make_result("reader", None, "no reader configured ('posterm devices set reader URL')")
    details: dict[str, Any] = {"url": url}
    try:
        reader = observe(registry.open_reader(url), trace)
    except Exception as exc:
        return make_result("reader", False, f"{url}: cannot be opened: {error_text(exc)}", details)
    try:
        prompt(f"present a card to {url} (within {timeout:g} s)")
        result = _wait_and_read(reader, url, details, timeout=timeout, config=config, cancel=cancel)
    finally:
        with contextlib.suppress(Exception):
            reader.close()
    result.details["trace"] = trace.lines()
    return result


def _wait_and_read(
    reader: CardReader,
    url: str,
    details: dict[str, Any],
    *,
    timeout: float,
    config: TerminalConfig | None,
    cancel: CancelToken | None,
) -> DiagResult:
    started = time.perf_counter()
    try:
        session = reader.wait_for_card(timeout=timeout, cancel=cancel)
    except NoCardError:
        return make_result("reader", False, f"{url}: no card was presented within {timeout:g} s", details)
    except WaitCancelled:
        return make_result("reader", False, f"{url}: cancelled while waiting for a card", details)
    except CollisionDetected:
        return make_result("reader", False, f"{url}: more than one card in the field: present one card", details)
    except (DeviceError, CardCommunicationError) as exc:
        return make_result("reader", False, f"{url}: the reader failed while waiting: {error_text(exc)}", details)
    details["card_wait_ms"] = round((time.perf_counter() - started) * 1000, 1)
    try:
        return _read_card(url, session, details, config)
    finally:
        with contextlib.suppress(Exception):
            session.close()


def _read_card(url: str, session: Any, details: dict[str, Any], config: TerminalConfig | None) -> DiagResult:
    try:
        atr = bytes(session.atr)
    except Exception as exc:
        return make_result("reader", False, f"{url}: card detected, its ATR cannot be read: {error_text(exc)}", details)
    details["atr"] = atr.hex().upper()
    try:
        response = apdu.transmit(session, apdu.select(PPSE_NAME))
    except CardCommunicationError as exc:
        return make_result(
            "reader", False, f"{url}: the card stopped answering (SELECT PPSE): {error_text(exc)}", details
        )
    except ApduError as exc:
        return make_result("reader", False, f"{url}: malformed answer to SELECT PPSE: {error_text(exc)}", details)
    details["ppse_sw"] = f"{response.sw:04X}"
    if not response.ok:
        return make_result(
            "reader",
            False,
            f"{url}: card ATR {details['atr']}; SELECT PPSE answered {response.sw:04X}: no contactless payment "
            "directory",
            details,
        )
    supported = {c.aid for c in config.combinations} if config is not None else None
    apps = []
    for entry in parse_ppse(response.data):
        apps.append(
            {
                "aid": entry.adf_name.hex().upper(),
                "label": mask_text(entry.label) if entry.label is not None else None,
                "priority": entry.priority,
                "kernel_id": entry.kernel_id,
                "supported": None if supported is None else entry.adf_name in supported,
            }
        )
    details["applications"] = apps
    if not apps:
        return make_result("reader", False, f"{url}: card ATR {details['atr']}; the PPSE lists no application", details)
    listed = ", ".join(f"{a['aid']} {a['label'] or ''}".strip() for a in apps)
    if supported is not None and not any(a["supported"] for a in apps):
        details["warnings"] = ["no application of this card is supported by the terminal's configuration"]
    # Built from the masked URL, the ATR (hex of the card's historical bytes, no card number), AIDs and masked labels.
    return make_result(
        "reader", True, f"{mask_text(url)}: card ATR {details['atr']}; PPSE lists {listed}", details, mask=False
    )


# ----------------------------------------------------------------------------- scanner


def scanner_test(
    url: str | None, *, timeout: float, cancel: CancelToken | None, prompt: Callable[[str], None]
) -> DiagResult:
    if url is None:
        return make_result("scanner", None, "no scanner configured ('posterm devices set scanner URL')")
    details: dict[str, Any] = {"url": url}
    try:
        scanner = registry.open_scanner(url)
    except Exception as exc:
        return make_result("scanner", False, f"{url}: cannot be opened: {error_text(exc)}", details)
    try:
        prompt(f"scan a code with {url} (within {timeout:g} s)")
        started = time.perf_counter()
        try:
            code = scanner.read(timeout=timeout, cancel=cancel)
        except NoCodeError:
            return make_result("scanner", False, f"{url}: no code was scanned within {timeout:g} s", details)
        except WaitCancelled:
            return make_result("scanner", False, f"{url}: cancelled while waiting for a code", details)
        except Exception as exc:
            return make_result("scanner", False, f"{url}: the scanner failed: {error_text(exc)}", details)
        details["read_ms"] = round((time.perf_counter() - started) * 1000, 1)
        text = mask_text(code.text)
        details.update(
            symbology=code.symbology, length=len(code.text), text=text[:80] + ("..." if len(text) > 80 else "")
        )
        kind = f"{code.symbology} " if code.symbology else ""
        return make_result("scanner", True, f"{url}: read a {kind}code of {len(code.text)} characters", details)
    finally:
        with contextlib.suppress(Exception):
            scanner.close()


# ----------------------------------------------------------------------------- printer


def _printable(text: str) -> bytes:
    """ASCII without control characters: nothing in a URL or a name can become a printer command."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text).encode("ascii")


def render_test_page(
    *, printer_url: str, status: PrinterStatus | None, terminal_id: str = "", when: datetime | None = None
) -> bytes:
    """A short ESC/POS test page: title, software, time, printer, a ruler and the character set, then a cut.

    >>> page = render_test_page(printer_url="escpos:net:192.0.2.10:9100", status=PrinterStatus.READY, terminal_id="T1",
    ...                  when=datetime(2024, 5, 1, tzinfo=UTC))
    >>> page[:2] == b"\\x1b@" and page.endswith(b"\\x1dV\\x42\\x00") and b"TEST PAGE" in page
    True
    """
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    ruler = ("1234567890" * 5)[:_PAGE_WIDTH]
    chars = "".join(chr(c) for c in range(0x21, 0x7F))
    lines = [
        f"posterm {posterm_version()}",
        moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
        f"terminal {terminal_id}" if terminal_id else "",
    ]
    body = [
        f"printer: {printer_url}",
        f"status:  {status.value if status is not None else 'unknown'}",
        ruler,
        *(chars[i : i + _PAGE_WIDTH] for i in range(0, len(chars), _PAGE_WIDTH)),
        "-" * _PAGE_WIDTH,
    ]
    out = bytearray(b"\x1b@")  # initialise
    out += b"\x1ba\x01\x1bE\x01\x1d!\x11" + b"TEST PAGE\n" + b"\x1d!\x00\x1bE\x00"  # centred, bold, double size
    for line in lines:
        if line:
            out += _printable(line[:_PAGE_WIDTH]) + b"\n"
    out += b"\x1ba\x00"  # left
    for line in body:
        out += _printable(line[:_PAGE_WIDTH]) + b"\n"
    out += b"\x1bd\x03"  # feed three lines
    out += b"\x1dV\x42\x00"  # feed to the cutter and cut
    return bytes(out)


def printer_test(url: str | None, *, print_page: bool, terminal_id: str) -> DiagResult:
    if url is None:
        return make_result("printer", None, "no printer configured ('posterm devices set printer URL')")
    details: dict[str, Any] = {"url": url}
    try:
        printer = registry.open_printer(url)
    except Exception as exc:
        return make_result("printer", False, f"{url}: cannot be opened: {error_text(exc)}", details)
    try:
        return _check_printer(printer, url, details, print_page=print_page, terminal_id=terminal_id)
    finally:
        with contextlib.suppress(Exception):
            printer.close()


def _check_printer(
    printer: ReceiptPrinter, url: str, details: dict[str, Any], *, print_page: bool, terminal_id: str
) -> DiagResult:
    warnings: list[str] = []
    details["warnings"] = warnings
    try:
        status = printer.status()
    except PrinterError as exc:
        details["status"] = exc.status.value
        return make_result(
            "printer", False, f"{url}: status query failed ({exc.status.value}): {error_text(exc)}", details
        )
    except Exception as exc:
        return make_result("printer", False, f"{url}: status query failed: {error_text(exc)}", details)
    details["status"] = status.value
    if status in _UNHEALTHY:
        return make_result("printer", False, f"{url}: the printer reports {status.value.replace('_', ' ')}", details)
    if status is PrinterStatus.PAPER_LOW:
        warnings.append("paper low")
    if status is PrinterStatus.UNKNOWN:
        warnings.append("the printer does not report its status")
    if not print_page:
        details["test_page"] = False
        return make_result("printer", True, f"{url}: status {status.value}; no test page printed", details)
    page = render_test_page(printer_url=url, status=status, terminal_id=terminal_id)
    try:
        printer.print_job(page)
    except PrinterError as exc:
        details.update(status=exc.status.value, test_page=False)
        return make_result(
            "printer", False, f"{url}: test page refused ({exc.status.value}): {error_text(exc)}", details
        )
    except Exception as exc:
        details["test_page"] = False
        return make_result("printer", False, f"{url}: test page not printed: {error_text(exc)}", details)
    details.update(test_page=True, test_page_bytes=len(page))
    return make_result("printer", True, f"{url}: status {status.value}; test page printed ({len(page)} bytes)", details)


# ----------------------------------------------------------------------------- posterm devices


def _probe(kind: str, url: str) -> tuple[str, str]:
    """Open and close the device: ("ok" | "error", what was seen)."""
    openers: dict[str, Callable[[str], Any]] = {
        "reader": registry.open_reader,
        "scanner": registry.open_scanner,
        "printer": registry.open_printer,
        "pin-pad": registry.open_pin_pad,
    }
    try:
        # an adapter that cannot be opened here says what it is instead (the on-screen PIN pad, outside posterm ui)
        said = getattr(registry.adapter_for(url.partition(":")[0]), "probe", None)
        seen = said(url) if callable(said) else None
        if seen is not None:
            return str(seen[0]), str(seen[1])
        device = openers[kind](url)
    except Exception as exc:
        return "error", f"cannot be opened: {error_text(exc)}"
    try:
        if kind == "printer":
            try:
                status = device.status()
            except Exception as exc:
                return "error", f"opened, status query failed: {error_text(exc)}"
            if status in _UNHEALTHY:
                return "error", f"opened, the printer reports {status.value.replace('_', ' ')}"
            return "ok", f"opened, status {status.value}"
        return "ok", "opened"
    finally:
        with contextlib.suppress(Exception):
            device.close()


def _drivers() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for scheme, target in sorted(registry.schemes().items()):
        try:
            kind = registry.kind_of(f"{scheme}:")
            out[scheme] = {"kind": kind, "adapter": target}
        except Exception as exc:
            out[scheme] = {"kind": "unavailable", "adapter": target, "error": mask_text(error_text(exc))}
    return out


def list_devices(data_dir: Path, *, include_sim: bool = False, probe: bool = True) -> dict[str, Any]:
    """What is configured (with a quick status: opened and closed, or why not) and what is attached.

    Raises :class:`~terminal.devices.DeviceConfigError` when the device
    configuration cannot be read.  ``include_sim`` also lists every simulated
    card profile as a reader.
    """
    devices = load_devices(Path(data_dir))
    configured: dict[str, Any] = {}
    for kind in CONFIG_KINDS:
        url = devices.url(kind)
        shown = None if url is None else shown_url(url)
        entry: dict[str, Any] = {"url": shown, "source": devices.sources.get(kind, "default")}
        if url is None:
            entry.update(status="none", reason="not configured")
        elif probe:
            status, reason = _probe(kind, url)
            entry.update(status=status, reason=mask_text(reason))
        else:
            entry.update(status="unknown", reason="not probed")
        configured[kind] = entry
        _log.info("device %s %s: %s (%s)", kind, shown, entry["status"], entry["reason"])
    return {
        "configured": configured,
        "discovered": registry.discover_all(include_sim=include_sim),
        "drivers": _drivers(),
    }
