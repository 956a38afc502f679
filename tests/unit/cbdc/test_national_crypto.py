"""SM2 verification, SM3 and SM4 against the GB/T vectors, and SM2 against an independent signer (gmssl)."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gmssl import sm2 as gm_sm2
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cbdc import sm2
from cbdc.sm3 import sm3
from tests.unit.cbdc.wallet import gmssl_signer

# GB/T 32918.5-2017 Appendix A (GM/T 0003.5): user id "1234567812345678", M = "message digest"
D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
PUBLIC = bytes.fromhex(
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
ZA = bytes.fromhex("B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3")
E = bytes.fromhex("F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640")
K = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21"
R = bytes.fromhex("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3")
S = bytes.fromhex("B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA")
M = b"message digest"
N = sm2.N
G = gm_sm2.default_ecc_table["g"]


def test_za_and_e_of_the_gbt_vector() -> None:
    assert sm2.za(PUBLIC) == ZA
    assert sm2.digest(PUBLIC, M) == E
    assert sm3(ZA + M) == E


def test_the_gbt_signature_verifies() -> None:
    assert sm2.verify(PUBLIC, M, R + S)
    assert sm2.verify_digest(PUBLIC, E, R + S)


def test_the_gbt_vector_is_what_gmssl_signs_with_its_k() -> None:
    """The independent signer reproduces (r, s) from d and k: both sides agree on the vector."""
    signer = gm_sm2.CryptSM2(private_key=f"{D:064x}", public_key=PUBLIC.hex())
    assert bytes.fromhex(signer.sign_with_sm3(M, K)) == R + S


def test_every_flipped_bit_fails() -> None:
    signature = R + S
    for i in range(len(signature) * 8):
        flipped = bytearray(signature)
        flipped[i // 8] ^= 0x80 >> (i % 8)
        assert not sm2.verify(PUBLIC, M, bytes(flipped)), i
    for i in range(len(M) * 8):
        message = bytearray(M)
        message[i // 8] ^= 0x80 >> (i % 8)
        assert not sm2.verify(PUBLIC, bytes(message), signature), i
    key = bytearray(PUBLIC)
    key[63] ^= 1
    assert not sm2.verify(bytes(key), M, signature)  # off the curve


def test_another_user_id_changes_za_and_fails() -> None:
    assert sm2.za(PUBLIC, b"ALICE123@YAHOO.COM") != ZA
    assert not sm2.verify(PUBLIC, M, R + S, user_id=b"ALICE123@YAHOO.COM")


def test_out_of_range_values_are_refused_without_raising() -> None:
    r, s = int.from_bytes(R, "big"), int.from_bytes(S, "big")
    top = (1 << 256) - 1
    for bad_r, bad_s in [(0, s), (r, 0), (N, s), (r, N), (top, s), (r, top), (N - s, s)]:  # N - s: t = 0
        assert not sm2.verify(PUBLIC, M, bad_r.to_bytes(32, "big") + bad_s.to_bytes(32, "big"))
    assert not sm2.verify(PUBLIC, M, R + S[:-1])
    assert not sm2.verify(PUBLIC[:-1], M, R + S)
    assert not sm2.verify(bytes(64), M, R + S)
    assert not sm2.is_valid_public_key(b"\xff" * 64)


def test_sm3_vectors() -> None:
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    assert sm3(b"").hex() == "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"


def test_sm4_vector() -> None:
    """GB/T 32907 Appendix A, through cryptography (what a keystore's SM4-GCM builds on)."""
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (encryptor.update(key) + encryptor.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"


def _gmssl_key(d: int) -> tuple[gm_sm2.CryptSM2, bytes]:
    public = bytes.fromhex(gm_sm2.CryptSM2(private_key=f"{d:064x}", public_key="")._kg(d, G))
    return gmssl_signer(d, public), public


def test_gmssl_mangles_a_raw_key_that_starts_with_04() -> None:
    """Found by the property below (d = 225): gmssl's constructor strips leading '0' and '4' digits from a key
    whose hex starts with "04", so it signs with the ZA of another key.  The signers here set the key after
    construction (tests/unit/cbdc/wallet.py), and our verification rejects what gmssl signs otherwise."""
    d = 225
    public = bytes.fromhex(gm_sm2.CryptSM2(private_key=f"{d:064x}", public_key="")._kg(d, G))
    assert public[0] == 0x04
    naive = gm_sm2.CryptSM2(private_key=f"{d:064x}", public_key=public.hex())
    assert naive.public_key != public.hex()
    assert not sm2.verify(public, M, bytes.fromhex(naive.sign_with_sm3(M, K)))
    assert sm2.verify(public, M, bytes.fromhex(gmssl_signer(d, public).sign_with_sm3(M, K)))


@settings(max_examples=60, deadline=None)
@example(d=225, k=1, message=b"", flip=0)  # a key whose x starts with 04 (see above)
@given(
    d=st.integers(min_value=1, max_value=N - 2),
    k=st.integers(min_value=1, max_value=N - 1),
    message=st.binary(max_size=300),
    flip=st.integers(min_value=0, max_value=511),
)
def test_gmssl_signatures_verify_and_corrupted_ones_do_not(d: int, k: int, message: bytes, flip: int) -> None:
    signer, public = _gmssl_key(d)
    signature_hex = signer.sign_with_sm3(message, f"{k:064x}")
    if signature_hex is None:  # gmssl gives up on the rare k with r + k = n
        return
    signature = bytes.fromhex(signature_hex)
    assert sm2.verify(public, message, signature)
    assert signer.verify_with_sm3(signature_hex, message)
    corrupted = bytearray(signature)
    corrupted[flip // 8] ^= 0x80 >> (flip % 8)
    assert not sm2.verify(public, message, bytes(corrupted))
    assert not sm2.verify(public, message + b"\x00", signature)


def test_a_signature_of_ours_is_rejected_by_gmssl_when_we_reject_it() -> None:
    """Sanity both ways: gmssl rejects the corrupted GB/T signature we reject."""
    signer = gm_sm2.CryptSM2(private_key=f"{D:064x}", public_key=PUBLIC.hex())
    bad = bytearray(R + S)
    bad[5] ^= 1
    assert not signer.verify_with_sm3(bad.hex(), M)
    assert not sm2.verify(PUBLIC, M, bytes(bad))
