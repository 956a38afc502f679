"""The support bundle of ``posterm diag export``: versions, a configuration without secrets, a log tail, a trace.

:func:`write_bundle` writes the zip from what :func:`terminal.diagnostics.export_bundle`
gathered (the diagnostics' results, their APDU trace, the devices), adding
:func:`versions`, :func:`configuration_summary` and the tail of the log.
Nothing in it is a key, a certificate or card data: card numbers are masked
(first 6 / last 4 digits at most), the enrolment is reduced to its public
fields and the exception file to a count.  Files of the data directory are
read within the size limits of :mod:`terminal.limits`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import sqlite3
import sys
import tempfile
import zipfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from emv.pan import mask_text
from terminal.apdu_trace import ApduTrace
from terminal.bootstrap import ENROLMENT_FILE, load_configuration
from terminal.devices import load_devices
from terminal.diag_checks import KEYS_DIR, capk_list, configuration_files
from terminal.diag_result import DiagResult, error_text, posterm_version, summary
from terminal.facade import TerminalSettings
from terminal.files import make_private_dir
from terminal.keystore import MASTER_KEY_ENV
from terminal.limits import MAX_STATE_FILE_BYTES, InputFileError, read_json_input
from terminal.logfile import log_tail

__all__ = [
    "LOG_TAIL_BYTES",
    "PACKAGES",
    "BundleInfo",
    "configuration_summary",
    "default_bundle_path",
    "versions",
    "write_bundle",
]

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


def versions() -> dict[str, Any]:
    """posterm, Python, the key packages and the operating system."""
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "posterm": posterm_version(),
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
        "pin_on_refund": settings.pin_on_refund,  # the acquirer's "PIN for refund" (terminal.refund_pin)
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
    """The enrolment's public fields, read as the host link reads it (within its size limit)."""
    path = data_dir / ENROLMENT_FILE
    if not path.exists():
        return {"enrolled": False}
    try:
        doc = read_json_input(path, MAX_STATE_FILE_BYTES, "host link enrolment")
    except InputFileError as exc:
        return {"enrolled": True, "error": mask_text(str(exc))}
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
        out["devices"] = {"error": mask_text(error_text(exc))}
    try:
        config, settings, version = load_configuration(directory)
    except Exception as exc:
        out["error"] = mask_text(error_text(exc))
        return out
    terminal = config.to_dict()
    terminal["exception_file"] = {"entries": len(terminal.get("exception_file", []))}
    terminal["revocation_list"] = {"entries": len(terminal.get("revocation_list", []))}
    keys, _, _ = capk_list(config, datetime.now(UTC).date())
    out |= {
        "parameters_version": version if version is not None else "shipped",
        "files": configuration_files(directory),
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
    """What :func:`terminal.diagnostics.export_bundle` wrote."""

    path: Path
    members: tuple[str, ...]
    results: tuple[DiagResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "output": str(self.path),
            "members": list(self.members),
            "diagnostics": summary(self.results),
        }


def default_bundle_path(data_dir: Path, moment: datetime) -> Path:
    """``<data_dir>/support/posterm-support-<UTC time>.zip``."""
    return data_dir / "support" / f"posterm-support-{moment:%Y%m%dT%H%M%SZ}.zip"


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[io.BufferedWriter]:
    if not path.parent.exists():  # a folder made for the bundle (the data directory's support/) is private
        make_private_dir(path.parent)
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


def write_bundle(
    path: Path,
    data_dir: Path,
    *,
    moment: datetime,
    results: Collection[DiagResult],
    trace: ApduTrace,
    devices: dict[str, Any],
    log_bytes: int = LOG_TAIL_BYTES,
) -> BundleInfo:
    """Write the support bundle at ``path`` (whole, or not at all) and say what is in it.

    ``results`` are the diagnostics run for it, ``trace`` their APDU trace and
    ``devices`` what :func:`terminal.diag_devices.list_devices` found; the
    versions, the configuration summary of ``data_dir`` and the tail of its log
    are added here, with a manifest first.
    """
    saf = next((r for r in results if r.name == "saf_queue"), None)
    members: dict[str, bytes] = {
        "versions.json": _json_bytes(versions()),
        "configuration.json": _json_bytes(configuration_summary(data_dir)),
        "devices.json": _json_bytes(devices),
        "diagnostics.json": _json_bytes({"summary": summary(results), "tests": [r.to_json() for r in results]}),
        "apdu-trace.txt": ("\n".join(trace.lines()) + "\n").encode("utf-8"),
        "apdu-trace.json": _json_bytes(trace.to_json()),
        "saf.json": _json_bytes(saf.to_json() if saf is not None else {}),
        "logs/posterm.log": log_tail(data_dir, log_bytes).encode("utf-8"),
    }
    manifest = {
        "created_at": moment.isoformat(timespec="seconds"),
        "posterm": posterm_version(),
        "members": sorted(members),
        "note": "no keys, no certificates, no card data; card numbers masked (first 6 / last 4 digits at most)",
    }
    members = {"manifest.json": _json_bytes(manifest)} | members
    with _atomic_output(path) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as bundle:
        stamp = moment.timetuple()[:6]
        for name, data in members.items():
            bundle.writestr(zipfile.ZipInfo(name, date_time=stamp), data, compress_type=zipfile.ZIP_DEFLATED)
    return BundleInfo(path, tuple(members), tuple(results))
