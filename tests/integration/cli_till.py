"""An enrolled terminal driven through its command line: ``posterm ... --data-dir DIR`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from host_link.enrolment import CredentialBundle, enrol
from simulator.host.service import HostService

__all__ = ["POSTERM", "CliTill"]

POSTERM = str(Path(sys.executable).with_name("posterm"))


class CliTill:
    """A terminal enrolled with ``host`` as ``terminal_id`` in ``root/terminal``; simulated devices in ``root/sim``."""

    def __init__(self, host: HostService, root: Path, terminal_id: str, merchant_id: str = "POSTERM0000001") -> None:
        self.host = host
        self.terminal_id = terminal_id
        self.data_dir = root / "terminal"
        self.sim_state = root / "sim"
        enrol(CredentialBundle.from_json(host.credential_bundle(terminal_id, merchant_id)), self.data_dir)

    def env(self) -> dict[str, str]:
        """This process's environment without any POSTERM_ setting of the machine, the simulator's state here."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTERM_")}
        env["POSTERM_SIM_STATE"] = str(self.sim_state)
        env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [POSTERM, *args, "--data-dir", str(self.data_dir)],
            capture_output=True, text=True, env=self.env(), timeout=120, check=False,
        )  # fmt: skip
