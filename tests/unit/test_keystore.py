"""Tests for terminal.keystore: the file keystore, its errors and its ciphertexts."""

from __future__ import annotations

import json
import os
import pickle
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SM3
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from terminal.keystore import (
    MASTER_KEY_ENV,
    CorruptCiphertext,
    FileKeystore,
    InsecureKeyFile,
    KeyFileCorrupt,
    KeyFileMissing,
    Keystore,
    KeystoreError,
    WrongMasterKey,
)

CONTEXT = b"pan:txn-0001"
PAN = b"4111111111111111"


@pytest.fixture(autouse=True)
def _no_master_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture(scope="module")
def shared() -> Iterator[FileKeystore]:
    """One keystore for the property tests (function-scoped fixtures do not mix with @given)."""
    import tempfile

    saved = os.environ.pop(MASTER_KEY_ENV, None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            yield FileKeystore.open(Path(tmp) / "keys")
    finally:
        if saved is not None:
            os.environ[MASTER_KEY_ENV] = saved


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def master_key(keydir: Path) -> bytes:
    return bytes.fromhex((keydir / "master.key").read_text().strip())


def data_key(keydir: Path, master: bytes) -> bytes:
    doc = json.loads((keydir / "data.key").read_text())
    return AESGCM(master).decrypt(
        bytes.fromhex(doc["nonce"]), bytes.fromhex(doc["wrapped"]), b"posterm data key v1"
    )


def aes_kcv(key: bytes) -> str:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return (enc.update(bytes(16)) + enc.finalize())[:3].hex()


def edit_data_key(keydir: Path, **changes: object) -> None:
    path = keydir / "data.key"
    doc = json.loads(path.read_text())
    for name, value in changes.items():
        if value is None:
            doc.pop(name, None)
        else:
            doc[name] = value
    path.write_text(json.dumps(doc))


# --- round trip and the protocol ---------------------------------------------------------------


def test_round_trip_same_instance(keydir: Path) -> None:
    ks = FileKeystore.open(keydir)
    assert ks.decrypt(ks.encrypt(PAN, CONTEXT), CONTEXT) == PAN


def test_round_trip_across_reopen(keydir: Path) -> None:
    blob = FileKeystore.open(keydir).encrypt(PAN, CONTEXT)
    assert FileKeystore.open(keydir, create=False).decrypt(blob, CONTEXT) == PAN


@pytest.mark.parametrize("plaintext", [b"", b"x", bytes(range(256)) * 40])
def test_round_trip_sizes(keydir: Path, plaintext: bytes) -> None:
    ks = FileKeystore.open(keydir)
    assert ks.decrypt(ks.encrypt(plaintext, b""), b"") == plaintext


def test_is_a_keystore(keydir: Path) -> None:
    assert isinstance(FileKeystore.open(keydir), Keystore)


def test_ciphertext_layout(keydir: Path) -> None:
    ks = FileKeystore.open(keydir)
    blob = ks.encrypt(PAN, CONTEXT)
    assert blob[0] == 1
    assert blob[1:5] == bytes.fromhex(ks.key_id)
    assert len(blob) == 1 + 4 + 12 + len(PAN) + 16


def test_nonces_differ(keydir: Path) -> None:
    ks = FileKeystore.open(keydir)
    first, second = ks.encrypt(PAN, CONTEXT), ks.encrypt(PAN, CONTEXT)
    assert first[5:17] != second[5:17]
    assert first != second


def test_data_key_is_used_for_gcm(keydir: Path) -> None:
    ks = FileKeystore.open(keydir)
    key = data_key(keydir, master_key(keydir))
    blob = ks.encrypt(PAN, CONTEXT)
    assert AESGCM(key).decrypt(blob[5:17], blob[17:], blob[:5] + CONTEXT) == PAN


# --- ciphertexts that must be refused ------------------------------------------------------------


def test_flipped_byte_refused(keydir: Path) -> None:
    ks = FileKeystore.open(keydir)
    blob = ks.encrypt(PAN, CONTEXT)
    for i in range(len(blob)):
        damaged = bytearray(blob)
        damaged[i] ^= 0x01
        with pytest.raises(CorruptCiphertext):
            ks.decrypt(bytes(damaged), CONTEXT)


def test_truncated_refused(keydir: Path) -> None:
    ks = FileKeystore.open(keydir)
    blob = ks.encrypt(PAN, CONTEXT)
    for n in range(len(blob)):
        with pytest.raises(CorruptCiphertext):
            ks.decrypt(blob[:n], CONTEXT)
    with pytest.raises(CorruptCiphertext):
        ks.decrypt(blob + b"\x00", CONTEXT)


def test_wrong_context_refused(keydir: Path) -> None:
    ks = FileKeystore.open(keydir)
    blob = ks.encrypt(PAN, b"pan:txn-0001")
    with pytest.raises(CorruptCiphertext, match="does not authenticate"):
        ks.decrypt(blob, b"pan:txn-0002")
    with pytest.raises(CorruptCiphertext):
        ks.decrypt(blob, b"")


def test_unknown_version_refused(keydir: Path) -> None:
    ks = FileKeystore.open(keydir)
    blob = ks.encrypt(PAN, CONTEXT)
    with pytest.raises(CorruptCiphertext, match="unsupported format 7"):
        ks.decrypt(b"\x07" + blob[1:], CONTEXT)


def test_other_keystore_refused(tmp_path: Path) -> None:
    one, two = FileKeystore.open(tmp_path / "one"), FileKeystore.open(tmp_path / "two")
    assert one.key_id != two.key_id
    with pytest.raises(CorruptCiphertext, match="key id"):
        two.decrypt(one.encrypt(PAN, CONTEXT), CONTEXT)


@settings(max_examples=300, deadline=None)
@given(blob=st.binary(max_size=200), context=st.binary(max_size=20))
def test_arbitrary_bytes_only_corrupt_ciphertext(shared: FileKeystore, blob: bytes, context: bytes) -> None:
    with pytest.raises(CorruptCiphertext):
        shared.decrypt(blob, context)


@settings(max_examples=300, deadline=None)
@given(tail=st.binary(max_size=200), context=st.binary(max_size=20))
def test_arbitrary_bytes_after_valid_header(shared: FileKeystore, tail: bytes, context: bytes) -> None:
    with pytest.raises(CorruptCiphertext):
        shared.decrypt(b"\x01" + bytes.fromhex(shared.key_id) + tail, context)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), plaintext=st.binary(max_size=64))
def test_any_single_change_refused(shared: FileKeystore, data: st.DataObject, plaintext: bytes) -> None:
    blob = bytearray(shared.encrypt(plaintext, CONTEXT))
    index = data.draw(st.integers(0, len(blob) - 1))
    blob[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptCiphertext):
        shared.decrypt(bytes(blob), CONTEXT)


# --- MACs and key check values -------------------------------------------------------------------


def test_mac_stable_across_reopen_and_per_purpose(keydir: Path) -> None:
    ks = FileKeystore.open(keydir)
    token, chain = ks.mac(PAN, "pan-token"), ks.mac(PAN, "journal")
    assert len(token) == 32 and len(chain) == 32
    assert token != chain
    again = FileKeystore.open(keydir, create=False)
    assert again.mac(PAN, "pan-token") == token
    assert again.mac(PAN, "journal") == chain
    assert ks.mac(PAN + b"0", "pan-token") != token


def test_mac_differs_between_keystores(tmp_path: Path) -> None:
    one, two = FileKeystore.open(tmp_path / "one"), FileKeystore.open(tmp_path / "two")
    assert one.mac(PAN, "pan-token") != two.mac(PAN, "pan-token")


def test_mac_unknown_purpose(keydir: Path) -> None:
    with pytest.raises(ValueError, match="purpose"):
        FileKeystore.open(keydir).mac(PAN, "pan_token")


def test_kcvs_stable_and_no_key_bytes(keydir: Path) -> None:
    ks = FileKeystore.open(keydir)
    kcvs = ks.key_check_values()
    assert set(kcvs) == {"master", "data:aes-256-gcm", "data:sm4-gcm", "mac:pan-token", "mac:journal"}
    assert FileKeystore.open(keydir, create=False, cipher="sm4-gcm").key_check_values() == kcvs
    master = master_key(keydir)
    data = data_key(keydir, master)
    assert kcvs["master"] == aes_kcv(master)
    assert kcvs["data:aes-256-gcm"] == aes_kcv(data)
    sm4_key = HKDF(algorithm=SM3(), length=16, salt=None, info=b"posterm data key sm4-gcm v1").derive(data)
    enc = Cipher(algorithms.SM4(sm4_key), modes.ECB()).encryptor()
    assert kcvs["data:sm4-gcm"] == (enc.update(bytes(16)) + enc.finalize())[:3].hex()
    for value in kcvs.values():
        assert len(value) == 6 and int(value, 16) >= 0
        assert value not in master.hex() and value not in data.hex() and value not in sm4_key.hex()
    assert json.loads((keydir / "data.key").read_text())["kcv"] == kcvs["data:aes-256-gcm"]


def test_repr_shows_no_key_material(keydir: Path) -> None:
    ks = FileKeystore.open(keydir)
    master = master_key(keydir)
    data = data_key(keydir, master)
    for text in (repr(ks), str(ks)):
        assert "FileKeystore" in text and ks.key_id in text
        assert master.hex() not in text and data.hex() not in text
        assert master.hex()[:8] not in text and data.hex()[:8] not in text


def test_not_picklable(keydir: Path) -> None:
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(FileKeystore.open(keydir))


# --- files, permissions, creation ----------------------------------------------------------------


def test_files_0600_dir_0700(tmp_path: Path) -> None:
    keydir = tmp_path / "a" / "b" / "keys"
    FileKeystore.open(keydir)
    assert mode_of(keydir) == 0o700
    assert mode_of(keydir / "master.key") == 0o600
    assert mode_of(keydir / "data.key") == 0o600
    assert sorted(p.name for p in keydir.iterdir()) == ["data.key", "master.key"]


def test_modes_exact_whatever_the_umask(keydir: Path) -> None:
    old = os.umask(0)
    try:
        FileKeystore.open(keydir)
    finally:
        os.umask(old)
    assert mode_of(keydir) == 0o700
    assert mode_of(keydir / "master.key") == 0o600
    assert mode_of(keydir / "data.key") == 0o600


def test_data_key_file_format(keydir: Path) -> None:
    ks = FileKeystore.open(keydir)
    doc = json.loads((keydir / "data.key").read_text())
    assert doc["version"] == 1
    assert doc["key_id"] == ks.key_id
    assert len(bytes.fromhex(doc["nonce"])) == 12
    assert len(bytes.fromhex(doc["wrapped"])) == 48
    assert doc["master_kcv"] == ks.key_check_values()["master"]
    assert len((keydir / "master.key").read_text().strip()) == 64


def test_raw_master_key_file_accepted(keydir: Path) -> None:
    keydir.mkdir(mode=0o700)
    master = os.urandom(32)
    path = keydir / "master.key"
    path.write_bytes(master)
    path.chmod(0o600)
    ks = FileKeystore.open(keydir)
    assert ks.key_check_values()["master"] == aes_kcv(master)
    assert path.read_bytes() == master


def test_create_false_on_empty_directory(keydir: Path) -> None:
    with pytest.raises(KeyFileMissing, match="does not exist"):
        FileKeystore.open(keydir, create=False)
    assert not keydir.exists()
    keydir.mkdir()
    with pytest.raises(KeyFileMissing, match=r"master\.key"):
        FileKeystore.open(keydir, create=False)
    assert list(keydir.iterdir()) == []


def test_create_false_without_data_key(keydir: Path) -> None:
    FileKeystore.open(keydir)
    (keydir / "data.key").unlink()
    with pytest.raises(KeyFileMissing, match=r"data\.key"):
        FileKeystore.open(keydir, create=False)


def test_missing_master_key_file(keydir: Path) -> None:
    FileKeystore.open(keydir)
    (keydir / "master.key").unlink()
    with pytest.raises(KeyFileMissing, match=r"master\.key is missing but .*data\.key exists"):
        FileKeystore.open(keydir)
    assert not (keydir / "master.key").exists()  # never replaced by a fresh one


@pytest.mark.parametrize("name", ["master.key", "data.key"])
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o700, 0o666])
def test_wide_permissions_refused(keydir: Path, name: str, mode: int) -> None:
    FileKeystore.open(keydir)
    path = keydir / name
    path.chmod(mode)
    with pytest.raises(InsecureKeyFile) as info:
        FileKeystore.open(keydir)
    message = str(info.value)
    assert str(path) in message
    assert f"chmod 600 {path}" in message
    assert f"{mode:04o}" in message


def test_read_only_owner_accepted(keydir: Path) -> None:
    FileKeystore.open(keydir)
    (keydir / "master.key").chmod(0o400)
    (keydir / "data.key").chmod(0o400)
    FileKeystore.open(keydir, create=False)


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"{}"],
    ids=["empty", "bad-json", "list", "string", "binary", "empty-object"],
)
def test_corrupted_data_key_file(keydir: Path, content: bytes) -> None:
    FileKeystore.open(keydir)
    (keydir / "data.key").write_bytes(content)
    with pytest.raises(KeyFileCorrupt, match=r"data\.key"):
        FileKeystore.open(keydir)


@pytest.mark.parametrize(
    "changes",
    [
        {"version": 2},
        {"version": None},
        {"key_id": None},
        {"nonce": "zz" * 12},
        {"nonce": "00" * 11},
        {"wrapped": 17},
        {"wrapped": "00" * 47},
        {"kcv": None},
        {"kcv": "000000"},
        {"key_id": "00000000"},
        {"master_kcv": "xyz"},
    ],
    ids=str,
)
def test_bad_data_key_fields(keydir: Path, changes: dict[str, object]) -> None:
    ks = FileKeystore.open(keydir)
    if changes.get("kcv") == ks.key_check_values()["data:aes-256-gcm"] or changes.get("key_id") == ks.key_id:
        pytest.skip("random key happens to match the edit")
    edit_data_key(keydir, **changes)
    with pytest.raises(KeyFileCorrupt, match=r"data\.key"):
        FileKeystore.open(keydir)


def test_damaged_wrapped_key_is_corrupt_not_wrong_master(keydir: Path) -> None:
    FileKeystore.open(keydir)
    doc = json.loads((keydir / "data.key").read_text())
    wrapped = bytearray.fromhex(doc["wrapped"])
    wrapped[0] ^= 0x80
    edit_data_key(keydir, wrapped=wrapped.hex())
    with pytest.raises(KeyFileCorrupt, match="damaged"):
        FileKeystore.open(keydir)


def test_damaged_wrapped_key_without_master_kcv(keydir: Path) -> None:
    FileKeystore.open(keydir)
    doc = json.loads((keydir / "data.key").read_text())
    edit_data_key(keydir, wrapped="00" * 48, master_kcv=None)
    assert "master_kcv" not in json.loads((keydir / "data.key").read_text())
    assert doc["master_kcv"]
    with pytest.raises(WrongMasterKey):
        FileKeystore.open(keydir)


def test_corrupt_master_key_file(keydir: Path) -> None:
    FileKeystore.open(keydir)
    (keydir / "master.key").write_text("not a key\n")
    with pytest.raises(KeyFileCorrupt, match=r"master\.key"):
        FileKeystore.open(keydir)


def test_key_file_not_regular(keydir: Path) -> None:
    FileKeystore.open(keydir)
    (keydir / "data.key").unlink()
    (keydir / "data.key").mkdir(mode=0o700)
    with pytest.raises(KeystoreError, match=r"data\.key"):
        FileKeystore.open(keydir)


def test_directory_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("")
    with pytest.raises(KeystoreError, match="not a directory"):
        FileKeystore.open(path)


# --- the master key from the environment ---------------------------------------------------------


def test_env_master_key_used_and_not_written(keydir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master = os.urandom(32)
    monkeypatch.setenv(MASTER_KEY_ENV, master.hex())
    ks = FileKeystore.open(keydir)
    assert not (keydir / "master.key").exists()
    assert ks.key_check_values()["master"] == aes_kcv(master)
    blob = ks.encrypt(PAN, CONTEXT)
    assert FileKeystore.open(keydir, create=False).decrypt(blob, CONTEXT) == PAN
    monkeypatch.delenv(MASTER_KEY_ENV)
    with pytest.raises(KeyFileMissing, match="POSTERM_MASTER_KEY"):
        FileKeystore.open(keydir)


def test_env_overrides_file_wrong_master_key(keydir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ks = FileKeystore.open(keydir)
    wrong = os.urandom(32)
    monkeypatch.setenv(MASTER_KEY_ENV, wrong.hex())
    with pytest.raises(WrongMasterKey) as info:
        FileKeystore.open(keydir)
    message = str(info.value)
    assert "POSTERM_MASTER_KEY" in message and str(keydir / "data.key") in message
    assert aes_kcv(wrong) in message and ks.key_check_values()["master"] in message
    assert wrong.hex() not in message and master_key(keydir).hex() not in message


def test_env_same_as_file_opens(keydir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = FileKeystore.open(keydir).encrypt(PAN, CONTEXT)
    monkeypatch.setenv(MASTER_KEY_ENV, master_key(keydir).hex().upper())
    (keydir / "master.key").unlink()
    assert FileKeystore.open(keydir, create=False).decrypt(blob, CONTEXT) == PAN


@pytest.mark.parametrize("value", ["", "abc", "zz" * 32, "00" * 31, "00" * 33, "0123456789abcdef" * 2])
def test_env_malformed(keydir: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(MASTER_KEY_ENV, value)
    with pytest.raises(KeyFileCorrupt, match="POSTERM_MASTER_KEY"):
        FileKeystore.open(keydir)
    assert not (keydir / "data.key").exists()


def test_error_messages_are_one_line_without_keys(keydir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FileKeystore.open(keydir)
    secrets = [master_key(keydir).hex(), data_key(keydir, master_key(keydir)).hex()]
    messages: list[str] = []
    (keydir / "data.key").chmod(0o644)
    with pytest.raises(KeystoreError) as info:
        FileKeystore.open(keydir)
    messages.append(str(info.value))
    (keydir / "data.key").chmod(0o600)
    monkeypatch.setenv(MASTER_KEY_ENV, "11" * 32)
    with pytest.raises(KeystoreError) as info:
        FileKeystore.open(keydir)
    messages.append(str(info.value))
    for message in messages:
        assert "\n" not in message
        assert all(s not in message.lower() for s in secrets)


# --- concurrency -------------------------------------------------------------------------------


def test_concurrent_first_open_agrees(keydir: Path) -> None:
    barrier = threading.Barrier(8)
    results: list[FileKeystore] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(FileKeystore.open(keydir))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({ks.key_id for ks in results}) == 1
    blob = results[0].encrypt(PAN, CONTEXT)
    assert all(ks.decrypt(blob, CONTEXT) == PAN for ks in results)
    assert sorted(p.name for p in keydir.iterdir()) == ["data.key", "master.key"]
