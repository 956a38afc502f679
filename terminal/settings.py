"""The terminal's configuration as shipped data, loaded on demand.

``terminal/data/terminal.json`` holds the EMV terminal configuration (see
:meth:`emv.config.TerminalConfig.from_dict`) plus which CA public keys to trust:
``capk_files`` (files in terminal/data), ``capk_kinds`` (``test``, ``simulator``,
``live``) and ``revoked_capks`` (``[{"rid", "index"}]``).  The default trusts
the public EMV *test* keys and the simulator's own keys, never live keys:
a test card must not pass on a production terminal, nor the reverse.

A ``devices`` object (``{"reader": URL, "scanner": URL, "printer": URL}``, see
:mod:`terminal.devices`) is the terminal's own too, not EMV configuration, and
so is ``keystore``: ``{"cipher": "aes-256-gcm" | "sm4-gcm"}``, the cipher that
seals card data at rest (:mod:`terminal.keystore`; AES-256-GCM when absent),
and ``qr``: what the terminal's merchant-presented QR codes carry (see
:mod:`terminal.qr_merchant`).

``pin_on_refund`` (``"never"``, the default, or ``"online"``) is the
acquirer's "PIN for refund": whether a refund that reads a card asks the
cardholder's PIN on the PIN pad and sends it to the issuer
(:mod:`terminal.refund_pin`); any other value refuses the configuration.

A ``cbdc`` object (CBDC-SPEC section 8: trust roots with their checksums, the
wallets and operators blocked, the offline limits per currency) makes the
terminal take digital-currency hard wallets: the settings carry it as a
``cbdc.checks.TrustStore`` (a bad checksum refuses the whole configuration),
and the wallet's combination (its AID with the domestic kernel ``81 01 56``)
joins the EMV ones, so that Entry Point selects a wallet beside the cards.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emv.capk import CapkError, CapkStore
from emv.config import ConfigError, TerminalConfig

if TYPE_CHECKING:
    from terminal.facade import TerminalSettings

__all__ = [
    "SettingsError",
    "load_config",
    "load_default_config",
    "load_default_settings",
    "load_settings",
    "shipped_document",
]

_log = logging.getLogger(__name__)

_OWN_KEYS = (
    "capk_files",
    "capk_kinds",
    "revoked_capks",
    "about",
    "merchant_name",
    "merchant_address",
    "offline_limits",
    "saf_retry",
    "card_timeout_seconds",
    "retention_years",
    "devices",
    "cbdc",
    "keystore",
    "qr",
    "pin_on_refund",
)


#: The hard wallet's combination (CBDC-SPEC section 4): its AID, and the domestic kernel ``81 01 56`` of its
#: PPSE entry, configured when the parameters have a ``cbdc`` section.
WALLET_COMBINATION: dict[str, Any] = {"aid": "F0504F5354434244430101", "kernel_id": 0x810156, "label": "DIGITAL CNY"}


class SettingsError(Exception):
    """The configuration cannot be used; the message names the file and field."""


def _data_file(name: str) -> Any:
    return resources.files("terminal").joinpath("data", name)


def _read_json(source: Any, what: str) -> Any:
    """A shipped data file (a package resource), or a file of a parameter version (a Path, read bounded)."""
    if isinstance(source, Path):
        from terminal.limits import MAX_PARAMETERS_FILE_BYTES, InputFileError, read_json_input

        try:
            return read_json_input(source, MAX_PARAMETERS_FILE_BYTES, what)
        except InputFileError as exc:
            raise SettingsError(str(exc)) from None
    try:
        return json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{what} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SettingsError(f"{what} cannot be read: {exc}") from None


def load_config(doc: Mapping[str, Any], base: Path | None = None) -> TerminalConfig:
    """Build the terminal configuration from a mapping in the format of terminal.json."""
    kinds = set(doc.get("capk_kinds", ["test", "simulator"]))
    entries: list[dict[str, Any]] = []
    for name in doc.get("capk_files", ["capks-public.json", "capks-simulator.json"]):
        source = base / name if base is not None else _data_file(name)
        keys = _read_json(source, f"CA key file {name}").get("keys", [])
        entries.extend(k for k in keys if k.get("kind") in kinds)
    revoked = {
        (bytes.fromhex(r["rid"]), int(r["index"], 16) if isinstance(r["index"], str) else int(r["index"]))
        for r in doc.get("revoked_capks", [])
    }
    try:
        capks = CapkStore.from_entries(entries, revoked=revoked)
    except CapkError as exc:
        raise SettingsError(f"CA public keys refused: {exc}") from None
    emv_part = {k: v for k, v in doc.items() if k not in _OWN_KEYS}
    if "cbdc" in doc and isinstance(emv_part.get("combinations"), list) and emv_part["combinations"]:
        aids = {str(c.get("aid", "")).upper() for c in emv_part["combinations"] if isinstance(c, Mapping)}
        if WALLET_COMBINATION["aid"] not in aids:
            emv_part["combinations"] = [*emv_part["combinations"], WALLET_COMBINATION]
    try:
        config = TerminalConfig.from_dict(emv_part, capks=capks)
    except ConfigError as exc:
        raise SettingsError(f"terminal configuration: {exc}") from None
    # PIN claims without a PIN pad are masked off, not refused (emv.capabilities): say so.
    for note in config.capability_notes:
        _log.warning("terminal configuration: %s", note)
    return config


@lru_cache(maxsize=1)
def _shipped() -> str:
    return str(_data_file("terminal.json").read_text(encoding="utf-8"))


def shipped_document() -> dict[str, Any]:
    """A fresh copy of terminal/data/terminal.json as a mapping (the file is read once)."""
    try:
        doc = json.loads(_shipped())
    except FileNotFoundError:
        raise SettingsError("terminal/data/terminal.json not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SettingsError(f"terminal/data/terminal.json cannot be read: {exc}") from None
    if not isinstance(doc, dict):
        raise SettingsError("terminal/data/terminal.json: expected a JSON object")
    return doc


@lru_cache(maxsize=1)
def load_default_config() -> TerminalConfig:
    """The configuration shipped in terminal/data/terminal.json (read once)."""
    return load_config(_read_json(_data_file("terminal.json"), "terminal/data/terminal.json"))


def load_settings(doc: Mapping[str, Any]) -> TerminalSettings:
    """The terminal-core settings of a terminal.json mapping (merchant, offline limits, retries)."""
    from terminal.facade import TerminalSettings
    from terminal.offline import OfflineLimits, RetryPolicy

    try:
        limits = OfflineLimits.from_dict(doc.get("offline_limits", {})) if "offline_limits" in doc else OfflineLimits()
        retry_raw = doc.get("saf_retry", {})
        retry = RetryPolicy(
            **{
                k: retry_raw[k]
                for k in ("base_seconds", "cap_seconds", "jitter", "expire_after_seconds")
                if k in retry_raw
            }
        )
        return TerminalSettings(
            keystore_cipher=_keystore_cipher(doc.get("keystore", {})),
            merchant_name=str(doc.get("merchant_name", "posterm test shop")),
            merchant_address=str(doc.get("merchant_address", "")),
            offline_limits=limits,
            retry=retry,
            card_timeout_seconds=float(doc.get("card_timeout_seconds", 30.0)),
            retention_years=int(doc.get("retention_years", 5)),
            cbdc=_cbdc_trust(doc["cbdc"]) if "cbdc" in doc else None,
            pin_on_refund=doc.get("pin_on_refund", "never"),  # checked by TerminalSettings (one line)
        )
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"terminal settings: {exc}") from None


def _keystore_cipher(section: Any) -> str:
    """The ``keystore`` object's cipher (checked by TerminalSettings); its other keys are refused."""
    from terminal.keystore import DEFAULT_CIPHER

    if not isinstance(section, Mapping):
        raise ValueError('keystore: expected an object like {"cipher": "sm4-gcm"}')
    unknown = sorted(str(key) for key in section if key != "cipher")
    if unknown:
        raise ValueError(f"keystore: unknown setting {unknown[0]!r} (known: cipher)")
    cipher = section.get("cipher", DEFAULT_CIPHER)
    return cipher if isinstance(cipher, str) else repr(cipher)


def _cbdc_trust(section: Any) -> Any:
    """The ``cbdc`` section as a ``cbdc.checks.TrustStore`` (ValueError naming the field when it is refused).

    (``cbdc`` is loaded only for a terminal that has the section.)
    """
    from cbdc.checks import ParameterError, TrustStore

    try:
        return TrustStore.from_parameters(section)
    except ParameterError as exc:
        raise ValueError(str(exc)) from None


@lru_cache(maxsize=1)
def load_default_settings() -> TerminalSettings:
    return load_settings(_read_json(_data_file("terminal.json"), "terminal/data/terminal.json"))
