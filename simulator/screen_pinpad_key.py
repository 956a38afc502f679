"""Key injection for the on-screen PIN pad of ``posterm ui`` (``screen:``): the simulator's test keys (SIMULATOR ONLY).

``posterm sim pinpad-key [--data-dir DIR]`` writes the terminal's software PIN
pad keys (:mod:`terminal.soft_pinpad`): the AES DUKPT initial key and the TDES
DUKPT IPEK derived from the simulator's test BDKs (:mod:`simulator.pin_keys`)
for the on-screen pad's own initial key id and KSN, so that the simulated
issuer, which holds the same BDKs, deciphers its PIN blocks. The counters
start again from 0: load the keys once per data directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulator.pin_keys import SIM_AES_BDK, SIM_SCREEN_AES_IKID, SIM_SCREEN_TDES_INITIAL_KSN, SIM_TDES_BDK
from terminal.dukpt import aes_initial_key, tdes_ipek
from terminal.soft_pinpad import load_keys

__all__ = ["add_arguments", "load_simulator_keys", "provision_if_configured", "run"]


def load_simulator_keys(data_dir: Path) -> Path:
    """Inject the simulator's keys for the on-screen PIN pad into ``data_dir``; the file written."""
    return load_keys(
        data_dir,
        aes_initial_key=aes_initial_key(SIM_AES_BDK, SIM_SCREEN_AES_IKID),
        aes_ikid=SIM_SCREEN_AES_IKID,
        tdes_ipek=tdes_ipek(SIM_TDES_BDK, SIM_SCREEN_TDES_INITIAL_KSN),
        tdes_initial_ksn=SIM_SCREEN_TDES_INITIAL_KSN,
    )


def provision_if_configured(data_dir: Path) -> bool:
    """Load the simulator's keys when this terminal's PIN pad is the on-screen one and it has none yet; whether it did.

    Called where the simulator is the terminal's host (the in-process ``memory`` host is opened), so that
    ``posterm devices set pin-pad screen:`` then ``posterm ui`` works on the simulator with nothing more to do.
    A device configuration that cannot be read is left for the terminal to report.
    """
    from terminal.devices import DeviceConfigError, load_devices
    from terminal.soft_pinpad import KEYS_FILE

    try:
        url = load_devices(Path(data_dir)).pin_pad
    except DeviceConfigError:
        return False
    if url is None or not url.strip().startswith("screen:") or (Path(data_dir) / KEYS_FILE).exists():
        return False
    load_simulator_keys(Path(data_dir))
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="the terminal's data directory (default: the usual one)")


def run(args: argparse.Namespace) -> int:
    from terminal.bootstrap import default_data_dir

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    try:
        path = load_simulator_keys(data_dir)
    except OSError as exc:
        print(f"posterm: cannot write the on-screen PIN pad's keys in {data_dir}: {exc.strerror}", file=sys.stderr)
        return 3
    print(f"on-screen PIN pad keys (simulator test keys) loaded: {path}")
    return 0
