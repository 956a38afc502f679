"""The keystore's cipher choice: AES-256-GCM or SM4-GCM, each value saying which sealed it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terminal.keystore import (
    CIPHERS,
    MASTER_KEY_ENV,
    CorruptCiphertext,
    FileKeystore,
    UnknownCipher,
    _block_encrypt,
    _Sm4Gcm,
)
from terminal.settings import SettingsError, load_settings, shipped_document

CONTEXT = b"card:txn-0001"
PAN = b"6212345678901232"


@pytest.fixture(autouse=True)
def _no_master_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)


@pytest.fixture(scope="module")
def sm4() -> Iterator[FileKeystore]:
    """One SM4-GCM keystore for the property tests (function-scoped fixtures do not mix with @given)."""
    saved = os.environ.pop(MASTER_KEY_ENV, None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            yield FileKeystore.open(Path(tmp) / "keys", cipher="sm4-gcm")
    finally:
        if saved is not None:
            os.environ[MASTER_KEY_ENV] = saved


@settings(max_examples=200, deadline=None)
@given(data=st.data(), plaintext=st.binary(max_size=64), context=st.binary(max_size=20))
def test_sm4_round_trips_and_any_single_change_is_refused(
    sm4: FileKeystore, data: st.DataObject, plaintext: bytes, context: bytes
) -> None:
    blob = bytearray(sm4.encrypt(plaintext, context))
    assert sm4.decrypt(bytes(blob), context) == plaintext
    index = data.draw(st.integers(0, len(blob) - 1))
    blob[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptCiphertext):
        sm4.decrypt(bytes(blob), context)


@settings(max_examples=200, deadline=None)
@given(tail=st.binary(max_size=200), context=st.binary(max_size=20))
def test_arbitrary_bytes_after_a_valid_sm4_header_are_refused(sm4: FileKeystore, tail: bytes, context: bytes) -> None:
    with pytest.raises(CorruptCiphertext):
        sm4.decrypt(b"\x02" + bytes.fromhex(sm4.key_id) + tail, context)


def test_the_sm4_vector_of_gb_t_32907_through_the_kcv_primitive() -> None:
    # PAYMENT-MEANS.md §4: key = plaintext = 0123456789abcdeffedcba9876543210
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    assert _block_encrypt("sm4-gcm", key, key).hex() == "681edf34d206965e86b3e94f536e4246"
    # and AES-256 (FIPS-197 appendix C.3), the other cipher's block
    aes_key = bytes(range(32))
    block = bytes.fromhex("00112233445566778899aabbccddeeff")
    assert _block_encrypt("aes-256-gcm", aes_key, block).hex() == "8ea2b7ca516745bfeafc49904b496089"


def test_the_sm4_gcm_vector_of_rfc_8998_through_the_aead() -> None:
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    nonce = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    plain = bytes.fromhex("".join(c * 16 for c in "ABCDEFEA"))
    sealed = _Sm4Gcm(key).encrypt(nonce, plain, aad)
    assert sealed.hex().upper() == (
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        "83DE3541E4C2B58177E065A9BF7B62EC"  # the tag
    )
    assert _Sm4Gcm(key).decrypt(nonce, sealed, aad) == plain


@pytest.mark.parametrize("cipher", CIPHERS)
def test_each_cipher_round_trips_and_its_values_say_so(tmp_path: Path, cipher: str) -> None:
    ks = FileKeystore.open(tmp_path / "keys", cipher=cipher)
    assert ks.cipher == cipher
    blob = ks.encrypt(PAN, CONTEXT)
    assert blob[0] == CIPHERS.index(cipher) + 1 and FileKeystore.cipher_of(blob) == cipher
    assert PAN not in blob and len(blob) == 1 + 4 + 12 + len(PAN) + 16
    assert ks.decrypt(blob, CONTEXT) == PAN
    assert ks.encrypt(PAN, CONTEXT) != blob  # a fresh nonce each time
    assert ks.decrypt(ks.encrypt(b"", CONTEXT), CONTEXT) == b""


def test_the_two_ciphers_use_different_keys(tmp_path: Path) -> None:
    aes = FileKeystore.open(tmp_path / "keys")
    sm4 = FileKeystore.open(tmp_path / "keys", create=False, cipher="sm4-gcm")
    a, s = aes.encrypt(PAN, CONTEXT), sm4.encrypt(PAN, CONTEXT)
    # the same nonce under each cipher's key: a value relabelled as the other cipher does not open
    forged = bytes([2]) + a[1:]
    with pytest.raises(CorruptCiphertext, match=r"\(sm4-gcm\) does not authenticate"):
        sm4.decrypt(forged, CONTEXT)
    kcvs = aes.key_check_values()
    assert kcvs["data:aes-256-gcm"] != kcvs["data:sm4-gcm"]
    assert aes.decrypt(s, CONTEXT) == sm4.decrypt(a, CONTEXT) == PAN


def test_switching_cipher_keeps_old_values_readable_and_seals_new_ones_with_the_new(tmp_path: Path) -> None:
    before = FileKeystore.open(tmp_path / "keys")
    old = [before.encrypt(PAN + bytes([i]), CONTEXT + bytes([i])) for i in range(3)]
    after = FileKeystore.open(tmp_path / "keys", create=False, cipher="sm4-gcm")
    assert [after.decrypt(b, CONTEXT + bytes([i])) for i, b in enumerate(old)] == [PAN + bytes([i]) for i in range(3)]
    new = after.encrypt(PAN, CONTEXT)
    assert FileKeystore.cipher_of(new) == "sm4-gcm"
    # and back again: the values sealed with SM4 stay readable under an AES-configured keystore
    back = FileKeystore.open(tmp_path / "keys", create=False)
    assert back.decrypt(new, CONTEXT) == PAN and FileKeystore.cipher_of(back.encrypt(PAN, CONTEXT)) == "aes-256-gcm"
    # a running keystore switched by a configuration put in force
    back.use_cipher("sm4-gcm")
    assert FileKeystore.cipher_of(back.encrypt(PAN, CONTEXT)) == "sm4-gcm"
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["data.key", "master.key"]  # no new key file


@pytest.mark.parametrize("cipher", CIPHERS)
@pytest.mark.parametrize(
    "where",
    [5, 16, 17, -1, -17],  # first nonce byte, last nonce byte, first ciphertext byte, tag end, tag start
    ids=["nonce", "nonce-end", "ciphertext", "tag-end", "tag-start"],
)
def test_tampering_fails_closed_with_a_clear_error(tmp_path: Path, cipher: str, where: int) -> None:
    ks = FileKeystore.open(tmp_path / "keys", cipher=cipher)
    blob = bytearray(ks.encrypt(PAN, CONTEXT))
    blob[where] ^= 0x01
    with pytest.raises(CorruptCiphertext, match=rf"ciphertext \({cipher}\) does not authenticate \(tampered"):
        ks.decrypt(bytes(blob), CONTEXT)
    with pytest.raises(CorruptCiphertext, match="does not authenticate"):
        ks.decrypt(ks.encrypt(PAN, CONTEXT), b"card:txn-0002")  # moved to another row
    with pytest.raises(CorruptCiphertext, match="too short"):
        ks.decrypt(ks.encrypt(PAN, CONTEXT)[:32], CONTEXT)


@pytest.mark.parametrize("bad", ["sm4", "AES-256-GCM", "", "des-ede3", None, 4])
def test_a_wrong_cipher_is_one_line_naming_the_allowed_values(tmp_path: Path, bad: object) -> None:
    with pytest.raises(UnknownCipher) as raised:
        FileKeystore.open(tmp_path / "keys", cipher=bad)  # type: ignore[arg-type]
    assert str(raised.value) == f"keystore cipher {bad!r} is not supported: use one of aes-256-gcm, sm4-gcm"
    assert not (tmp_path / "keys").exists()  # refused before anything was made
    doc = shipped_document() | {"keystore": {"cipher": bad}}
    with pytest.raises(SettingsError) as refused:
        load_settings(doc)
    assert "\n" not in str(refused.value) and "use one of aes-256-gcm, sm4-gcm" in str(refused.value)


def test_the_keystore_settings_object_is_checked() -> None:
    assert load_settings(shipped_document()).keystore_cipher == "aes-256-gcm"
    assert load_settings(shipped_document() | {"keystore": {"cipher": "sm4-gcm"}}).keystore_cipher == "sm4-gcm"
    with pytest.raises(SettingsError, match="unknown setting 'algorithm' \\(known: cipher\\)"):
        load_settings(shipped_document() | {"keystore": {"algorithm": "sm4-gcm"}})
    with pytest.raises(SettingsError, match="keystore: expected an object"):
        load_settings(shipped_document() | {"keystore": "sm4-gcm"})
