"""The ``cbdc`` section of a parameter download (CBDC-SPEC §8): verified before anything is applied.

The host sends the digital-currency trust beside ``config`` and ``capks``::

    "cbdc": {"version": 3,
             "roots": [{"id": "00000001", "public_key": "<128 hex>", "checksum": "<64 hex>"}],
             "blocked_wallets": ["D1A0000000000007"], "blocked_operators": [],
             "limits": {"156": {"per_payment": 200000, "max_count": 20, "max_total": 500000,
                                "max_unsent_age_s": 86400}}}

:func:`verify_cbdc` refuses the section, and so the whole download, when
any root's checksum is not SM3(id ‖ public key), a public key is not a point
of the SM2 curve, a field is malformed or unknown, a limit is out of
:data:`CBDC_LIMITS`, or its version is older than the section in force (a
download must not bring back wallets the operator has blocked since; a
rollback, asked for by a person, may).  The section as verified is written
into the version's ``terminal.json`` under ``cbdc``, so it is applied in the
same atomic switch as the rest of the configuration, and the terminal loads
it from there (``TerminalSettings.cbdc``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from cryptography.hazmat.primitives import hashes

from cbdc.checks import ParameterError, TrustStore

__all__ = ["CBDC_LIMITS", "CbdcParametersError", "root_checksum", "verify_cbdc"]

#: Ranges outside which a downloaded digital-currency limit is refused (inclusive).
CBDC_LIMITS: Final[dict[str, tuple[int, int]]] = {
    "per_payment": (0, 999_999_999_999),
    "max_count": (0, 10_000),
    "max_total": (0, 999_999_999_999),
    "max_unsent_age_s": (0, 30 * 24 * 3600),
}
MAX_CBDC_VERSION: Final = 2**31 - 1
_KNOWN: Final = frozenset({"version", "roots", "blocked_wallets", "blocked_operators", "limits", "about"})
_ROOT_KEYS: Final = frozenset({"id", "public_key", "checksum"})


class CbdcParametersError(ValueError):
    """The ``cbdc`` section cannot be applied; the message names the field (``cbdc.roots[0]...``)."""


def root_checksum(root_id: bytes, public_key: bytes) -> bytes:
    """SM3(root id ‖ public key): what the host sends as the root's ``checksum``."""
    digest = hashes.Hash(hashes.SM3())
    digest.update(root_id + public_key)
    return digest.finalize()


def _hex(value: Any, length: int, where: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * length:
        raise CbdcParametersError(f"{where}: expected {2 * length} hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise CbdcParametersError(f"{where}: expected {2 * length} hex digits") from None


def _check_roots(roots: Any) -> None:
    """Every root's checksum, checked here with SM3 before the roots are parsed any further."""
    if not isinstance(roots, list):
        raise CbdcParametersError("cbdc.roots: expected a list")
    for i, root in enumerate(roots):
        where = f"cbdc.roots[{i}]"
        if not isinstance(root, Mapping):
            raise CbdcParametersError(f"{where}: expected an object")
        unknown = sorted(str(k) for k in root if k not in _ROOT_KEYS)
        if unknown:
            raise CbdcParametersError(f"{where}: unknown field {unknown[0]!r}")
        root_id = _hex(root.get("id"), 4, f"{where}.id")
        key = _hex(root.get("public_key"), 64, f"{where}.public_key")
        checksum = _hex(root.get("checksum"), 32, f"{where}.checksum")
        if root_checksum(root_id, key) != checksum:
            raise CbdcParametersError(f"{where} ({root_id.hex().upper()}): the checksum does not match SM3(id || key)")


def _check_limits(trust: TrustStore) -> None:
    for code, limits in sorted(trust.limits.items()):
        for name, (low, high) in CBDC_LIMITS.items():
            value = getattr(limits, name)
            if not low <= value <= high:
                raise CbdcParametersError(f"cbdc.limits.{code:03d}.{name}: {value} is out of range ({low} to {high})")
        if limits.per_payment > limits.max_total:
            raise CbdcParametersError(f"cbdc.limits.{code:03d}: per_payment is above max_total")


def verify_cbdc(section: Any, *, in_force: int | None = None) -> dict[str, Any]:
    """The section as it will be written, or :class:`CbdcParametersError` naming what is wrong.

    ``in_force``: the version of the ``cbdc`` section of the parameters in
    force (None: none downloaded yet); an older one is refused.
    """
    if not isinstance(section, Mapping):
        raise CbdcParametersError("cbdc: expected an object")
    unknown = sorted(str(k) for k in section if k not in _KNOWN)
    if unknown:
        raise CbdcParametersError(f"cbdc: unknown field {unknown[0]!r}")
    if "roots" not in section:
        raise CbdcParametersError("cbdc.roots: missing (a terminal without roots can trust no wallet)")
    _check_roots(section["roots"])
    try:
        trust = TrustStore.from_parameters(section)
    except ParameterError as exc:
        raise CbdcParametersError(str(exc)) from None
    if trust.version > MAX_CBDC_VERSION:
        raise CbdcParametersError(f"cbdc.version: expected a whole number from 0 to {MAX_CBDC_VERSION}")
    if in_force is not None and trust.version < in_force:
        raise CbdcParametersError(f"cbdc.version {trust.version} is older than the version in force ({in_force})")
    _check_limits(trust)
    written = trust.to_parameters()
    if isinstance(section.get("about"), str):
        written["about"] = section["about"]
    return written
