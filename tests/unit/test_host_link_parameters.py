"""host_link.parameters: verify, apply atomically, keep the previous version, roll back; refusals change nothing."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from host_link import parameters
from host_link.parameters import ParametersError
from terminal.settings import load_config, load_settings

TID, MID = "TERM0001", "POSTERM0000001"


def _data(name: str) -> Any:
    return json.loads(resources.files("terminal").joinpath("data", name).read_text(encoding="utf-8"))


def download(version: int = 1, **config_changes: Any) -> dict[str, Any]:
    """A download in the protocol's shape, made of the shipped configuration."""
    config = _data("terminal.json")
    config.pop("capk_files")
    config.update(config_changes)
    capks = _data("capks-public.json")["keys"] + _data("capks-simulator.json")["keys"]
    return {"version": version, "issued_at": "2025-01-01T00:00:00Z", "config": config, "capks": capks}


def snapshot(data_dir: Path) -> dict[str, bytes]:
    base = data_dir / "parameters"
    if not base.exists():
        return {}
    files = [p for p in sorted(base.rglob("*")) if p.is_file() and p.name != ".lock"]
    return {str(p.relative_to(base)): p.read_bytes() for p in files}


def load_current(data_dir: Path) -> tuple[int, Any, Any]:
    """What the bootstrap will do: current.json -> the version directory -> the terminal's loaders."""
    base = data_dir / "parameters"
    current = json.loads((base / "current.json").read_text())
    directory = base / current["dir"]
    doc = json.loads((directory / "terminal.json").read_text())
    return current["version"], load_config(doc, base=directory), load_settings(doc)


def test_nothing_downloaded(tmp_path: Path) -> None:
    assert parameters.current_version(tmp_path) is None
    assert parameters.status(tmp_path).to_json() == {"current": None, "previous": None, "versions": []}
    with pytest.raises(ParametersError, match="nothing to roll back"):
        parameters.rollback(tmp_path)


def test_apply_writes_the_contract_layout(tmp_path: Path) -> None:
    assert parameters.apply(download(1, merchant_name="Shop One"), tmp_path, terminal_id=TID, merchant_id=MID) == 1
    base = tmp_path / "parameters"
    assert json.loads((base / "current.json").read_text()) == {"version": 1, "dir": "v000001"}
    doc = json.loads((base / "v000001" / "terminal.json").read_text())
    assert doc["capk_files"] == ["capks.json"]
    assert doc["capk_kinds"] == ["simulator", "test"]  # the config's own kinds: the live keys stay untrusted
    assert doc["merchant_name"] == "Shop One"
    keys = json.loads((base / "v000001" / "capks.json").read_text())["keys"]
    assert len(keys) == len(download()["capks"])
    version, config, settings = load_current(tmp_path)
    assert version == 1 and settings.merchant_name == "Shop One"
    assert all(k.kind in ("test", "simulator") for k in config.capks)
    assert len(config.capks) == sum(1 for k in keys if k["kind"] in ("test", "simulator"))


def test_without_capk_kinds_in_the_config_every_kind_present_is_listed(tmp_path: Path) -> None:
    d = download(1)
    d["config"].pop("capk_kinds")
    parameters.apply(d, tmp_path)
    doc = json.loads((tmp_path / "parameters" / "v000001" / "terminal.json").read_text())
    assert doc["capk_kinds"] == ["live", "simulator", "test"]


def test_newer_versions_keep_the_previous_and_rollback_returns_to_it(tmp_path: Path) -> None:
    parameters.apply(download(1, merchant_name="one"), tmp_path)
    parameters.apply(download(2, merchant_name="two"), tmp_path)
    assert parameters.status(tmp_path).to_json() == {"current": 2, "previous": 1, "versions": [1, 2]}
    parameters.apply(download(5, merchant_name="five"), tmp_path)
    assert parameters.status(tmp_path).to_json() == {"current": 5, "previous": 2, "versions": [2, 5]}
    assert parameters.rollback(tmp_path) == 2
    assert load_current(tmp_path)[2].merchant_name == "two"
    assert parameters.status(tmp_path).previous is None
    with pytest.raises(ParametersError, match="only one kept"):
        parameters.rollback(tmp_path)
    # the host still offers 5: it is newer than the version in force, so it applies again
    assert parameters.apply(download(5, merchant_name="five again"), tmp_path) == 5
    assert load_current(tmp_path)[2].merchant_name == "five again"


def _bad_checksum(d: dict[str, Any]) -> None:
    key = d["capks"][0]
    key["checksum"] = ("0" if key["checksum"][0] != "0" else "1") + key["checksum"][1:]


def _bad_checksum_of_an_untrusted_kind(d: dict[str, Any]) -> None:
    key = next(k for k in d["capks"] if k["kind"] == "live")
    key["checksum"] = ("0" if key["checksum"][0] != "0" else "1") + key["checksum"][1:]


REFUSALS: list[tuple[str, Any, str]] = [
    ("bad checksum", _bad_checksum, "checksum mismatch"),
    ("bad checksum of a key not trusted", _bad_checksum_of_an_untrusted_kind, "checksum mismatch"),
    ("key without kind", lambda d: d["capks"][0].pop("kind"), "kind is missing"),
    ("duplicate key", lambda d: d["capks"].append(copy.deepcopy(d["capks"][0])), "duplicate"),
    ("bad modulus", lambda d: d["capks"][0].update(modulus="zz"), "CA public keys refused"),
    ("capks not a list", lambda d: d.update(capks={}), "capks: expected a list"),
    ("negative count", lambda d: d["config"]["offline_limits"].update(max_count=-1), "max_count"),
    ("huge age", lambda d: d["config"]["offline_limits"].update(max_age_seconds=10**9), "max_age_seconds"),
    (
        "per payment above total",
        lambda d: d["config"]["offline_limits"]["per_payment"].update(EUR=60000),
        "above its total_per_currency",
    ),
    ("negative amount", lambda d: d["config"]["offline_limits"]["per_payment"].update(EUR=-5), "offline_limits"),
    ("unknown currency", lambda d: d["config"]["offline_limits"]["per_payment"].update(XYZ=5), "offline_limits"),
    ("count not a number", lambda d: d["config"]["offline_limits"].update(max_count="many"), "max_count"),
    ("retry cap below base", lambda d: d["config"]["saf_retry"].update(cap_seconds=1, base_seconds=5), "cap_seconds"),
    ("zero retry base", lambda d: d["config"]["saf_retry"].update(base_seconds=0), "base_seconds"),
    ("card timeout", lambda d: d["config"].update(card_timeout_seconds=0), "card_timeout_seconds"),
    ("bad emv config", lambda d: d["config"].update(terminal_capabilities="zz"), "terminal_capabilities"),
    ("no combinations", lambda d: d["config"].update(combinations=[]), "combinations"),
    ("bad revoked key", lambda d: d["config"].update(revoked_capks=[{"rid": "zz"}]), "refused"),
    ("other terminal", lambda d: d["config"].update(terminal_id="TERM9999"), "not this terminal's"),
    ("other merchant", lambda d: d["config"].update(merchant_id="SOMEONE"), "not this terminal's"),
    ("version zero", lambda d: d.update(version=0), "version"),
    ("version text", lambda d: d.update(version="3"), "version"),
    ("config not an object", lambda d: d.update(config=[]), "config"),
]


@pytest.mark.parametrize(("name", "damage", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_leave_the_version_in_force_untouched(tmp_path: Path, name: str, damage: Any, message: str) -> None:
    parameters.apply(download(1), tmp_path, terminal_id=TID, merchant_id=MID)
    before = snapshot(tmp_path)
    bad = download(2)
    damage(bad)
    with pytest.raises(ParametersError, match=message):
        parameters.apply(bad, tmp_path, terminal_id=TID, merchant_id=MID)
    assert snapshot(tmp_path) == before
    assert [p.name for p in (tmp_path / "parameters").iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("version", [1, 0, -3])
def test_a_version_not_newer_is_refused(tmp_path: Path, version: int) -> None:
    parameters.apply(download(1), tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(ParametersError):
        parameters.apply(download(version), tmp_path)
    assert snapshot(tmp_path) == before


def test_a_first_download_refused_leaves_no_current(tmp_path: Path) -> None:
    bad = download(1)
    _bad_checksum(bad)
    with pytest.raises(ParametersError):
        parameters.apply(bad, tmp_path)
    assert parameters.current_version(tmp_path) is None and parameters.status(tmp_path).versions == ()


def test_a_damaged_current_json_is_an_error(tmp_path: Path) -> None:
    parameters.apply(download(1), tmp_path)
    (tmp_path / "parameters" / "current.json").write_text('{"version": 1, "dir": "../etc"}')
    with pytest.raises(ParametersError, match="damaged"):
        parameters.status(tmp_path)


CRASH = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from host_link import parameters

    def die(base, version):
        os._exit(9)  # the power goes: no cleanup, no finally

    parameters._switch_current = die
    parameters.apply(json.loads(sys.stdin.read()), Path(sys.argv[1]))
    """
)


def test_a_crash_between_writing_the_version_and_switching_leaves_the_old_version_in_force(tmp_path: Path) -> None:
    parameters.apply(download(1, merchant_name="old"), tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(tmp_path)],
        input=json.dumps(download(2, merchant_name="new")),
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 9, proc.stderr
    assert (tmp_path / "parameters" / "v000002" / "terminal.json").exists()  # written, never switched to
    version, _, settings = load_current(tmp_path)
    assert (version, settings.merchant_name) == (1, "old")
    assert parameters.status(tmp_path).to_json() == {"current": 1, "previous": None, "versions": [1, 2]}
    # the orphan is neither "previous" nor in the way: the same version applies again
    assert parameters.apply(download(2, merchant_name="new"), tmp_path) == 2
    assert load_current(tmp_path)[2].merchant_name == "new"
    assert parameters.status(tmp_path).previous == 1


class FakeLink:
    terminal_id = TID
    merchant_id = MID

    def __init__(self, offer: dict[str, Any]) -> None:
        self.offer = offer
        self.asked: list[int | None] = []

    def fetch_parameters(self, have: int | None) -> dict[str, Any] | None:
        self.asked.append(have)
        return None if have == self.offer["version"] else self.offer


def test_download_and_apply(tmp_path: Path) -> None:
    link = FakeLink(download(3))
    assert parameters.download_and_apply(link, tmp_path) == 3
    assert parameters.download_and_apply(link, tmp_path) is None
    assert link.asked == [None, 3]
