"""Diagnostics: the logic behind the technician menu and ``posterm devices`` / ``posterm diag``.

:func:`run_diagnostics` runs one self-test per part of the terminal and
returns a :class:`DiagResult` for each, in this order:

``reader``
    Open the reader, wait ``card_timeout`` seconds for a card (through an
    :class:`~terminal.apdu_trace.ApduTrace`), read its ATR, SELECT the PPSE
    and list the applications of its FCI (AID, label, priority, kernel, and
    whether this terminal's configuration supports the AID).  Fails when the
    reader cannot be opened, no card comes in time, more than one card is in
    the field, the card stops answering, or the PPSE is refused or lists no
    application.  Skipped when no reader is configured.
``scanner``
    Open the scanner and read one code within ``scan_timeout`` seconds.  Fails
    when it cannot be opened or nothing is scanned in time.  Skipped when no
    scanner is configured.
``printer``
    Open the printer, ask its status and print a short test page.  Fails when
    it cannot be opened, reports paper out, cover open or offline, or refuses
    the page (the reason names its status).  Paper low passes with a warning.
    Skipped when no printer is configured.
``host_link``
    An echo to the host with its round-trip time, tried even while the link
    believes the host is down.  Fails when the host cannot be reached or does
    not answer (the reason says which), or when there is no host link at all
    (``--host none``).  Every link is tested the same way (the in-process
    ``memory`` host answers the echo too, after checking its database); a link
    without an echo is skipped.  A round trip over 2 s passes with a warning.
``saf_queue``
    What waits in the store-and-forward queue: count, totals, the oldest
    entry's age, the last forwarding error, queued reversals.  Fails when the
    oldest queued payment is older than the offline age limit (the terminal
    refuses new offline payments until the queue is forwarded), or when a
    payment of the open batch was declined or rejected after forwarding: the
    merchant has not been paid for it and has not yet seen it on a Z report
    (a settlement counts as the merchant's acknowledgement, since the journal
    has no other one).  Near a limit (80 %), queued reversals, a failed last
    attempt and declines in settled batches are warnings.  Host certificates
    rejected (security events) are counted in the details and are a warning.
``journal``
    The journal's integrity, as ``posterm journal verify`` checks it: SQLite's
    own structure check, the hash chain, and the seal of every row that
    carries money or state.  Fails, naming each edited, inserted or removed
    row, when anything does not match; fails when the terminal's keys exist
    but its journal is missing or empty.
``configuration``
    The parameters version in force (or ``shipped``) with SHA-256 checksums of
    its files, the device configuration, and every CA public key with its
    RID, index and SHA-1 checksum verified again.  Fails when the
    configuration cannot be loaded, a key's checksum does not match, or there
    is no CA key at all.  Keys expired or expiring within
    :data:`CAPK_EXPIRY_WARNING_DAYS` days are warnings.
``keys``
    Key check values of the keystore's keys (never the keys).  Fails when the
    keystore cannot be opened (the reason says why: missing, wrong master
    key, damaged, insecure permissions).  Skipped when the terminal has not
    made its keys yet (before its first payment).

``passed`` is ``True``, ``False`` or ``None`` (skipped or not applicable);
warnings go into ``details["warnings"]`` and do not fail a test.  No test lets
an exception out: whatever a device or a file does ends as a failed result
with its reason.  Card numbers never appear: the APDU trace is masked, and
every reason passes :func:`emv.pan.mask_text`.

:func:`list_devices` is ``posterm devices``; :func:`export_bundle` writes the
support bundle of ``posterm diag export``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import platform
import sqlite3
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Final

from emv import apdu
from emv.apdu import ApduError, CardCommunicationError, CollisionDetected
from emv.capk import checksum_of
from emv.config import TerminalConfig
from emv.entry_point import PPSE_NAME, parse_ppse
from emv.pan import mask_text
from terminal import registry
from terminal.apdu_trace import ApduTrace, observe
from terminal.bootstrap import ENROLMENT_FILE, PARAMETERS_POINTER, load_configuration, open_host
from terminal.devices import DeviceConfig, load_devices
from terminal.facade import SafStatus, Terminal, TerminalSettings
from terminal.host import HostError, HostLink, HostNoAnswer, HostRejected, HostUnreachable
from terminal.keystore import MASTER_KEY_ENV, FileKeystore, KeystoreError
from terminal.logfile import log_tail
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
from terminal.settings import SettingsError, load_default_config, load_default_settings, shipped_document
from terminal.store import StorageError, Store

__all__ = [
    "CAPK_EXPIRY_WARNING_DAYS",
    "PACKAGES",
    "TEST_NAMES",
    "BundleInfo",
    "DiagResult",
    "configuration_summary",
    "export_bundle",
    "list_devices",
    "render_test_page",
    "results_json",
    "run_diagnostics",
    "summary",
    "text_report",
    "versions",
]

_log = logging.getLogger(__name__)

TEST_NAMES: Final = ("reader", "scanner", "printer", "host_link", "saf_queue", "journal", "configuration", "keys")
CAPK_EXPIRY_WARNING_DAYS: Final = 90
NEAR_LIMIT: Final = 0.8  # share of an offline limit from which the SAF test warns
SLOW_ECHO_SECONDS: Final = 2.0
JOURNAL_FILE: Final = "journal.sqlite"
KEYS_DIR: Final = "keys"
_PAGE_WIDTH: Final = 42
_UNHEALTHY = (PrinterStatus.PAPER_OUT, PrinterStatus.COVER_OPEN, PrinterStatus.OFFLINE)


@dataclass(frozen=True)
class DiagResult:
    """One self-test: ``passed`` True, False, or None (skipped / not applicable), with its reason."""

    name: str
    passed: bool | None
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``pass``, ``fail`` or ``skip``."""
        return "skip" if self.passed is None else ("pass" if self.passed else "fail")

    @property
    def warnings(self) -> list[str]:
        return list(self.details.get("warnings", []))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "status": self.status,
            "reason": self.reason,
            "details": self.details,
        }


def _result(
    name: str, passed: bool | None, reason: str, details: dict[str, Any] | None = None, *, mask: bool = True
) -> DiagResult:
    """Reasons are masked: a device's or a host's message could quote card data.

    ``mask=False`` is for a reason built only from parts known to hold no card
    number (an AID such as A0000000031010 looks like one to the masking).
    """
    out = dict(details or {})
    if out.get("warnings"):
        out["warnings"] = [mask_text(w) for w in out["warnings"]]
    else:
        out.pop("warnings", None)
    return DiagResult(name, passed, mask_text(reason) if mask else reason, out)


def summary(results: Collection[DiagResult]) -> dict[str, Any]:
    """Counts and the overall verdict: passed when no test that ran failed."""
    failed = [r.name for r in results if r.passed is False]
    return {
        "passed": not failed,
        "failed": failed,
        "counts": {
            "pass": sum(1 for r in results if r.passed is True),
            "fail": len(failed),
            "skip": sum(1 for r in results if r.passed is None),
        },
    }


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__


# ----------------------------------------------------------------------------- reader


def _reader_test(
    url: str | None,
    *,
    timeout: float,
    trace: ApduTrace,
    config: TerminalConfig | None,
    cancel: CancelToken | None,
    prompt: Callable[[str], None],
) -> DiagResult:
    if url is None:
        return _result("reader", None, "no reader configured ('posterm devices set reader URL')")
    details: dict[str, Any] = {"url": url}
    try:
        reader = observe(registry.open_reader(url), trace)
    except Exception as exc:
        return _result("reader", False, f"{url}: cannot be opened: {_error_text(exc)}", details)
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
        return _result("reader", False, f"{url}: no card was presented within {timeout:g} s", details)
    except WaitCancelled:
        return _result("reader", False, f"{url}: cancelled while waiting for a card", details)
    except CollisionDetected:
        return _result("reader", False, f"{url}: more than one card in the field: present one card", details)
    except (DeviceError, CardCommunicationError) as exc:
        return _result("reader", False, f"{url}: the reader failed while waiting: {_error_text(exc)}", details)
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
        return _result("reader", False, f"{url}: card detected, its ATR cannot be read: {_error_text(exc)}", details)
    details["atr"] = atr.hex().upper()
    try:
        response = apdu.transmit(session, apdu.select(PPSE_NAME))
    except CardCommunicationError as exc:
        return _result("reader", False, f"{url}: the card stopped answering (SELECT PPSE): {_error_text(exc)}", details)
    except ApduError as exc:
        return _result("reader", False, f"{url}: malformed answer to SELECT PPSE: {_error_text(exc)}", details)
    details["ppse_sw"] = f"{response.sw:04X}"
    if not response.ok:
        return _result(
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
        return _result("reader", False, f"{url}: card ATR {details['atr']}; the PPSE lists no application", details)
    listed = ", ".join(f"{a['aid']} {a['label'] or ''}".strip() for a in apps)
    if supported is not None and not any(a["supported"] for a in apps):
        details["warnings"] = ["no application of this card is supported by the terminal's configuration"]
    # Built from the masked URL, the ATR (hex of the card's historical bytes, no card number), AIDs and masked labels.
    return _result(
        "reader", True, f"{mask_text(url)}: card ATR {details['atr']}; PPSE lists {listed}", details, mask=False
    )


# ----------------------------------------------------------------------------- scanner


def _scanner_test(
    url: str | None, *, timeout: float, cancel: CancelToken | None, prompt: Callable[[str], None]
) -> DiagResult:
    if url is None:
        return _result("scanner", None, "no scanner configured ('posterm devices set scanner URL')")
    details: dict[str, Any] = {"url": url}
    try:
        scanner = registry.open_scanner(url)
    except Exception as exc:
        return _result("scanner", False, f"{url}: cannot be opened: {_error_text(exc)}", details)
    try:
        prompt(f"scan a code with {url} (within {timeout:g} s)")
        started = time.perf_counter()
        try:
            code = scanner.read(timeout=timeout, cancel=cancel)
        except NoCodeError:
            return _result("scanner", False, f"{url}: no code was scanned within {timeout:g} s", details)
        except WaitCancelled:
            return _result("scanner", False, f"{url}: cancelled while waiting for a code", details)
        except Exception as exc:
            return _result("scanner", False, f"{url}: the scanner failed: {_error_text(exc)}", details)
        details["read_ms"] = round((time.perf_counter() - started) * 1000, 1)
        text = mask_text(code.text)
        details.update(
            symbology=code.symbology, length=len(code.text), text=text[:80] + ("..." if len(text) > 80 else "")
        )
        kind = f"{code.symbology} " if code.symbology else ""
        return _result("scanner", True, f"{url}: read a {kind}code of {len(code.text)} characters", details)
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
        f"posterm {_posterm_version()}",
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


def _printer_test(url: str | None, *, print_page: bool, terminal_id: str) -> DiagResult:
    if url is None:
        return _result("printer", None, "no printer configured ('posterm devices set printer URL')")
    details: dict[str, Any] = {"url": url}
    try:
        printer = registry.open_printer(url)
    except Exception as exc:
        return _result("printer", False, f"{url}: cannot be opened: {_error_text(exc)}", details)
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
        return _result(
            "printer", False, f"{url}: status query failed ({exc.status.value}): {_error_text(exc)}", details
        )
    except Exception as exc:
        return _result("printer", False, f"{url}: status query failed: {_error_text(exc)}", details)
    details["status"] = status.value
    if status in _UNHEALTHY:
        return _result("printer", False, f"{url}: the printer reports {status.value.replace('_', ' ')}", details)
    if status is PrinterStatus.PAPER_LOW:
        warnings.append("paper low")
    if status is PrinterStatus.UNKNOWN:
        warnings.append("the printer does not report its status")
    if not print_page:
        details["test_page"] = False
        return _result("printer", True, f"{url}: status {status.value}; no test page printed", details)
    page = render_test_page(printer_url=url, status=status, terminal_id=terminal_id)
    try:
        printer.print_job(page)
    except PrinterError as exc:
        details.update(status=exc.status.value, test_page=False)
        return _result("printer", False, f"{url}: test page refused ({exc.status.value}): {_error_text(exc)}", details)
    except Exception as exc:
        details["test_page"] = False
        return _result("printer", False, f"{url}: test page not printed: {_error_text(exc)}", details)
    details.update(test_page=True, test_page_bytes=len(page))
    return _result("printer", True, f"{url}: status {status.value}; test page printed ({len(page)} bytes)", details)


# ----------------------------------------------------------------------------- host link


def _host_test(host: str | HostLink | None, data_dir: Path) -> DiagResult:
    owned = False
    link: HostLink | None
    if isinstance(host, str):
        try:
            link = open_host(host, data_dir)
        except Exception as exc:
            return _result("host_link", False, f"host {host!r} cannot be used: {_error_text(exc)}", {"host": host})
        owned = True
    else:
        link = host
    try:
        return _echo(link)
    finally:
        if owned and link is not None:
            closer = getattr(link, "close", None)
            if callable(closer):
                with contextlib.suppress(Exception):
                    closer()


def _echo(link: HostLink | None) -> DiagResult:
    if link is None:
        return _result(
            "host_link", False, "no host link (--host none): payments can only be approved offline", {"host": None}
        )
    details: dict[str, Any] = {"host": str(getattr(link, "url", type(link).__name__))}
    terminal_id = getattr(link, "terminal_id", None)
    if isinstance(terminal_id, str):
        details["terminal_id"] = terminal_id
    echo_details = getattr(link, "echo_details", None)
    echo = getattr(link, "echo", None)
    if not callable(echo_details) and not callable(echo):
        return _result("host_link", None, f"{details['host']}: this host link has no echo", details)
    failure: str | None = None
    seconds = 0.0
    try:
        if callable(echo_details):
            answer = echo_details(force=True)
            seconds = float(answer.round_trip_seconds)
            details["host_time"] = getattr(answer, "host_time", None)
            details["host_reference"] = getattr(answer, "host_reference", None)
        else:
            assert callable(echo)
            seconds = float(echo(force=True))
    except HostUnreachable as exc:
        failure = f"host unreachable: {_error_text(exc)}"
    except HostNoAnswer as exc:
        failure = f"no answer to the echo: {_error_text(exc)}"
    except HostRejected as exc:
        failure = f"the host refused the echo: {_error_text(exc)}"
    except (HostError, DeviceError, OSError) as exc:
        failure = f"echo failed: {_error_text(exc)}"
    last_error = getattr(link, "last_error", None)
    if isinstance(last_error, str):
        details["last_error"] = last_error
    if failure is not None:
        return _result("host_link", False, f"{details['host']}: {failure}", details)
    details["round_trip_ms"] = round(seconds * 1000, 1)
    if seconds > SLOW_ECHO_SECONDS:
        details["warnings"] = [f"slow link: the echo took {seconds:.1f} s"]
    return _result("host_link", True, f"{details['host']}: echo answered in {seconds * 1000:.0f} ms", details)


# ----------------------------------------------------------------------------- journal, SAF, keys


@dataclass
class _Journal:
    """The data directory's keystore and store, opened once for the SAF and key tests."""

    keystore: FileKeystore | None = None
    store: Store | None = None
    error: str | None = None
    absent: bool = False

    def close(self) -> None:
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()


def _open_journal(data_dir: Path) -> _Journal:
    """Read-only in spirit: keys are never made here, and nothing is recovered or sent."""
    journal = data_dir / JOURNAL_FILE
    keys = data_dir / KEYS_DIR
    if not journal.exists() and not keys.exists():
        return _Journal(absent=True)
    try:
        keystore = FileKeystore.open(keys, create=False)
    except KeystoreError as exc:
        return _Journal(error=f"keystore: {_error_text(exc)}")
    except OSError as exc:
        return _Journal(error=f"keystore: {exc.strerror or exc}")
    if not journal.exists() or journal.stat().st_size == 0:
        what = "missing" if not journal.exists() else "empty (0 bytes)"
        return _Journal(
            keystore=keystore, error=f"journal {journal} is {what}, but the terminal's keys exist: restore it"
        )
    try:
        store = Store.open(journal, keystore, create=False)
    except (StorageError, KeystoreError, sqlite3.Error, OSError) as exc:
        return _Journal(keystore=keystore, error=f"journal {journal}: {_error_text(exc)}")
    return _Journal(keystore=keystore, store=store)


def _saf_test(journal: _Journal, config: TerminalConfig | None, settings: TerminalSettings) -> DiagResult:
    if journal.absent and journal.store is None:
        return _result("saf_queue", True, "queue empty (no payment made yet)", {"queued": 0})
    if journal.store is None:
        return _result("saf_queue", False, f"the journal cannot be opened: {journal.error}")
    assert journal.keystore is not None
    terminal = Terminal(
        config=config or load_default_config(),
        store=journal.store,
        keystore=journal.keystore,
        host=None,
        settings=settings,
    )
    status = terminal.offline_status()
    return _judge_saf(status, journal.store, settings)


def _judge_saf(status: SafStatus, store: Store, settings: TerminalSettings) -> DiagResult:
    limits = settings.offline_limits
    details: dict[str, Any] = status.to_json()
    details["last_error"] = mask_text(status.last_error) if status.last_error else None
    details["limits"] = {
        "max_count": limits.max_count,
        "max_age_seconds": limits.max_age_seconds,
        "total_per_currency": {f"{k:03d}": v for k, v in sorted(limits.total_per_currency.items())},
    }
    warnings: list[str] = []
    problems: list[str] = []
    closed = set(store.closed_batches())
    open_batch: list[str] = []
    settled: list[str] = []
    for txn_id in status.declined_after_forwarding:
        row = store.get(txn_id)
        if row is not None and row.batch_id is not None and row.batch_id in closed:
            settled.append(txn_id)
        else:
            open_batch.append(txn_id)
    details["declined_in_open_batch"] = open_batch
    age = status.oldest_age_seconds
    if age is not None and age > limits.max_age_seconds:
        problems.append(
            f"the oldest queued payment is {age / 3600:.1f} h old, over the {limits.max_age_seconds / 3600:.1f} h "
            "offline limit: forward the queue ('posterm saf forward')"
        )
    elif age is not None and age > NEAR_LIMIT * limits.max_age_seconds:
        warnings.append(
            f"the oldest queued payment is {age / 3600:.1f} h old (limit {limits.max_age_seconds / 3600:.1f} h)"
        )
    if open_batch:
        problems.append(
            f"{len(open_batch)} payment(s) of the open batch declined or rejected after forwarding: "
            + ", ".join(open_batch)
        )
    if status.queued >= NEAR_LIMIT * limits.max_count:
        warnings.append(f"{status.queued} payments queued (limit {limits.max_count})")
    for code, (_, amount) in sorted(status.totals.items()):
        cap = limits.total_per_currency.get(code, 0)
        if cap and amount >= NEAR_LIMIT * cap:
            warnings.append(f"{amount} of {cap} (minor units, currency {code:03d}) stored offline")
    if status.reversals_queued:
        warnings.append(f"{status.reversals_queued} reversal(s) waiting to be sent")
    if status.last_error and (status.queued or status.reversals_queued):
        warnings.append(f"last forwarding attempt failed: {status.last_error}")
    if settled:
        warnings.append(f"{len(settled)} payment(s) declined after forwarding in settled batches")
    if status.security_events:
        warnings.append(
            f"SECURITY: the host's certificate was rejected {status.security_events} time(s); last "
            f"{status.last_security_event}"
        )
    details["warnings"] = warnings
    if status.queued:
        age_text = f", oldest {(age or 0) / 60:.1f} min old" if age is not None else ""
        what = f"{status.queued} payment(s) queued{age_text}"
    else:
        what = "queue empty"
    if status.reversals_queued:
        what += f", {status.reversals_queued} reversal(s) queued"
    if problems:
        return _result("saf_queue", False, f"{what}; " + "; ".join(problems), details)
    return _result("saf_queue", True, what, details)


def _journal_test(journal: _Journal) -> DiagResult:
    if journal.absent and journal.store is None:
        return _result("journal", None, "no journal yet: the terminal makes it with its first payment")
    if journal.store is None:
        return _result("journal", False, f"the journal cannot be opened: {journal.error}")
    report = journal.store.verify()
    details: dict[str, Any] = {"rows": report.rows, "problems": report.problems}
    if report.ok:
        return _result("journal", True, f"{report.rows} rows, chain intact, every row sealed", details)
    shown = "; ".join(report.problems[:3]) + (f"; and {len(report.problems) - 3} more" if len(report.problems) > 3
                                               else "")  # fmt: skip
    return _result("journal", False, f"{len(report.problems)} problem(s): {shown}", details)


def _keys_test(journal: _Journal) -> DiagResult:
    if journal.keystore is None:
        if journal.error is not None:
            return _result("keys", False, f"the keystore cannot be opened: {journal.error}")
        return _result("keys", None, "no keys yet: the terminal makes them with its first payment")
    kcvs = journal.keystore.key_check_values()
    details: dict[str, Any] = {
        "key_check_values": dict(sorted(kcvs.items())),
        "key_id": journal.keystore.key_id,
        "master_key_from": "environment" if os.environ.get(MASTER_KEY_ENV) else "file",
    }
    listed = ", ".join(f"{name} {kcv}" for name, kcv in sorted(kcvs.items()))
    return _result("keys", True, f"{len(kcvs)} keys, check values: {listed}", details)


# ----------------------------------------------------------------------------- configuration


def _sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _configuration_files(data_dir: Path) -> dict[str, str | None]:
    """SHA-256 of each file of the configuration in force (terminal.json and its CA key files)."""
    pointer = data_dir / PARAMETERS_POINTER
    out: dict[str, str | None] = {}
    if pointer.exists():
        try:
            current = json.loads(pointer.read_text(encoding="utf-8"))
            base = data_dir / "parameters" / str(current["dir"])
            doc = json.loads((base / "terminal.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            return out
        out[f"parameters/{base.name}/terminal.json"] = _sha256_file(base / "terminal.json")
        for name in doc.get("capk_files", []):
            out[f"parameters/{base.name}/{name}"] = _sha256_file(base / str(name))
        return out
    data = resources.files("terminal").joinpath("data")
    doc = shipped_document()
    for name in ["terminal.json", *doc.get("capk_files", [])]:
        try:
            out[f"terminal/data/{name}"] = hashlib.sha256(data.joinpath(str(name)).read_bytes()).hexdigest()
        except OSError:
            out[f"terminal/data/{name}"] = None
    return out


def _capk_list(config: TerminalConfig, today: date) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The CA keys (no modulus), and the problems and warnings they give."""
    keys: list[dict[str, Any]] = []
    problems: list[str] = []
    warnings: list[str] = []
    for key in config.capks:
        ok = checksum_of(key.rid, key.index, key.modulus, key.exponent) == key.checksum
        days = (key.expiry - today).days if key.expiry is not None else None
        keys.append(
            {
                "rid": key.rid.hex().upper(),
                "index": f"{key.index:02X}",
                "scheme": key.scheme,
                "kind": key.kind,
                "modulus_bits": len(key.modulus) * 8,
                "checksum": key.checksum.hex().upper(),
                "checksum_ok": ok,
                "expiry": key.expiry.isoformat() if key.expiry is not None else None,
                "revoked": (key.rid, key.index) in config.capks.revoked,
            }
        )
        if not ok:
            problems.append(f"CA key {key.label}: checksum does not match")
        if days is not None and days < 0:
            warnings.append(f"CA key {key.label} expired on {key.expiry}")
        elif days is not None and days <= CAPK_EXPIRY_WARNING_DAYS:
            warnings.append(f"CA key {key.label} expires on {key.expiry} (in {days} days)")
    return keys, problems, warnings


def _configuration_test(
    data_dir: Path,
    loaded: tuple[TerminalConfig, TerminalSettings, int | None] | None,
    load_error: str | None,
    devices: DeviceConfig | None,
    devices_error: str | None,
    today: date,
) -> DiagResult:
    details: dict[str, Any] = {}
    problems: list[str] = []
    warnings: list[str] = []
    if devices is not None:
        details["devices"] = devices.to_json()
    if devices_error is not None:
        problems.append(f"device configuration: {devices_error}")
    if loaded is None:
        return _result("configuration", False, f"the configuration cannot be loaded: {load_error}", details)
    config, _, version = loaded
    details["parameters_version"] = version if version is not None else "shipped"
    details["files"] = _configuration_files(data_dir)
    details["terminal_id"] = config.terminal_id
    details["merchant_id"] = config.merchant_id
    keys, key_problems, key_warnings = _capk_list(config, today)
    details["capks"] = keys
    details["revoked_capks"] = len(config.capks.revoked)
    problems += key_problems
    warnings += key_warnings
    if not keys:
        problems.append("no CA public key: offline data authentication fails for every card")
    details["warnings"] = warnings
    where = f"parameters version {version}" if version is not None else "shipped configuration"
    text = f"{where}; {len(keys)} CA keys, checksums {'verified' if not key_problems else 'NOT all verified'}"
    if problems:
        return _result("configuration", False, f"{text}; " + "; ".join(problems), details)
    return _result("configuration", True, text, details)


# ----------------------------------------------------------------------------- running them


def _guard(name: str, test: Callable[[], DiagResult]) -> DiagResult:
    """Run one test; an exception it lets out becomes a failed result (nothing escapes)."""
    try:
        result = test()
    except Exception as exc:
        _log.exception("diagnostic test %s raised", name)
        result = _result(name, False, f"unexpected error: {type(exc).__name__}: {_error_text(exc)}")
    _log.info("diag %s: %s: %s", result.name, result.status, result.reason)
    return result


def _quiet_prompt(prompt: Callable[[str], None] | None) -> Callable[[str], None]:
    """``prompt`` made safe: a failing prompt (a closed stdout, a broken UI) does not fail the test."""

    def tell(message: str) -> None:
        if prompt is not None:
            with contextlib.suppress(Exception):
                prompt(mask_text(message))

    return tell


def run_diagnostics(
    data_dir: Path,
    *,
    reader_url: str | None = None,
    scanner_url: str | None = None,
    printer_url: str | None = None,
    card_timeout: float = 5.0,
    scan_timeout: float = 10.0,
    print_test_page: bool = True,
    host: str | HostLink | None = "auto",
    tests: Collection[str] | None = None,
    trace: ApduTrace | None = None,
    cancel: CancelToken | None = None,
    today: date | None = None,
    prompt: Callable[[str], None] | None = None,
) -> list[DiagResult]:
    """Every self-test (see the module's documentation), in :data:`TEST_NAMES` order.

    Device URLs default to the terminal's device configuration; ``"none"``
    skips that device.  ``host`` is a host name as ``open_terminal`` takes it
    (``auto``, ``memory``, ``none``, ``https``...), a host link object, or
    ``None`` for no host.  ``tests`` limits the run to those names (the others
    are reported as skipped, "not run").  ``trace`` collects the reader test's
    exchanges (a new one is used otherwise); its masked lines are also in the
    reader result's details.  ``prompt`` is called with what the technician
    must do now ("present a card to ...", "scan a code with ..."), just before
    the reader and scanner tests wait.
    """
    directory = Path(data_dir)
    wanted = set(TEST_NAMES if tests is None else tests)
    unknown = wanted - set(TEST_NAMES)
    if unknown:
        raise ValueError(f"unknown diagnostic test(s) {sorted(unknown)}; expected some of {', '.join(TEST_NAMES)}")
    day = today or datetime.now(UTC).date()
    tell = _quiet_prompt(prompt)

    devices: DeviceConfig | None = None
    devices_error: str | None = None
    try:
        devices = load_devices(directory)
    except Exception as exc:
        devices_error = _error_text(exc)
    loaded: tuple[TerminalConfig, TerminalSettings, int | None] | None = None
    load_error: str | None = None
    try:
        loaded = load_configuration(directory)
    except (SettingsError, OSError) as exc:
        load_error = _error_text(exc)
    except Exception as exc:
        load_error = f"{type(exc).__name__}: {_error_text(exc)}"
    config = loaded[0] if loaded is not None else None
    settings = loaded[1] if loaded is not None else load_default_settings()

    def url_of(kind: str, given: str | None) -> str | None:
        if given is not None:
            return None if given.strip().lower() in ("none", "") else given.strip()
        if devices is None:
            raise DeviceError(f"the device configuration cannot be read: {devices_error}")
        return devices.url(kind)

    journal: _Journal | None = None

    def the_journal() -> _Journal:
        nonlocal journal
        if journal is None:
            journal = _open_journal(directory)
        return journal

    runs: dict[str, Callable[[], DiagResult]] = {
        "reader": lambda: _reader_test(
            url_of("reader", reader_url),
            timeout=card_timeout,
            trace=trace if trace is not None else ApduTrace(),
            config=config,
            cancel=cancel,
            prompt=tell,
        ),
        "scanner": lambda: _scanner_test(
            url_of("scanner", scanner_url), timeout=scan_timeout, cancel=cancel, prompt=tell
        ),
        "printer": lambda: _printer_test(
            url_of("printer", printer_url),
            print_page=print_test_page,
            terminal_id=config.terminal_id if config is not None else "",
        ),
        "host_link": lambda: _host_test(host, directory),
        "saf_queue": lambda: _saf_test(the_journal(), config, settings),
        "journal": lambda: _journal_test(the_journal()),
        "configuration": lambda: _configuration_test(directory, loaded, load_error, devices, devices_error, day),
        "keys": lambda: _keys_test(the_journal()),
    }
    results: list[DiagResult] = []
    try:
        for name in TEST_NAMES:
            if name not in wanted:
                results.append(_result(name, None, "not run"))
                continue
            results.append(_guard(name, runs[name]))
    finally:
        if journal is not None:
            journal.close()
    return results


# ----------------------------------------------------------------------------- posterm devices


def _probe(kind: str, url: str) -> tuple[str, str]:
    """Open and close the device: ("ok" | "error", what was seen)."""
    openers: dict[str, Callable[[str], Any]] = {
        "reader": registry.open_reader,
        "scanner": registry.open_scanner,
        "printer": registry.open_printer,
    }
    try:
        device = openers[kind](url)
    except Exception as exc:
        return "error", f"cannot be opened: {_error_text(exc)}"
    try:
        if kind == "printer":
            try:
                status = device.status()
            except Exception as exc:
                return "error", f"opened, status query failed: {_error_text(exc)}"
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
            out[scheme] = {"kind": "unavailable", "adapter": target, "error": mask_text(_error_text(exc))}
    return out


def list_devices(data_dir: Path, *, include_sim: bool = False, probe: bool = True) -> dict[str, Any]:
    """What is configured (with a quick status: opened and closed, or why not) and what is attached.

    Raises :class:`~terminal.devices.DeviceConfigError` when the device
    configuration cannot be read.  ``include_sim`` also lists every simulated
    card profile as a reader.
    """
    devices = load_devices(Path(data_dir))
    configured: dict[str, Any] = {}
    for kind in ("reader", "scanner", "printer"):
        url = devices.url(kind)
        entry: dict[str, Any] = {"url": url, "source": devices.sources.get(kind, "default")}
        if url is None:
            entry.update(status="none", reason="not configured")
        elif probe:
            status, reason = _probe(kind, url)
            entry.update(status=status, reason=mask_text(reason))
        else:
            entry.update(status="unknown", reason="not probed")
        configured[kind] = entry
        _log.info("device %s %s: %s (%s)", kind, url, entry["status"], entry["reason"])
    return {
        "configured": configured,
        "discovered": registry.discover_all(include_sim=include_sim),
        "drivers": _drivers(),
    }


# ----------------------------------------------------------------------------- support bundle

#: Distributions whose versions the support bundle reports.
PACKAGES: Final = (
    "posterm",
    "cryptography",
    "pyemv",
    "python-escpos",
    "httpx",
    "uvicorn",
    "starlette",
    "jsonschema",
    "pyscard",
    "nfcpy",
    "pyserial",
    "pyzbar",
    "pillow",
    "qrcode",
    "platformdirs",
    "kivy",
)
#: The only fields of the host-link enrolment the bundle shows (no certificate, no key path).
_ENROLMENT_FIELDS: Final = ("url", "terminal_id", "merchant_id", "enrolled_at", "certificate_not_after")
LOG_TAIL_BYTES: Final = 256 * 1024


def _posterm_version() -> str:
    try:
        return metadata.version("posterm")
    except metadata.PackageNotFoundError:
        return "unknown"


def versions() -> dict[str, Any]:
    """posterm, Python, the key packages and the operating system."""
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "posterm": _posterm_version(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "os": platform.platform(),
        "machine": platform.machine(),
        "packages": packages,
    }


def _settings_json(settings: TerminalSettings) -> dict[str, Any]:
    limits = settings.offline_limits
    return {
        "merchant_name": settings.merchant_name,
        "merchant_address": settings.merchant_address,
        "card_timeout_seconds": settings.card_timeout_seconds,
        "retention_years": settings.retention_years,
        "offline_limits": {
            "per_payment": {f"{k:03d}": v for k, v in sorted(limits.per_payment.items())},
            "total_per_currency": {f"{k:03d}": v for k, v in sorted(limits.total_per_currency.items())},
            "max_count": limits.max_count,
            "max_age_seconds": limits.max_age_seconds,
        },
        "saf_retry": {
            "base_seconds": settings.retry.base_seconds,
            "cap_seconds": settings.retry.cap_seconds,
            "jitter": settings.retry.jitter,
            "expire_after_seconds": settings.retry.expire_after_seconds,
        },
    }


def _enrolment(data_dir: Path) -> dict[str, Any]:
    path = data_dir / ENROLMENT_FILE
    if not path.exists():
        return {"enrolled": False}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {"enrolled": True, "error": f"{ENROLMENT_FILE} cannot be read: {type(exc).__name__}"}
    if not isinstance(doc, dict):
        return {"enrolled": True, "error": f"{ENROLMENT_FILE} is not an object"}
    return {"enrolled": True} | {k: doc[k] for k in _ENROLMENT_FIELDS if k in doc}


def configuration_summary(data_dir: Path) -> dict[str, Any]:
    """The configuration without secrets: no key, no certificate, no card data, no PAN hashes.

    The exception file (hashes of blocked PANs) and the revocation list are
    given as counts only; CA keys without their moduli.
    """
    directory = Path(data_dir)
    out: dict[str, Any] = {"data_dir": str(directory)}
    try:
        out["devices"] = load_devices(directory).to_json()
    except Exception as exc:
        out["devices"] = {"error": mask_text(_error_text(exc))}
    try:
        config, settings, version = load_configuration(directory)
    except Exception as exc:
        out["error"] = mask_text(_error_text(exc))
        return out
    terminal = config.to_dict()
    terminal["exception_file"] = {"entries": len(terminal.get("exception_file", []))}
    terminal["revocation_list"] = {"entries": len(terminal.get("revocation_list", []))}
    keys, _, _ = _capk_list(config, datetime.now(UTC).date())
    out |= {
        "parameters_version": version if version is not None else "shipped",
        "files": _configuration_files(directory),
        "terminal": terminal,
        "settings": _settings_json(settings),
        "capks": keys,
        "revoked_capks": [
            {"rid": rid.hex().upper(), "index": f"{index:02X}"} for rid, index in sorted(config.capks.revoked)
        ],
        "host_link": _enrolment(directory),
        "keystore": {
            "master_key_from": "environment" if os.environ.get(MASTER_KEY_ENV) else "file",
            "directory_exists": (directory / KEYS_DIR).is_dir(),
        },
    }
    return out


@dataclass(frozen=True)
class BundleInfo:
    """What :func:`export_bundle` wrote."""

    path: Path
    members: tuple[str, ...]
    results: tuple[DiagResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "output": str(self.path),
            "members": list(self.members),
            "diagnostics": summary(self.results),
        }


def _default_bundle_path(data_dir: Path, moment: datetime) -> Path:
    return data_dir / "support" / f"posterm-support-{moment:%Y%m%dT%H%M%SZ}.zip"


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[io.BufferedWriter]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".posterm-support-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, default=str) + "\n").encode("utf-8")


def export_bundle(
    data_dir: Path,
    output: Path | None = None,
    *,
    host: str | HostLink | None = "auto",
    reader_url: str | None = None,
    card_timeout: float = 5.0,
    log_bytes: int = LOG_TAIL_BYTES,
) -> BundleInfo:
    """Write the support bundle (a zip) and say what is in it.

    Members: ``manifest.json``, ``versions.json``, ``configuration.json``
    (:func:`configuration_summary`), ``devices.json`` (configured and
    discovered, probed), ``diagnostics.json`` (a run of every test but the
    scanner's, which would wait for a scan, and without a test page),
    ``apdu-trace.txt`` / ``apdu-trace.json`` (the reader test's exchanges,
    masked), ``saf.json`` (the queue's state, no card data) and
    ``logs/posterm.log`` (the tail of the log, masked again).  Default output:
    ``<data_dir>/support/posterm-support-<UTC time>.zip``.
    """
    directory = Path(data_dir)
    moment = datetime.now(UTC)
    path = Path(output) if output is not None else _default_bundle_path(directory, moment)
    trace = ApduTrace()
    results = run_diagnostics(
        directory,
        reader_url=reader_url,
        scanner_url="none",
        card_timeout=card_timeout,
        print_test_page=False,
        host=host,
        trace=trace,
    )
    results = [
        _result("scanner", None, "not run for the support bundle (it waits for a scan)") if r.name == "scanner" else r
        for r in results
    ]
    try:
        devices: dict[str, Any] = list_devices(directory)
    except Exception as exc:
        devices = {"error": mask_text(_error_text(exc))}
    saf = next((r for r in results if r.name == "saf_queue"), None)
    members: dict[str, bytes] = {
        "versions.json": _json_bytes(versions()),
        "configuration.json": _json_bytes(configuration_summary(directory)),
        "devices.json": _json_bytes(devices),
        "diagnostics.json": _json_bytes({"summary": summary(results), "tests": [r.to_json() for r in results]}),
        "apdu-trace.txt": ("\n".join(trace.lines()) + "\n").encode("utf-8"),
        "apdu-trace.json": _json_bytes(trace.to_json()),
        "saf.json": _json_bytes(saf.to_json() if saf is not None else {}),
        "logs/posterm.log": log_tail(directory, log_bytes).encode("utf-8"),
    }
    manifest = {
        "created_at": moment.isoformat(timespec="seconds"),
        "posterm": _posterm_version(),
        "members": sorted(members),
        "note": "no keys, no certificates, no card data; card numbers masked (first 6 / last 4 digits at most)",
    }
    members = {"manifest.json": _json_bytes(manifest)} | members
    with _atomic_output(path) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as bundle:
        stamp = moment.timetuple()[:6]
        for name, data in members.items():
            bundle.writestr(zipfile.ZipInfo(name, date_time=stamp), data, compress_type=zipfile.ZIP_DEFLATED)
    _log.info("support bundle written to %s (%d members)", path, len(members))
    return BundleInfo(path, tuple(members), tuple(results))


def results_json(results: Collection[DiagResult], **extra: Any) -> dict[str, Any]:
    """The one JSON object of ``posterm diag --json``."""
    return {**summary(results), **extra, "tests": [r.to_json() for r in results]}


def text_report(results: Collection[DiagResult]) -> str:
    """One line per test (``PASS`` / ``FAIL`` / ``SKIP``), warnings indented under it, and the verdict."""
    lines = []
    for r in results:
        lines.append(f"{r.status.upper():<5} {r.name:<14} {r.reason}")
        lines.extend(f"{'':<20}warning: {w}" for w in r.warnings)
    verdict = summary(results)
    counts = verdict["counts"]
    lines.append(
        f"{'all tests passed' if verdict['passed'] else 'FAILED: ' + ', '.join(verdict['failed'])} "
        f"({counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped)"
    )
    return "\n".join(lines)
