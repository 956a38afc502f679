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
    its files, the device configuration, every CA public key with its
    RID, index and SHA-1 checksum verified again, and the digital-currency
    section (version, roots with their SM3 checksums verified again, block
    lists, limits).  Fails when the configuration cannot be loaded, a key's
    or root's checksum does not match, or there is no CA key at all.  Keys expired or expiring within
    :data:`CAPK_EXPIRY_WARNING_DAYS` days are warnings.
``keys``
    Key check values of the keystore's keys (never the keys): the data key of
    each cipher (AES-256-GCM, SM4-GCM) named with it, the configured one marked
    in use, how many values the journal holds under each, the master and MAC
    keys.  Fails when the
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

This module is the public face of the diagnostics; the parts live beside it:

- :mod:`terminal.diag_result`: :class:`DiagResult`, the verdict and the reports;
- :mod:`terminal.diag_devices`: the reader, scanner and printer tests, the
  test page, ``posterm devices``;
- :mod:`terminal.diag_checks`: the host link, SAF queue, journal, keys and
  configuration tests;
- :mod:`terminal.diag_bundle`: the support bundle's contents (versions, the
  configuration without secrets, the log tail) and its writing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from emv.config import TerminalConfig
from emv.pan import mask_text
from terminal.apdu_trace import ApduTrace
from terminal.bootstrap import load_configuration
from terminal.devices import DeviceConfig, load_devices
from terminal.diag_bundle import (
    LOG_TAIL_BYTES,
    PACKAGES,
    BundleInfo,
    configuration_summary,
    default_bundle_path,
    versions,
    write_bundle,
)
from terminal.diag_checks import CAPK_EXPIRY_WARNING_DAYS, Journal, open_journal
from terminal.diag_checks import configuration_test as _configuration_test
from terminal.diag_checks import host_test as _host_test
from terminal.diag_checks import journal_test as _journal_test
from terminal.diag_checks import keys_test as _keys_test
from terminal.diag_checks import saf_test as _saf_test
from terminal.diag_devices import list_devices, render_test_page
from terminal.diag_devices import printer_test as _printer_test
from terminal.diag_devices import reader_test as _reader_test
from terminal.diag_devices import scanner_test as _scanner_test
from terminal.diag_result import DiagResult, error_text, make_result, results_json, summary, text_report
from terminal.facade import TerminalSettings
from terminal.host import HostLink
from terminal.ports import CancelToken, DeviceError
from terminal.settings import SettingsError, load_default_settings

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


def _guard(name: str, test: Callable[[], DiagResult]) -> DiagResult:
    """Run one test; an exception it lets out becomes a failed result (nothing escapes)."""
    try:
        result = test()
    except Exception as exc:
        _log.exception("diagnostic test %s raised", name)
        result = make_result(name, False, f"unexpected error: {type(exc).__name__}: {error_text(exc)}")
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
        devices_error = error_text(exc)
    loaded: tuple[TerminalConfig, TerminalSettings, int | None] | None = None
    load_error: str | None = None
    try:
        loaded = load_configuration(directory)
    except (SettingsError, OSError) as exc:
        load_error = error_text(exc)
    except Exception as exc:
        load_error = f"{type(exc).__name__}: {error_text(exc)}"
    config = loaded[0] if loaded is not None else None
    settings = loaded[1] if loaded is not None else load_default_settings()

    def url_of(kind: str, given: str | None) -> str | None:
        if given is not None:
            return None if given.strip().lower() in ("none", "") else given.strip()
        if devices is None:
            raise DeviceError(f"the device configuration cannot be read: {devices_error}")
        return devices.url(kind)

    journal: Journal | None = None

    def the_journal() -> Journal:
        nonlocal journal
        if journal is None:
            journal = open_journal(directory)
        return journal

    # Each test is called through this module's name for it (``_saf_test``...), looked up at run
    # time, so that a test of the diagnostics can replace one (and see that nothing escapes).
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
        "keys": lambda: _keys_test(the_journal(), settings.keystore_cipher),
    }
    results: list[DiagResult] = []
    try:
        for name in TEST_NAMES:
            if name not in wanted:
                results.append(make_result(name, None, "not run"))
                continue
            results.append(_guard(name, runs[name]))
    finally:
        if journal is not None:
            journal.close()
    return results


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
    path = Path(output) if output is not None else default_bundle_path(directory, moment)
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
        make_result("scanner", None, "not run for the support bundle (it waits for a scan)")
        if r.name == "scanner"
        else r
        for r in results
    ]
    try:
        devices: dict[str, Any] = list_devices(directory)
    except Exception as exc:
        devices = {"error": mask_text(error_text(exc))}
    info = write_bundle(
        path, directory, moment=moment, results=results, trace=trace, devices=devices, log_bytes=log_bytes
    )
    _log.info("support bundle written to %s (%d members)", info.path, len(info.members))
    return info
