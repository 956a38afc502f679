"""SM2 signing with SM3 for the simulated wallets (GB/T 32918, default user id), and SM3.

Signing is gmssl's (pure Python, ~6 ms a signature here): ``CryptSM2.sign_with_sm3``
computes ZA with the default id "1234567812345678" and the signer's public key,
then e = SM3(ZA || M), and returns r || s.  The nonce k comes from :mod:`secrets`
(gmssl's own uses :mod:`random`); a test passes the GB/T vector's k.

gmssl strips a leading "04" from a public key with ``str.lstrip("04")``, which
eats every leading 0 and 4: keys whose hex starts with "04" are refused here
(the PKI generator never makes one).
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import hashes
from gmssl import sm2 as _gmssl

__all__ = ["N", "SignError", "public_key_of", "sign", "sm3", "verify"]

#: The order of the sm2p256v1 base point.
N = int(_gmssl.default_ecc_table["n"], 16)


class SignError(ValueError):
    """A key that cannot sign (wrong length, out of range, or one gmssl would misread)."""


def sm3(data: bytes) -> bytes:
    """SM3 (GB/T 32905) of ``data``, 32 bytes."""
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _crypt(private_key: bytes | None, public_key: bytes) -> _gmssl.CryptSM2:
    if len(public_key) != 64:
        raise SignError(f"an SM2 public key is 64 bytes x || y, got {len(public_key)}")
    if public_key[:1] == b"\x04":
        raise SignError("public key starts with 04: gmssl would misread it")
    if private_key is not None and (len(private_key) != 32 or not 0 < int.from_bytes(private_key, "big") < N - 1):
        raise SignError("an SM2 private key is 32 bytes in [1, n-2]")
    return _gmssl.CryptSM2(private_key=private_key.hex() if private_key else "", public_key=public_key.hex())


def sign(private_key: bytes, public_key: bytes, message: bytes, k: bytes | None = None) -> bytes:
    """The 64-byte r || s signature of ``message`` (ZA from ``public_key``); ``k`` only for test vectors."""
    crypt = _crypt(private_key, public_key)
    while True:
        nonce = k if k is not None else (secrets.randbelow(N - 1) + 1).to_bytes(32, "big")
        signature = crypt.sign_with_sm3(message, nonce.hex())
        if signature is not None:
            return bytes.fromhex(signature)
        if k is not None:
            raise SignError("this k gives no signature")


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (r || s) signs ``message`` for ``public_key`` (tests and the PKI generator)."""
    if len(signature) != 64:
        return False
    return bool(_crypt(None, public_key).verify_with_sm3(signature.hex(), message))


def public_key_of(private_key: bytes) -> bytes:
    """x || y of d*G (the PKI generator's use)."""
    crypt = _gmssl.CryptSM2(private_key=private_key.hex(), public_key="")
    return bytes.fromhex(crypt._kg(int.from_bytes(private_key, "big"), _gmssl.default_ecc_table["g"]))
