"""RSA keys made in the tests themselves, so that ODA is checked against an independent signer.

Raw RSA (``pow(m, d, n)``) as EMV certificates use it; keys come from the
``cryptography`` package's generator.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from emv.oda import PublicKey


@dataclass(frozen=True)
class Key:
    n: int
    e: int
    d: int

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8

    @property
    def modulus(self) -> bytes:
        return self.n.to_bytes(self.size, "big")

    @property
    def exponent(self) -> bytes:
        return self.e.to_bytes((self.e.bit_length() + 7) // 8, "big")

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.modulus, self.exponent)

    def sign(self, block: bytes) -> bytes:
        """Raw RSA over a block as long as the modulus (the recovered data of a certificate)."""
        assert len(block) == self.size
        m = int.from_bytes(block, "big")
        assert m < self.n
        return pow(m, self.d, self.n).to_bytes(self.size, "big")


def generate(bits: int, e: int = 65537) -> Key:
    numbers = rsa.generate_private_key(public_exponent=e, key_size=bits).private_numbers()
    return Key(numbers.public_numbers.n, numbers.public_numbers.e, numbers.d)
