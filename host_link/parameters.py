"""Parameter download: versioned, verified before it is applied, applied atomically, the previous version kept.

The layout under ``<data_dir>/parameters/`` is a contract with
:mod:`terminal.bootstrap`::

    current.json          {"version": N, "dir": "v00000N"}   (the version in force)
    v00000N/terminal.json the download's ``config`` + "capk_files": ["capks.json"] + "capk_kinds"
    v00000N/capks.json    {"keys": [...the download's capks...]}

Applying version N: the download is verified (below), written to a temporary
directory with every file fsynced, renamed to ``v00000N``, and only then
``current.json`` is replaced (temporary file, fsync, ``os.replace``, fsync of
the directory).  A failure or a crash at any point before that last rename
leaves ``current.json`` as it was: the old version stays in force and a
half-written directory is never pointed at.  The previous version's directory
is kept, so that :func:`rollback` can point ``current.json`` back at it (one
step back); other version directories are removed.

Verified before anything is applied:

- the version is strictly greater than the one in force;
- every CA public key is well formed with a matching SHA-1 checksum, with a
  ``kind``, no (RID, index) twice (checked on all keys, whatever their kind);
- :func:`terminal.settings.load_config` and :func:`terminal.settings.load_settings`
  accept the new ``terminal.json`` (the same code that will load it);
- the offline limits and retry settings are within :data:`LIMITS`;
- ``terminal_id`` / ``merchant_id``, when the config names them, are the
  enrolled terminal's.

``capk_kinds`` lists the kinds of the keys present, narrowed to the config's
own ``capk_kinds`` when it has one: a download never widens trust to a kind of
key (say ``live``) that its own configuration does not name.

The download's ``cbdc`` section (digital-currency trust roots with their SM3
checksums, blocked wallets and operators, offline limits, its own version:
CBDC-SPEC §8) is verified by :func:`host_link.cbdc_parameters.verify_cbdc`
(a bad checksum refuses the whole download) and written into the version's
``terminal.json`` as ``cbdc``: applied in the same switch as the CA keys.  A
download without it leaves the terminal without digital currency (as with CA
keys, a download replaces the shipped trust); a ``cbdc`` inside ``config``
(a copy of a shipped terminal.json) is dropped, so that the trust comes from
one place only, the section verified here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from emv.capk import CapkError, CapkStore
from host_link.cbdc_parameters import CbdcParametersError, verify_cbdc
from terminal import files as _fs
from terminal.limits import MAX_PARAMETERS_FILE_BYTES, MAX_STATE_FILE_BYTES, InputFileError, read_json_input
from terminal.offline import OfflineLimits
from terminal.settings import SettingsError, load_config, load_settings

__all__ = [
    "LIMITS",
    "ParameterSource",
    "ParameterStatus",
    "ParametersError",
    "apply",
    "current_version",
    "download_and_apply",
    "parameters_dir",
    "rollback",
    "status",
    "verify",
]

PARAMETERS_DIR = "parameters"
CURRENT_FILE = "current.json"
CAPK_FILE = "capks.json"
CONFIG_FILE = "terminal.json"
_VERSION_DIR = re.compile(r"v(\d{6,})")
MAX_VERSION = 999_999
MAX_AMOUNT = 999_999_999_999

#: Ranges outside which a downloaded setting is refused (inclusive bounds).
LIMITS: dict[str, tuple[float, float]] = {
    "offline_limits.per_payment": (0, MAX_AMOUNT),
    "offline_limits.total_per_currency": (0, MAX_AMOUNT),
    "offline_limits.max_count": (0, 10_000),
    "offline_limits.max_age_seconds": (0, 30 * 24 * 3600),
    "saf_retry.base_seconds": (0.1, 3600),
    "saf_retry.cap_seconds": (0.1, 24 * 3600),
    "saf_retry.jitter": (0, 1),
    "saf_retry.expire_after_seconds": (3600, 90 * 24 * 3600),
    "card_timeout_seconds": (1, 300),
    "retention_years": (1, 30),
}


class ParametersError(Exception):
    """A download refused, or a layout that cannot be used; the message says which field or file."""


class ParameterSource(Protocol):
    """What :func:`download_and_apply` needs of a host link (:class:`host_link.client.HttpsHostLink`)."""

    terminal_id: str
    merchant_id: str

    def fetch_parameters(self, have: int | None) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class ParameterStatus:
    current: int | None
    previous: int | None  # the version rollback would return to
    versions: tuple[int, ...]  # every complete version directory on disk

    def to_json(self) -> dict[str, Any]:
        return {"current": self.current, "previous": self.previous, "versions": list(self.versions)}


@dataclass(frozen=True)
class VerifiedParameters:
    """A download that passed every check, ready to be written."""

    version: int
    terminal_json: dict[str, Any]
    capks_json: dict[str, Any]


def parameters_dir(data_dir: Path) -> Path:
    return Path(data_dir) / PARAMETERS_DIR


def version_dir_name(version: int) -> str:
    """``v000007`` for version 7."""
    return f"v{version:06d}"


# ----------------------------------------------------------------------------- reading the layout


def _read_current(base: Path) -> int | None:
    path = base / CURRENT_FILE
    if not os.path.lexists(path):
        return None
    try:
        doc = read_json_input(path, MAX_STATE_FILE_BYTES, "parameters pointer")
    except InputFileError as exc:
        raise ParametersError(str(exc)) from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or doc.get("dir") != version_dir_name(version):
        raise ParametersError(f'{path} is damaged: expected {{"version": N, "dir": "v00000N"}}')
    return version


def current_version(data_dir: Path) -> int | None:
    """The version in force, ``None`` when no download was ever applied (the shipped configuration)."""
    return _read_current(parameters_dir(data_dir))


def _complete_versions(base: Path) -> list[int]:
    if not base.is_dir():
        return []
    out = []
    for entry in base.iterdir():
        match = _VERSION_DIR.fullmatch(entry.name)
        if match and (entry / CONFIG_FILE).is_file() and (entry / CAPK_FILE).is_file():
            out.append(int(match.group(1)))
    return sorted(out)


def _previous(versions: list[int], current: int | None) -> int | None:
    older = [v for v in versions if current is not None and v < current]
    return older[-1] if older else None


def status(data_dir: Path) -> ParameterStatus:
    base = parameters_dir(data_dir)
    current = _read_current(base)
    versions = _complete_versions(base)
    return ParameterStatus(current, _previous(versions, current), tuple(versions))


# ----------------------------------------------------------------------------- verification


def _plain(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _number(value: Any, name: str, *, whole: bool = False) -> float:
    kinds = int if whole else int | float
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ParametersError(f"config.{name}: expected a {'whole ' if whole else ''}number")
    low, high = LIMITS[name]
    if not low <= value <= high:
        raise ParametersError(f"config.{name}: {value} is out of range ({_plain(low)} to {_plain(high)})")
    return float(value)


def _check_ranges(config: Mapping[str, Any]) -> None:
    raw = config.get("offline_limits")
    if raw is not None:
        if not isinstance(raw, Mapping):
            raise ParametersError("config.offline_limits: expected an object")
        for key in ("max_count", "max_age_seconds"):
            if key in raw:
                _number(raw[key], f"offline_limits.{key}", whole=True)
        try:
            limits = OfflineLimits.from_dict(raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise ParametersError(f"config.offline_limits: {exc}") from None
        for code, amount in limits.per_payment.items():
            _number(amount, "offline_limits.per_payment")
            if amount > limits.total_per_currency.get(code, 0):
                raise ParametersError(
                    f"config.offline_limits: per_payment of currency {code:03d} is above its total_per_currency"
                )
        for amount in limits.total_per_currency.values():
            _number(amount, "offline_limits.total_per_currency")
    retry = config.get("saf_retry")
    if retry is not None:
        if not isinstance(retry, Mapping):
            raise ParametersError("config.saf_retry: expected an object")
        for key in ("base_seconds", "cap_seconds", "jitter", "expire_after_seconds"):
            if key in retry:
                _number(retry[key], f"saf_retry.{key}")
        if "base_seconds" in retry and "cap_seconds" in retry and retry["cap_seconds"] < retry["base_seconds"]:
            raise ParametersError("config.saf_retry: cap_seconds is below base_seconds")
    for key in ("card_timeout_seconds", "retention_years"):
        if key in config:
            _number(config[key], key, whole=key == "retention_years")


def _check_capks(capks: Any) -> list[str]:
    """Verify every key (checksums, fields, duplicates); the kinds present, sorted."""
    if not isinstance(capks, list):
        raise ParametersError("capks: expected a list")
    kinds: set[str] = set()
    for i, entry in enumerate(capks):
        if not isinstance(entry, Mapping):
            raise ParametersError(f"capks[{i}]: expected an object")
        kind = entry.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ParametersError(f"capks[{i}]: kind is missing")
        kinds.add(kind)
    try:
        CapkStore.from_entries(capks, strict=True)
    except CapkError as exc:
        raise ParametersError(f"CA public keys refused: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ParametersError(f"CA public keys refused: {exc}") from None
    return sorted(kinds)


def verify(
    download: Mapping[str, Any],
    *,
    current: int | None,
    terminal_id: str | None = None,
    merchant_id: str | None = None,
    scratch: Path | None = None,
    cbdc_in_force: int | None = None,
) -> VerifiedParameters:
    """Check a download (see the module's docstring); raise :class:`ParametersError` naming what is wrong.

    ``scratch`` is an empty directory where the files are written to be loaded
    by the terminal's own loaders; :func:`apply` passes the directory that will
    become the version's.  ``cbdc_in_force``: the version of the ``cbdc``
    section in force, which the download's must not be older than.
    """
    version = download.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise ParametersError(f"version: expected a whole number from 1 to {MAX_VERSION}")
    if current is not None and version <= current:
        raise ParametersError(f"version {version} is not newer than the version in force ({current})")
    config = download.get("config")
    if not isinstance(config, Mapping):
        raise ParametersError("config: expected an object")
    kinds = _check_capks(download.get("capks"))
    own_kinds = config.get("capk_kinds")
    if own_kinds is not None:
        if not isinstance(own_kinds, list) or not all(isinstance(k, str) for k in own_kinds):
            raise ParametersError("config.capk_kinds: expected a list of names")
        kinds = [k for k in kinds if k in own_kinds]
    for name, expected in (("terminal_id", terminal_id), ("merchant_id", merchant_id)):
        if expected is not None and name in config and config[name] != expected:
            raise ParametersError(f"config.{name}: {config[name]!r} is not this terminal's ({expected!r})")
    _check_ranges(config)
    cbdc_section = None
    if download.get("cbdc") is not None:
        try:
            cbdc_section = verify_cbdc(download["cbdc"], in_force=cbdc_in_force)
        except CbdcParametersError as exc:
            raise ParametersError(f"digital-currency parameters refused: {exc}") from None
    # a cbdc inside config (a copy of a shipped terminal.json) is not trust: only the verified section is
    terminal_json = {k: v for k, v in config.items() if k not in ("capk_files", "capk_kinds", "cbdc")}
    terminal_json["capk_files"] = [CAPK_FILE]
    terminal_json["capk_kinds"] = kinds
    if cbdc_section is not None:
        terminal_json["cbdc"] = cbdc_section
    capks_json = {"keys": list(download["capks"])}
    verified = VerifiedParameters(version, terminal_json, capks_json)
    if scratch is not None:
        _write_files(scratch, verified)
        _check_loadable(scratch, verified)
    return verified


def _check_loadable(directory: Path, verified: VerifiedParameters) -> None:
    doc = verified.terminal_json
    try:
        config = load_config(doc, base=directory)
        load_settings(doc)
    except SettingsError as exc:
        raise ParametersError(f"version {verified.version} refused: {exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ParametersError(f"version {verified.version} refused: {type(exc).__name__}: {exc}") from None
    expected = sum(1 for k in verified.capks_json["keys"] if k.get("kind") in doc["capk_kinds"])
    if len(config.capks) != expected:  # pragma: no cover - load_config filters by the same kinds
        raise ParametersError(f"version {verified.version} refused: {len(config.capks)} of {expected} CA keys loaded")


# ----------------------------------------------------------------------------- writing


def _write_files(directory: Path, verified: VerifiedParameters) -> None:
    for name, doc in ((CAPK_FILE, verified.capks_json), (CONFIG_FILE, verified.terminal_json)):
        _fs.atomic_write(directory / name, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def _switch_current(base: Path, version: int) -> None:
    """The commit point: ``current.json`` names ``version``."""
    doc = {"version": version, "dir": version_dir_name(version)}
    _fs.atomic_write(base / CURRENT_FILE, (json.dumps(doc) + "\n").encode("utf-8"))


@contextlib.contextmanager
def _locked(base: Path) -> Iterator[None]:
    """One writer at a time per data directory (an advisory lock on ``parameters/.lock``)."""
    _fs.make_private_dir(base)
    fd = os.open(base / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        yield
    finally:
        os.close(fd)


def _prune(base: Path, keep: set[int]) -> None:
    """Remove every version directory but ``keep``, and leftovers of interrupted applies.

    Only the version in force and the one before it stay, so that "previous"
    always means the version that was in force before the last download (never
    an orphan that a crash left unapplied).
    """
    for entry in base.iterdir():
        match = _VERSION_DIR.fullmatch(entry.name)
        stale_tmp = entry.name.startswith(".v") and entry.name.endswith(".tmp")
        if (match and int(match.group(1)) not in keep) or stale_tmp:
            shutil.rmtree(entry, ignore_errors=True)


def _cbdc_version(base: Path, current: int | None) -> int | None:
    """The version of the ``cbdc`` section of the version in force; None when none was downloaded."""
    if current is None:
        return None
    path = base / version_dir_name(current) / CONFIG_FILE
    try:
        doc = read_json_input(path, MAX_PARAMETERS_FILE_BYTES, "parameters file")
    except InputFileError as exc:
        raise ParametersError(f"the version in force cannot be read ({exc}); 'posterm params rollback'") from None
    section = doc.get("cbdc") if isinstance(doc, dict) else None
    version = section.get("version") if isinstance(section, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def apply(
    download: Mapping[str, Any],
    data_dir: Path,
    *,
    terminal_id: str | None = None,
    merchant_id: str | None = None,
) -> int:
    """Verify ``download`` and make it the version in force; its version number.

    Raises :class:`ParametersError` (nothing changed: the version in force is untouched).
    """
    base = parameters_dir(data_dir)
    with _locked(base):
        current = _read_current(base)
        cbdc_in_force = _cbdc_version(base, current)
        scratch = base / f".v{secrets.token_hex(4)}.tmp"
        scratch.mkdir(mode=0o755)
        try:
            verified = verify(
                download,
                current=current,
                terminal_id=terminal_id,
                merchant_id=merchant_id,
                scratch=scratch,
                cbdc_in_force=cbdc_in_force,
            )
            for name in (CAPK_FILE, CONFIG_FILE):  # make the verified files durable where they are
                fd = os.open(scratch / name, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            _fs.fsync_dir(scratch)
            target = base / version_dir_name(verified.version)
            if target.exists():  # an orphan of an interrupted apply, or a version rolled back from
                shutil.rmtree(target)
            os.replace(scratch, target)
            _fs.fsync_dir(base)
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
        _switch_current(base, verified.version)
        _prune(base, {verified.version} | ({current} if current is not None else set()))
        return verified.version


def rollback(data_dir: Path) -> int:
    """Put the previous version back in force; the version now in force."""
    base = parameters_dir(data_dir)
    with _locked(base):
        current = _read_current(base)
        if current is None:
            raise ParametersError("no parameters were ever downloaded: nothing to roll back")
        previous = _previous(_complete_versions(base), current)
        if previous is None:
            raise ParametersError(f"version {current} is the only one kept: nothing to roll back to")
        _switch_current(base, previous)
        return previous


def download_and_apply(link: ParameterSource, data_dir: Path) -> int | None:
    """Ask the host for a newer version and apply it; the new version, or ``None`` if already current.

    Raises :class:`~terminal.host.HostError` from the host and
    :class:`ParametersError` for a refused download.
    """
    have = current_version(data_dir)
    download = link.fetch_parameters(have)
    if download is None:
        return None
    return apply(download, data_dir, terminal_id=link.terminal_id, merchant_id=link.merchant_id)
