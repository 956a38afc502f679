"""The terminal's own checks in ``posterm diag``: host link, SAF queue, journal, keys, configuration.

Nothing here makes keys, recovers a payment or sends anything but the echo:
the data directory's keystore and journal are opened once
(:func:`open_journal`) and shared by the SAF, journal and key tests; the
configuration test checks the parameters in force and every CA public key
again (see :mod:`terminal.diagnostics` for what each test passes, fails and
warns on).  :func:`capk_list` and :func:`configuration_files` also serve the
support bundle's configuration summary.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Final

from emv.capk import checksum_of
from emv.config import TerminalConfig
from emv.pan import mask_text
from terminal.bootstrap import PARAMETERS_POINTER, open_host
from terminal.cbdc_params import cbdc_parameters
from terminal.devices import DeviceConfig
from terminal.diag_result import DiagResult, error_text, make_result
from terminal.facade import SafStatus, Terminal, TerminalSettings
from terminal.host import HostError, HostLink, HostNoAnswer, HostRejected, HostUnreachable
from terminal.keystore import CIPHERS, DEFAULT_CIPHER, MASTER_KEY_ENV, FileKeystore, KeystoreError
from terminal.limits import MAX_PARAMETERS_FILE_BYTES, MAX_STATE_FILE_BYTES, InputFileError, read_input, read_json_input
from terminal.ports import DeviceError
from terminal.settings import SettingsError, load_default_config, shipped_document
from terminal.store import StorageError, Store

__all__ = [
    "CAPK_EXPIRY_WARNING_DAYS",
    "JOURNAL_FILE",
    "KEYS_DIR",
    "NEAR_LIMIT",
    "SLOW_ECHO_SECONDS",
    "Journal",
    "capk_list",
    "configuration_files",
    "configuration_test",
    "host_test",
    "journal_test",
    "judge_saf",
    "keys_test",
    "open_journal",
    "saf_test",
]

CAPK_EXPIRY_WARNING_DAYS: Final = 90
NEAR_LIMIT: Final = 0.8  # share of an offline limit from which the SAF test warns
SLOW_ECHO_SECONDS: Final = 2.0
JOURNAL_FILE: Final = "journal.sqlite"
KEYS_DIR: Final = "keys"


# ----------------------------------------------------------------------------- host link


def host_test(host: str | HostLink | None, data_dir: Path) -> DiagResult:
    """``host_link``: an echo through ``host`` (a host name as ``open_host`` takes it, a link, or None)."""
    owned = False
    link: HostLink | None
    if isinstance(host, str):
        try:
            link = open_host(host, data_dir)
        except Exception as exc:
            return make_result("host_link", False, f"host {host!r} cannot be used: {error_text(exc)}", {"host": host})
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
        return make_result(
            "host_link", False, "no host link (--host none): payments can only be approved offline", {"host": None}
        )
    details: dict[str, Any] = {"host": str(getattr(link, "url", type(link).__name__))}
    terminal_id = getattr(link, "terminal_id", None)
    if isinstance(terminal_id, str):
        details["terminal_id"] = terminal_id
    echo_details = getattr(link, "echo_details", None)
    echo = getattr(link, "echo", None)
    if not callable(echo_details) and not callable(echo):
        return make_result("host_link", None, f"{details['host']}: this host link has no echo", details)
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
        failure = f"host unreachable: {error_text(exc)}"
    except HostNoAnswer as exc:
        failure = f"no answer to the echo: {error_text(exc)}"
    except HostRejected as exc:
        failure = f"the host refused the echo: {error_text(exc)}"
    except (HostError, DeviceError, OSError) as exc:
        failure = f"echo failed: {error_text(exc)}"
    last_error = getattr(link, "last_error", None)
    if isinstance(last_error, str):
        details["last_error"] = last_error
    if failure is not None:
        return make_result("host_link", False, f"{details['host']}: {failure}", details)
    details["round_trip_ms"] = round(seconds * 1000, 1)
    if seconds > SLOW_ECHO_SECONDS:
        details["warnings"] = [f"slow link: the echo took {seconds:.1f} s"]
    return make_result("host_link", True, f"{details['host']}: echo answered in {seconds * 1000:.0f} ms", details)


# ----------------------------------------------------------------------------- journal, SAF, keys


@dataclass
class Journal:
    """The data directory's keystore and store, opened once for the SAF, journal and key tests."""

    keystore: FileKeystore | None = None
    store: Store | None = None
    error: str | None = None
    absent: bool = False

    def close(self) -> None:
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()


def open_journal(data_dir: Path) -> Journal:
    """Read-only in spirit: keys are never made here, and nothing is recovered or sent."""
    journal = data_dir / JOURNAL_FILE
    keys = data_dir / KEYS_DIR
    if not journal.exists() and not keys.exists():
        return Journal(absent=True)
    try:
        keystore = FileKeystore.open(keys, create=False)
    except KeystoreError as exc:
        return Journal(error=f"keystore: {error_text(exc)}")
    except OSError as exc:
        return Journal(error=f"keystore: {exc.strerror or exc}")
    if not journal.exists() or journal.stat().st_size == 0:
        what = "missing" if not journal.exists() else "empty (0 bytes)"
        return Journal(
            keystore=keystore, error=f"journal {journal} is {what}, but the terminal's keys exist: restore it"
        )
    try:
        store = Store.open(journal, keystore, create=False, exclusive=False)  # diagnostics only read
    except (StorageError, KeystoreError, sqlite3.Error, OSError) as exc:
        return Journal(keystore=keystore, error=f"journal {journal}: {error_text(exc)}")
    return Journal(keystore=keystore, store=store)


def saf_test(journal: Journal, config: TerminalConfig | None, settings: TerminalSettings) -> DiagResult:
    """``saf_queue``: the queue's state from the journal, judged by :func:`judge_saf`."""
    if journal.absent and journal.store is None:
        return make_result("saf_queue", True, "queue empty (no payment made yet)", {"queued": 0})
    if journal.store is None:
        return make_result("saf_queue", False, f"the journal cannot be opened: {journal.error}")
    assert journal.keystore is not None
    terminal = Terminal(
        config=config or load_default_config(),
        store=journal.store,
        keystore=journal.keystore,
        host=None,
        settings=settings,
    )
    status = terminal.offline_status()
    return judge_saf(status, journal.store, settings)


def judge_saf(status: SafStatus, store: Store, settings: TerminalSettings) -> DiagResult:
    """The ``saf_queue`` verdict on a queue's state: fails past an offline limit or on an unseen decline."""
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
        return make_result("saf_queue", False, f"{what}; " + "; ".join(problems), details)
    return make_result("saf_queue", True, what, details)


def journal_test(journal: Journal) -> DiagResult:
    """``journal``: the journal's integrity, as ``posterm journal verify`` checks it."""
    if journal.absent and journal.store is None:
        return make_result("journal", None, "no journal yet: the terminal makes it with its first payment")
    if journal.store is None:
        return make_result("journal", False, f"the journal cannot be opened: {journal.error}")
    report = journal.store.verify()
    details: dict[str, Any] = {"rows": report.rows, "problems": report.problems}
    if report.ok:
        return make_result("journal", True, f"{report.rows} rows, chain intact, every row sealed", details)
    shown = "; ".join(report.problems[:3]) + (f"; and {len(report.problems) - 3} more" if len(report.problems) > 3
                                               else "")  # fmt: skip
    return make_result("journal", False, f"{len(report.problems)} problem(s): {shown}", details)


def keys_test(journal: Journal, cipher: str = DEFAULT_CIPHER) -> DiagResult:
    """``keys``: the key check values of the keystore's keys (never the keys), each data key with its cipher.

    ``cipher`` is the configured one (what new data is sealed with); the
    details count the values the journal holds under each cipher, so that a
    switch of cipher shows how much is still sealed with the old one.
    """
    if journal.keystore is None:
        if journal.error is not None:
            return make_result("keys", False, f"the keystore cannot be opened: {journal.error}")
        return make_result("keys", None, "no keys yet: the terminal makes them with its first payment")
    kcvs = journal.keystore.key_check_values()
    data_keys = [
        {"cipher": name, "kcv": kcvs[f"data:{name}"], "in_use": name == cipher}
        for name in CIPHERS
        if f"data:{name}" in kcvs
    ]
    details: dict[str, Any] = {
        "cipher": cipher,
        "data_keys": data_keys,
        "key_check_values": dict(sorted(kcvs.items())),
        "key_id": journal.keystore.key_id,
        "master_key_from": "environment" if os.environ.get(MASTER_KEY_ENV) else "file",
    }
    sealed = ""
    if journal.store is not None:
        counts: dict[str, int] = {}
        for first, count in journal.store.sealed_formats().items():
            name = FileKeystore.cipher_of(bytes([first])) or f"unknown format {first}"
            counts[name] = counts.get(name, 0) + count
        details["sealed_values"] = dict(sorted(counts.items()))
        if counts:
            sealed = "; values held: " + ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    keys = ", ".join(f"data ({k['cipher']}{', in use' if k['in_use'] else ''}) {k['kcv']}" for k in data_keys)
    others = ", ".join(f"{name} {kcv}" for name, kcv in sorted(kcvs.items()) if not name.startswith("data:"))
    text = f"data at rest sealed with {cipher}; {len(kcvs)} keys, check values: {keys}, {others}{sealed}"
    return make_result("keys", True, text, details)


# ----------------------------------------------------------------------------- configuration


def _sha256_file(path: Path) -> str | None:
    """SHA-256 of a file of a parameter version; None when it cannot be read or is over the size limit."""
    try:
        return hashlib.sha256(read_input(path, MAX_PARAMETERS_FILE_BYTES, "parameters file")).hexdigest()
    except InputFileError:
        return None


def configuration_files(data_dir: Path) -> dict[str, str | None]:
    """SHA-256 of each file of the configuration in force (terminal.json and its CA key files).

    The files of a downloaded version are read as :func:`terminal.bootstrap.load_configuration`
    reads them: the pointer and each file within their size limits (:mod:`terminal.limits`).
    """
    pointer = data_dir / PARAMETERS_POINTER
    out: dict[str, str | None] = {}
    if pointer.exists():
        try:
            current = read_json_input(pointer, MAX_STATE_FILE_BYTES, "parameters pointer")
            base = data_dir / "parameters" / str(current["dir"])
            doc = read_json_input(base / "terminal.json", MAX_PARAMETERS_FILE_BYTES, "parameters file")
        except (OSError, ValueError, KeyError, TypeError):  # InputFileError is a ValueError
            return out
        if not isinstance(doc, dict):
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


def capk_list(config: TerminalConfig, today: date) -> tuple[list[dict[str, Any]], list[str], list[str]]:
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


def configuration_test(
    data_dir: Path,
    loaded: tuple[TerminalConfig, TerminalSettings, int | None] | None,
    load_error: str | None,
    devices: DeviceConfig | None,
    devices_error: str | None,
    today: date,
) -> DiagResult:
    """``configuration``: the parameters in force, every CA key and digital-currency root (``loaded``: or None)."""
    details: dict[str, Any] = {}
    problems: list[str] = []
    warnings: list[str] = []
    if devices is not None:
        details["devices"] = devices.to_json()
    if devices_error is not None:
        problems.append(f"device configuration: {devices_error}")
    if loaded is None:
        return make_result("configuration", False, f"the configuration cannot be loaded: {load_error}", details)
    config, _, version = loaded
    details["parameters_version"] = version if version is not None else "shipped"
    details["files"] = configuration_files(data_dir)
    details["terminal_id"] = config.terminal_id
    details["merchant_id"] = config.merchant_id
    keys, key_problems, key_warnings = capk_list(config, today)
    details["capks"] = keys
    details["revoked_capks"] = len(config.capks.revoked)
    problems += key_problems
    warnings += key_warnings
    if not keys:
        problems.append("no CA public key: offline data authentication fails for every card")
    details["warnings"] = warnings
    where = f"parameters version {version}" if version is not None else "shipped configuration"
    text = f"{where}; {len(keys)} CA keys, checksums {'verified' if not key_problems else 'NOT all verified'}"
    try:  # the digital-currency roots: their SM3 checksums checked again, as the CA keys' are
        cbdc = cbdc_parameters(data_dir)
    except SettingsError as exc:
        details["cbdc"] = None
        problems.append(f"digital-currency parameters refused: {exc}")
    else:
        details["cbdc"] = cbdc.to_json() if cbdc is not None else None
        if cbdc is not None:
            text += f"; digital currency version {cbdc.version}, {len(cbdc.roots)} roots, checksums verified"
    if problems:
        return make_result("configuration", False, f"{text}; " + "; ".join(problems), details)
    return make_result("configuration", True, text, details)
