"""The ``cbdc`` section of the parameter download (CBDC-SPEC §8) on the terminal's side.

Verified (every root's checksum is SM3(id || key)), applied in the same
atomic switch as the rest of the parameters, refused as a whole when
anything in it is wrong, and shown by ``posterm params status`` (the console
script, on a real data directory).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes

from host_link import parameters
from host_link.parameters import ParametersError
from terminal.cbdc_params import cbdc_parameters
from tests.unit.test_host_link_parameters import FakeLink, download, snapshot

POSTERM = str(Path(sys.executable).with_name("posterm"))
# Public points of sm2p256v1 (a public key is just a point): the GB/T 32918.5 test key, and the generator G.
KEY_P = (
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
KEY_G = (
    "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
    "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0"
)


def sm3_hex(data: bytes) -> str:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex().upper()


def root(root_id: str, key: str) -> dict[str, str]:
    return {"id": root_id, "public_key": key, "checksum": sm3_hex(bytes.fromhex(root_id + key))}


def section(version: int = 3, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": version,
        "roots": [root("00000001", KEY_P), root("00000002", KEY_G)],
        "blocked_wallets": ["D1A0000000000007"],
        "blocked_operators": [],
        "limits": {"156": {"per_payment": 200000, "max_count": 20, "max_total": 500000, "max_unsent_age_s": 86400}},
    }
    doc.update(changes)
    return doc


def with_cbdc(version: int, cbdc: Any) -> dict[str, Any]:
    d = download(version)
    d["cbdc"] = cbdc
    return d


def written(data_dir: Path, version: int) -> Any:
    doc = json.loads((data_dir / "parameters" / f"v{version:06d}" / "terminal.json").read_text())
    return doc.get("cbdc")


def test_the_checksum_is_sm3_of_id_and_key_as_in_the_spec() -> None:
    # SM3("abc") (GB/T 32905, PAYMENT-MEANS.md §4) through the same hash the terminal checks with
    assert sm3_hex(b"abc").lower() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    from host_link.cbdc_parameters import root_checksum

    assert root_checksum(bytes.fromhex("00000001"), bytes.fromhex(KEY_P)).hex().upper() == root("00000001", KEY_P)[
        "checksum"
    ]


def test_a_good_section_is_applied_with_the_rest_and_read_back(tmp_path: Path) -> None:
    assert parameters.apply(with_cbdc(1, section(3)), tmp_path) == 1
    assert written(tmp_path, 1) == section(3)  # as verified, ids in upper case
    seen = cbdc_parameters(tmp_path)
    assert seen is not None and seen.parameters_version == 1
    assert (seen.version, seen.roots, seen.blocked_wallets) == (3, ("00000001", "00000002"), ("D1A0000000000007",))
    assert seen.limits[156].max_unsent_age_s == 86400
    # the same cbdc version again (nothing blocked since) and a newer one are both fine
    assert parameters.apply(with_cbdc(2, section(3)), tmp_path) == 2
    blocked = ["D1A0000000000007", "D1A0000000000009"]
    assert parameters.apply(with_cbdc(3, section(4, blocked_wallets=blocked)), tmp_path) == 3
    assert cbdc_parameters(tmp_path).blocked_wallets == tuple(blocked)  # type: ignore[union-attr]
    # a rollback (a person's choice) returns to the previous section with its version
    assert parameters.rollback(tmp_path) == 2
    assert cbdc_parameters(tmp_path).version == 3  # type: ignore[union-attr]


def test_lower_case_hex_is_accepted_and_written_in_upper_case(tmp_path: Path) -> None:
    lower = section(1, blocked_wallets=["d1a0000000000007"])
    lower["roots"] = [{k: v.lower() for k, v in r.items()} for r in lower["roots"]]
    parameters.apply(with_cbdc(1, lower), tmp_path)
    assert written(tmp_path, 1)["blocked_wallets"] == ["D1A0000000000007"]
    assert written(tmp_path, 1)["roots"][0]["public_key"] == KEY_P


def test_a_download_without_the_section_leaves_the_terminal_without_digital_currency(tmp_path: Path) -> None:
    parameters.apply(with_cbdc(1, section(3)), tmp_path)
    parameters.apply(download(2), tmp_path)
    assert cbdc_parameters(tmp_path) is None and written(tmp_path, 2) is None


def flip_checksum(d: dict[str, Any]) -> None:
    checksum = d["roots"][1]["checksum"]
    d["roots"][1]["checksum"] = ("0" if checksum[0] != "0" else "1") + checksum[1:]


def _swap_keys(d: dict[str, Any]) -> None:  # each root keeps its checksum, with the other's key
    d["roots"][0]["public_key"], d["roots"][1]["public_key"] = d["roots"][1]["public_key"], d["roots"][0]["public_key"]


def _off_curve(d: dict[str, Any]) -> None:  # a checksum that matches a key that is not a point of the curve
    key = KEY_G[:-2] + "A1"
    d["roots"][0] = root("00000001", key)


CBDC_REFUSALS: list[tuple[str, Any, str]] = [
    ("bad checksum", flip_checksum, r"cbdc\.roots\[1\] \(00000002\): the checksum does not match SM3\(id \|\| key\)"),
    ("keys swapped", _swap_keys, r"cbdc\.roots\[0\] \(00000001\): the checksum does not match"),
    ("key off the curve", _off_curve, "not a point of the curve"),
    ("root id short", lambda d: d["roots"][0].update(id="001"), r"cbdc\.roots\[0\]\.id: expected 8 hex digits"),
    ("root key not hex", lambda d: d["roots"][0].update(public_key="zz" * 64), r"public_key: expected 128 hex"),
    ("root without checksum", lambda d: d["roots"][0].pop("checksum"), r"checksum: expected 64 hex digits"),
    ("root with more", lambda d: d["roots"][0].update(kind="live"), "unknown field 'kind'"),
    ("same root twice", lambda d: d["roots"].append(copy.deepcopy(d["roots"][0])), "appears twice"),
    ("roots not a list", lambda d: d.update(roots={}), r"cbdc\.roots: expected a list"),
    ("no roots", lambda d: d.pop("roots"), r"cbdc\.roots: missing"),
    ("bad wallet id", lambda d: d.update(blocked_wallets=["D1A00000"]), r"blocked_wallets\[0\]"),
    ("bad operator id", lambda d: d.update(blocked_operators=["xyz"]), r"blocked_operators\[0\]"),
    ("version text", lambda d: d.update(version="3"), r"cbdc\.version"),
    ("version negative", lambda d: d.update(version=-1), r"cbdc\.version"),
    ("unknown field", lambda d: d.update(trusted_everything=True), "unknown field 'trusted_everything'"),
    ("currency not numeric", lambda d: d["limits"].update(CNY=d["limits"]["156"]), r"cbdc\.limits\.CNY"),
    ("limit missing", lambda d: d["limits"]["156"].pop("max_count"), r"max_count"),
    ("limit negative", lambda d: d["limits"]["156"].update(max_total=-1), r"max_total"),
    ("age too long", lambda d: d["limits"]["156"].update(max_unsent_age_s=10**8), r"max_unsent_age_s: .* out of range"),
    ("count too high", lambda d: d["limits"]["156"].update(max_count=10**6), r"max_count: .* out of range"),
    ("per payment above total", lambda d: d["limits"]["156"].update(per_payment=600000), "above max_total"),
    ("section not an object", lambda d: d.clear() or d.update(x=1), "unknown field 'x'"),
]


@pytest.mark.parametrize(("name", "damage", "message"), CBDC_REFUSALS, ids=[r[0] for r in CBDC_REFUSALS])
def test_a_malformed_section_refuses_the_whole_download_and_changes_nothing(
    tmp_path: Path, name: str, damage: Any, message: str
) -> None:
    parameters.apply(with_cbdc(1, section(3)), tmp_path)
    before = snapshot(tmp_path)
    bad = section(4)
    damage(bad)
    bad_download = with_cbdc(2, bad)
    bad_download["config"]["merchant_name"] = "the rest of the download is fine"
    with pytest.raises(ParametersError, match=r"^digital-currency parameters refused: ") as refused:
        parameters.apply(bad_download, tmp_path)
    assert re.search(message, str(refused.value)), str(refused.value)
    assert "\n" not in str(refused.value)
    assert snapshot(tmp_path) == before  # nothing applied: not the config, not the CA keys
    assert parameters.current_version(tmp_path) == 1


def test_an_older_section_is_refused_but_an_equal_or_newer_one_is_not(tmp_path: Path) -> None:
    parameters.apply(with_cbdc(1, section(5)), tmp_path)
    with pytest.raises(ParametersError, match=r"cbdc\.version 4 is older than the version in force \(5\)"):
        parameters.apply(with_cbdc(2, section(4)), tmp_path)
    assert parameters.apply(with_cbdc(2, section(5)), tmp_path) == 2


def test_a_section_inside_config_is_not_trust(tmp_path: Path) -> None:
    d = download(1)
    d["config"]["cbdc"] = section(9, blocked_wallets=[])  # unverified, and it would unblock a wallet
    parameters.apply(d, tmp_path)
    assert written(tmp_path, 1) is None and cbdc_parameters(tmp_path) is None
    d = with_cbdc(2, section(3))
    d["config"]["cbdc"] = section(9, blocked_wallets=[])
    parameters.apply(d, tmp_path)
    assert written(tmp_path, 2) == section(3)


def test_a_section_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParametersError, match="cbdc: expected an object"):
        parameters.apply(with_cbdc(1, ["roots"]), tmp_path)


def test_download_and_apply_takes_the_section_from_the_host(tmp_path: Path) -> None:
    link = FakeLink(with_cbdc(7, section(2)))
    assert parameters.download_and_apply(link, tmp_path) == 7
    assert cbdc_parameters(tmp_path).version == 2  # type: ignore[union-attr]


def _posterm(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTERM_MASTER_KEY", "POSTERM_DATA_DIR")}
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    return subprocess.run(
        [POSTERM, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_params_status_shows_the_section_in_force(tmp_path: Path) -> None:
    parameters.apply(with_cbdc(1, section(3)), tmp_path)
    proc = _posterm(tmp_path, "params", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["current"] == 1
    assert shown["cbdc"] == {
        "version": 3,
        "source": "downloaded",
        "roots": ["00000001", "00000002"],
        "blocked_wallets": ["D1A0000000000007"],
        "blocked_operators": [],
        "limits": {"156": {"per_payment": 200000, "max_count": 20, "max_total": 500000, "max_unsent_age_s": 86400}},
    }
    text = _posterm(tmp_path, "params", "status")
    assert text.returncode == 0
    assert text.stdout.splitlines()[1] == (
        "digital currency: version 3 (from parameters version 1), 2 trusted roots, "
        "1 blocked wallet (D1A0000000000007), 0 blocked operators; limits CNY: 2000.00 CNY a payment, "
        "20 payments / 5000.00 CNY unsent, oldest unsent 24 h"
    )


def test_params_status_names_a_damaged_section_in_one_line(tmp_path: Path) -> None:
    parameters.apply(with_cbdc(1, section(3)), tmp_path)
    path = tmp_path / "parameters" / "v000001" / "terminal.json"
    doc = json.loads(path.read_text())
    flip_checksum(doc["cbdc"])  # edited on disk after it was verified
    path.write_text(json.dumps(doc))
    proc = _posterm(tmp_path, "params", "status")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "checksum does not match" in proc.stderr, proc.stderr


def test_diag_checks_the_roots_again(tmp_path: Path) -> None:
    from terminal.diagnostics import run_diagnostics

    parameters.apply(with_cbdc(1, section(3)), tmp_path)

    def configuration() -> Any:
        results = run_diagnostics(tmp_path, tests=["configuration"], host="none")
        return next(r for r in results if r.name == "configuration")

    result = configuration()
    assert result.passed is True and "digital currency version 3, 2 roots, checksums verified" in result.reason
    assert result.details["cbdc"]["roots"] == ["00000001", "00000002"]
    path = tmp_path / "parameters" / "v000001" / "terminal.json"
    doc = json.loads(path.read_text())
    flip_checksum(doc["cbdc"])
    path.write_text(json.dumps(doc))
    result = configuration()
    assert result.passed is False and "checksum does not match" in result.reason
