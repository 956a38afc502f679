"""The simulator-only digital-currency PKI (``simulator/data/cbdc-pki.json``), read.

SIMULATOR TEST KEYS — NOT FOR PRODUCTION.  ``tools/make_cbdc_pki.py`` generated
the file once: a central bank root (id ``00000001``), two operators it certifies
(``00000101``, ``00000102``), one operator (``00000103``) whose certificate claims
the root but is signed by a rogue key, and the wallets, each certified by its
operator (CBDC-SPEC §3).  The file carries ``"simulator_only": true``.

What the other parts of the simulator use:

- :func:`trust_roots`: the trusted roots as the terminal's parameters carry them
  (``id``, ``public_key``, ``checksum`` = SM3(id || key), hex);
- :func:`opening_balances`: each wallet id's balance when issued, minor units
  (the simulated operator's starting point);
- :func:`wallet` / :func:`wallets` / :func:`operator`: the keys and certificates.

>>> [r["id"] for r in trust_roots()]
['00000001']
>>> wallet("anon").wallet_id.hex().upper(), wallet("anon").per_payment
('D1A0000000000001', 200000)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from simulator._bounded import read_json_file
from simulator.cbdc import tlv
from simulator.cbdc.sm2 import sm3

__all__ = [
    "PKI_FILE",
    "ROLE_OPERATOR",
    "ROLE_WALLET",
    "TIER_ANONYMOUS",
    "TIER_VERIFIED",
    "WARNING",
    "CbdcPkiError",
    "OperatorKeys",
    "WalletKeys",
    "bcd12",
    "bcd_date",
    "certificate_fields",
    "opening_balances",
    "operator",
    "root_checksum",
    "trust_roots",
    "wallet",
    "wallet_names",
    "wallets",
]

PKI_FILE = Path(__file__).resolve().parent.parent / "data" / "cbdc-pki.json"
WARNING = (
    "SIMULATOR TEST KEYS - NOT FOR PRODUCTION. posterm's simulated digital-currency wallets only: "
    "every private key here is public."
)
_MAX_BYTES = 1 << 20
ROLE_OPERATOR = 0x02
ROLE_WALLET = 0x03
TIER_ANONYMOUS = 0x01
TIER_VERIFIED = 0x02


class CbdcPkiError(Exception):
    """The PKI file is missing or malformed, or a name it does not hold."""


@dataclass(frozen=True)
class OperatorKeys:
    """An operator (authorised institution): its id, keys and certificate (E2, signed by its root)."""

    operator_id: bytes
    name: str
    trusted: bool
    public_key: bytes
    private_key: bytes
    certificate: bytes


@dataclass(frozen=True)
class WalletKeys:
    """A wallet's identity, limits, keys and certificate (E2, signed by its operator)."""

    name: str
    wallet_id: bytes
    operator_id: bytes
    tier: int
    per_payment: int
    daily: int
    balance_limit: int
    opening_balance: int
    not_before: date
    not_after: date
    public_key: bytes
    private_key: bytes
    certificate: bytes


def bcd_date(value: date) -> bytes:
    """4 bytes BCD YYYYMMDD."""
    return bytes.fromhex(value.strftime("%Y%m%d"))


def bcd12(minor: int) -> bytes:
    """BCD n12 (6 bytes) of a non-negative amount."""
    if not 0 <= minor <= 999_999_999_999:
        raise ValueError(f"amount {minor} does not fit n12")
    return bytes.fromhex(f"{minor:012d}")


def certificate_fields(
    *,
    subject: bytes,
    issuer: bytes,
    role: int,
    public_key: bytes,
    not_before: date,
    not_after: date,
    tier: int | None = None,
    limits: tuple[int, int, int] | None = None,
) -> bytes:
    """The signed part of an E2 certificate (CBDC-SPEC §3): the elements before DF5F, in order."""
    items: list[tuple[int, bytes]] = [
        (0xDF71, b"\x01"),
        (0xDF72, subject),
        (0xDF73, issuer),
        (0xDF74, bytes([role])),
        (0xDF75, public_key),
        (0xDF76, bcd_date(not_before)),
        (0xDF77, bcd_date(not_after)),
    ]
    if role == ROLE_WALLET:
        if tier is None or limits is None:
            raise ValueError("a wallet certificate has a tier and limits")
        per_payment, daily, balance = limits
        items += [
            (0xDF78, bytes([tier])),
            (0xDF79, bcd12(per_payment)),
            (0xDF7A, bcd12(daily)),
            (0xDF7B, bcd12(balance)),
        ]
    return b"".join(tlv.encode(t, v) for t, v in items)


def root_checksum(root_id: bytes, public_key: bytes) -> str:
    """SM3(root id || public key), hex (CBDC-SPEC §3): what the terminal checks before applying a root."""
    return sm3(root_id + public_key).hex().upper()


def _hex(raw: Mapping[str, Any], key: str, size: int | None = None) -> bytes:
    value = bytes.fromhex(str(raw[key]))
    if size is not None and len(value) != size:
        raise ValueError(f"{key} must be {size} bytes")
    return value


def _date(text: Any) -> date:
    return date(int(str(text)[:4]), int(str(text)[4:6]), int(str(text)[6:8]))


@lru_cache(maxsize=4)
def _load(path: Path = PKI_FILE) -> dict[str, Any]:
    raw = read_json_file(path, _MAX_BYTES, "digital-currency PKI", CbdcPkiError)
    if not isinstance(raw, dict) or raw.get("simulator_only") is not True:
        raise CbdcPkiError(f"{path}: not the simulator's digital-currency PKI (no \"simulator_only\": true)")
    return raw


def trust_roots(path: Path = PKI_FILE) -> list[dict[str, str]]:
    """The trusted roots as the terminal's parameters carry them: ``id``, ``public_key``, ``checksum`` (hex)."""
    out: list[dict[str, str]] = []
    try:
        for root in _load(path)["roots"]:
            root_id, key = _hex(root, "id", 4), _hex(root, "public_key", 64)
            checksum = root_checksum(root_id, key)
            out.append({"id": root_id.hex().upper(), "public_key": key.hex().upper(), "checksum": checksum})
    except (KeyError, TypeError, ValueError) as exc:
        raise CbdcPkiError(f"{path}: malformed root: {exc!r}") from None
    return out


def operator(operator_id: str, path: Path = PKI_FILE) -> OperatorKeys:
    """The operator with id ``operator_id`` (8 hex digits)."""
    for raw in _load(path)["operators"]:
        if str(raw["id"]).upper() == operator_id.upper():
            try:
                return OperatorKeys(
                    operator_id=_hex(raw, "id", 4),
                    name=str(raw["name"]),
                    trusted=bool(raw["trusted"]),
                    public_key=_hex(raw, "public_key", 64),
                    private_key=_hex(raw, "private_key", 32),
                    certificate=_hex(raw, "certificate"),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise CbdcPkiError(f"{path}: malformed operator {operator_id}: {exc!r}") from None
    raise CbdcPkiError(f"no operator {operator_id} in the simulator's digital-currency PKI")


def _wallet(raw: Mapping[str, Any]) -> WalletKeys:
    return WalletKeys(
        name=str(raw["name"]),
        wallet_id=_hex(raw, "wallet_id", 8),
        operator_id=_hex(raw, "operator", 4),
        tier=int(raw["tier"]),
        per_payment=int(raw["per_payment"]),
        daily=int(raw["daily"]),
        balance_limit=int(raw["balance_limit"]),
        opening_balance=int(raw["opening_balance"]),
        not_before=_date(raw["not_before"]),
        not_after=_date(raw["not_after"]),
        public_key=_hex(raw, "public_key", 64),
        private_key=_hex(raw, "private_key", 32),
        certificate=_hex(raw, "certificate"),
    )


def wallets(path: Path = PKI_FILE) -> list[WalletKeys]:
    """Every wallet of the PKI, in file order."""
    try:
        return [_wallet(raw) for raw in _load(path)["wallets"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise CbdcPkiError(f"{path}: malformed wallet: {exc!r}") from None


def wallet_names(path: Path = PKI_FILE) -> list[str]:
    return [w.name for w in wallets(path)]


def wallet(name: str, path: Path = PKI_FILE) -> WalletKeys:
    """The PKI wallet called ``name`` (``anon``, ``verified``, ...)."""
    for found in wallets(path):
        if found.name == name:
            return found
    raise CbdcPkiError(f"no wallet {name!r} in the simulator's digital-currency PKI ({', '.join(wallet_names(path))})")


def opening_balances(path: Path = PKI_FILE) -> dict[str, int]:
    """Wallet id (16 hex digits, upper case) -> its balance when issued, minor units of CNY."""
    return {w.wallet_id.hex().upper(): w.opening_balance for w in wallets(path)}
