"""Test-local helpers for the simulated wallets: a TLV reader and an SM2 check written apart from the wallet's code.

The wallet (simulator.cbdc) encodes with its own TLV and signs through gmssl's
``sign_with_sm3``; these helpers read with a separate parser and verify with
ZA and e computed here (cryptography's SM3), gmssl only doing the curve
arithmetic, so that a wrong ZA or a wrong signed span in the wallet shows.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from gmssl import sm2 as gmssl_sm2

SM2_A = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
SM2_B = "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
SM2_GX = "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
SM2_GY = "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0"
DEFAULT_ID = b"1234567812345678"


def sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def za(public_key: bytes, user_id: bytes = DEFAULT_ID) -> bytes:
    """ZA = SM3(ENTL || ID || a || b || xG || yG || xA || yA), ENTL the id's length in bits."""
    curve = bytes.fromhex(SM2_A + SM2_B + SM2_GX + SM2_GY)
    return sm3((len(user_id) * 8).to_bytes(2, "big") + user_id + curve + public_key)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """r || s over e = SM3(ZA || M), ZA computed here."""
    if len(signature) != 64:
        return False
    e = sm3(za(public_key) + message)
    crypt = gmssl_sm2.CryptSM2(private_key="", public_key=public_key.hex())
    return bool(crypt.verify(signature.hex(), e))


def tlv_items(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(tag, value, the object's whole encoding) at one level; asserts on anything malformed."""
    out: list[tuple[int, bytes, bytes]] = []
    i = 0
    while i < len(data):
        start = i
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            tag = tag << 8 | data[i]
            i += 1
        length = data[i]
        i += 1
        if length == 0x81:
            length = data[i]
            i += 1
        elif length == 0x82:
            length = int.from_bytes(data[i : i + 2], "big")
            i += 2
        else:
            assert length < 0x80, f"length byte {length:02X}"
        assert i + length <= len(data), "value past the end"
        out.append((tag, data[i : i + length], data[start : i + length]))
        i += length
    return out


def template(data: bytes, tag: int) -> dict[int, bytes]:
    """The elements of the one template ``tag`` that ``data`` is (each tag once)."""
    items = tlv_items(data)
    assert len(items) == 1 and items[0][0] == tag, [hex(t) for t, _, _ in items]
    inner = tlv_items(items[0][1])
    tags = [t for t, _, _ in inner]
    assert len(tags) == len(set(tags)), f"duplicate tags {tags}"
    return {t: v for t, v, _ in inner}


def signed_part(data: bytes) -> tuple[bytes, bytes]:
    """(the bytes before DF5F, the DF5F value) of an E2/E4 template whose last element is DF5F."""
    inner = tlv_items(tlv_items(data)[0][1])
    assert inner[-1][0] == 0xDF5F
    return b"".join(whole for _, _, whole in inner[:-1]), inner[-1][1]
