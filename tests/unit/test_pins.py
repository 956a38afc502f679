"""terminal.pins: the supervisor's and the technician's PINs, hashed, checked, locked after wrong tries."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from terminal import pins as pins_module
from terminal.pins import (
    FIRST_LOCK_SECONDS,
    MAX_LOCK_SECONDS,
    MAX_TRIES,
    PIN_FILE,
    ROLES,
    PinAlreadySet,
    PinFileError,
    PinLocked,
    PinNotSet,
    PinStore,
    WeakPin,
    pin_problem,
)

GOOD = "482613"


class Clock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheaper scrypt parameters, for the tests that make dozens of tries (the real ones are tested apart)."""
    monkeypatch.setattr(pins_module, "_SCRYPT", {"n": 2**10, "r": 8, "p": 1})


@pytest.fixture
def pins(tmp_path: Path, clock: Clock, fast: None) -> PinStore:
    store = PinStore(tmp_path, clock=clock)
    store.set("technician", GOOD)
    return store


def _wrong(store: PinStore, role: str = "technician", times: int = MAX_TRIES - 1) -> None:
    for _ in range(times):
        assert store.check(role, "000111") is False


# -------------------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("pin", "why"),
    [
        ("123", "4 to 12 digits"),
        ("1234567890123", "4 to 12 digits"),
        ("12a4", "4 to 12 digits"),
        ("١٢٣٤٥", "4 to 12 digits"),  # Arabic-Indic digits are digits to str.isdigit, not to a keypad
        (" 4826", "4 to 12 digits"),
        ("0000", "same digit"),
        ("99999999", "same digit"),
        ("1234", "straight run"),
        ("0123456789", "straight run"),
        ("9876", "straight run"),
        ("7890", "straight run"),
        ("3210", "straight run"),
        ("1212", "repeated"),
        ("123123", "repeated"),
        ("480480480", "repeated"),
    ],
)
def test_trivial_pins_are_refused_with_a_reason(tmp_path: Path, pin: str, why: str) -> None:
    problem = pin_problem(pin)
    assert problem is not None and why in problem
    with pytest.raises(WeakPin) as raised:
        PinStore(tmp_path).set("supervisor", pin)
    assert raised.value.reason == problem and str(raised.value) == f"PIN refused: {problem}"  # the PIN not echoed
    assert not (tmp_path / PIN_FILE).exists()


@pytest.mark.parametrize("pin", ["4826", "1357", "2580", "135792468024", "1123"])
def test_ordinary_pins_are_accepted(pin: str) -> None:
    assert pin_problem(pin) is None


def test_unknown_roles_are_a_programming_error(tmp_path: Path) -> None:
    store = PinStore(tmp_path)
    for call in (lambda: store.is_set("admin"), lambda: store.set("admin", GOOD), lambda: store.check("admin", GOOD)):
        with pytest.raises(ValueError, match="unknown role 'admin'"):
            call()


# ------------------------------------------------------------------------------ a fresh terminal


def test_a_fresh_terminal_has_no_pins_and_says_so_without_creating_anything(tmp_path: Path) -> None:
    store = PinStore(tmp_path)
    assert [store.is_set(role) for role in ROLES] == [False, False]
    status = store.status("technician")
    assert (status.is_set, status.locked, status.tries_left) == (False, False, MAX_TRIES)
    with pytest.raises(PinNotSet, match="posterm pin set technician"):
        store.check("technician", GOOD)
    assert list(tmp_path.iterdir()) == []


def test_set_then_check(pins: PinStore) -> None:
    assert pins.is_set("technician") and not pins.is_set("supervisor")
    assert pins.check("technician", GOOD) is True
    assert pins.check("technician", "482614") is False
    assert pins.check("technician", "4826") is False
    assert pins.check("technician", "not a pin at all") is False
    pins.set("supervisor", "2580")
    assert pins.check("supervisor", "2580") and not pins.check("supervisor", GOOD)
    assert pins.check("technician", GOOD)  # one role's PIN does not touch the other's


# ------------------------------------------------------------------------------------ the file


def test_the_file_is_private_holds_a_salted_scrypt_hash_and_never_the_pin(tmp_path: Path) -> None:
    pins = PinStore(tmp_path)
    pins.set("technician", GOOD)
    pins.set("supervisor", GOOD)  # the same PIN for both roles: different salts, different hashes
    path = tmp_path / PIN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert GOOD not in text
    doc = json.loads(text)
    tech, sup = doc["roles"]["technician"], doc["roles"]["supervisor"]
    assert (tech["kdf"], tech["n"], tech["r"], tech["p"]) == ("scrypt", 2**15, 8, 1)
    assert len(bytes.fromhex(tech["salt"])) == 16 and len(bytes.fromhex(tech["hash"])) == 32
    assert tech["salt"] != sup["salt"] and tech["hash"] != sup["hash"]
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_check_takes_well_under_a_second(tmp_path: Path) -> None:
    pins = PinStore(tmp_path)
    pins.set("technician", GOOD)
    began = time.perf_counter()
    assert pins.check("technician", GOOD)
    assert time.perf_counter() - began < 0.6  # about 0.07 s on the 2-core development machine


def test_a_pin_file_others_can_read_is_refused_not_ignored(tmp_path: Path, pins: PinStore) -> None:
    os.chmod(tmp_path / PIN_FILE, 0o644)
    with pytest.raises(PinFileError, match=r"mode 0644.*chmod 600"):
        pins.check("technician", GOOD)
    with pytest.raises(PinFileError):
        pins.is_set("technician")  # not "no PIN": that would open the protected actions


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"version": 2, "roles": {}}',
        b'{"version": 1, "roles": {"root": {}}}',
        b'{"version": 1, "roles": {"technician": {"kdf": "md5"}}}',
        b'{"version": 1, "roles": {"technician": {"kdf": "scrypt", "n": 3, "r": 8, "p": 1}}}',
        b'{"version": 1, "roles": {"technician": {"kdf": "scrypt", "n": 1073741824, "r": 8, "p": 1}}}',
    ],
)
def test_a_damaged_pin_file_makes_the_pins_unusable_never_open(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / PIN_FILE
    path.parent.mkdir(mode=0o700)
    path.write_bytes(content)
    os.chmod(path, 0o600)
    store = PinStore(tmp_path)
    with pytest.raises(PinFileError, match=r"cannot be used .*remove it and set the PINs again"):
        store.check("technician", GOOD)
    with pytest.raises(PinFileError):
        store.set("supervisor", GOOD)  # the other role's entry would be lost: refused too
    assert path.read_bytes() == content


def test_a_hash_stored_under_older_parameters_is_upgraded_on_a_right_check(tmp_path: Path) -> None:
    import hashlib

    pins = PinStore(tmp_path)
    pins.set("technician", GOOD)
    path = tmp_path / PIN_FILE
    doc = json.loads(path.read_text())
    entry = doc["roles"]["technician"]
    salt = bytes.fromhex(entry["salt"])
    entry.update(n=2**12, r=8, p=1, hash=hashlib.scrypt(GOOD.encode(), salt=salt, n=2**12, r=8, p=1, dklen=32).hex())
    path.write_text(json.dumps(doc))
    assert pins.check("technician", "482614") is False  # a wrong one: counted, nothing upgraded
    assert json.loads(path.read_text())["roles"]["technician"]["n"] == 2**12
    assert pins.check("technician", GOOD) is True
    upgraded = json.loads(path.read_text())["roles"]["technician"]
    assert (upgraded["n"], upgraded["failures"]) == (2**15, 0) and upgraded["salt"] != entry["salt"]
    assert pins.check("technician", GOOD) is True


# ------------------------------------------------------------------------------------ lockout


def test_five_wrong_tries_lock_the_role_even_against_the_right_pin(pins: PinStore, clock: Clock) -> None:
    _wrong(pins)
    assert pins.status("technician").tries_left == 1
    with pytest.raises(PinLocked) as raised:
        pins.check("technician", "000111")  # the fifth: locked at once
    assert raised.value.seconds_left == FIRST_LOCK_SECONDS == 300
    assert "locked after 5 wrong tries; try again in 5 min 0 s" in str(raised.value)
    clock.now += 10
    with pytest.raises(PinLocked) as raised:
        pins.check("technician", GOOD)
    assert raised.value.seconds_left == 290
    status = pins.status("technician")
    assert (status.locked, status.locked_for, status.tries_left, status.lockouts) == (True, 290, 0, 1)
    pins.set("supervisor", "2580")  # the other role is not affected
    assert pins.check("supervisor", "2580")


def test_the_lock_runs_out_and_each_further_one_lasts_twice_as_long(pins: PinStore, clock: Clock) -> None:
    lengths = []
    for _ in range(4):
        _wrong(pins)
        with pytest.raises(PinLocked) as raised:
            pins.check("technician", "000111")
        lengths.append(raised.value.seconds_left)
        clock.now += raised.value.seconds_left
        status = pins.status("technician")
        assert (status.locked, status.tries_left) == (False, MAX_TRIES)
    assert lengths == [300, 600, 1200, 2400]
    assert pins.check("technician", GOOD) is True  # a right PIN: the count and the doubling start again
    _wrong(pins)
    with pytest.raises(PinLocked) as raised:
        pins.check("technician", "000111")
    assert raised.value.seconds_left == 300


def test_the_longest_lock_is_a_day(pins: PinStore, clock: Clock) -> None:
    for _ in range(12):
        _wrong(pins)
        with pytest.raises(PinLocked) as raised:
            pins.check("technician", "000111")
        clock.now += raised.value.seconds_left
    assert raised.value.seconds_left == MAX_LOCK_SECONDS


def test_a_right_pin_clears_the_wrong_tries(pins: PinStore) -> None:
    _wrong(pins)
    assert pins.check("technician", GOOD)
    _wrong(pins)  # four more wrong tries do not lock: the count started again
    assert pins.status("technician").tries_left == 1


def test_the_count_and_the_lock_survive_a_restart(tmp_path: Path, pins: PinStore, clock: Clock) -> None:
    _wrong(pins, times=3)
    again = PinStore(tmp_path, clock=clock)  # the application started again
    assert again.status("technician").tries_left == 2
    _wrong(again, times=1)
    with pytest.raises(PinLocked):
        again.check("technician", "000111")
    clock.now += 60
    with pytest.raises(PinLocked) as raised:
        PinStore(tmp_path, clock=clock).check("technician", GOOD)
    assert raised.value.seconds_left == 240


def test_a_clock_set_back_does_not_lengthen_the_lock(pins: PinStore, clock: Clock) -> None:
    _wrong(pins)
    with pytest.raises(PinLocked):
        pins.check("technician", "000111")
    clock.now -= 10 * 24 * 3600
    assert pins.status("technician").locked_for == FIRST_LOCK_SECONDS


def test_setting_a_new_pin_lifts_the_lock(pins: PinStore) -> None:
    _wrong(pins)
    with pytest.raises(PinLocked):
        pins.check("technician", "000111")
    pins.set("technician", "135790")
    status = pins.status("technician")
    assert (status.locked, status.tries_left, status.lockouts) == (False, MAX_TRIES, 0)
    assert pins.check("technician", "135790") and not pins.check("technician", GOOD)


def test_wrong_tries_from_several_threads_are_all_counted(tmp_path: Path, pins: PinStore) -> None:
    outcomes: list[object] = []

    def attempt() -> None:
        try:
            outcomes.append(PinStore(tmp_path).check("technician", "000111"))
        except PinLocked as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(False) == MAX_TRIES - 1
    assert len([o for o in outcomes if isinstance(o, PinLocked)]) == 3


def test_the_log_names_the_role_and_the_count_never_the_pin(
    pins: PinStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="terminal.pins")
    pins.set("supervisor", "246813")
    _wrong(pins, times=MAX_TRIES - 1)
    with pytest.raises(PinLocked):
        pins.check("technician", "000111")
    text = caplog.text
    assert "supervisor PIN set" in text and "technician PIN: wrong try (4 of 5)" in text
    assert "technician PIN locked for 300 s after 5 wrong tries (lockout 1)" in text
    doc = json.loads((tmp_path / PIN_FILE).read_text())
    for secret in ("246813", "000111", GOOD, doc["roles"]["technician"]["hash"], doc["roles"]["supervisor"]["salt"]):
        assert secret not in text


def test_a_first_pin_never_replaces_one_set_meanwhile(tmp_path: Path, fast: None) -> None:
    store = PinStore(tmp_path)
    store.set("supervisor", "2580", first=True)  # a fresh terminal: the screen's choice is taken
    with pytest.raises(PinAlreadySet, match="a supervisor PIN is set already"):
        store.set("supervisor", "135790", first=True)
    assert store.check("supervisor", "2580")
    store.set("supervisor", "135790")  # the CLI's replacement
    assert store.check("supervisor", "135790")
