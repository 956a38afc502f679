"""The host's secrets live in its key store, never in host.db; its files are its own (0600 in 0700).

Real SQLite files in a temporary folder. A host.db of an older host (its body-digest secret in
``meta.digest_secret``, files 0644) is brought to the new layout on opening, and what it answered before
it still answers the same (the digests of its idempotency cache keep matching).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from simulator.host.acquirer import Acquirer, Peer
from simulator.host.keys import CARD_TOKEN, DIGEST, HostKeys, KeyStoreError
from simulator.host.store import DB_NAME, HostStore, StoreError
from tests.unit.host_messages import auth

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def body() -> dict[str, object]:
    from host_link import wire

    return wire.authorisation_json(auth("t1", 1000, terminal_id="T1", merchant_id="M1"))


def test_a_new_host_keeps_its_secrets_in_the_key_store_and_its_files_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "host"
    with HostStore(data_dir / DB_NAME) as store:
        Acquirer(store, clock=lambda: NOW).handle("authorisation", body(), Peer("T1", "M1"), "k1")
        assert store.meta("digest_secret") is None
        keys = HostKeys(data_dir / "keys")
        secret = keys.secret(DIGEST)
        assert len(secret) == 32 and keys.secret(CARD_TOKEN) != secret
        for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", "keys/digest.key", "keys/card-token.key"):
            assert mode(data_dir / name) == 0o600, name
        assert mode(data_dir) == mode(data_dir / "keys") == 0o700
    assert secret.hex().encode() not in (data_dir / DB_NAME).read_bytes()


def test_an_older_host_db_gives_up_its_secret_and_answers_as_before(tmp_path: Path) -> None:
    data_dir = tmp_path / "host"
    with HostStore(data_dir / DB_NAME) as store:
        first = Acquirer(store, clock=lambda: NOW).handle("authorisation", body(), Peer("T1", "M1"), "k1")
        secret = store.keys.secret(DIGEST)
    # as an older host left it: the secret in meta, no key store, every file readable by all
    with sqlite3.connect(data_dir / DB_NAME) as db:
        db.execute("INSERT INTO meta (key, value) VALUES ('digest_secret', ?)", (secret.hex(),))
    (data_dir / "keys" / "digest.key").unlink()
    for path in [data_dir, *data_dir.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    with HostStore(data_dir / DB_NAME) as store:
        assert store.meta("digest_secret") is None
        assert HostKeys(data_dir / "keys").secret(DIGEST) == secret
        again = Acquirer(store, clock=lambda: NOW).handle("authorisation", body(), Peer("T1", "M1"), "k1")
        assert again.replayed and again.body == first.body  # the cached answer's digest still matches
    assert mode(data_dir) == 0o700 and mode(data_dir / DB_NAME) == 0o600


def test_two_processes_making_the_secret_at_once_end_with_one(tmp_path: Path) -> None:
    stores: list[HostStore] = []
    barrier = threading.Barrier(8)

    def open_one() -> None:
        barrier.wait()
        stores.append(HostStore(tmp_path / DB_NAME))

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({s.digest("x") for s in stores}) == 1 and len({s.card_token("4761739001010010") for s in stores}) == 1
    for s in stores:
        s.close()
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["card-token.key", "digest.key"]  # no leftovers


def test_the_card_token_is_the_hosts_own(tmp_path: Path) -> None:
    with HostStore(tmp_path / "a" / DB_NAME) as a, HostStore(tmp_path / "b" / DB_NAME) as b:
        token = a.card_token("4761739001010010")
        assert len(token) == 32 and token == a.card_token("4761739001010010")
        assert token != b.card_token("4761739001010010")  # another host, another secret
        assert "4761739001010010" not in token


def test_a_damaged_key_file_is_a_clear_error(tmp_path: Path) -> None:
    HostStore(tmp_path / DB_NAME).close()
    (tmp_path / "keys" / "digest.key").write_text("not hex")
    with pytest.raises(StoreError, match=r"digest\.key cannot be read"):
        HostStore(tmp_path / DB_NAME)
    with pytest.raises(KeyStoreError):
        HostKeys(tmp_path / "keys").secret(DIGEST)


def test_an_in_memory_host_writes_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with HostStore(Path(":memory:")) as store:
        assert store.card_token("4761739001010010")
    assert list(tmp_path.iterdir()) == []
