"""The simulator's ``posterm`` commands as the CLI lists them: name, one-line help, and what adds them.

Registered in the ``posterm.commands`` entry point group (setup.cfg); see
:func:`terminal.cli.plugin_commands`.  This module imports nothing, so that
``posterm --help`` and the terminal's own commands start without loading the
simulator; a command's module is imported when that command runs.
tests/unit/test_cli_commands.py checks each help against the one its module
gives.
"""

from __future__ import annotations

__all__ = ["DEMO", "HOST", "SIM"]

DEMO = (("demo", "run a scripted day at a counter on the built-in simulator", "simulator.demo:add_commands"),)
HOST = (("host", "the simulated acquiring host (HTTPS, mutual TLS, faults)", "simulator.host.cli:add_commands"),)
SIM = (
    (
        "sim",
        "start a simulated device: a card on pcscd or nfc-udp, a scanner, a printer, a PIN pad",
        "simulator.sim_cli:add_commands",
    ),
)
