"""Generate the simulator's digital-currency PKI once: ``simulator/data/cbdc-pki.json``.

SIMULATOR TEST KEYS — NOT FOR PRODUCTION.  Run from the repository root::

    PYTHONPATH=. python tools/make_cbdc_pki.py --add      # wallets added to WALLETS since
    PYTHONPATH=. python tools/make_cbdc_pki.py --new      # everything afresh: new root!

``--add`` keeps the root, the operators and every wallet already in the file
and certifies only the wallets of :data:`WALLETS` it lacks.  ``--new`` makes
fresh SM2 keys for everything: the shipped file is the one the tests and the
terminal's default parameters are built on (the root's key and checksum), so
do that only on purpose.

The contents (CBDC-SPEC §1 and §3):

- a central bank root, id ``00000001`` (trusted), and a rogue root key that
  claims the same id (not trusted: it is what forges the untrusted operator);
- operators ``00000101`` and ``00000102`` certified by the root, and
  ``00000103`` whose certificate names the root as issuer but is signed by the
  rogue key;
- the wallets of the ``cbdc-*`` card profiles, each certified by its operator,
  with the tier limits of CBDC-SPEC §3 (anonymous 2,000.00 / 5,000.00 /
  10,000.00 CNY; ID-verified 50,000 / 100,000 / 500,000) and an opening balance.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from datetime import date
from pathlib import Path
from typing import Any

from simulator.cbdc import sm2, tlv
from simulator.cbdc.pki import (
    PKI_FILE,
    ROLE_OPERATOR,
    ROLE_WALLET,
    TIER_ANONYMOUS,
    TIER_VERIFIED,
    WARNING,
    certificate_fields,
)

ROOT_ID = bytes.fromhex("00000001")
ANONYMOUS = (TIER_ANONYMOUS, 200_000, 500_000, 1_000_000)
VERIFIED = (TIER_VERIFIED, 5_000_000, 10_000_000, 50_000_000)
VALID = (date(2025, 1, 1), date(2035, 12, 31))
EXPIRED = (date(2020, 1, 1), date(2024, 12, 31))
OPERATORS = (
    ("00000101", "Simulated Bank A (operator)", True),
    ("00000102", "Simulated Bank B (operator)", True),
    ("00000103", "Rogue operator (certificate forged with an untrusted root key)", False),
)
# name, wallet id, operator, tier+limits, opening balance (minor units), validity
WALLETS = (
    ("anon", "D1A0000000000001", "00000101", ANONYMOUS, 500_000, VALID),
    ("verified", "D1A0000000000002", "00000102", VERIFIED, 2_000_000, VALID),
    ("low-balance", "D1A0000000000003", "00000101", ANONYMOUS, 1_000, VALID),
    ("expired", "D1A0000000000004", "00000101", ANONYMOUS, 500_000, EXPIRED),
    ("untrusted-operator", "D1A0000000000005", "00000103", ANONYMOUS, 500_000, VALID),
    ("blocked", "D1A0000000000007", "00000101", ANONYMOUS, 500_000, VALID),
    ("tampered", "D1A0000000000008", "00000101", ANONYMOUS, 500_000, VALID),
    ("replay", "D1A0000000000009", "00000102", ANONYMOUS, 500_000, VALID),
    ("clone", "D1A000000000000A", "00000101", ANONYMOUS, 500_000, VALID),
    ("rollback", "D1A000000000000B", "00000102", ANONYMOUS, 500_000, VALID),
    ("torn", "D1A000000000000C", "00000101", ANONYMOUS, 500_000, VALID),
    ("mute", "D1A000000000000D", "00000101", ANONYMOUS, 500_000, VALID),
    ("garbage", "D1A000000000000E", "00000101", ANONYMOUS, 500_000, VALID),
    ("locked", "D1A000000000000F", "00000102", VERIFIED, 2_000_000, VALID),
    ("dual", "D1A0000000000010", "00000101", ANONYMOUS, 500_000, VALID),
    ("redirect", "D1A0000000000011", "00000101", ANONYMOUS, 500_000, VALID),
)


def _key_pair() -> tuple[bytes, bytes]:
    """A private key and its public key x || y whose hex does not start with 04 (see simulator.cbdc.sm2)."""
    while True:
        private = (secrets.randbelow(sm2.N - 2) + 1).to_bytes(32, "big")
        public = sm2.public_key_of(private)
        if public[:1] != b"\x04":
            return private, public


def _certificate(signed: bytes, issuer_private: bytes, issuer_public: bytes) -> bytes:
    signature = sm2.sign(issuer_private, issuer_public, signed)
    assert sm2.verify(issuer_public, signed, signature)
    return tlv.encode(0xE2, signed + tlv.encode(0xDF5F, signature))


def _ymd(value: date) -> str:
    return value.strftime("%Y%m%d")


def _wallet_entry(
    spec: tuple[str, str, str, tuple[int, int, int, int], int, tuple[date, date]],
    operator_keys: dict[str, tuple[bytes, bytes]],
) -> dict[str, object]:
    name, wallet_id, op_id, (tier, per_payment, daily, balance), opening, (start, end) = spec
    private, public = _key_pair()
    signed = certificate_fields(
        subject=bytes.fromhex(wallet_id), issuer=bytes.fromhex(op_id), role=ROLE_WALLET, public_key=public,
        not_before=start, not_after=end, tier=tier, limits=(per_payment, daily, balance),
    )
    return {
        "name": name, "wallet_id": wallet_id, "operator": op_id, "tier": tier,
        "per_payment": per_payment, "daily": daily, "balance_limit": balance, "opening_balance": opening,
        "not_before": _ymd(start), "not_after": _ymd(end),
        "public_key": public.hex().upper(), "private_key": private.hex().upper(),
        "certificate": _certificate(signed, *operator_keys[op_id]).hex().upper(),
    }


def add_wallets(existing: dict[str, Any]) -> list[str]:
    """Certify the wallets of WALLETS that ``existing`` lacks, with its operators' keys; their names."""
    operator_keys = {
        str(op["id"]): (bytes.fromhex(op["private_key"]), bytes.fromhex(op["public_key"]))
        for op in existing["operators"]
    }
    have = {str(w["name"]) for w in existing["wallets"]} | {str(w["wallet_id"]) for w in existing["wallets"]}
    added: list[str] = []
    for spec in WALLETS:
        if spec[0] in have or spec[1] in have:
            continue
        existing["wallets"].append(_wallet_entry(spec, operator_keys))
        added.append(spec[0])
    return added


def generate() -> dict[str, object]:
    root_private, root_public = _key_pair()
    rogue_private, rogue_public = _key_pair()
    operators: list[dict[str, object]] = []
    operator_keys: dict[str, tuple[bytes, bytes]] = {}
    for op_id, name, trusted in OPERATORS:
        private, public = _key_pair()
        operator_keys[op_id] = (private, public)
        signed = certificate_fields(
            subject=bytes.fromhex(op_id), issuer=ROOT_ID, role=ROLE_OPERATOR, public_key=public,
            not_before=date(2024, 1, 1), not_after=date(2039, 12, 31),
        )
        issuer = (root_private, root_public) if trusted else (rogue_private, rogue_public)
        operators.append({
            "id": op_id, "name": name, "trusted": trusted, "issuer": ROOT_ID.hex().upper(),
            "signed_by": "root" if trusted else "rogue root key",
            "not_before": "20240101", "not_after": "20391231",
            "public_key": public.hex().upper(), "private_key": private.hex().upper(),
            "certificate": _certificate(signed, *issuer).hex().upper(),
        })
    wallets = [_wallet_entry(spec, operator_keys) for spec in WALLETS]
    return {
        "simulator_only": True,
        "warning": WARNING,
        "generated_by": "tools/make_cbdc_pki.py",
        "currency": "0156",
        "roots": [{
            "id": ROOT_ID.hex().upper(), "name": "Simulated central bank root",
            "public_key": root_public.hex().upper(), "private_key": root_private.hex().upper(),
        }],
        "rogue_roots": [{
            "id": ROOT_ID.hex().upper(), "name": "Rogue key claiming the central bank's root id (untrusted)",
            "public_key": rogue_public.hex().upper(), "private_key": rogue_private.hex().upper(),
        }],
        "operators": operators,
        "wallets": wallets,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=PKI_FILE)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--add", action="store_true", help="certify the wallets the file lacks; keep everything else")
    mode.add_argument("--new", action="store_true", help="make everything afresh (a new root key)")
    args = parser.parse_args(argv)
    if args.add:
        pki_data = json.loads(args.out.read_text(encoding="utf-8"))
        added = add_wallets(pki_data)
        note = f"added {', '.join(added) or 'nothing'}"
    else:
        pki_data = generate()
        note = "all new keys"
    args.out.write_text(json.dumps(pki_data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({note}; simulator-only test keys)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
