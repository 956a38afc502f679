"""contrib/systemd/posterm-kiosk.service: a unit systemd accepts, that restarts the kiosk whatever ends it.

``systemd-analyze verify`` checks it where systemd is installed (ExecStart
pointed at this checkout's ``posterm``, since the shipped path is the
installer's to adjust); a parser of the unit file format checks the keys
everywhere else too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "posterm-kiosk.service"
POSTERM = Path(sys.executable).with_name("posterm")

# The keys this unit may use, by section (systemd.unit(5), systemd.service(5), systemd.exec(5), systemd.kill(5)).
KNOWN = {
    "Unit": {"Description", "Documentation", "After", "Before", "PartOf", "Wants", "Requires", "StartLimitIntervalSec"},
    "Service": {
        "Type",
        "ExecStart",
        "ExecStartPre",
        "Restart",
        "RestartSec",
        "TimeoutStopSec",
        "KillMode",
        "Environment",
        "WorkingDirectory",
    },
    "Install": {"WantedBy"},
}


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of (key, value) in order, as systemd reads them: keys may repeat, comments are whole lines."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        header = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if header:
            current = sections.setdefault(header.group(1), [])
            continue
        key, equals, value = line.partition("=")
        assert equals and current is not None, f"line {number}: not KEY=VALUE in a section: {raw!r}"
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key.strip()), f"line {number}: bad key {key!r}"
        assert not raw.rstrip().endswith("\\"), f"line {number}: continuation lines are not used here"
        current.append((key.strip(), value.strip()))
    return sections


def test_the_unit_has_the_keys_a_kiosk_needs() -> None:
    sections = parse_unit(UNIT.read_text())
    assert set(sections) == {"Unit", "Service", "Install"}
    for name, pairs in sections.items():
        unknown = {key for key, _ in pairs} - KNOWN[name]
        assert unknown == set(), f"[{name}] unknown keys {unknown}"
    service = dict(sections["Service"])  # the last value of a repeated key
    assert service["Restart"] == "always"
    assert 0 < float(service["RestartSec"]) <= 30
    assert service["ExecStart"].endswith("/posterm ui --kiosk")
    assert "StartLimitIntervalSec" in dict(sections["Unit"])  # never gives up restarting
    environment = " ".join(value for key, value in sections["Service"] if key == "Environment")
    for variable in ("DISPLAY=", "XAUTHORITY=", "KIVY_NO_ARGS=1", "POSTERM_DATA_DIR="):
        assert variable in environment, variable
    assert dict(sections["Install"])["WantedBy"] == "graphical-session.target"
    text = UNIT.read_text()
    assert "systemctl --user enable --now posterm-kiosk.service" in text  # how to install it, in its comments
    assert "posterm pin set technician" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    text = UNIT.read_text()
    shipped = re.search(r"^ExecStart=(\S+)", text, re.MULTILINE)
    assert shipped is not None
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(f"ExecStart={shipped.group(1)}", f"ExecStart={POSTERM}"))
    proc = subprocess.run(
        ["systemd-analyze", "--man=no", "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0 and "Failed to initialize manager" in proc.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {proc.stderr.strip()}")
    # Unknown keys or sections are warnings only (status 0): any output at all fails the test.
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), proc.stderr


def test_the_parser_catches_a_misspelt_key(tmp_path: Path) -> None:
    sections = parse_unit(UNIT.read_text().replace("Restart=always", "Restrat=always"))
    assert {key for key, _ in sections["Service"]} - KNOWN["Service"] == {"Restrat"}
