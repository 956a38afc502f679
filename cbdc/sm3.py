"""SM3 (GB/T 32905-2016), from the ``cryptography`` package.

>>> sm3(b"abc").hex()
'66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0'
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes

__all__ = ["DIGEST_SIZE", "sm3"]

DIGEST_SIZE = 32


def sm3(data: bytes) -> bytes:
    """The 32-byte SM3 digest of ``data``."""
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()
