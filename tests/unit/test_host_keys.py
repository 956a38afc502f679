"""The host's secrets live in its key store, never in its database; its files are its own (0600 in 0700).

On both engines (tests/conftest.py: a real SQLite file, a database of the private PostgreSQL
cluster), the key store in a temporary folder (beside the SQLite file; the host's data directory for
PostgreSQL). A database of an older host (its body-digest secret in ``meta.digest_secret``, files
0644) is brought to the new layout on opening, and what it answered before it still answers the same
(the digests of its idempotency cache keep matching). A key store that is not the database's is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.host.acquirer import Acquirer, Peer
from simulator.host.keys import CARD_TOKEN, DIGEST, HostKeys, KeyStoreError
from simulator.host.storage import Location
from simulator.host.store import DB_NAME, HostStore, StoreError
from tests.unit.host_messages import auth

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
OpenStore = Callable[..., HostStore]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def body() -> dict[str, object]:
    from host_link import wire

    return wire.authorisation_json(auth("t1", 1000, terminal_id="T1", merchant_id="M1"))


def test_a_new_host_keeps_its_secrets_in_the_key_store_and_its_files_private(
    host_store_at: Location, host_store_keys: HostKeys, open_host_store: OpenStore
) -> None:
    data_dir = host_store_keys.directory.parent if host_store_keys.directory else Path()
    with open_host_store(host_store_at) as store:
        Acquirer(store, clock=lambda: NOW).handle("authorisation", body(), Peer("T1", "M1"), "k1")
        assert store.meta("digest_secret") is None
        keys = HostKeys(data_dir / "keys")
        secret = keys.secret(DIGEST)
        assert len(secret) == 32 and keys.secret(CARD_TOKEN) != secret
        assert store.digest("x") == hmac.new(secret, b"x", hashlib.sha256).hexdigest()  # the key store's secret
        stored = " ".join(str(v) for row in store._all("SELECT key, value FROM meta") for v in row)
        assert secret.hex() not in stored and keys.secret(CARD_TOKEN).hex() not in stored
        for name in ("keys/digest.key", "keys/card-token.key"):
            assert mode(data_dir / name) == 0o600, name
        assert mode(data_dir / "keys") == 0o700
        if isinstance(host_store_at, Path):  # the SQLite file and its companions, in a private folder
            for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
                assert mode(data_dir / name) == 0o600, name
            assert mode(data_dir) == 0o700
    if isinstance(host_store_at, Path):
        assert secret.hex().encode() not in (data_dir / DB_NAME).read_bytes()


def test_an_older_host_db_gives_up_its_secret_and_answers_as_before(
    host_store_at: Location, host_store_keys: HostKeys, open_host_store: OpenStore
) -> None:
    data_dir = host_store_keys.directory.parent if host_store_keys.directory else Path()
    with open_host_store(host_store_at) as store:
        first = Acquirer(store, clock=lambda: NOW).handle("authorisation", body(), Peer("T1", "M1"), "k1")
        secret = store.keys.secret(DIGEST)
        # as an older host left it (a host.db, or a PostgreSQL store of before the key store): the secret in meta
        store.set_meta("digest_secret", secret.hex())
    (data_dir / "keys" / "digest.key").unlink()
    if isinstance(host_store_at, Path):  # and every file readable by all
        for path in [data_dir, *data_dir.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)

    with open_host_store(host_store_at) as store:
        assert store.meta("digest_secret") is None
        assert HostKeys(data_dir / "keys").secret(DIGEST) == secret
        again = Acquirer(store, clock=lambda: NOW).handle("authorisation", body(), Peer("T1", "M1"), "k1")
        assert again.replayed and again.body == first.body  # the cached answer's digest still matches
    if isinstance(host_store_at, Path):
        assert mode(data_dir) == 0o700 and mode(data_dir / DB_NAME) == 0o600


def test_two_processes_making_the_secret_at_once_end_with_one(
    host_store_at: Location, host_store_keys: HostKeys, open_host_store: OpenStore
) -> None:
    stores: list[HostStore] = []
    barrier = threading.Barrier(8)

    def open_one() -> None:
        barrier.wait()
        stores.append(open_host_store(host_store_at))  # each with a key store object of its own

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stores) == 8
    assert len({s.digest("x") for s in stores}) == 1 and len({s.card_token("4761739001010010") for s in stores}) == 1
    for s in stores:
        s.close()
    assert host_store_keys.directory is not None
    assert sorted(p.name for p in host_store_keys.directory.iterdir()) == ["card-token.key", "digest.key"]


def test_a_key_store_that_is_not_the_databases_is_refused(
    host_store_at: Location, tmp_path: Path, open_host_store: OpenStore
) -> None:
    """A host opened with another data directory's keys/ (or a lost keys/ made anew) decides nothing."""
    with open_host_store(host_store_at) as store:
        reply = Acquirer(store, clock=lambda: NOW).handle("authorisation", body(), Peer("T1", "M1"), "k1")
        assert reply.json()["response_code"] == "00"
    lost = tmp_path / "lost" / "keys"
    with pytest.raises(StoreError, match=r"key store .* has no digest secret, and this database was used with one"):
        open_host_store(host_store_at, keys=HostKeys(lost))
    assert not lost.exists()  # no new secret made: the right keys/ can simply be put back
    other = HostKeys(tmp_path / "other-host" / "keys")
    other.secret(DIGEST), other.secret(CARD_TOKEN)
    with pytest.raises(StoreError, match=r"does not hold the digest secret this database was used with"):
        open_host_store(host_store_at, keys=HostKeys(other.directory))
    with open_host_store(host_store_at) as store:  # its own key store still opens it
        again = Acquirer(store, clock=lambda: NOW).handle("authorisation", body(), Peer("T1", "M1"), "k1")
        assert again.replayed


def test_a_postgresql_store_needs_its_key_store_named(postgres_url: str) -> None:
    with pytest.raises(ValueError, match=r"needs the host's key store"):
        HostStore(postgres_url)


def test_the_card_token_is_the_hosts_own(tmp_path: Path) -> None:
    with HostStore(tmp_path / "a" / DB_NAME) as a, HostStore(tmp_path / "b" / DB_NAME) as b:
        token = a.card_token("4761739001010010")
        assert len(token) == 32 and token == a.card_token("4761739001010010")
        assert token != b.card_token("4761739001010010")  # another host, another secret
        assert "4761739001010010" not in token


def test_a_damaged_key_file_is_a_clear_error(
    host_store_at: Location, host_store_keys: HostKeys, open_host_store: OpenStore
) -> None:
    open_host_store(host_store_at).close()
    assert host_store_keys.directory is not None
    (host_store_keys.directory / "digest.key").write_text("not hex")
    with pytest.raises(StoreError, match=r"digest\.key cannot be read"):
        open_host_store(host_store_at)
    with pytest.raises(KeyStoreError):
        HostKeys(host_store_keys.directory).secret(DIGEST)


def test_an_in_memory_host_writes_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with HostStore(Path(":memory:")) as store:
        assert store.card_token("4761739001010010")
    assert list(tmp_path.iterdir()) == []
